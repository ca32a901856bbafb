
-- Owners of definer objects must be allowed to create in the schema while they are handed
-- over (superusers skip that check; a managed service's CREATEROLE owner does not).
GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;
-- Audiences of admins read `audience_users_admin` (the whole company: the caller's role is
-- checked once per statement, as a one-time filter, so counts and pages keep the plans of the
-- plain table); everyone else reads `audience_users`, limited to people who share their whole
-- profile with the company (and the caller).
CREATE OR REPLACE VIEW audience_users_admin AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.current_role()) = 'admin';
ALTER VIEW audience_users_admin OWNER TO app_profiles;
REVOKE ALL ON audience_users_admin FROM PUBLIC;
GRANT SELECT ON audience_users_admin TO app_user;

CREATE OR REPLACE VIEW audience_users AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL));
ALTER VIEW audience_users OWNER TO app_profiles;
REVOKE ALL ON audience_users FROM PUBLIC;
GRANT SELECT ON audience_users TO app_user;

CREATE OR REPLACE FUNCTION app.current_password_hash() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    SELECT password_hash FROM users
    WHERE id = app.current_user_id() AND company_id = app.current_company_id() AND is_active
$$;
ALTER FUNCTION app.current_password_hash() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.current_password_hash() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.current_password_hash() TO app_user;

REVOKE SELECT ON users FROM app_user;
GRANT SELECT (id, company_id, display_name, role, is_active, created_at, updated_at,
              last_active_at, profile_visibility, visible_attributes) ON users TO app_user;
REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
