-- The policies as they were: helpers wrapped in sub-selects (init plans), app.may a definer that
-- reads app.builtin_grants and roles at every statement, the activity policy reading
-- friendships and activity_shares, the invitation e-mail checked against invitations.
GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

CREATE OR REPLACE FUNCTION app.activity_blocked_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    RETURN ARRAY(SELECT CASE WHEN f.user_a = me THEN f.user_b ELSE f.user_a END
                 FROM friendships f
                 WHERE f.company_id = app.current_company_id() AND f.status = 'blocked'
                   AND (f.user_a = me OR f.user_b = me));
END
$$;

ALTER FUNCTION app.activity_blocked_ids() OWNER TO app_profiles;

REVOKE ALL ON FUNCTION app.activity_blocked_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;

GRANT EXECUTE ON FUNCTION app.activity_blocked_ids() TO app_user;

CREATE OR REPLACE FUNCTION app.may(p_object text, p_action text) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM app.builtin_grants g
        WHERE g.role = app.current_role() AND g.object = p_object AND g.action IN (p_action, 'manage')
    ) OR EXISTS (
        SELECT 1 FROM public.roles r CROSS JOIN LATERAL jsonb_array_elements(r.grants) e (grant_)
        WHERE r.company_id = app.current_company_id() AND r.name = app.current_role()
          AND e.grant_ ->> 'object' = p_object AND e.grant_ ->> 'action' IN (p_action, 'manage')
    );
END
$$;

ALTER FUNCTION app.may(text, text) OWNER TO app_auth;

CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
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
END
$$;




DROP POLICY IF EXISTS companies_select ON companies;

CREATE POLICY companies_select ON companies FOR SELECT TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'read')));

DROP POLICY IF EXISTS companies_update ON companies;

CREATE POLICY companies_update ON companies FOR UPDATE TO app_user
    USING (id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update')))
    WITH CHECK (id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS company_llm_providers_select ON company_llm_providers;

CREATE POLICY company_llm_providers_select ON company_llm_providers FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_llm_providers_insert ON company_llm_providers;

CREATE POLICY company_llm_providers_insert ON company_llm_providers FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_llm_providers_update ON company_llm_providers;

CREATE POLICY company_llm_providers_update ON company_llm_providers FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS company_llm_providers_delete ON company_llm_providers;

CREATE POLICY company_llm_providers_delete ON company_llm_providers FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS users_profiles ON users;

CREATE POLICY users_profiles ON users FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS users_select ON users;

CREATE POLICY users_select ON users FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (id = (SELECT app.current_user_id()) OR (SELECT app.may('user', 'read'))));

DROP POLICY IF EXISTS users_update_self ON users;

CREATE POLICY users_update_self ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS users_update_managed ON users;

CREATE POLICY users_update_managed ON users FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('user', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS sessions_select ON sessions;

CREATE POLICY sessions_select ON sessions FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND ((user_id = (SELECT app.current_user_id()) AND (SELECT app.may('session', 'read')))
                OR (SELECT app.may('user', 'manage'))));

DROP POLICY IF EXISTS sessions_revoke ON sessions;

CREATE POLICY sessions_revoke ON sessions FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND revoked_at IS NULL
           AND ((user_id = (SELECT app.current_user_id()) AND (SELECT app.may('session', 'delete')))
                OR (SELECT app.may('user', 'manage'))))
    WITH CHECK (revoked_at IS NOT NULL);

DROP POLICY IF EXISTS invitations_select ON invitations;

CREATE POLICY invitations_select ON invitations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));

DROP POLICY IF EXISTS invitations_insert ON invitations;

CREATE POLICY invitations_insert ON invitations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND invited_by = (SELECT app.current_user_id()) AND accepted_at IS NULL
                AND accepted_user_id IS NULL);




DROP POLICY IF EXISTS identities_select ON identities;

CREATE POLICY identities_select ON identities FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('session', 'read')));

DROP POLICY IF EXISTS identities_delete ON identities;

CREATE POLICY identities_delete ON identities FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('session', 'delete')));

DROP POLICY IF EXISTS company_oidc_providers_select ON company_oidc_providers;

CREATE POLICY company_oidc_providers_select ON company_oidc_providers FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_oidc_providers_insert ON company_oidc_providers;

CREATE POLICY company_oidc_providers_insert ON company_oidc_providers FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_oidc_providers_update ON company_oidc_providers;

CREATE POLICY company_oidc_providers_update ON company_oidc_providers FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS company_oidc_providers_delete ON company_oidc_providers;

CREATE POLICY company_oidc_providers_delete ON company_oidc_providers FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS company_domains_manage ON company_domains;

CREATE POLICY company_domains_manage ON company_domains FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'update'))
                AND verified_at IS NULL AND verified_by IS NULL
                AND added_by = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS invite_links_select ON invite_links;

CREATE POLICY invite_links_select ON invite_links FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));

DROP POLICY IF EXISTS invite_links_insert ON invite_links;

CREATE POLICY invite_links_insert ON invite_links FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND created_by = (SELECT app.current_user_id()) AND uses = 0 AND revoked_at IS NULL);

DROP POLICY IF EXISTS invite_links_revoke ON invite_links;

CREATE POLICY invite_links_revoke ON invite_links FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'delete')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND revoked_at IS NOT NULL);

DROP POLICY IF EXISTS outbound_emails_insert ON outbound_emails;

CREATE POLICY outbound_emails_insert ON outbound_emails FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND template = 'invitation' AND sent_at IS NULL AND attempts = 0 AND last_error IS NULL
                AND EXISTS (SELECT 1 FROM invitations i
                            WHERE i.company_id = outbound_emails.company_id
                              AND lower(i.email) = lower(outbound_emails.recipient)
                              AND i.invited_by = (SELECT app.current_user_id())
                              AND i.created_at = now()));

DROP POLICY IF EXISTS roles_definer ON roles;

CREATE POLICY roles_definer ON roles FOR SELECT TO app_auth
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS roles_select ON roles;

CREATE POLICY roles_select ON roles FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS roles_insert ON roles;

CREATE POLICY roles_insert ON roles FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS roles_update ON roles;

CREATE POLICY roles_update ON roles FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS roles_delete ON roles;

CREATE POLICY roles_delete ON roles FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('company', 'manage')));

DROP POLICY IF EXISTS presets_select ON presets;

CREATE POLICY presets_select ON presets FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'read'))
           AND (owner_id = (SELECT app.current_user_id()) OR visibility = 'company'
                OR (SELECT app.may('audience', 'manage'))));

DROP POLICY IF EXISTS presets_insert ON presets;

CREATE POLICY presets_insert ON presets FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'create'))
                AND owner_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS presets_update ON presets;

CREATE POLICY presets_update ON presets FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'update'))
           AND (owner_id = (SELECT app.current_user_id()) OR (SELECT app.may('audience', 'manage'))))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS presets_delete ON presets;

CREATE POLICY presets_delete ON presets FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('preset', 'delete'))
           AND (owner_id = (SELECT app.current_user_id()) OR (SELECT app.may('audience', 'manage'))));

DROP POLICY IF EXISTS audience_fields_select ON audience_fields;

CREATE POLICY audience_fields_select ON audience_fields FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'read')));

DROP POLICY IF EXISTS audience_fields_insert ON audience_fields;

CREATE POLICY audience_fields_insert ON audience_fields FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));

DROP POLICY IF EXISTS audience_fields_update ON audience_fields;

CREATE POLICY audience_fields_update ON audience_fields FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')))
    WITH CHECK (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS audience_fields_delete ON audience_fields;

CREATE POLICY audience_fields_delete ON audience_fields FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('audience', 'manage')));

DROP POLICY IF EXISTS audience_members_profiles ON audience_members;

CREATE POLICY audience_members_profiles ON audience_members FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS audience_bits_profiles ON audience_bits;

CREATE POLICY audience_bits_profiles ON audience_bits FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS friendships_profiles ON friendships;

CREATE POLICY friendships_profiles ON friendships FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

DROP POLICY IF EXISTS friendships_select ON friendships;

CREATE POLICY friendships_select ON friendships FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'read')));

DROP POLICY IF EXISTS friendships_insert ON friendships;

CREATE POLICY friendships_insert ON friendships FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
                AND (SELECT app.may('friendship', 'create')));

DROP POLICY IF EXISTS friendships_update ON friendships;

CREATE POLICY friendships_update ON friendships FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b));

DROP POLICY IF EXISTS friendships_delete ON friendships;

CREATE POLICY friendships_delete ON friendships FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.current_user_id()) IN (user_a, user_b)
           AND (SELECT app.may('friendship', 'delete')));


DROP POLICY IF EXISTS activity_kinds_select ON activity_kinds;

CREATE POLICY activity_kinds_select ON activity_kinds FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity_kind', 'read')));

DROP POLICY IF EXISTS activity_kinds_insert ON activity_kinds;

CREATE POLICY activity_kinds_insert ON activity_kinds FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity_kind', 'create')));

GRANT SELECT, INSERT, DELETE, UPDATE (occurred_at, metrics, note, visibility) ON activities TO app_user;

DROP POLICY IF EXISTS activities_select ON activities;

CREATE POLICY activities_select ON activities FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'read'))
           AND (user_id = (SELECT app.current_user_id())
                OR (NOT (user_id = ANY ((SELECT app.activity_blocked_ids())::uuid[]))
                    AND (visibility = 'company'
                         OR (visibility = 'friends' AND user_id = ANY ((SELECT app.activity_friend_ids())::uuid[]))
                         OR EXISTS (SELECT 1 FROM activity_shares s
                                    WHERE s.company_id = activities.company_id
                                      AND s.activity_id = activities.id
                                      AND s.user_id = (SELECT app.current_user_id()))))));

DROP POLICY IF EXISTS activities_insert ON activities;

CREATE POLICY activities_insert ON activities FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'create'))
                AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS activities_update ON activities;

CREATE POLICY activities_update ON activities FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'update'))
           AND user_id = (SELECT app.current_user_id()))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS activities_delete ON activities;

CREATE POLICY activities_delete ON activities FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'delete'))
           AND user_id = (SELECT app.current_user_id()));

CREATE OR REPLACE TRIGGER activities_touch_updated_at BEFORE UPDATE ON activities
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

DROP POLICY IF EXISTS activity_shares_select ON activity_shares;

CREATE POLICY activity_shares_select ON activity_shares FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'read'))
           AND (user_id = (SELECT app.current_user_id()) OR owner_id = (SELECT app.current_user_id())));

DROP POLICY IF EXISTS activity_shares_insert ON activity_shares;

CREATE POLICY activity_shares_insert ON activity_shares FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'update'))
                AND owner_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS activity_shares_delete ON activity_shares;

CREATE POLICY activity_shares_delete ON activity_shares FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('activity', 'update'))
           AND owner_id = (SELECT app.current_user_id()));


DROP POLICY IF EXISTS conversations_select ON conversations;

CREATE POLICY conversations_select ON conversations FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'read')));

DROP POLICY IF EXISTS conversations_insert ON conversations;

CREATE POLICY conversations_insert ON conversations FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('conversation', 'create')));

DROP POLICY IF EXISTS conversations_update ON conversations;

CREATE POLICY conversations_update ON conversations FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS conversations_delete ON conversations;

CREATE POLICY conversations_delete ON conversations FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'delete')));

DROP POLICY IF EXISTS conversations_training_export ON conversations;

CREATE POLICY conversations_training_export ON conversations FOR SELECT TO app_auth
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('training_data', 'read')));

DROP POLICY IF EXISTS knowledge_select ON knowledge;

CREATE POLICY knowledge_select ON knowledge FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'read')));

DROP POLICY IF EXISTS knowledge_insert ON knowledge;

CREATE POLICY knowledge_insert ON knowledge FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('conversation', 'create')));

DROP POLICY IF EXISTS knowledge_update ON knowledge;

CREATE POLICY knowledge_update ON knowledge FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'update')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id()));

DROP POLICY IF EXISTS knowledge_delete ON knowledge;

CREATE POLICY knowledge_delete ON knowledge FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('conversation', 'delete')));

DROP POLICY IF EXISTS messages_select ON messages;

CREATE POLICY messages_select ON messages FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'read')));

DROP POLICY IF EXISTS messages_insert ON messages;

CREATE POLICY messages_insert ON messages FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
                AND (SELECT app.may('message', 'create'))
                AND ((role = 'user' AND status = 'complete')
                     OR (role = 'assistant' AND status = 'streaming' AND content = ''))
                AND model IS NULL AND prompt_tokens IS NULL AND completion_tokens IS NULL AND error IS NULL);

DROP POLICY IF EXISTS messages_cancel ON messages;

CREATE POLICY messages_cancel ON messages FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'update')) AND status = 'streaming')
    WITH CHECK (status = 'cancelled');

DROP POLICY IF EXISTS messages_delete ON messages;

CREATE POLICY messages_delete ON messages FOR DELETE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND user_id = (SELECT app.current_user_id())
           AND (SELECT app.may('message', 'delete')));

DROP POLICY IF EXISTS activities_audience ON activities;

CREATE POLICY activities_audience ON activities FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()) AND visibility = 'company');

CREATE OR REPLACE VIEW audience_activities WITH (security_barrier = true) AS
SELECT a.company_id, a.user_id, a.kind_id, a.occurred_at, a.metrics
FROM activities a
WHERE a.company_id = (SELECT app.current_company_id())
  AND a.visibility = 'company'
  AND (SELECT app.may('audience', 'read'))
  AND NOT (a.user_id = ANY ((SELECT app.activity_blocked_ids())::uuid[]));

DROP TRIGGER IF EXISTS invitations_note_made ON invitations;
DROP FUNCTION IF EXISTS app.invitations_note_made();
DROP FUNCTION IF EXISTS app.invited_just_now(text);
DROP FUNCTION IF EXISTS app.request_relationships();
DROP FUNCTION IF EXISTS app.request_grants(uuid, text);
DROP FUNCTION IF EXISTS app.is_friend(uuid);
DROP FUNCTION IF EXISTS app.is_blocked(uuid);
DROP FUNCTION IF EXISTS app.friend_ids();
DROP FUNCTION IF EXISTS app.blocked_ids();
ALTER TABLE activities DROP COLUMN IF EXISTS shared_with;

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
