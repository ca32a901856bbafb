-- users: people are created by invitation or sign-up (definer functions) and never deleted by a
-- request; e-mail addresses do not change through requests, and request roles read no e-mail
-- or password hash (user_profiles and the audience views show what a caller may see). Which
-- column of whose row may change is decided by app.users_guard.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
REVOKE ALL ON users FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON users TO app_auth;
GRANT SELECT ON users TO app_profiles;
GRANT SELECT (id, company_id, display_name, role, is_active, created_at, updated_at,
              last_active_at, profile_visibility, visible_attributes) ON users TO app_user;
GRANT UPDATE (display_name, attributes, role, is_active, password_hash, profile_visibility,
              visible_attributes) ON users TO app_user;

DROP POLICY IF EXISTS users_definer ON users;
CREATE POLICY users_definer ON users FOR ALL TO app_auth USING (true) WITH CHECK (true);

-- The profile role reads the caller's company, nothing else, and writes nothing.
DROP POLICY IF EXISTS users_profiles ON users;
CREATE POLICY users_profiles ON users FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS users_select ON users;
CREATE POLICY users_select ON users FOR SELECT TO app_user
    USING (company_id = app.current_company_id()
           AND (id = app.current_user_id() OR app.may('user', 'read')));

DROP POLICY IF EXISTS users_update_self ON users;
CREATE POLICY users_update_self ON users FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND id = app.current_user_id())
    WITH CHECK (company_id = app.current_company_id() AND id = app.current_user_id());

DROP POLICY IF EXISTS users_update_managed ON users;
CREATE POLICY users_update_managed ON users FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('user', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

-- What a request may change in a user row: its own profile and privacy (`user update`) and its
-- own password (`session update`, as changePassword); another's profile, role and active state
-- only as someone who manages users, and never its own role; and the company keeps an active
-- admin. Definer functions and the owner are not requests.
CREATE OR REPLACE FUNCTION app.users_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    me uuid := app.current_user_id();
    manages boolean;
BEGIN
    IF current_user <> 'app_user' THEN
        RETURN NEW;
    END IF;
    manages := app.may('user', 'manage');
    IF (NEW.role IS DISTINCT FROM OLD.role OR NEW.is_active IS DISTINCT FROM OLD.is_active) AND NOT manages THEN
        RAISE EXCEPTION 'only those who manage users change roles and active state' USING ERRCODE = '42501';
    END IF;
    IF NEW.role IS DISTINCT FROM OLD.role AND OLD.id = me THEN
        RAISE EXCEPTION 'nobody can change their own role' USING ERRCODE = '42501';
    END IF;
    IF (NEW.display_name IS DISTINCT FROM OLD.display_name OR NEW.attributes IS DISTINCT FROM OLD.attributes)
       AND NOT (manages OR (OLD.id = me AND app.may('user', 'update'))) THEN
        RAISE EXCEPTION 'only the user themselves or those who manage users change a profile' USING ERRCODE = '42501';
    END IF;
    IF (NEW.profile_visibility IS DISTINCT FROM OLD.profile_visibility
        OR NEW.visible_attributes IS DISTINCT FROM OLD.visible_attributes)
       AND NOT (OLD.id = me AND app.may('user', 'update')) THEN
        RAISE EXCEPTION 'only the user themselves changes their privacy settings' USING ERRCODE = '42501';
    END IF;
    IF NEW.password_hash IS DISTINCT FROM OLD.password_hash AND NOT (OLD.id = me AND app.may('session', 'update')) THEN
        RAISE EXCEPTION 'only the user themselves changes their password' USING ERRCODE = '42501';
    END IF;
    IF OLD.role = 'admin' AND OLD.is_active AND NOT (NEW.role = 'admin' AND NEW.is_active) THEN
        -- Serialises with concurrent demotions, as the API does.
        PERFORM 1 FROM companies WHERE id = OLD.company_id FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT 1 FROM users u WHERE u.company_id = OLD.company_id AND u.id <> OLD.id
                       AND u.role = 'admin' AND u.is_active) THEN
            RAISE EXCEPTION 'the last active admin of a company cannot be demoted or deactivated'
                USING ERRCODE = '23514';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.users_guard() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER users_guard BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION app.users_guard();

CREATE OR REPLACE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The caller's own password hash, for changePassword (app_user reads no password_hash).
CREATE OR REPLACE FUNCTION app.current_password_hash() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN (SELECT u.password_hash FROM users u
            WHERE u.id = app.current_user_id() AND u.company_id = app.current_company_id() AND u.is_active);
END
$$;
ALTER FUNCTION app.current_password_hash() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.current_password_hash() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.current_password_hash() TO app_user;
