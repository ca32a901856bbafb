-- Back to the rules of the earlier migrations.

CREATE OR REPLACE VIEW audience_users WITH (security_barrier = false) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL));
ALTER VIEW audience_users RESET (security_barrier);
ALTER VIEW audience_users_admin RESET (security_barrier);

DROP TRIGGER IF EXISTS friendships_guard ON friendships;
DROP FUNCTION IF EXISTS app.friendships_guard();
DROP TRIGGER IF EXISTS users_guard ON users;
DROP FUNCTION IF EXISTS app.users_guard();

DROP POLICY IF EXISTS messages_owner_select ON messages;
DROP POLICY IF EXISTS messages_owner_delete ON messages;
DROP POLICY IF EXISTS messages_owner_insert ON messages;
DROP POLICY IF EXISTS messages_owner_cancel ON messages;
CREATE POLICY messages_owner ON messages FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
GRANT UPDATE ON messages TO app_user;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_own_conversation_fkey;
ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_company_user_id_key;

GRANT UPDATE ON presets TO app_user;

DROP POLICY IF EXISTS audience_fields_manage_insert ON audience_fields;
DROP POLICY IF EXISTS audience_fields_manage_update ON audience_fields;
DROP POLICY IF EXISTS audience_fields_manage_delete ON audience_fields;
CREATE POLICY audience_fields_admin_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY audience_fields_admin_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY audience_fields_admin_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');

DROP POLICY IF EXISTS roles_admin_insert ON roles;
DROP POLICY IF EXISTS roles_admin_update ON roles;
DROP POLICY IF EXISTS roles_admin_delete ON roles;
CREATE POLICY roles_admin_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY roles_admin_update ON roles FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY roles_admin_delete ON roles FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');

DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS invitations_select ON invitations;
DROP POLICY IF EXISTS invitations_insert ON invitations;
CREATE POLICY invitations_admin ON invitations FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
GRANT UPDATE ON invitations TO app_user;

GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO app_user;
CREATE POLICY refresh_tokens_own ON refresh_tokens FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS sessions_select ON sessions;
DROP POLICY IF EXISTS sessions_revoke ON sessions;
CREATE POLICY sessions_own ON sessions FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY sessions_admin ON sessions FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
GRANT INSERT, UPDATE ON sessions TO app_user;

DROP POLICY IF EXISTS users_admin_update ON users;
CREATE POLICY users_admin_insert ON users FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY users_admin_update ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY users_admin_delete ON users FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
GRANT INSERT, UPDATE, DELETE ON users TO app_user;

DROP POLICY IF EXISTS companies_update_admin ON companies;
CREATE POLICY companies_update_admin ON companies FOR UPDATE TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (id = (SELECT app.current_company_id()));
GRANT UPDATE ON companies TO app_user;

-- The request transaction switches the role itself again.
DROP FUNCTION IF EXISTS app.begin_request(uuid, uuid, text, uuid, boolean);
CREATE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS boolean
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF p_read_only THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    IF p_user IS NULL THEN
        PERFORM pg_catalog.set_config('role', 'app_anon', true);
        RETURN true;
    END IF;
    PERFORM pg_catalog.set_config('role', 'app_user', true),
            pg_catalog.set_config('app.user_id', p_user::text, true),
            pg_catalog.set_config('app.company_id', p_company::text, true),
            pg_catalog.set_config('app.role', p_role, true);
    RETURN EXISTS (
        SELECT 1 FROM public.users u
        WHERE u.id = p_user AND u.company_id = p_company AND u.role = p_role AND u.is_active
    ) AND EXISTS (
        SELECT 1 FROM public.sessions s
        WHERE s.id = p_session AND s.company_id = p_company AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.absolute_expires_at > now()
    );
END
$$;
REVOKE ALL ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) TO app_authenticator;

DROP FUNCTION IF EXISTS app.may(text, text);
DROP TABLE IF EXISTS app.builtin_grants;

GRANT USAGE ON SCHEMA app TO app_authenticator;
DO $$
DECLARE f text;
BEGIN
    FOREACH f IN ARRAY ARRAY[
        'app.pending_password_reset(text)',
        'app.pending_invitation(text)',
        'app.session_state(uuid)',
        'app.login_lookup(text)',
        'app.sign_up(uuid, text, uuid, text, text, text)',
        'app.create_session(uuid, uuid, uuid, text, timestamptz, timestamptz, text, text, text)',
        'app.refresh_session(text, text, text, interval, interval)',
        'app.create_password_reset(text, text, timestamptz, text, text)',
        'app.consume_password_reset(text, text)',
        'app.accept_invitation(text, uuid, text, text)',
        'app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text)'
    ] LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM app_anon, app_worker', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_authenticator', f);
    END LOOP;
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END
$$;
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;
REVOKE ALL ON SCHEMA app FROM app_worker;
