-- The audience views (users and friendships): security barriers of app_profiles, and a blocked
-- pair never reads each other.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

CREATE OR REPLACE VIEW audience_users_admin WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.current_role()) = 'admin'
  AND (SELECT app.may('audience', 'read'));
ALTER VIEW audience_users_admin OWNER TO app_profiles;
REVOKE ALL ON audience_users_admin FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_users_admin TO app_user;

CREATE OR REPLACE VIEW audience_users WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.may('audience', 'read'))
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL
           AND NOT EXISTS (SELECT 1 FROM friendships f
                           WHERE f.company_id = u.company_id AND f.status = 'blocked'
                             AND f.user_a = LEAST(u.id, (SELECT app.current_user_id()))
                             AND f.user_b = GREATEST(u.id, (SELECT app.current_user_id())))));
ALTER VIEW audience_users OWNER TO app_profiles;
REVOKE ALL ON audience_users FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_users TO app_user;
