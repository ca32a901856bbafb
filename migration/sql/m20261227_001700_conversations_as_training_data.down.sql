DROP FUNCTION IF EXISTS app.training_export(timestamptz, timestamptz);
DROP POLICY IF EXISTS conversations_training_export ON conversations;
REVOKE SELECT ON conversations FROM app_auth;
DROP TRIGGER IF EXISTS conversations_training_choice ON conversations;
DROP FUNCTION IF EXISTS app.conversations_training_choice();
REVOKE UPDATE (training_default_allowed, training_users_may_change) ON companies FROM app_user;
ALTER TABLE conversations DROP COLUMN IF EXISTS training_allowed;
ALTER TABLE companies
    DROP COLUMN IF EXISTS training_default_allowed,
    DROP COLUMN IF EXISTS training_users_may_change;
DELETE FROM app.builtin_grants WHERE object = 'training_data';
