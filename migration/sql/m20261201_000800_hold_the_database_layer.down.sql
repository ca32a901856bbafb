-- Back to the rules of the earlier migrations.

ALTER VIEW audience_users_admin RESET (security_barrier);
CREATE OR REPLACE VIEW audience_users_admin AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.current_role()) = 'admin';
ALTER VIEW audience_users RESET (security_barrier);
CREATE OR REPLACE VIEW audience_users AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL));

DROP TRIGGER IF EXISTS friendships_guard ON friendships;
DROP FUNCTION IF EXISTS app.friendships_guard();
DROP TRIGGER IF EXISTS users_guard ON users;
DROP FUNCTION IF EXISTS app.users_guard();

ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_own_conversation_fkey;
ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_company_user_id_key;

-- The policies and grants of migrations 000002 to 000702.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT pol.polname, c.relname FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND 'app_user'::regrole = ANY (pol.polroles)
    LOOP
        EXECUTE format('DROP POLICY %I ON %I', r.polname, r.relname);
    END LOOP;
END
$$;
DROP POLICY IF EXISTS roles_definer ON roles;
CREATE POLICY companies_select ON companies FOR SELECT TO app_user
    USING (id = (SELECT app.current_company_id()));
CREATE POLICY companies_update_admin ON companies FOR UPDATE TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (id = (SELECT app.current_company_id()));
CREATE POLICY users_select ON users FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));
CREATE POLICY users_update_self ON users FOR UPDATE TO app_user
    USING (id = (SELECT app.current_user_id()) AND company_id = (SELECT app.current_company_id()))
    WITH CHECK (id = (SELECT app.current_user_id()) AND company_id = (SELECT app.current_company_id()));
CREATE POLICY users_admin_insert ON users FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY users_admin_update ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY users_admin_delete ON users FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY sessions_own ON sessions FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY sessions_admin ON sessions FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY refresh_tokens_own ON refresh_tokens FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY invitations_admin ON invitations FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY roles_select ON roles FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));
CREATE POLICY roles_admin_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY roles_admin_update ON roles FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY roles_admin_delete ON roles FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY audience_fields_select ON audience_fields FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));
CREATE POLICY audience_fields_admin_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY audience_fields_admin_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin')
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY audience_fields_admin_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_role()) = 'admin');
CREATE POLICY presets_select ON presets FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (owner_id = (SELECT app.current_user_id())
                OR visibility = 'company'
                OR (SELECT app.current_role()) IN ('admin', 'manager')));
CREATE POLICY presets_insert ON presets FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id())
                AND owner_id = (SELECT app.current_user_id()));
CREATE POLICY presets_update ON presets FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (owner_id = (SELECT app.current_user_id())
                OR (SELECT app.current_role()) IN ('admin', 'manager')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY presets_delete ON presets FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (owner_id = (SELECT app.current_user_id())
                OR (SELECT app.current_role()) IN ('admin', 'manager')));
CREATE POLICY friendships_participant ON friendships FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (SELECT app.current_user_id()) IN (user_a, user_b))
    WITH CHECK (company_id = (SELECT app.current_company_id())
                AND (SELECT app.current_user_id()) IN (user_a, user_b)
                AND (blocked_by IS NULL OR blocked_by = (SELECT app.current_user_id())));
CREATE POLICY conversations_owner ON conversations FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY messages_owner ON messages FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY knowledge_owner ON knowledge FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

GRANT UPDATE ON companies, presets, messages, invitations TO app_user;
GRANT INSERT, UPDATE, DELETE ON users TO app_user;
GRANT INSERT, UPDATE ON sessions TO app_user;
GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO app_user;
REVOKE SELECT ON roles FROM app_auth;

-- user_profiles as migration 000701 made it.
CREATE OR REPLACE VIEW user_profiles WITH (security_barrier = false) AS
SELECT u.id,
       u.company_id,
       CASE WHEN p.sees THEN u.email END AS email,
       u.display_name,
       u.role,
       CASE WHEN p.full_view OR (p.sees AND u.visible_attributes IS NULL) THEN u.attributes
            WHEN p.sees THEN (SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
                              FROM jsonb_each(u.attributes) e
                              WHERE e.key = ANY (u.visible_attributes))
            ELSE '{}'::jsonb END AS attributes,
       u.is_active,
       u.created_at,
       u.updated_at,
       u.last_active_at,
       p.relation,
       CASE WHEN p.full_view THEN u.profile_visibility END AS profile_visibility,
       CASE WHEN p.full_view THEN u.visible_attributes END AS visible_attributes
FROM users u
LEFT JOIN LATERAL (
    SELECT fr.status, fr.requested_by, fr.blocked_by
    FROM friendships fr
    WHERE fr.company_id = u.company_id
      AND fr.user_a = LEAST(u.id, (SELECT app.current_user_id()))
      AND fr.user_b = GREATEST(u.id, (SELECT app.current_user_id()))
    LIMIT 1
) f ON true
CROSS JOIN LATERAL (
    SELECT v.full_view,
           v.full_view OR (COALESCE(f.status, '') <> 'blocked'
                           AND (u.profile_visibility = 'company'
                                OR (u.profile_visibility = 'friends' AND f.status = 'accepted'))) AS sees,
           CASE WHEN u.id = (SELECT app.current_user_id()) THEN 'self'
                WHEN f.status = 'accepted' THEN 'friends'
                WHEN f.status = 'pending' AND f.requested_by = u.id THEN 'pending_incoming'
                WHEN f.status = 'pending' THEN 'pending_outgoing'
                WHEN f.status = 'blocked' AND f.blocked_by = u.id THEN 'blocked_by'
                WHEN f.status = 'blocked' THEN 'blocked'
                ELSE 'none' END AS relation
    FROM (SELECT u.id = (SELECT app.current_user_id())
                 OR (SELECT app.current_role()) = 'admin' AS full_view) v
) p
WHERE u.company_id = (SELECT app.current_company_id());

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
DROP FUNCTION IF EXISTS app.identity_is_live(uuid, uuid, text, uuid);
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
