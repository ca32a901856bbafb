-- Replies are never stranded. A streaming reply records when its generator last showed signs of
-- life (`heartbeat_at`); the generator stores the text so far as it streams; and any instance
-- finalises a reply whose generator went silent (killed, cut off, hung) as FAILED with that
-- text. All of it through SECURITY DEFINER functions owned by the NOLOGIN role app_auth that only
-- app_worker (background work) may execute: request roles gain nothing on `messages`.

-- The owner of the definer functions must be allowed to create in the schema while they are
-- handed over (superusers skip that check; a managed service's CREATEROLE owner does not).
GRANT CREATE ON SCHEMA app TO app_auth;

ALTER TABLE messages ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz NOT NULL DEFAULT now();
-- The sweep reads streaming replies by their heartbeat, oldest first.
CREATE INDEX IF NOT EXISTS messages_streaming_heartbeat_idx
    ON messages (heartbeat_at) WHERE status = 'streaming';

-- A request never chooses a heartbeat: every new message starts with one of now (a placeholder
-- stamped far in the future would otherwise never be swept).
CREATE OR REPLACE FUNCTION app.messages_stamp_heartbeat() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    NEW.heartbeat_at := now();
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.messages_stamp_heartbeat() FROM PUBLIC;
DROP TRIGGER IF EXISTS messages_stamp_heartbeat ON messages;
CREATE TRIGGER messages_stamp_heartbeat BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION app.messages_stamp_heartbeat();

-- The definer role may also keep a streaming reply streaming (its text so far, its heartbeat).
DROP POLICY IF EXISTS messages_definer_progress ON messages;
CREATE POLICY messages_definer_progress ON messages FOR UPDATE TO app_auth
    USING (status = 'streaming') WITH CHECK (status = 'streaming');

-- The generator of a streaming reply is alive: stores the text so far (unless NULL) and a
-- fresh heartbeat. Returns whether the reply still streams; false when it was finalised
-- elsewhere, cancelled or deleted, and the generator stops.
CREATE OR REPLACE FUNCTION app.chat_progress_message(p_company uuid, p_message uuid, p_content text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE messages
       SET content = COALESCE(p_content, content), heartbeat_at = now()
     WHERE company_id = p_company AND id = p_message AND status = 'streaming';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.chat_progress_message(uuid, uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_progress_message(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.chat_progress_message(uuid, uuid, text) TO app_worker;

-- Streaming replies whose generator has been silent for longer than p_silence, oldest first.
CREATE OR REPLACE FUNCTION app.chat_silent_replies(p_silence interval, p_limit integer)
    RETURNS TABLE (id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT m.id FROM messages m
     WHERE m.status = 'streaming' AND m.heartbeat_at < now() - p_silence
     ORDER BY m.heartbeat_at
     LIMIT p_limit
$$;
ALTER FUNCTION app.chat_silent_replies(interval, integer) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_silent_replies(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.chat_silent_replies(interval, integer) TO app_worker;

-- Finalises a reply whose generator has been silent for longer than p_silence: FAILED with
-- p_reason and the text so far, p_content (the generator's live text) when it extends the
-- stored text, else the stored text. Exactly once: a concurrent caller skips the locked row,
-- and only a reply still streaming and silent changes. Returns the finalised message, or no row.
CREATE OR REPLACE FUNCTION app.chat_interrupt_message(p_message uuid, p_content text, p_reason text,
                                                      p_silence interval)
    RETURNS TABLE (company_id uuid, conversation_id uuid, role text, content text,
                   created_at timestamptz, model text, prompt_tokens integer, completion_tokens integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    UPDATE messages m
       SET status = 'failed', error = p_reason,
           content = CASE WHEN p_content IS NOT NULL AND starts_with(p_content, m.content)
                          THEN p_content ELSE m.content END
     WHERE m.id = (SELECT s.id FROM messages s
                    WHERE s.id = p_message AND s.status = 'streaming'
                      AND s.heartbeat_at < now() - p_silence
                      FOR UPDATE SKIP LOCKED)
    RETURNING m.company_id, m.conversation_id, m.role, m.content, m.created_at, m.model,
              m.prompt_tokens, m.completion_tokens
$$;
ALTER FUNCTION app.chat_interrupt_message(uuid, text, text, interval) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_interrupt_message(uuid, text, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.chat_interrupt_message(uuid, text, text, interval) TO app_worker;

REVOKE CREATE ON SCHEMA app FROM app_auth;
