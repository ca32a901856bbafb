DROP VIEW IF EXISTS audience_bitmaps;
DROP TRIGGER IF EXISTS audience_users_inserted ON users;
DROP TRIGGER IF EXISTS audience_users_updated ON users;
DROP TRIGGER IF EXISTS audience_users_deleted ON users;
DROP FUNCTION IF EXISTS app.audience_users_changed();
DROP FUNCTION IF EXISTS app.audience_terms(jsonb, text, text, boolean, timestamp with time zone, boolean);
DROP FUNCTION IF EXISTS app.audience_number(double precision);
DROP TABLE IF EXISTS audience_bits;
DROP TABLE IF EXISTS audience_members;
