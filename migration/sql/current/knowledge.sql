-- knowledge: only their owner, in their company, as their conversation permissions allow. Not
-- even an admin reads someone else's chat.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE knowledge ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge FORCE ROW LEVEL SECURITY;
REVOKE ALL ON knowledge FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON knowledge TO app_user;

DROP POLICY IF EXISTS knowledge_select ON knowledge;
CREATE POLICY knowledge_select ON knowledge FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'read'));

DROP POLICY IF EXISTS knowledge_insert ON knowledge;
CREATE POLICY knowledge_insert ON knowledge FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id()
                AND app.may('conversation', 'create'));

DROP POLICY IF EXISTS knowledge_update ON knowledge;
CREATE POLICY knowledge_update ON knowledge FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'update'))
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id());

DROP POLICY IF EXISTS knowledge_delete ON knowledge;
CREATE POLICY knowledge_delete ON knowledge FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'delete'));

CREATE OR REPLACE TRIGGER knowledge_touch_updated_at BEFORE UPDATE ON knowledge
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
