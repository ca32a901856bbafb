-- Late subscribers catch up from PostgreSQL while Redis is unavailable. A streaming reply
-- records how many of its deltas its stored text holds (`content_deltas`), so that a subscriber
-- given that text knows which live deltas follow it. The generator stores both with
-- `app.chat_progress_message(company, message, content, deltas)`, which never goes back to a
-- text of fewer deltas. Grants and policies stay as they were: request roles gain nothing on
-- `messages`, and only app_worker may execute the definer functions.

-- The owner of the definer functions must be allowed to create in the schema while they are
-- handed over (superusers skip that check; a managed service's CREATEROLE owner does not).
GRANT CREATE ON SCHEMA app TO app_auth;

-- NULL: unknown (text stored by an older generator, or a message that never streamed).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS content_deltas bigint;

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
REVOKE ALL ON FUNCTION app.chat_progress_message(uuid, uuid, text, bigint) FROM PUBLIC;
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

REVOKE CREATE ON SCHEMA app FROM app_auth;
