-- outbound_emails: a request queues only the e-mail of an invitation it made in the same
-- transaction, to the invited address (app.invited_just_now, from invitations.sql). Other mail is queued by definer functions. Every new
-- message starts pending and due; the mailer of every instance claims, sends and marks messages
-- through the definer functions below, which only app_worker may execute.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE outbound_emails ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbound_emails FORCE ROW LEVEL SECURITY;
REVOKE ALL ON outbound_emails FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, UPDATE ON outbound_emails TO app_auth;
GRANT INSERT ON outbound_emails TO app_user;

DROP POLICY IF EXISTS outbound_emails_definer ON outbound_emails;
CREATE POLICY outbound_emails_definer ON outbound_emails FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('invitation', 'create')
                AND template = 'invitation' AND sent_at IS NULL AND attempts = 0 AND last_error IS NULL
                AND app.invited_just_now(recipient));

CREATE OR REPLACE TRIGGER outbound_emails_touch_updated_at BEFORE UPDATE ON outbound_emails
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Whoever queues a message, it starts pending, due now, never tried.
CREATE OR REPLACE FUNCTION app.outbound_emails_stamp() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    NEW.status := 'pending';
    NEW.next_attempt_at := now();
    NEW.attempts := 0;
    NEW.sent_at := NULL;
    NEW.last_error := NULL;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.outbound_emails_stamp() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
CREATE OR REPLACE TRIGGER outbound_emails_stamp BEFORE INSERT ON outbound_emails
    FOR EACH ROW EXECUTE FUNCTION app.outbound_emails_stamp();

-- Claims at most p_limit due messages, oldest due first: each is counted as one more attempt
-- and is not due again for p_lease (the sender's lease; if it never reports, the message is
-- retried then). A message another caller has locked is skipped, one it claimed is not due:
-- two instances never claim the same message at once.
CREATE OR REPLACE FUNCTION app.mail_claim(p_lease interval, p_limit integer)
    RETURNS TABLE (id uuid, recipient text, subject text, body text, attempts integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE outbound_emails o
       SET attempts = o.attempts + 1, next_attempt_at = now() + p_lease
     WHERE o.id IN (SELECT d.id FROM outbound_emails d
                     WHERE d.status = 'pending' AND d.next_attempt_at <= now()
                     ORDER BY d.next_attempt_at
                     LIMIT p_limit
                     FOR UPDATE SKIP LOCKED)
    RETURNING o.id, o.recipient, o.subject, o.body, o.attempts
$$;
ALTER FUNCTION app.mail_claim(interval, integer) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.mail_claim(interval, integer) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.mail_claim(interval, integer) TO app_worker;

-- A claimed message was accepted by the SMTP server: `sent`. Whether it was still pending.
CREATE OR REPLACE FUNCTION app.mail_sent(p_id uuid)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE outbound_emails SET status = 'sent', sent_at = now(), last_error = NULL
     WHERE id = p_id AND status = 'pending';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.mail_sent(uuid) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.mail_sent(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.mail_sent(uuid) TO app_worker;

-- An attempt at a claimed message failed with p_error: it is due again after p_retry_in, or,
-- when p_retry_in is NULL (no attempt left, or a permanent refusal), `failed`. Returns the
-- message's status, or NULL when it was no longer pending.
CREATE OR REPLACE FUNCTION app.mail_attempt_failed(p_id uuid, p_error text, p_retry_in interval)
    RETURNS text
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE outbound_emails
       SET status = CASE WHEN p_retry_in IS NULL THEN 'failed' ELSE 'pending' END,
           next_attempt_at = CASE WHEN p_retry_in IS NULL THEN next_attempt_at
                                  ELSE now() + p_retry_in END,
           last_error = left(p_error, 2000)
     WHERE id = p_id AND status = 'pending'
    RETURNING status
$$;
ALTER FUNCTION app.mail_attempt_failed(uuid, text, interval) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.mail_attempt_failed(uuid, text, interval) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.mail_attempt_failed(uuid, text, interval) TO app_worker;
