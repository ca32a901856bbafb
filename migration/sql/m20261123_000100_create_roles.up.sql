
CREATE TABLE IF NOT EXISTS roles (
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    name         text NOT NULL
                 CHECK (name ~ '^[a-z][a-z0-9_-]{1,39}$' AND name NOT IN ('admin', 'manager', 'member')),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- [{"object": "preset", "action": "update"}, ...]; checked by the server against the
    -- objects and actions it knows.
    grants       jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(grants) = 'array'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- The key starts with company_id, so a deployment distributed by company can co-locate.
    CONSTRAINT roles_pkey PRIMARY KEY (company_id, name)
);

DROP TRIGGER IF EXISTS roles_touch_updated_at ON roles;
CREATE TRIGGER roles_touch_updated_at BEFORE UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;

GRANT SELECT, INSERT, UPDATE, DELETE ON roles TO app_user;

DROP POLICY IF EXISTS roles_select ON roles;
CREATE POLICY roles_select ON roles FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS roles_admin_insert ON roles;
CREATE POLICY roles_admin_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
DROP POLICY IF EXISTS roles_admin_update ON roles;
CREATE POLICY roles_admin_update ON roles FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS roles_admin_delete ON roles;
CREATE POLICY roles_admin_delete ON roles FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
