-- Identities of OpenID providers linked to users: the provider's issuer and its subject name one
-- person at that provider, linked to at most one user. Sign-in looks them up across companies
-- through definer functions only; a request sees and removes its user's own (see
-- migration/sql/current/identities.sql).

CREATE TABLE IF NOT EXISTS identities (
    id            uuid PRIMARY KEY,
    company_id    uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL,
    -- The name of the provider in the server's configuration, when it was linked.
    provider      text NOT NULL CHECK (length(provider) BETWEEN 1 AND 100),
    issuer        text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 2000),
    subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    -- The address the provider asserted, verified, when it was linked.
    email         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    CONSTRAINT identities_issuer_subject_key UNIQUE (issuer, subject),
    CONSTRAINT identities_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT identities_user_fkey FOREIGN KEY (company_id, user_id)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS identities_user_idx ON identities (company_id, user_id);
