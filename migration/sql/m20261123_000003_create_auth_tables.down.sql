
DROP FUNCTION IF EXISTS app.pending_invitation(text);
DROP FUNCTION IF EXISTS app.pending_password_reset(text);
DROP FUNCTION IF EXISTS app.accept_invitation(text, uuid, text, text);
DROP FUNCTION IF EXISTS app.consume_password_reset(text, text);
DROP FUNCTION IF EXISTS app.create_password_reset(text, text, timestamptz, text, text);
DROP FUNCTION IF EXISTS app.refresh_session(text, text, text, interval, interval);
DROP FUNCTION IF EXISTS app.create_session(uuid, uuid, uuid, text, timestamptz, timestamptz, text, text, text);
DROP FUNCTION IF EXISTS app.sign_up(uuid, text, uuid, text, text, text);
DROP FUNCTION IF EXISTS app.login_lookup(text);
DROP FUNCTION IF EXISTS app.session_state(uuid);
DROP FUNCTION IF EXISTS app.begin_request(uuid, uuid, text, uuid, boolean);
DROP TABLE IF EXISTS outbound_emails;
DROP TABLE IF EXISTS invitations;
DROP TABLE IF EXISTS password_resets;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS sessions;
DROP POLICY IF EXISTS users_definer ON users;
DROP POLICY IF EXISTS companies_definer ON companies;
