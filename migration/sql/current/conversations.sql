-- conversations: only their owner, in their company, as their conversation permissions allow. Not
-- even an admin reads someone else's chat; the one exception is app.training_export
-- (training.sql), which reads, for a caller allowed to export training data, the conversations
-- of the caller's company that their owners allow.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
REVOKE ALL ON conversations FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON conversations TO app_user;
GRANT SELECT ON conversations TO app_auth;

DROP POLICY IF EXISTS conversations_select ON conversations;
CREATE POLICY conversations_select ON conversations FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'read'));

DROP POLICY IF EXISTS conversations_insert ON conversations;
CREATE POLICY conversations_insert ON conversations FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id()
                AND app.may('conversation', 'create'));

DROP POLICY IF EXISTS conversations_update ON conversations;
CREATE POLICY conversations_update ON conversations FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'update'))
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id());

DROP POLICY IF EXISTS conversations_delete ON conversations;
CREATE POLICY conversations_delete ON conversations FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'delete'));

CREATE OR REPLACE TRIGGER conversations_touch_updated_at BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The owner of app.training_export reads conversations of the caller's company only, and only
-- while the caller may export training data: the function's own filter is not the only guard.
DROP POLICY IF EXISTS conversations_training_export ON conversations;
CREATE POLICY conversations_training_export ON conversations FOR SELECT TO app_auth
    USING (company_id = app.current_company_id() AND app.may('training_data', 'read'));

-- A conversation's training choice (training_allowed; NULL follows the company's default) may be
-- set or changed only while the company lets its people choose (companies.training_users_may_change):
-- 42501 otherwise. A definer, so that it reads the company's policy whatever the caller may read.
CREATE OR REPLACE FUNCTION app.conversations_training_choice() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.training_allowed IS NOT DISTINCT FROM OLD.training_allowed THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.training_allowed IS NULL THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM companies c
                    WHERE c.id = NEW.company_id AND c.training_users_may_change) THEN
        RAISE EXCEPTION 'this company does not let its people choose whether a conversation is used for training'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION app.conversations_training_choice() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.conversations_training_choice() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER conversations_training_choice BEFORE INSERT OR UPDATE OF training_allowed ON conversations
    FOR EACH ROW EXECUTE FUNCTION app.conversations_training_choice();
