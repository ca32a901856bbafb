-- Every tenant table is keyed by its company: the primary key of each starts with company_id,
-- so that a distributed deployment (Citus, every tenant table distributed by company_id and
-- co-located) can enforce it on each shard. The tables keyed by `id` alone get the primary key
-- (company_id, id); the unique constraint (company_id, id) they had for the foreign keys of
-- other tables goes, and those foreign keys (all on (company_id, ...)) are made again on the
-- new primary key. refresh_tokens is keyed by (company_id, token_hash), and the unique indexes
-- of one live refresh token per session and one streaming reply per conversation include the
-- company. `companies` keeps its key: its id is the company.
--
-- Key rules of the schema (README, "Schema"): a tenant table's primary key starts with
-- company_id; no unique constraint or index leaves company_id out; a foreign key to a tenant
-- table includes company_id. What must be unique across companies (e-mail addresses, sign-in
-- identities, verified domains) is kept in a directory table keyed by that value.

-- Deferred checks of earlier statements of this transaction (none on a fresh database) would
-- forbid altering the tables.
SET CONSTRAINTS ALL IMMEDIATE;

DO $$
DECLARE
    t text;
    fk record;
    fks text[][];
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'sessions', 'password_resets', 'invitations', 'outbound_emails',
                             'presets', 'friendships', 'conversations', 'messages', 'knowledge',
                             'email_verifications', 'company_domains', 'invite_links', 'identities'] LOOP
        -- The foreign keys of other tables that reference this one, as they are defined.
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
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I', t, t || '_company_id_id_key');
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (company_id, id)', t, t || '_pkey');
        FOR i IN 1 .. coalesce(array_length(fks, 1), 0) LOOP
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fks[i][1], fks[i][2], fks[i][3]);
        END LOOP;
    END LOOP;
END
$$;

-- The primary key serves what this index did.
DROP INDEX IF EXISTS users_company_id_idx;

ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_pkey;
ALTER TABLE refresh_tokens ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (company_id, token_hash);
DROP INDEX IF EXISTS refresh_tokens_session_idx;
CREATE INDEX IF NOT EXISTS refresh_tokens_session_idx ON refresh_tokens (company_id, session_id);
-- A family has exactly one live token.
DROP INDEX IF EXISTS refresh_tokens_live_key;
CREATE UNIQUE INDEX IF NOT EXISTS refresh_tokens_live_key ON refresh_tokens (company_id, session_id)
    WHERE superseded_at IS NULL;

-- One reply streams at a time per conversation.
DROP INDEX IF EXISTS messages_one_streaming_key;
CREATE UNIQUE INDEX IF NOT EXISTS messages_one_streaming_key ON messages (company_id, conversation_id)
    WHERE status = 'streaming';
