-- user_profiles (users and friendships): people as the caller may see them, owned by the NOLOGIN
-- role app_profiles, which reads the caller's company and nothing else. `relation` is the
-- caller's view of the pair: self, none, pending_outgoing, pending_incoming, friends, blocked
-- (the caller blocked them) or blocked_by (they blocked the caller; the API shows that as none).
-- Privacy settings are shown to the user themselves and admins only.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

-- Only for those who may read users (oneself always). No security barrier, so pages walk the index: masking happens in the
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
       CASE WHEN p.full_view THEN u.visible_attributes END AS visible_attributes,
       u.email_verified_at IS NOT NULL AS email_verified
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
ALTER VIEW user_profiles OWNER TO app_profiles;
REVOKE ALL ON user_profiles FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON user_profiles TO app_user;
