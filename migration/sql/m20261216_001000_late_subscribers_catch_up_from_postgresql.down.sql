GRANT CREATE ON SCHEMA app TO app_auth;
DROP FUNCTION IF EXISTS app.chat_progress_message(uuid, uuid, text, bigint);
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
CREATE OR REPLACE FUNCTION app.messages_stamp_heartbeat() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    NEW.heartbeat_at := now();
    RETURN NEW;
END
$$;
ALTER TABLE messages DROP COLUMN IF EXISTS content_deltas;
REVOKE CREATE ON SCHEMA app FROM app_auth;
