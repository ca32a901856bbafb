-- Conversations as training data: a company's policy (the default, and whether its people may
-- choose otherwise per conversation) and each conversation's choice (NULL: the company's
-- default). Grants, the trigger that enforces the policy and the export function are in
-- migration/sql/current/ (companies.sql, conversations.sql, training.sql).

ALTER TABLE companies
    ADD COLUMN IF NOT EXISTS training_default_allowed boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS training_users_may_change boolean NOT NULL DEFAULT true;

ALTER TABLE conversations ADD COLUMN IF NOT EXISTS training_allowed boolean;
