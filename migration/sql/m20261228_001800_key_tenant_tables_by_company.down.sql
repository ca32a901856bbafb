-- Tenant tables keyed by id alone again, with the unique (company_id, id) the foreign keys of
-- other tables reference.

SET CONSTRAINTS ALL IMMEDIATE;

DROP INDEX IF EXISTS messages_one_streaming_key;
CREATE UNIQUE INDEX IF NOT EXISTS messages_one_streaming_key ON messages (conversation_id)
    WHERE status = 'streaming';

DROP INDEX IF EXISTS refresh_tokens_live_key;
CREATE UNIQUE INDEX IF NOT EXISTS refresh_tokens_live_key ON refresh_tokens (session_id)
    WHERE superseded_at IS NULL;
DROP INDEX IF EXISTS refresh_tokens_session_idx;
CREATE INDEX IF NOT EXISTS refresh_tokens_session_idx ON refresh_tokens (session_id);
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_pkey;
ALTER TABLE refresh_tokens ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (token_hash);

CREATE INDEX IF NOT EXISTS users_company_id_idx ON users (company_id, id);

DO $$
DECLARE
    t text;
    fk record;
    fks text[][];
BEGIN
    FOREACH t IN ARRAY ARRAY['identities', 'invite_links', 'company_domains', 'email_verifications',
                             'knowledge', 'messages', 'conversations', 'friendships', 'presets',
                             'outbound_emails', 'invitations', 'password_resets', 'sessions', 'users'] LOOP
        fks := ARRAY[]::text[][];
        FOR fk IN SELECT c.conrelid::regclass::text AS tbl, c.conname::text AS name,
                         pg_get_constraintdef(c.oid) AS def
                    FROM pg_constraint c
                   WHERE c.contype = 'f' AND c.confrelid = t::regclass
                   ORDER BY c.conrelid::regclass::text, c.conname LOOP
            fks := fks || ARRAY[[fk.tbl, fk.name, fk.def]];
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.name);
        END LOOP;
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', t, t || '_pkey');
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)', t, t || '_pkey');
        IF t IN ('users', 'sessions', 'invitations', 'presets', 'friendships', 'conversations', 'messages',
                 'knowledge', 'identities') THEN
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (company_id, id)', t, t || '_company_id_id_key');
        END IF;
        FOR i IN 1 .. coalesce(array_length(fks, 1), 0) LOOP
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fks[i][1], fks[i][2], fks[i][3]);
        END LOOP;
    END LOOP;
END
$$;
