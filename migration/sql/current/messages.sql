-- messages: a message belongs to a conversation of its own user. A request adds the user's
-- message and an empty streaming placeholder for the reply, and may only cancel a streaming
-- reply. The reply's text, heartbeat and outcome are stored by definer functions (of app_auth)
-- that only app_worker, background work, may execute.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
REVOKE ALL ON messages FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE ON messages TO app_auth;
GRANT SELECT, INSERT, DELETE, UPDATE (status) ON messages TO app_user;

DROP POLICY IF EXISTS messages_select ON messages;
CREATE POLICY messages_select ON messages FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('message', 'read'));

DROP POLICY IF EXISTS messages_insert ON messages;
CREATE POLICY messages_insert ON messages FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id()
                AND app.may('message', 'create')
                AND ((role = 'user' AND status = 'complete')
                     OR (role = 'assistant' AND status = 'streaming' AND content = ''))
                AND model IS NULL AND prompt_tokens IS NULL AND completion_tokens IS NULL AND error IS NULL);

DROP POLICY IF EXISTS messages_cancel ON messages;
CREATE POLICY messages_cancel ON messages FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('message', 'update') AND status = 'streaming')
    WITH CHECK (status = 'cancelled');

DROP POLICY IF EXISTS messages_delete ON messages;
CREATE POLICY messages_delete ON messages FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('message', 'delete'));

-- The definer role may read messages (an UPDATE whose WHERE reads columns checks the new row
-- against SELECT policies), keep a streaming reply streaming (its text so far, its heartbeat)
-- and finish it, and change nothing else.
DROP POLICY IF EXISTS messages_definer_select ON messages;
CREATE POLICY messages_definer_select ON messages FOR SELECT TO app_auth USING (true);

DROP POLICY IF EXISTS messages_definer_progress ON messages;
CREATE POLICY messages_definer_progress ON messages FOR UPDATE TO app_auth
    USING (status = 'streaming') WITH CHECK (status = 'streaming');

DROP POLICY IF EXISTS messages_definer_finish ON messages;
CREATE POLICY messages_definer_finish ON messages FOR UPDATE TO app_auth
    USING (status = 'streaming') WITH CHECK (status IN ('complete', 'failed', 'cancelled'));

-- A request never chooses a heartbeat nor a delta count: every new message starts with a
-- heartbeat of now and no delta.
CREATE OR REPLACE FUNCTION app.messages_stamp_heartbeat() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    NEW.heartbeat_at := now();
    NEW.content_deltas := 0;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.messages_stamp_heartbeat() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER messages_stamp_heartbeat BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION app.messages_stamp_heartbeat();

CREATE OR REPLACE TRIGGER messages_touch_updated_at BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Stores the outcome of a generation. Only a message still streaming changes, so a cancel
-- that raced a completion (or a cleared conversation) is not overwritten. Returns whether it
-- changed.
CREATE OR REPLACE FUNCTION app.chat_finish_message(p_company uuid, p_message uuid, p_content text,
                                                   p_status text, p_model text, p_prompt_tokens integer,
                                                   p_completion_tokens integer, p_error text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF p_status NOT IN ('complete', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'bad final status %', p_status;
    END IF;
    UPDATE messages
       SET content = p_content, status = p_status, model = p_model, prompt_tokens = p_prompt_tokens,
           completion_tokens = p_completion_tokens, error = p_error
     WHERE company_id = p_company AND id = p_message AND status = 'streaming';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) TO app_worker;

-- The generator of a streaming reply is alive: stores the text so far (unless NULL), made of
-- its first p_deltas deltas, unless the stored text holds more already, and a fresh heartbeat.
-- Returns whether the reply still streams; false when it was finalised elsewhere, cancelled or
-- deleted, and the generator stops.
CREATE OR REPLACE FUNCTION app.chat_progress_message(p_company uuid, p_message uuid, p_content text,
                                                     p_deltas bigint)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE messages
       SET content = CASE WHEN p_content IS NOT NULL
                           AND (content_deltas IS NULL OR content_deltas <= p_deltas)
                          THEN p_content ELSE content END,
           content_deltas = CASE WHEN p_content IS NOT NULL
                                  AND (content_deltas IS NULL OR content_deltas <= p_deltas)
                                 THEN p_deltas ELSE content_deltas END,
           heartbeat_at = now()
     WHERE company_id = p_company AND id = p_message AND status = 'streaming';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.chat_progress_message(uuid, uuid, text, bigint) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_progress_message(uuid, uuid, text, bigint) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_progress_message(uuid, uuid, text, bigint) TO app_worker;

-- The form older generators call (during a rolling deploy): their text comes without a delta
-- count, so the count becomes unknown and no subscriber catches up from it.
CREATE OR REPLACE FUNCTION app.chat_progress_message(p_company uuid, p_message uuid, p_content text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    UPDATE messages
       SET content = COALESCE(p_content, content),
           content_deltas = CASE WHEN p_content IS NULL THEN content_deltas END,
           heartbeat_at = now()
     WHERE company_id = p_company AND id = p_message AND status = 'streaming';
    RETURN FOUND;
END
$$;
ALTER FUNCTION app.chat_progress_message(uuid, uuid, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.chat_progress_message(uuid, uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
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
REVOKE ALL ON FUNCTION app.chat_silent_replies(interval, integer) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
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
REVOKE ALL ON FUNCTION app.chat_interrupt_message(uuid, text, text, interval) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.chat_interrupt_message(uuid, text, text, interval) TO app_worker;
