
-- Owners of definer objects must be allowed to create in the schema while they are handed
-- over (superusers skip that check; a managed service's CREATEROLE owner does not).
GRANT CREATE ON SCHEMA app, public TO app_auth;
CREATE TABLE IF NOT EXISTS conversations (
    id             uuid PRIMARY KEY,
    company_id     uuid NOT NULL,
    user_id        uuid NOT NULL,
    title          text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    system_prompt  text CHECK (length(system_prompt) <= 20000),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT conversations_user_fkey FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS conversations_owner_idx
    ON conversations (company_id, user_id, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS messages (
    id                 uuid PRIMARY KEY,
    -- Total order within a conversation (two messages of one request share created_at).
    seq                bigint GENERATED ALWAYS AS IDENTITY,
    company_id         uuid NOT NULL,
    user_id            uuid NOT NULL,
    conversation_id    uuid NOT NULL,
    role               text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content            text NOT NULL DEFAULT '',
    status             text NOT NULL CHECK (status IN ('streaming', 'complete', 'failed', 'cancelled')),
    model              text,
    prompt_tokens      integer,
    completion_tokens  integer,
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT messages_conversation_fkey FOREIGN KEY (company_id, conversation_id)
        REFERENCES conversations (company_id, id) ON DELETE CASCADE,
    CONSTRAINT messages_user_fkey FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS messages_conversation_idx ON messages (company_id, conversation_id, seq);
-- One reply streams at a time per conversation.
CREATE UNIQUE INDEX IF NOT EXISTS messages_one_streaming_key
    ON messages (conversation_id) WHERE status = 'streaming';

CREATE TABLE IF NOT EXISTS knowledge (
    id          uuid PRIMARY KEY,
    company_id  uuid NOT NULL,
    user_id     uuid NOT NULL,
    content     text NOT NULL CHECK (length(btrim(content)) BETWEEN 1 AND 20000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT knowledge_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT knowledge_user_fkey FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS knowledge_owner_idx
    ON knowledge (company_id, user_id, created_at DESC, id DESC);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['conversations', 'messages', 'knowledge'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_touch_updated_at', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at()',
                       t || '_touch_updated_at', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO app_user', t);
        -- Only the owner, in their company: not even an admin reads someone else's chat.
        EXECUTE format('DROP POLICY IF EXISTS %I ON %I', t || '_owner', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I FOR ALL TO app_user '
            'USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())) '
            'WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))',
            t || '_owner', t);
    END LOOP;
END
$$;

-- The definer role may finish a streaming reply, and change nothing else. (It may read
-- messages: an UPDATE whose WHERE reads columns checks the new row against SELECT policies.)
GRANT SELECT, UPDATE ON messages TO app_auth;
DROP POLICY IF EXISTS messages_definer ON messages;
DROP POLICY IF EXISTS messages_definer_select ON messages;
CREATE POLICY messages_definer_select ON messages FOR SELECT TO app_auth USING (true);
DROP POLICY IF EXISTS messages_definer_finish ON messages;
CREATE POLICY messages_definer_finish ON messages FOR UPDATE TO app_auth
    USING (status = 'streaming') WITH CHECK (status IN ('complete', 'failed', 'cancelled'));

-- Stores the outcome of a generation. Only a message still streaming changes, so a cancel
-- that raced a completion (or a cleared conversation) is not overwritten. Returns whether it
-- changed.
CREATE OR REPLACE FUNCTION app.chat_finish_message(p_company uuid, p_message uuid, p_content text,
                                                   p_status text, p_model text, p_prompt_tokens integer,
                                                   p_completion_tokens integer, p_error text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
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
REVOKE ALL ON FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) TO app_authenticator;
REVOKE CREATE ON SCHEMA app, public FROM app_auth;
