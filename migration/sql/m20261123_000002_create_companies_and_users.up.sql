
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE IF NOT EXISTS companies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id      uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    email           text NOT NULL CHECK (position('@' IN email) > 1 AND length(email) <= 320),
    password_hash   text,
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role            text NOT NULL DEFAULT 'member',
    attributes      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_active_at  timestamptz,
    -- Tenant rows are referenced by (company_id, id), so a distributed deployment can co-locate.
    CONSTRAINT users_company_id_id_key UNIQUE (company_id, id)
);

-- Emails are unique across the service, whatever their case.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email));
CREATE INDEX IF NOT EXISTS users_company_id_idx ON users (company_id, id);
CREATE INDEX IF NOT EXISTS users_search_idx ON users
    USING gin ((display_name || ' ' || email) gin_trgm_ops);

DROP TRIGGER IF EXISTS companies_touch_updated_at ON companies;
CREATE TRIGGER companies_touch_updated_at BEFORE UPDATE ON companies
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
DROP TRIGGER IF EXISTS users_touch_updated_at ON users;
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

ALTER TABLE companies ENABLE ROW LEVEL SECURITY;
ALTER TABLE companies FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;

GRANT SELECT, UPDATE ON companies TO app_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO app_user;

-- Helpers are called as (SELECT ...) so they are evaluated once per statement, not per row.
DROP POLICY IF EXISTS companies_select ON companies;
CREATE POLICY companies_select ON companies FOR SELECT TO app_user
    USING (id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS companies_update_admin ON companies;
CREATE POLICY companies_update_admin ON companies FOR UPDATE TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS users_select ON users;
CREATE POLICY users_select ON users FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS users_update_self ON users;
CREATE POLICY users_update_self ON users FOR UPDATE TO app_user
    USING (id = (SELECT app.current_user_id()) AND company_id = (SELECT app.current_company_id()))
    WITH CHECK (id = (SELECT app.current_user_id()) AND company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS users_admin_insert ON users;
CREATE POLICY users_admin_insert ON users FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
DROP POLICY IF EXISTS users_admin_update ON users;
CREATE POLICY users_admin_update ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS users_admin_delete ON users;
CREATE POLICY users_admin_delete ON users FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
