-- Policies that read no table and hold no sub-select, so that Citus accepts them on distributed
-- tables and runs them on the worker that holds the row (where a read of another table would
-- be a distributed query from within one, which Citus refuses): the helpers are called without
-- the `(SELECT ...)` wrapper (they are inlinable SQL functions, still index conditions);
-- app.may reads the caller's grants from the transaction variable app.grants, and the activity
-- policies read the caller's friends and blocks from app.friend_ids and app.blocked_ids, all
-- three set once by app.begin_request; an activity's shares are copied onto the row
-- (activities.shared_with, kept in step by the share mutation); the e-mail of an invitation is
-- checked against the addresses invited in the transaction (app.invitations_made, set by a
-- trigger of invitations). The current definitions are in migration/sql/current/ (app.sql,
-- activities.sql, invitations.sql, outbound_emails.sql, audience_activities.sql and the
-- policies of every table).
GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

ALTER TABLE activities ADD COLUMN IF NOT EXISTS shared_with uuid[] NOT NULL DEFAULT '{}';
-- The shares made so far, copied without touching updated_at (sharing is not an edit).
ALTER TABLE activities DISABLE TRIGGER activities_touch_updated_at;
UPDATE activities a
   SET shared_with = ARRAY(SELECT s.user_id FROM activity_shares s
                           WHERE s.company_id = a.company_id AND s.activity_id = a.id ORDER BY 1)
 WHERE EXISTS (SELECT 1 FROM activity_shares s WHERE s.company_id = a.company_id AND s.activity_id = a.id);
ALTER TABLE activities ENABLE TRIGGER activities_touch_updated_at;

CREATE OR REPLACE FUNCTION app.may(p_object text, p_action text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT COALESCE(pg_catalog.strpos(pg_catalog.current_setting('app.grants', true),
                                      ',' || p_object || ':' || p_action || ',') > 0
                    OR pg_catalog.strpos(pg_catalog.current_setting('app.grants', true),
                                         ',' || p_object || ':manage,') > 0,
                    false)
$$;

CREATE OR REPLACE FUNCTION app.friend_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(pg_catalog.current_setting('app.friend_ids', true), '')::uuid[] $$;

REVOKE ALL ON FUNCTION app.friend_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

GRANT EXECUTE ON FUNCTION app.friend_ids() TO app_user, app_profiles;

CREATE OR REPLACE FUNCTION app.blocked_ids() RETURNS uuid[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(pg_catalog.current_setting('app.blocked_ids', true), '')::uuid[] $$;

REVOKE ALL ON FUNCTION app.blocked_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

GRANT EXECUTE ON FUNCTION app.blocked_ids() TO app_user, app_profiles;

-- Whether `p_user` is among them, as the policies ask it of every row they check. A text search
-- in the variable, not `= ANY(app.friend_ids())`: PostgreSQL evaluates a policy's expression row
-- by row, and casting a list of 200 friends to uuid[] on each row cost about 0.4 ms a row, the
-- search about 13 µs. The variable is the text of a uuid[] (`{uuid,uuid,...}`), whose elements
-- are 36-character uuids separated by commas: a 36-character uuid text holds no comma, so it
-- matches an element whole or not at all. Unset: NULL, as above (closed).
CREATE OR REPLACE FUNCTION app.is_friend(p_user uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT pg_catalog.strpos(NULLIF(pg_catalog.current_setting('app.friend_ids', true), ''), p_user::text) > 0 $$;
REVOKE ALL ON FUNCTION app.is_friend(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.is_friend(uuid) TO app_user, app_profiles;

CREATE OR REPLACE FUNCTION app.is_blocked(p_user uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT pg_catalog.strpos(NULLIF(pg_catalog.current_setting('app.blocked_ids', true), ''), p_user::text) > 0 $$;
REVOKE ALL ON FUNCTION app.is_blocked(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.is_blocked(uuid) TO app_user, app_profiles;

CREATE OR REPLACE FUNCTION app.request_grants(p_company uuid, p_role text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    -- A custom role never has a built-in role's name (roles.name's CHECK): one of the two.
    IF p_role IN ('admin', 'manager', 'member') THEN
        RETURN ',' || COALESCE((
            SELECT string_agg(b.object || ':' || b.action, ',' ORDER BY b.object, b.action) || ','
            FROM app.builtin_grants b WHERE b.role = p_role), '');
    END IF;
    RETURN ',' || COALESCE((
        SELECT string_agg(DISTINCT (e.grant_ ->> 'object') || ':' || (e.grant_ ->> 'action'), ',') || ','
        FROM public.roles r CROSS JOIN LATERAL jsonb_array_elements(r.grants) e (grant_)
        WHERE r.company_id = p_company AND r.name = p_role
          AND e.grant_ ->> 'object' ~ '^[a-z_]+$' AND e.grant_ ->> 'action' ~ '^[a-z_]+$'), '');
END
$$;

ALTER FUNCTION app.request_grants(uuid, text) OWNER TO app_auth;

REVOKE ALL ON FUNCTION app.request_grants(uuid, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

GRANT EXECUTE ON FUNCTION app.request_grants(uuid, text) TO app_user;

CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    friends uuid[];
    blocked uuid[];
BEGIN
    PERFORM pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
    IF p_read_only THEN
        SET LOCAL transaction_read_only = on;
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.user_id = %L', p_user);
    EXECUTE pg_catalog.format('SET LOCAL app.company_id = %L', p_company);
    EXECUTE pg_catalog.format('SET LOCAL app.role = %L', p_role);
    IF NOT app.identity_is_live(p_user, p_company, p_role, p_session) THEN
        RAISE EXCEPTION 'the session has ended, or its user is no longer an active member of that company with that role'
            USING ERRCODE = '28000';
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.grants = %L', app.request_grants(p_company, p_role));
    SELECT r.friends, r.blocked INTO friends, blocked FROM app.request_relationships() r;
    EXECUTE pg_catalog.format('SET LOCAL app.friend_ids = %L', friends);
    EXECUTE pg_catalog.format('SET LOCAL app.blocked_ids = %L', blocked);
END
$$;

DROP POLICY IF EXISTS companies_select ON companies;

CREATE POLICY companies_select ON companies FOR SELECT TO app_user
    USING (id = app.current_company_id() AND app.may('company', 'read'));

DROP POLICY IF EXISTS companies_update ON companies;

CREATE POLICY companies_update ON companies FOR UPDATE TO app_user
    USING (id = app.current_company_id() AND app.may('company', 'update'))
    WITH CHECK (id = app.current_company_id());

DROP POLICY IF EXISTS company_llm_providers_select ON company_llm_providers;

CREATE POLICY company_llm_providers_select ON company_llm_providers FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_llm_providers_insert ON company_llm_providers;

CREATE POLICY company_llm_providers_insert ON company_llm_providers FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_llm_providers_update ON company_llm_providers;

CREATE POLICY company_llm_providers_update ON company_llm_providers FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS company_llm_providers_delete ON company_llm_providers;

CREATE POLICY company_llm_providers_delete ON company_llm_providers FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS users_profiles ON users;

CREATE POLICY users_profiles ON users FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS users_select ON users;

CREATE POLICY users_select ON users FOR SELECT TO app_user
    USING (company_id = app.current_company_id()
           AND (id = app.current_user_id() OR app.may('user', 'read')));

DROP POLICY IF EXISTS users_update_self ON users;

CREATE POLICY users_update_self ON users FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND id = app.current_user_id())
    WITH CHECK (company_id = app.current_company_id() AND id = app.current_user_id());

DROP POLICY IF EXISTS users_update_managed ON users;

CREATE POLICY users_update_managed ON users FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('user', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS sessions_select ON sessions;

CREATE POLICY sessions_select ON sessions FOR SELECT TO app_user
    USING (company_id = app.current_company_id()
           AND ((user_id = app.current_user_id() AND app.may('session', 'read'))
                OR app.may('user', 'manage')));

DROP POLICY IF EXISTS sessions_revoke ON sessions;

CREATE POLICY sessions_revoke ON sessions FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND revoked_at IS NULL
           AND ((user_id = app.current_user_id() AND app.may('session', 'delete'))
                OR app.may('user', 'manage')))
    WITH CHECK (revoked_at IS NOT NULL);

DROP POLICY IF EXISTS invitations_select ON invitations;

CREATE POLICY invitations_select ON invitations FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('invitation', 'read'));

DROP POLICY IF EXISTS invitations_insert ON invitations;

CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('invitation', 'create')
                AND invited_by = app.current_user_id() AND accepted_at IS NULL
                AND accepted_user_id IS NULL);

CREATE OR REPLACE FUNCTION app.invitations_note_made() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF NEW.invited_by = app.current_user_id() AND NEW.company_id = app.current_company_id() THEN
        PERFORM pg_catalog.set_config('app.invitations_made',
            (COALESCE(NULLIF(pg_catalog.current_setting('app.invitations_made', true), ''), '[]')::jsonb
             || pg_catalog.to_jsonb(pg_catalog.lower(NEW.email)))::text, true);
    END IF;
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION app.invitations_note_made() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER invitations_note_made AFTER INSERT ON invitations
    FOR EACH ROW EXECUTE FUNCTION app.invitations_note_made();

CREATE OR REPLACE FUNCTION app.invited_just_now(p_email text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT COALESCE(NULLIF(pg_catalog.current_setting('app.invitations_made', true), '')::jsonb
                    ? pg_catalog.lower(p_email), false)
$$;

REVOKE ALL ON FUNCTION app.invited_just_now(text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

GRANT EXECUTE ON FUNCTION app.invited_just_now(text) TO app_user;

DROP POLICY IF EXISTS identities_select ON identities;

CREATE POLICY identities_select ON identities FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('session', 'read'));

DROP POLICY IF EXISTS identities_delete ON identities;

CREATE POLICY identities_delete ON identities FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('session', 'delete'));

DROP POLICY IF EXISTS company_oidc_providers_select ON company_oidc_providers;

CREATE POLICY company_oidc_providers_select ON company_oidc_providers FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_oidc_providers_insert ON company_oidc_providers;

CREATE POLICY company_oidc_providers_insert ON company_oidc_providers FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_oidc_providers_update ON company_oidc_providers;

CREATE POLICY company_oidc_providers_update ON company_oidc_providers FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS company_oidc_providers_delete ON company_oidc_providers;

CREATE POLICY company_oidc_providers_delete ON company_oidc_providers FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS company_domains_manage ON company_domains;

CREATE POLICY company_domains_manage ON company_domains FOR ALL TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'update'))
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'update')
                AND verified_at IS NULL AND verified_by IS NULL
                AND added_by = app.current_user_id());

DROP POLICY IF EXISTS invite_links_select ON invite_links;

CREATE POLICY invite_links_select ON invite_links FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('invitation', 'read'));

DROP POLICY IF EXISTS invite_links_insert ON invite_links;

CREATE POLICY invite_links_insert ON invite_links FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('invitation', 'create')
                AND created_by = app.current_user_id() AND uses = 0 AND revoked_at IS NULL);

DROP POLICY IF EXISTS invite_links_revoke ON invite_links;

CREATE POLICY invite_links_revoke ON invite_links FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('invitation', 'delete'))
    WITH CHECK (company_id = app.current_company_id() AND revoked_at IS NOT NULL);

DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;

CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('invitation', 'create')
                AND template = 'invitation' AND sent_at IS NULL AND attempts = 0 AND last_error IS NULL
                AND app.invited_just_now(recipient));

DROP POLICY IF EXISTS roles_definer ON roles;

CREATE POLICY roles_definer ON roles FOR SELECT TO app_auth
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS roles_select ON roles;

CREATE POLICY roles_select ON roles FOR SELECT TO app_user
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS roles_insert ON roles;

CREATE POLICY roles_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS roles_update ON roles;

CREATE POLICY roles_update ON roles FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS roles_delete ON roles;

CREATE POLICY roles_delete ON roles FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('company', 'manage'));

DROP POLICY IF EXISTS presets_select ON presets;

CREATE POLICY presets_select ON presets FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('preset', 'read')
           AND (owner_id = app.current_user_id() OR visibility = 'company'
                OR app.may('audience', 'manage')));

DROP POLICY IF EXISTS presets_insert ON presets;

CREATE POLICY presets_insert ON presets FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('preset', 'create')
                AND owner_id = app.current_user_id());

DROP POLICY IF EXISTS presets_update ON presets;

CREATE POLICY presets_update ON presets FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('preset', 'update')
           AND (owner_id = app.current_user_id() OR app.may('audience', 'manage')))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS presets_delete ON presets;

CREATE POLICY presets_delete ON presets FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('preset', 'delete')
           AND (owner_id = app.current_user_id() OR app.may('audience', 'manage')));

DROP POLICY IF EXISTS audience_fields_select ON audience_fields;

CREATE POLICY audience_fields_select ON audience_fields FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('audience', 'read'));

DROP POLICY IF EXISTS audience_fields_insert ON audience_fields;

CREATE POLICY audience_fields_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('audience', 'manage'));

DROP POLICY IF EXISTS audience_fields_update ON audience_fields;

CREATE POLICY audience_fields_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('audience', 'manage'))
    WITH CHECK (company_id = app.current_company_id());

DROP POLICY IF EXISTS audience_fields_delete ON audience_fields;

CREATE POLICY audience_fields_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('audience', 'manage'));

DROP POLICY IF EXISTS audience_members_profiles ON audience_members;

CREATE POLICY audience_members_profiles ON audience_members FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS audience_bits_profiles ON audience_bits;

CREATE POLICY audience_bits_profiles ON audience_bits FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS friendships_profiles ON friendships;

CREATE POLICY friendships_profiles ON friendships FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id());

DROP POLICY IF EXISTS friendships_select ON friendships;

CREATE POLICY friendships_select ON friendships FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.current_user_id() IN (user_a, user_b)
           AND app.may('friendship', 'read'));

DROP POLICY IF EXISTS friendships_insert ON friendships;

CREATE POLICY friendships_insert ON friendships FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.current_user_id() IN (user_a, user_b)
                AND app.may('friendship', 'create'));

DROP POLICY IF EXISTS friendships_update ON friendships;

CREATE POLICY friendships_update ON friendships FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.current_user_id() IN (user_a, user_b)
           AND app.may('friendship', 'update'))
    WITH CHECK (company_id = app.current_company_id() AND app.current_user_id() IN (user_a, user_b));

DROP POLICY IF EXISTS friendships_delete ON friendships;

CREATE POLICY friendships_delete ON friendships FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.current_user_id() IN (user_a, user_b)
           AND app.may('friendship', 'delete'));

CREATE OR REPLACE FUNCTION app.request_relationships(OUT friends uuid[], OUT blocked uuid[])
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    SELECT COALESCE(array_agg(CASE WHEN f.user_a = me THEN f.user_b ELSE f.user_a END)
                        FILTER (WHERE f.status = 'accepted'), '{}'),
           COALESCE(array_agg(CASE WHEN f.user_a = me THEN f.user_b ELSE f.user_a END)
                        FILTER (WHERE f.status = 'blocked'), '{}')
      INTO friends, blocked
      FROM friendships f
     WHERE f.company_id = app.current_company_id() AND (f.user_a = me OR f.user_b = me)
       AND f.status IN ('accepted', 'blocked');
END
$$;

ALTER FUNCTION app.request_relationships() OWNER TO app_profiles;

REVOKE ALL ON FUNCTION app.request_relationships() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;

GRANT EXECUTE ON FUNCTION app.request_relationships() TO app_user;

DROP POLICY IF EXISTS activity_kinds_select ON activity_kinds;

CREATE POLICY activity_kinds_select ON activity_kinds FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('activity_kind', 'read'));

DROP POLICY IF EXISTS activity_kinds_insert ON activity_kinds;

CREATE POLICY activity_kinds_insert ON activity_kinds FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('activity_kind', 'create'));

GRANT SELECT, INSERT, DELETE, UPDATE (occurred_at, metrics, note, visibility, shared_with) ON activities TO app_user;

DROP POLICY IF EXISTS activities_select ON activities;

CREATE POLICY activities_select ON activities FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('activity', 'read')
           AND (user_id = app.current_user_id()
                OR (NOT app.is_blocked(user_id)
                    AND (visibility = 'company'
                         OR (visibility = 'friends' AND app.is_friend(user_id))
                         OR app.current_user_id() = ANY (shared_with)))));

DROP POLICY IF EXISTS activities_insert ON activities;

CREATE POLICY activities_insert ON activities FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('activity', 'create')
                AND user_id = app.current_user_id());

DROP POLICY IF EXISTS activities_update ON activities;

CREATE POLICY activities_update ON activities FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND app.may('activity', 'update')
           AND user_id = app.current_user_id())
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id());

DROP POLICY IF EXISTS activities_delete ON activities;

CREATE POLICY activities_delete ON activities FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('activity', 'delete')
           AND user_id = app.current_user_id());

CREATE OR REPLACE TRIGGER activities_touch_updated_at BEFORE UPDATE OF kind_id, occurred_at, metrics, note, visibility
    ON activities FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

DROP POLICY IF EXISTS activity_shares_select ON activity_shares;

CREATE POLICY activity_shares_select ON activity_shares FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('activity', 'read')
           AND (user_id = app.current_user_id() OR owner_id = app.current_user_id()));

DROP POLICY IF EXISTS activity_shares_insert ON activity_shares;

CREATE POLICY activity_shares_insert ON activity_shares FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('activity', 'update')
                AND owner_id = app.current_user_id());

DROP POLICY IF EXISTS activity_shares_delete ON activity_shares;

CREATE POLICY activity_shares_delete ON activity_shares FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND app.may('activity', 'update')
           AND owner_id = app.current_user_id());

DROP POLICY IF EXISTS conversations_select ON conversations;

CREATE POLICY conversations_select ON conversations FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'read'));

DROP POLICY IF EXISTS conversations_insert ON conversations;

CREATE POLICY conversations_insert ON conversations FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id()
                AND app.may('conversation', 'create'));

DROP POLICY IF EXISTS conversations_update ON conversations;

CREATE POLICY conversations_update ON conversations FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'update'))
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id());

DROP POLICY IF EXISTS conversations_delete ON conversations;

CREATE POLICY conversations_delete ON conversations FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'delete'));

DROP POLICY IF EXISTS conversations_training_export ON conversations;

CREATE POLICY conversations_training_export ON conversations FOR SELECT TO app_auth
    USING (company_id = app.current_company_id() AND app.may('training_data', 'read'));

DROP POLICY IF EXISTS knowledge_select ON knowledge;

CREATE POLICY knowledge_select ON knowledge FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'read'));

DROP POLICY IF EXISTS knowledge_insert ON knowledge;

CREATE POLICY knowledge_insert ON knowledge FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id()
                AND app.may('conversation', 'create'));

DROP POLICY IF EXISTS knowledge_update ON knowledge;

CREATE POLICY knowledge_update ON knowledge FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'update'))
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id());

DROP POLICY IF EXISTS knowledge_delete ON knowledge;

CREATE POLICY knowledge_delete ON knowledge FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('conversation', 'delete'));

DROP POLICY IF EXISTS messages_select ON messages;

CREATE POLICY messages_select ON messages FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('message', 'read'));

DROP POLICY IF EXISTS messages_insert ON messages;

CREATE POLICY messages_insert ON messages FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND user_id = app.current_user_id()
                AND app.may('message', 'create')
                AND ((role = 'user' AND status = 'complete')
                     OR (role = 'assistant' AND status = 'streaming' AND content = ''))
                AND model IS NULL AND prompt_tokens IS NULL AND completion_tokens IS NULL AND error IS NULL);

DROP POLICY IF EXISTS messages_cancel ON messages;

CREATE POLICY messages_cancel ON messages FOR UPDATE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('message', 'update') AND status = 'streaming')
    WITH CHECK (status = 'cancelled');

DROP POLICY IF EXISTS messages_delete ON messages;

CREATE POLICY messages_delete ON messages FOR DELETE TO app_user
    USING (company_id = app.current_company_id() AND user_id = app.current_user_id()
           AND app.may('message', 'delete'));

DROP POLICY IF EXISTS activities_audience ON activities;

CREATE POLICY activities_audience ON activities FOR SELECT TO app_profiles
    USING (company_id = app.current_company_id() AND visibility = 'company');

CREATE OR REPLACE VIEW audience_activities WITH (security_barrier = true) AS
SELECT a.company_id, a.user_id, a.kind_id, a.occurred_at, a.metrics
FROM activities a
WHERE a.company_id = app.current_company_id()
  AND a.visibility = 'company'
  AND app.may('audience', 'read')
  AND NOT app.is_blocked(a.user_id);


-- Nothing asks it any more: the activity policies and audience_activities read app.blocked_ids().
DROP FUNCTION IF EXISTS app.activity_blocked_ids();

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
