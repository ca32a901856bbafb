-- conversations: only their owner, in their company, as their conversation permissions allow. Not
-- even an admin reads someone else's chat.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
REVOKE ALL ON conversations FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON conversations TO app_user;

DROP POLICY IF EXISTS conversations_select ON conversations;
CREATE POLICY conversations_select ON conversations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'read')));

DROP POLICY IF EXISTS conversations_insert ON conversations;
CREATE POLICY conversations_insert ON conversations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('conversation', 'create')));

DROP POLICY IF EXISTS conversations_update ON conversations;
CREATE POLICY conversations_update ON conversations FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS conversations_delete ON conversations;
CREATE POLICY conversations_delete ON conversations FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'delete')));

CREATE OR REPLACE TRIGGER conversations_touch_updated_at BEFORE UPDATE ON conversations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
