
CREATE TABLE IF NOT EXISTS audience_fields (
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    -- Written into SQL as a JSON key by the filter compiler: keep this check strict.
    name         text NOT NULL
                 CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'
                        AND name NOT IN ('role', 'email_domain', 'created_at', 'last_active_at', 'is_active')),
    type         text NOT NULL CHECK (type IN ('string', 'number', 'boolean', 'date', 'string_list')),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audience_fields_pkey PRIMARY KEY (company_id, name)
);

DROP TRIGGER IF EXISTS audience_fields_touch_updated_at ON audience_fields;
CREATE TRIGGER audience_fields_touch_updated_at BEFORE UPDATE ON audience_fields
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

ALTER TABLE audience_fields ENABLE ROW LEVEL SECURITY;
ALTER TABLE audience_fields FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON audience_fields TO app_user;

DROP POLICY IF EXISTS audience_fields_select ON audience_fields;
CREATE POLICY audience_fields_select ON audience_fields FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS audience_fields_admin_insert ON audience_fields;
CREATE POLICY audience_fields_admin_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
DROP POLICY IF EXISTS audience_fields_admin_update ON audience_fields;
CREATE POLICY audience_fields_admin_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS audience_fields_admin_delete ON audience_fields;
CREATE POLICY audience_fields_admin_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');

CREATE TABLE IF NOT EXISTS presets (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    owner_id     uuid NOT NULL,
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    filter       jsonb NOT NULL CHECK (jsonb_typeof(filter) = 'object'),
    visibility   text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'company')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT presets_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT presets_owner_fkey FOREIGN KEY (company_id, owner_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);

-- Names are unique per company whatever their case; concurrent creations meet here.
CREATE UNIQUE INDEX IF NOT EXISTS presets_company_name_key ON presets (company_id, lower(name));
CREATE INDEX IF NOT EXISTS presets_company_owner_idx ON presets (company_id, owner_id);

DROP TRIGGER IF EXISTS presets_touch_updated_at ON presets;
CREATE TRIGGER presets_touch_updated_at BEFORE UPDATE ON presets
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

ALTER TABLE presets ENABLE ROW LEVEL SECURITY;
ALTER TABLE presets FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON presets TO app_user;

-- Members see their own and company-visible presets and change only their own; managers and
-- admins see and change every preset of the company.
DROP POLICY IF EXISTS presets_select ON presets;
CREATE POLICY presets_select ON presets FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (owner_id = (SELECT app.current_user_id())
                OR visibility = 'company'
                OR (SELECT app.current_role()) IN ('admin', 'manager')));
DROP POLICY IF EXISTS presets_insert ON presets;
CREATE POLICY presets_insert ON presets FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id())
                AND owner_id = (SELECT app.current_user_id()));
DROP POLICY IF EXISTS presets_update ON presets;
CREATE POLICY presets_update ON presets FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (owner_id = (SELECT app.current_user_id())
                OR (SELECT app.current_role()) IN ('admin', 'manager')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS presets_delete ON presets;
CREATE POLICY presets_delete ON presets FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (owner_id = (SELECT app.current_user_id())
                OR (SELECT app.current_role()) IN ('admin', 'manager')));

-- Audience filters: `attributes @> '{"plan": "pro"}'` and friends.
CREATE INDEX IF NOT EXISTS users_attributes_idx ON users USING gin (attributes jsonb_path_ops);
CREATE INDEX IF NOT EXISTS users_company_last_active_idx ON users (company_id, last_active_at);
CREATE INDEX IF NOT EXISTS users_company_email_domain_idx
    ON users (company_id, lower(split_part(email, '@', 2)));
