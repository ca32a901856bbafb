-- invitations: read by whoever may read invitations, made by whoever may create them, in their
-- own name; accepted only through app.accept_invitation.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
REVOKE ALL ON invitations FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON invitations TO app_auth;
GRANT SELECT, INSERT ON invitations TO app_user;

DROP POLICY IF EXISTS invitations_definer ON invitations;
CREATE POLICY invitations_definer ON invitations FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS invitations_select ON invitations;
CREATE POLICY invitations_select ON invitations FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('invitation', 'read'));

DROP POLICY IF EXISTS invitations_insert ON invitations;
CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('invitation', 'create')
                AND invited_by = app.current_user_id() AND accepted_at IS NULL
                AND accepted_user_id IS NULL);

CREATE OR REPLACE TRIGGER invitations_touch_updated_at BEFORE UPDATE ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- The addresses the caller invited in this transaction (`app.invitations_made`, a JSON array of
-- lower-cased addresses): what the policy of outbound_emails lets a request queue mail to. A
-- variable of the transaction rather than a read of invitations, because a policy reads no
-- other table (on Citus it runs on the worker that holds the row, where the insert of the
-- invitation ran on the same connection, in the same transaction).
CREATE OR REPLACE FUNCTION app.invitations_note_made() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF NEW.invited_by = app.current_user_id() AND NEW.company_id = app.current_company_id() THEN
        PERFORM pg_catalog.set_config('app.invitations_made',
            (COALESCE(NULLIF(pg_catalog.current_setting('app.invitations_made', true), ''), '[]')::jsonb
             || pg_catalog.to_jsonb(pg_catalog.lower(NEW.email)))::text, true);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION app.invitations_note_made() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
CREATE OR REPLACE TRIGGER invitations_note_made AFTER INSERT ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.invitations_note_made();

-- Whether the caller invited `p_email` in this transaction (see app.invitations_note_made).
CREATE OR REPLACE FUNCTION app.invited_just_now(p_email text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT COALESCE(NULLIF(pg_catalog.current_setting('app.invitations_made', true), '')::jsonb
                    ? pg_catalog.lower(p_email), false)
$$;
REVOKE ALL ON FUNCTION app.invited_just_now(text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.invited_just_now(text) TO app_user;
