-- company_llm_providers: a company's own LLM provider (base URL, model, API key). Its admins
-- (whoever manages the company) read and write it; the API key is stored only sealed by the
-- server (AES-256-GCM, see server/src/secrets.rs), and no request role may read the sealed
-- column: requests see `has_api_key`. Background work (app_worker) reads the row of the
-- company whose reply it streams, and rotate-secrets re-seals keys, through definer functions
-- of app_auth.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE company_llm_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE company_llm_providers FORCE ROW LEVEL SECURITY;
REVOKE ALL ON company_llm_providers FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE (api_key_sealed) ON company_llm_providers TO app_auth;
GRANT SELECT (company_id, base_url, model, has_api_key, created_at, updated_at) ON company_llm_providers TO app_user;
GRANT INSERT (company_id, base_url, model, api_key_sealed) ON company_llm_providers TO app_user;
GRANT UPDATE (base_url, model, api_key_sealed) ON company_llm_providers TO app_user;
GRANT DELETE ON company_llm_providers TO app_user;

DROP POLICY IF EXISTS company_llm_providers_select ON company_llm_providers;
CREATE POLICY company_llm_providers_select ON company_llm_providers FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_llm_providers_insert ON company_llm_providers;
CREATE POLICY company_llm_providers_insert ON company_llm_providers FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_llm_providers_update ON company_llm_providers;
CREATE POLICY company_llm_providers_update ON company_llm_providers FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS company_llm_providers_delete ON company_llm_providers;
CREATE POLICY company_llm_providers_delete ON company_llm_providers FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

-- The definer role reads every company's row and replaces a sealed key, nothing else.
DROP POLICY IF EXISTS company_llm_providers_definer_select ON company_llm_providers;
CREATE POLICY company_llm_providers_definer_select ON company_llm_providers FOR SELECT TO app_auth
    USING (true);

DROP POLICY IF EXISTS company_llm_providers_definer_reseal ON company_llm_providers;
CREATE POLICY company_llm_providers_definer_reseal ON company_llm_providers FOR UPDATE TO app_auth
    USING (true) WITH CHECK (true);

CREATE OR REPLACE TRIGGER company_llm_providers_touch_updated_at BEFORE UPDATE ON company_llm_providers
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The provider of the company a reply streams for, its key sealed: the server opens it.
CREATE OR REPLACE FUNCTION app.company_llm_provider(p_company uuid)
    RETURNS TABLE (base_url text, model text, api_key_sealed text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT p.base_url, p.model, p.api_key_sealed FROM company_llm_providers p WHERE p.company_id = p_company;
END
$$;
ALTER FUNCTION app.company_llm_provider(uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.company_llm_provider(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.company_llm_provider(uuid) TO app_worker;

-- rotate-secrets: the sealed keys after (p_after_company, p_after_row), in that order, locked
-- until the end of the caller's transaction. A company's row is the company: row_id = company_id.
CREATE OR REPLACE FUNCTION app.sealed_company_llm_keys(p_after_company uuid, p_after_row uuid, p_limit integer)
    RETURNS TABLE (company_id uuid, row_id uuid, sealed text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN QUERY
    SELECT p.company_id, p.company_id, p.api_key_sealed
      FROM company_llm_providers p
     WHERE p.api_key_sealed IS NOT NULL
       AND (p_after_company IS NULL OR p.company_id > p_after_company)
     ORDER BY p.company_id
     LIMIT p_limit
       FOR UPDATE;
END
$$;
ALTER FUNCTION app.sealed_company_llm_keys(uuid, uuid, integer) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.sealed_company_llm_keys(uuid, uuid, integer) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.sealed_company_llm_keys(uuid, uuid, integer) TO app_worker;

-- rotate-secrets: replaces a sealed key by its re-sealed form, unless it changed meanwhile.
CREATE OR REPLACE FUNCTION app.reseal_company_llm_key(p_company uuid, p_row uuid, p_old text, p_new text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF p_row IS DISTINCT FROM p_company OR p_new IS NULL THEN
        RETURN false;
    END IF;
    UPDATE company_llm_providers SET api_key_sealed = p_new
     WHERE company_id = p_company AND api_key_sealed = p_old;
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.reseal_company_llm_key(uuid, uuid, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.reseal_company_llm_key(uuid, uuid, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.reseal_company_llm_key(uuid, uuid, text, text) TO app_worker;
