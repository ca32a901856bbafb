-- The outbox is delivered. Every instance runs a mailer that claims due messages of
-- `outbound_emails` (`FOR UPDATE SKIP LOCKED`, with a lease: a message another instance holds is
-- not due), sends them over SMTP and marks them `sent`; a failed attempt is retried with
-- exponential backoff, and after the last attempt the message is `failed` with the reason. All
-- of it through SECURITY DEFINER functions owned by the NOLOGIN role app_auth that only
-- app_worker (background work) may execute: request roles still may only add to the outbox.

GRANT CREATE ON SCHEMA app TO app_auth;

ALTER TABLE outbound_emails
    ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz NOT NULL DEFAULT now();
UPDATE outbound_emails SET status = 'sent' WHERE sent_at IS NOT NULL AND status <> 'sent';
ALTER TABLE outbound_emails DROP CONSTRAINT IF EXISTS outbound_emails_status_check;
ALTER TABLE outbound_emails ADD CONSTRAINT outbound_emails_status_check
    CHECK (status IN ('pending', 'sent', 'failed'));

-- The mailer reads pending messages by when they are due.
DROP INDEX IF EXISTS outbound_emails_unsent_idx;
CREATE INDEX IF NOT EXISTS outbound_emails_due_idx ON outbound_emails (next_attempt_at)
    WHERE status = 'pending';

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
REVOKE ALL ON FUNCTION app.outbound_emails_stamp() FROM PUBLIC;
DROP TRIGGER IF EXISTS outbound_emails_stamp ON outbound_emails;
CREATE TRIGGER outbound_emails_stamp BEFORE INSERT ON outbound_emails
    FOR EACH ROW EXECUTE FUNCTION app.outbound_emails_stamp();

-- The definer role reads and updates the outbox for the mailer's functions.
GRANT SELECT, UPDATE ON outbound_emails TO app_auth;

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
REVOKE ALL ON FUNCTION app.mail_claim(interval, integer) FROM PUBLIC;
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
REVOKE ALL ON FUNCTION app.mail_sent(uuid) FROM PUBLIC;
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
REVOKE ALL ON FUNCTION app.mail_attempt_failed(uuid, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.mail_attempt_failed(uuid, text, interval) TO app_worker;

REVOKE CREATE ON SCHEMA app FROM app_auth;
