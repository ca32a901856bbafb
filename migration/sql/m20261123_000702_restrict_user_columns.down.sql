
GRANT SELECT ON users TO app_user;
DROP FUNCTION IF EXISTS app.current_password_hash();
DROP VIEW IF EXISTS audience_users;
DROP VIEW IF EXISTS audience_users_admin;
