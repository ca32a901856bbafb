-- The database layer holds on its own: inside a company PostgreSQL refuses what the API
-- refuses, the pool's login role reaches nothing, and no definer function can be shadowed.
-- `policies/database.sql` shows the resulting catalog in one file.

-- Owners of definer objects must be allowed to create in the schema while they are handed over
-- (superusers skip that check; a managed service's CREATEROLE owner does not). Revoked at the end.
GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

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
-- built-in role's grants, or those of the company's custom role of that name. A definer (of
-- app_auth, which reads the caller's company's roles and nothing else), so that policies on
-- `roles` itself may ask it.
GRANT SELECT ON app.builtin_grants TO app_auth;
GRANT SELECT ON roles TO app_auth;
DROP POLICY IF EXISTS roles_definer ON roles;
CREATE POLICY roles_definer ON roles FOR SELECT TO app_auth
    USING (company_id = (SELECT app.current_company_id()));
CREATE OR REPLACE FUNCTION app.may(p_object text, p_action text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
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
ALTER FUNCTION app.may(text, text) OWNER TO app_auth;

-- Whether a token's identity is live: an active member of that company with that role, with a
-- live session. A definer, so that it holds whatever the role may read.
CREATE OR REPLACE FUNCTION app.identity_is_live(p_user uuid, p_company uuid, p_role text, p_session uuid)
    RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM users u
        WHERE u.id = p_user AND u.company_id = p_company AND u.role = p_role AND u.is_active
    ) AND EXISTS (
        SELECT 1 FROM sessions s
        WHERE s.id = p_session AND s.company_id = p_company AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.absolute_expires_at > now()
    )
$$;
ALTER FUNCTION app.identity_is_live(uuid, uuid, text, uuid) OWNER TO app_auth;

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
    IF NOT app.identity_is_live(p_user, p_company, p_role, p_session) THEN
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
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, text, uuid, boolean),
    app.identity_is_live(uuid, uuid, text, uuid) TO app_user;
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

-- Row rules of request transactions, all in one place -------------------------------------------
-- Every policy of app_user is made here again: a request reads and writes what its role's
-- permissions allow (app.may), and rows are then limited by company and ownership. Reading
-- oneself is always allowed.
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

-- companies: members read their company; who manages it renames it.
REVOKE UPDATE ON companies FROM app_user;
GRANT UPDATE (name) ON companies TO app_user;
CREATE POLICY companies_select ON companies FOR SELECT TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'read')));
CREATE POLICY companies_update ON companies FOR UPDATE TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update')))
    WITH CHECK (id = (SELECT app.current_company_id()));

-- users: people are created by invitation or sign-up (definer functions) and never deleted by a
-- request; e-mail addresses do not change through requests. Which column of whose row may
-- change is decided by app.users_guard below.
REVOKE INSERT, UPDATE, DELETE ON users FROM app_user;
GRANT UPDATE (display_name, attributes, role, is_active, password_hash, profile_visibility,
              visible_attributes) ON users TO app_user;
CREATE POLICY users_select ON users FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (id = (SELECT app.current_user_id()) OR (SELECT app.may('user', 'read'))));
CREATE POLICY users_update_self ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND id = (SELECT app.current_user_id()));
CREATE POLICY users_update_managed ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('user', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

-- What a request may change in a user row: its own profile and privacy (`user update`) and its
-- own password (`session update`, as changePassword); another's profile, role and active state
-- only as someone who manages users, and never its own role; and the company keeps an active
-- admin. Definer functions and the owner are not requests.
CREATE OR REPLACE FUNCTION app.users_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    me uuid := app.current_user_id();
    manages boolean;
BEGIN
    IF current_user <> 'app_user' THEN
        RETURN NEW;
    END IF;
    manages := app.may('user', 'manage');
    IF (NEW.role IS DISTINCT FROM OLD.role OR NEW.is_active IS DISTINCT FROM OLD.is_active) AND NOT manages THEN
        RAISE EXCEPTION 'only those who manage users change roles and active state' USING ERRCODE = '42501';
    END IF;
    IF NEW.role IS DISTINCT FROM OLD.role AND OLD.id = me THEN
        RAISE EXCEPTION 'nobody can change their own role' USING ERRCODE = '42501';
    END IF;
    IF (NEW.display_name IS DISTINCT FROM OLD.display_name OR NEW.attributes IS DISTINCT FROM OLD.attributes)
       AND NOT (manages OR (OLD.id = me AND app.may('user', 'update'))) THEN
        RAISE EXCEPTION 'only the user themselves or those who manage users change a profile' USING ERRCODE = '42501';
    END IF;
    IF (NEW.profile_visibility IS DISTINCT FROM OLD.profile_visibility
        OR NEW.visible_attributes IS DISTINCT FROM OLD.visible_attributes)
       AND NOT (OLD.id = me AND app.may('user', 'update')) THEN
        RAISE EXCEPTION 'only the user themselves changes their privacy settings' USING ERRCODE = '42501';
    END IF;
    IF NEW.password_hash IS DISTINCT FROM OLD.password_hash AND NOT (OLD.id = me AND app.may('session', 'update')) THEN
        RAISE EXCEPTION 'only the user themselves changes their password' USING ERRCODE = '42501';
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

-- sessions: created by definer functions. A request sees and revokes its user's own live
-- sessions, or any of the company's as someone who manages users (deactivation); a revoked
-- session never comes back and none is extended.
REVOKE INSERT, UPDATE ON sessions FROM app_user;
GRANT UPDATE (revoked_at, revoked_reason) ON sessions TO app_user;
CREATE POLICY sessions_select ON sessions FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND ((user_id = (SELECT app.current_user_id()) AND (SELECT app.may('session', 'read')))
                OR (SELECT app.may('user', 'manage'))));
CREATE POLICY sessions_revoke ON sessions FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND revoked_at IS NULL
           AND ((user_id = (SELECT app.current_user_id()) AND (SELECT app.may('session', 'delete')))
                OR (SELECT app.may('user', 'manage'))))
    WITH CHECK (revoked_at IS NOT NULL);

-- refresh_tokens and password_resets: only the definer functions touch them.
REVOKE ALL ON refresh_tokens, password_resets FROM app_user;

-- invitations: read by whoever may read invitations, made by whoever may create them, in their
-- own name; accepted only through app.accept_invitation.
REVOKE UPDATE, DELETE ON invitations FROM app_user;
CREATE POLICY invitations_select ON invitations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));
CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND invited_by = (SELECT app.current_user_id()) AND accepted_at IS NULL
                AND accepted_user_id IS NULL);

-- outbound_emails: a request queues only the e-mail of an invitation it made in the same
-- transaction, to the invited address. Other mail is queued by definer functions.
CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND template = 'invitation' AND sent_at IS NULL AND attempts = 0 AND last_error IS NULL
                AND EXISTS (SELECT 1 FROM invitations i
                            WHERE i.company_id = outbound_emails.company_id
                              AND lower(i.email) = lower(outbound_emails.recipient)
                              AND i.invited_by = (SELECT app.current_user_id())
                              AND i.created_at = now()));

-- roles: read by everyone of the company (each request's permissions are read from here, in its
-- own transaction), written by whoever manages the company.
CREATE POLICY roles_select ON roles FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));
CREATE POLICY roles_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));
CREATE POLICY roles_update ON roles FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY roles_delete ON roles FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

-- audience_fields: read with audiences, written by whoever manages audiences.
CREATE POLICY audience_fields_select ON audience_fields FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'read')));
CREATE POLICY audience_fields_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));
CREATE POLICY audience_fields_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY audience_fields_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));

-- presets: one's own and the company's shared ones; whoever manages audiences sees and changes
-- every preset of the company. A preset keeps its owner.
REVOKE UPDATE ON presets FROM app_user;
GRANT UPDATE (name, description, filter, visibility) ON presets TO app_user;
CREATE POLICY presets_select ON presets FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'read'))
           AND (owner_id = (SELECT app.current_user_id()) OR visibility = 'company'
                OR (SELECT app.may('audience', 'manage'))));
CREATE POLICY presets_insert ON presets FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'create'))
                AND owner_id = (SELECT app.current_user_id()));
CREATE POLICY presets_update ON presets FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'update'))
           AND (owner_id = (SELECT app.current_user_id()) OR (SELECT app.may('audience', 'manage'))))
    WITH CHECK (company_id = (SELECT app.current_company_id()));
CREATE POLICY presets_delete ON presets FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'delete'))
           AND (owner_id = (SELECT app.current_user_id()) OR (SELECT app.may('audience', 'manage'))));

-- friendships: the pair's two members, as their friendship permissions allow; the state
-- machine is app.friendships_guard below.
CREATE POLICY friendships_select ON friendships FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'read')));
CREATE POLICY friendships_insert ON friendships FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
                AND (SELECT app.may('friendship', 'create')));
CREATE POLICY friendships_update ON friendships FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b));
CREATE POLICY friendships_delete ON friendships FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'delete')));

-- conversations and knowledge: only their owner, in their company, as their conversation
-- permissions allow. Not even an admin reads someone else's chat.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['conversations', 'knowledge'] LOOP
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO app_user USING (company_id = (SELECT app.current_company_id()) '
                       'AND user_id = (SELECT app.current_user_id()) AND (SELECT app.may(''conversation'', ''read'')))',
                       t || '_select', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT TO app_user WITH CHECK (company_id = (SELECT app.current_company_id()) '
                       'AND user_id = (SELECT app.current_user_id()) AND (SELECT app.may(''conversation'', ''create'')))',
                       t || '_insert', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR UPDATE TO app_user USING (company_id = (SELECT app.current_company_id()) '
                       'AND user_id = (SELECT app.current_user_id()) AND (SELECT app.may(''conversation'', ''update''))) '
                       'WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()))',
                       t || '_update', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR DELETE TO app_user USING (company_id = (SELECT app.current_company_id()) '
                       'AND user_id = (SELECT app.current_user_id()) AND (SELECT app.may(''conversation'', ''delete'')))',
                       t || '_delete', t);
    END LOOP;
END
$$;

-- messages: a message belongs to a conversation of its own user. A request adds the user's
-- message and an empty streaming placeholder for the reply, and may only cancel a streaming
-- reply; the reply's text is stored by app.chat_finish_message.
ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_company_user_id_key CASCADE;
ALTER TABLE conversations ADD CONSTRAINT conversations_company_user_id_key UNIQUE (company_id, user_id, id);
ALTER TABLE messages ADD CONSTRAINT messages_own_conversation_fkey FOREIGN KEY (company_id, user_id, conversation_id)
    REFERENCES conversations (company_id, user_id, id) ON DELETE CASCADE;
REVOKE UPDATE ON messages FROM app_user;
GRANT UPDATE (status) ON messages TO app_user;
CREATE POLICY messages_select ON messages FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'read')));
CREATE POLICY messages_insert ON messages FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('message', 'create'))
                AND ((role = 'user' AND status = 'complete')
                     OR (role = 'assistant' AND status = 'streaming' AND content = ''))
                AND model IS NULL AND prompt_tokens IS NULL AND completion_tokens IS NULL AND error IS NULL);
CREATE POLICY messages_cancel ON messages FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'update')) AND status = 'streaming')
    WITH CHECK (status = 'cancelled');
CREATE POLICY messages_delete ON messages FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'delete')));

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
  AND (SELECT app.current_role()) = 'admin'
  AND (SELECT app.may('audience', 'read'));

CREATE OR REPLACE VIEW audience_users WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.may('audience', 'read'))
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL
           AND NOT EXISTS (SELECT 1 FROM friendships f
                           WHERE f.company_id = u.company_id AND f.status = 'blocked'
                             AND f.user_a = LEAST(u.id, (SELECT app.current_user_id()))
                             AND f.user_b = GREATEST(u.id, (SELECT app.current_user_id())))));

-- People as the caller may see them (migration 000701), now only for those who may read users
-- (oneself always). Still no security barrier, so pages walk the index: masking happens in the
-- select list, so a caller's condition only ever sees masked values.
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
WHERE u.company_id = (SELECT app.current_company_id())
  AND (u.id = (SELECT app.current_user_id()) OR (SELECT app.may('user', 'read')));

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
