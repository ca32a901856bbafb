-- The database layer holds on its own: inside a company PostgreSQL refuses what the API
-- refuses, the pool's login role reaches nothing, and no definer function can be shadowed.
-- `policies/database.sql` shows the resulting catalog in one file.

-- Roles ---------------------------------------------------------------------------------------
-- app_worker: background work that belongs to no request (finishing a streamed chat reply).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_worker') THEN
        CREATE ROLE app_worker NOLOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT app_worker TO app_authenticator;
GRANT USAGE ON SCHEMA app TO app_worker;

-- The login role reaches nothing: no function, no schema of the application, no TEMP.
-- All it can do is SET ROLE to app_user, app_anon or app_worker.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA app FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA app FROM app_authenticator;
REVOKE ALL ON SCHEMA app FROM app_authenticator;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC, app_authenticator, app_user, app_anon, '
                   'app_auth, app_profiles, app_worker', current_database());
END
$$;

-- Who may do what, as policies/policy.csv says for the built-in roles ---------------------------
-- Row rules that depend on a permission ask app.may(object, action) instead of naming roles, so
-- custom roles get the same rows as the permissions they were granted. A test derives its
-- expectations from policies/policy.csv and fails when this table and the file disagree.
CREATE TABLE IF NOT EXISTS app.builtin_grants (
    role    text NOT NULL,
    object  text NOT NULL,
    action  text NOT NULL,
    PRIMARY KEY (role, object, action)
);
TRUNCATE app.builtin_grants;
INSERT INTO app.builtin_grants (role, object, action)
SELECT r.role, g.object, g.action
FROM (VALUES ('member', 0), ('manager', 1), ('admin', 2)) r (role, rank)
JOIN (VALUES
    ('company', 'read', 0), ('user', 'read', 0), ('user', 'update', 0), ('preset', 'manage', 0),
    ('audience', 'read', 0), ('friendship', 'manage', 0), ('conversation', 'manage', 0),
    ('message', 'manage', 0), ('session', 'manage', 0),
    ('audience', 'manage', 1), ('invitation', 'read', 1),
    ('company', 'manage', 2), ('user', 'manage', 2), ('invitation', 'manage', 2)
) g (object, action, rank) ON g.rank <= r.rank;
REVOKE ALL ON app.builtin_grants FROM PUBLIC;
GRANT SELECT ON app.builtin_grants TO app_user;

-- Whether the caller's role may `p_action` on `p_object` (`manage` implies every action): a
-- built-in role's grants, or those of the company's custom role of that name.
CREATE OR REPLACE FUNCTION app.may(p_object text, p_action text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM app.builtin_grants g
        WHERE g.role = app.current_role() AND g.object = p_object AND g.action IN (p_action, 'manage')
    ) OR EXISTS (
        SELECT 1 FROM public.roles r CROSS JOIN LATERAL jsonb_array_elements(r.grants) e (grant_)
        WHERE r.company_id = app.current_company_id() AND r.name = app.current_role()
          AND e.grant_ ->> 'object' = p_object AND e.grant_ ->> 'action' IN (p_action, 'manage')
    )
$$;

-- Request transactions ------------------------------------------------------------------------
-- The server runs `SET LOCAL ROLE app_user` and then this, as app_user, in one round trip. It
-- sets the identity the policies read and raises `28000` unless the token's user is an active
-- member of that company with that role and its session is live. (Anonymous requests only
-- `SET LOCAL ROLE app_anon`.)
DROP FUNCTION IF EXISTS app.begin_request(uuid, uuid, text, uuid, boolean);
CREATE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF p_read_only THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    PERFORM pg_catalog.set_config('app.user_id', p_user::text, true),
            pg_catalog.set_config('app.company_id', p_company::text, true),
            pg_catalog.set_config('app.role', p_role, true);
    IF NOT EXISTS (
        SELECT 1 FROM public.users u
        WHERE u.id = p_user AND u.company_id = p_company AND u.role = p_role AND u.is_active
    ) OR NOT EXISTS (
        SELECT 1 FROM public.sessions s
        WHERE s.id = p_session AND s.company_id = p_company AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.absolute_expires_at > pg_catalog.now()
    ) THEN
        RAISE EXCEPTION 'the session has ended, or its user is no longer an active member of that company with that role'
            USING ERRCODE = '28000';
    END IF;
END
$$;

-- Every SECURITY DEFINER function resolves names in pg_catalog and public, and pg_temp last,
-- so a temporary table can never stand in for one of ours.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.prosecdef AND n.nspname IN ('app', 'public')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, public, pg_temp', f);
    END LOOP;
END
$$;

-- Each function to the role that calls it, and nobody else.
GRANT EXECUTE ON FUNCTION app.current_user_id(), app.current_company_id(), app.current_role()
    TO app_user, app_anon, app_auth, app_profiles, app_worker;
GRANT EXECUTE ON FUNCTION app.may(text, text) TO app_user;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean) TO app_user;
-- Signing in happens before there is a user: anonymous request transactions run these.
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
        'app.accept_invitation(text, uuid, text, text)'
    ] LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO app_anon', f);
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text) TO app_worker;
GRANT EXECUTE ON FUNCTION app.current_password_hash(), app.mutual_friend_ids(uuid) TO app_user;

-- companies: admins rename their company; nothing else changes ------------------------------
REVOKE UPDATE ON companies FROM app_user;
GRANT UPDATE (name) ON companies TO app_user;
DROP POLICY IF EXISTS companies_update_admin ON companies;
CREATE POLICY companies_update_admin ON companies FOR UPDATE TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update')))
    WITH CHECK (id = (SELECT app.current_company_id()));

-- users: people are created by invitation or sign-up (definer functions) and never deleted by a
-- request. E-mail addresses do not change through requests. What may change is guarded below.
REVOKE INSERT, UPDATE, DELETE ON users FROM app_user;
GRANT UPDATE (display_name, attributes, role, is_active, password_hash, profile_visibility,
              visible_attributes) ON users TO app_user;
DROP POLICY IF EXISTS users_admin_insert ON users;
DROP POLICY IF EXISTS users_admin_delete ON users;
DROP POLICY IF EXISTS users_admin_update ON users;
CREATE POLICY users_admin_update ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('user', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

-- Which columns of whose row a request may change: a role or active state only as an
-- administrator and never one's own role; a password or privacy settings only one's own; and
-- the company keeps an active admin. Definer functions and the owner are not requests.
CREATE OR REPLACE FUNCTION app.users_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    IF current_user <> 'app_user' THEN
        RETURN NEW;
    END IF;
    IF (NEW.role IS DISTINCT FROM OLD.role OR NEW.is_active IS DISTINCT FROM OLD.is_active)
       AND NOT app.may('user', 'manage') THEN
        RAISE EXCEPTION 'only administrators change roles and active state' USING ERRCODE = '42501';
    END IF;
    IF NEW.role IS DISTINCT FROM OLD.role AND OLD.id = me THEN
        RAISE EXCEPTION 'nobody can change their own role' USING ERRCODE = '42501';
    END IF;
    IF NEW.password_hash IS DISTINCT FROM OLD.password_hash AND OLD.id IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'only the user themselves changes their password' USING ERRCODE = '42501';
    END IF;
    IF (NEW.profile_visibility IS DISTINCT FROM OLD.profile_visibility
        OR NEW.visible_attributes IS DISTINCT FROM OLD.visible_attributes) AND OLD.id IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'only the user themselves changes their privacy settings' USING ERRCODE = '42501';
    END IF;
    IF OLD.role = 'admin' AND OLD.is_active AND NOT (NEW.role = 'admin' AND NEW.is_active) THEN
        -- Serialises with concurrent demotions, as the API does.
        PERFORM 1 FROM companies WHERE id = OLD.company_id FOR NO KEY UPDATE;
        IF NOT EXISTS (SELECT 1 FROM users u WHERE u.company_id = OLD.company_id AND u.id <> OLD.id
                       AND u.role = 'admin' AND u.is_active) THEN
            RAISE EXCEPTION 'the last active admin of a company cannot be demoted or deactivated'
                USING ERRCODE = '23514';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS users_guard ON users;
CREATE TRIGGER users_guard BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION app.users_guard();

-- sessions: created by definer functions; a request may only revoke a live one (its own, or as
-- someone who manages users) and never bring one back or extend it.
REVOKE INSERT, UPDATE ON sessions FROM app_user;
GRANT UPDATE (revoked_at, revoked_reason) ON sessions TO app_user;
DROP POLICY IF EXISTS sessions_own ON sessions;
DROP POLICY IF EXISTS sessions_admin ON sessions;
CREATE POLICY sessions_select ON sessions FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (user_id = (SELECT app.current_user_id()) OR (SELECT app.may('user', 'manage'))));
CREATE POLICY sessions_revoke ON sessions FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND revoked_at IS NULL
           AND (user_id = (SELECT app.current_user_id()) OR (SELECT app.may('user', 'manage'))))
    WITH CHECK (revoked_at IS NOT NULL);

-- refresh_tokens: only the definer functions touch them.
REVOKE ALL ON refresh_tokens FROM app_user;
DROP POLICY IF EXISTS refresh_tokens_own ON refresh_tokens;

-- invitations: read by whoever may read invitations, created by whoever may create them, in
-- their own name; accepted only through app.accept_invitation.
REVOKE UPDATE ON invitations FROM app_user;
DROP POLICY IF EXISTS invitations_admin ON invitations;
CREATE POLICY invitations_select ON invitations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));
CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND invited_by = (SELECT app.current_user_id()) AND accepted_at IS NULL
                AND accepted_user_id IS NULL);

-- outbound_emails: a request queues only the e-mail of an invitation it made in the same
-- transaction, to the invited address. Other mail is queued by definer functions.
DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND template = 'invitation'
                AND sent_at IS NULL AND attempts = 0
                AND EXISTS (SELECT 1 FROM invitations i
                            WHERE i.company_id = outbound_emails.company_id
                              AND lower(i.email) = lower(outbound_emails.recipient)
                              AND i.invited_by = (SELECT app.current_user_id())
                              AND i.created_at = now()));

-- roles and audience_fields: written by whoever manages the company / audiences.
DROP POLICY IF EXISTS roles_admin_insert ON roles;
DROP POLICY IF EXISTS roles_admin_update ON roles;
DROP POLICY IF EXISTS roles_admin_delete ON roles;
CREATE POLICY roles_admin_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));
CREATE POLICY roles_admin_update ON roles FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY roles_admin_delete ON roles FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS audience_fields_admin_insert ON audience_fields;
DROP POLICY IF EXISTS audience_fields_admin_update ON audience_fields;
DROP POLICY IF EXISTS audience_fields_admin_delete ON audience_fields;
CREATE POLICY audience_fields_manage_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));
CREATE POLICY audience_fields_manage_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY audience_fields_manage_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));

-- presets: a preset keeps its owner.
REVOKE UPDATE ON presets FROM app_user;
GRANT UPDATE (name, description, filter, visibility) ON presets TO app_user;

-- messages: a message belongs to a conversation of its own user; a request adds the user's
-- message and an empty streaming placeholder for the reply, and may only cancel a streaming
-- reply. The reply's text is stored by app.chat_finish_message.
ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_company_user_id_key;
ALTER TABLE conversations ADD CONSTRAINT conversations_company_user_id_key UNIQUE (company_id, user_id, id);
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_own_conversation_fkey;
ALTER TABLE messages ADD CONSTRAINT messages_own_conversation_fkey FOREIGN KEY (company_id, user_id, conversation_id)
    REFERENCES conversations (company_id, user_id, id) ON DELETE CASCADE;
REVOKE UPDATE ON messages FROM app_user;
GRANT UPDATE (status) ON messages TO app_user;
DROP POLICY IF EXISTS messages_owner ON messages;
CREATE POLICY messages_owner_select ON messages FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY messages_owner_delete ON messages FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));
CREATE POLICY messages_owner_insert ON messages FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND ((role = 'user' AND status = 'complete')
                     OR (role = 'assistant' AND status = 'streaming' AND content = ''))
                AND model IS NULL AND prompt_tokens IS NULL AND completion_tokens IS NULL AND error IS NULL);
CREATE POLICY messages_owner_cancel ON messages FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND status = 'streaming')
    WITH CHECK (status = 'cancelled');

-- friendships: the state machine of requests and blocks, for requests. A request is sent
-- pending by its requester; only the other member of the pair accepts it; a block is made by
-- the blocker and lifted (updated or deleted) only by them; the pair never changes.
CREATE OR REPLACE FUNCTION app.friendships_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    IF current_user <> 'app_user' THEN
        RETURN COALESCE(NEW, OLD);
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT ((NEW.status = 'pending' AND NEW.requested_by = me AND NEW.responded_at IS NULL)
                OR (NEW.status = 'blocked' AND NEW.blocked_by = me)) THEN
            RAISE EXCEPTION 'a friendship starts as a request of yours or a block of yours' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status = 'blocked' AND OLD.blocked_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'only the blocker lifts a block' USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF (NEW.company_id, NEW.user_a, NEW.user_b) IS DISTINCT FROM (OLD.company_id, OLD.user_a, OLD.user_b) THEN
        RAISE EXCEPTION 'a friendship keeps its pair' USING ERRCODE = '42501';
    END IF;
    IF NEW.status = 'accepted' AND OLD.status IS DISTINCT FROM 'accepted'
       AND NOT (OLD.status = 'pending' AND OLD.requested_by IS DISTINCT FROM me
                AND NEW.requested_by = OLD.requested_by) THEN
        RAISE EXCEPTION 'only the recipient of a pending request accepts it' USING ERRCODE = '42501';
    END IF;
    IF NEW.status = 'blocked' AND NEW.blocked_by IS DISTINCT FROM me THEN
        RAISE EXCEPTION 'a block is made by the blocker' USING ERRCODE = '42501';
    END IF;
    IF NEW.status = 'pending' AND (OLD.status <> 'pending' OR NEW.requested_by IS DISTINCT FROM OLD.requested_by) THEN
        RAISE EXCEPTION 'a request is sent by its requester' USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS friendships_guard ON friendships;
CREATE TRIGGER friendships_guard BEFORE INSERT OR UPDATE OR DELETE ON friendships
    FOR EACH ROW EXECUTE FUNCTION app.friendships_guard();

-- Trigger functions run as the table's writer; they need no EXECUTE grant of their own.

-- Audience views: security barriers, and a blocked pair never reads each other ---------------
CREATE OR REPLACE VIEW audience_users_admin WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.current_role()) = 'admin';

CREATE OR REPLACE VIEW audience_users WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL
           AND NOT EXISTS (SELECT 1 FROM friendships f
                           WHERE f.company_id = u.company_id AND f.status = 'blocked'
                             AND f.user_a = LEAST(u.id, (SELECT app.current_user_id()))
                             AND f.user_b = GREATEST(u.id, (SELECT app.current_user_id())))));
