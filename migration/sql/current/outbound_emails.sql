-- outbound_emails: a request queues only the e-mail of an invitation it made in the same
-- transaction, to the invited address. Other mail is queued by definer functions.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE outbound_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbound_emails FORCE ROW LEVEL SECURITY;
REVOKE ALL ON outbound_emails FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT INSERT ON outbound_emails TO app_auth;
GRANT INSERT ON outbound_emails TO app_user;

DROP POLICY IF EXISTS outbound_emails_definer ON outbound_emails;
CREATE POLICY outbound_emails_definer ON outbound_emails FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND template = 'invitation' AND sent_at IS NULL AND attempts = 0 AND last_error IS NULL
                AND EXISTS (SELECT 1 FROM invitations i
                            WHERE i.company_id = outbound_emails.company_id
                              AND lower(i.email) = lower(outbound_emails.recipient)
                              AND i.invited_by = (SELECT app.current_user_id())
                              AND i.created_at = now()));

CREATE OR REPLACE TRIGGER outbound_emails_touch_updated_at BEFORE UPDATE ON outbound_emails
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
