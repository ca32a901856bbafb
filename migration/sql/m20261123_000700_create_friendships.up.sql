
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_profiles') THEN
        CREATE ROLE app_profiles NOLOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS;
    END IF;
END
$$;
GRANT app_profiles TO CURRENT_USER;
GRANT USAGE ON SCHEMA app TO app_profiles;
GRANT USAGE ON SCHEMA public TO app_profiles;
-- Owners of definer objects must be allowed to create in the schema while they are handed
-- over (superusers skip that check; a managed service's CREATEROLE owner does not).
GRANT CREATE ON SCHEMA app, public TO app_profiles;
GRANT EXECUTE ON FUNCTION app.current_user_id(), app.current_company_id(), app.current_role()
    TO app_profiles;

-- Who may see a user's e-mail and attributes: the whole company, friends only, or nobody
-- (admins of the company and the user themselves always do). `visible_attributes` narrows
-- the attributes others may see to these keys; NULL means all of them.
ALTER TABLE users ADD COLUMN IF NOT EXISTS profile_visibility text NOT NULL DEFAULT 'company';
ALTER TABLE users ADD COLUMN IF NOT EXISTS visible_attributes text[];
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_profile_visibility_check;
ALTER TABLE users ADD CONSTRAINT users_profile_visibility_check
    CHECK (profile_visibility IN ('company', 'friends', 'private'));

-- One row per unordered pair (user_a < user_b): two people asking each other at once meet on
-- the same row. Both users are of the row's company (composite keys), so no pair crosses one.
CREATE TABLE IF NOT EXISTS friendships (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id    uuid NOT NULL,
    user_a        uuid NOT NULL,
    user_b        uuid NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'accepted', 'blocked')),
    requested_by  uuid NOT NULL,
    blocked_by    uuid,
    message       text CHECK (length(message) <= 500),
    responded_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT friendships_ordered_pair CHECK (user_a < user_b),
    CONSTRAINT friendships_requester_in_pair CHECK (requested_by IN (user_a, user_b)),
    CONSTRAINT friendships_blocker_in_pair CHECK (blocked_by IS NULL OR blocked_by IN (user_a, user_b)),
    CONSTRAINT friendships_blocked_has_blocker CHECK ((status = 'blocked') = (blocked_by IS NOT NULL)),
    CONSTRAINT friendships_pair_key UNIQUE (company_id, user_a, user_b),
    CONSTRAINT friendships_company_id_id_key UNIQUE (company_id, id),
    CONSTRAINT friendships_user_a_fkey FOREIGN KEY (company_id, user_a)
        REFERENCES users (company_id, id) ON DELETE CASCADE,
    CONSTRAINT friendships_user_b_fkey FOREIGN KEY (company_id, user_b)
        REFERENCES users (company_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS friendships_user_b_idx ON friendships (company_id, user_b, status);
CREATE INDEX IF NOT EXISTS friendships_user_a_idx ON friendships (company_id, user_a, status);

ALTER TABLE friendships ENABLE ROW LEVEL SECURITY;
ALTER TABLE friendships FORCE ROW LEVEL SECURITY;
DROP TRIGGER IF EXISTS friendships_touch_updated_at ON friendships;
CREATE TRIGGER friendships_touch_updated_at BEFORE UPDATE ON friendships
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- A request sees and changes only the rows it is part of.
GRANT SELECT, INSERT, UPDATE, DELETE ON friendships TO app_user;
DROP POLICY IF EXISTS friendships_participant ON friendships;
CREATE POLICY friendships_participant ON friendships FOR ALL TO app_user
    USING (company_id = (SELECT app.current_company_id())
           AND (SELECT app.current_user_id()) IN (user_a, user_b))
    WITH CHECK (company_id = (SELECT app.current_company_id())
                AND (SELECT app.current_user_id()) IN (user_a, user_b)
                AND (blocked_by IS NULL OR blocked_by = (SELECT app.current_user_id())));

-- The profile role reads the caller's company, nothing else, and writes nothing.
GRANT SELECT ON users, friendships TO app_profiles;
DROP POLICY IF EXISTS users_profiles ON users;
CREATE POLICY users_profiles ON users FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));
DROP POLICY IF EXISTS friendships_profiles ON friendships;
CREATE POLICY friendships_profiles ON friendships FOR SELECT TO app_profiles
    USING (company_id = (SELECT app.current_company_id()));

-- People as the caller may see them. `relation` is the caller's view of the pair: self, none,
-- pending_outgoing, pending_incoming, friends, blocked (the caller blocked them) or blocked_by
-- (they blocked the caller; the API shows that as none). Privacy settings are shown to the user
-- themselves and admins only.
DROP VIEW IF EXISTS user_profiles;
CREATE VIEW user_profiles WITH (security_barrier = true) AS
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
LEFT JOIN friendships f
       ON f.company_id = u.company_id
      AND f.user_a = LEAST(u.id, (SELECT app.current_user_id()))
      AND f.user_b = GREATEST(u.id, (SELECT app.current_user_id()))
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
ALTER VIEW user_profiles OWNER TO app_profiles;
REVOKE ALL ON user_profiles FROM PUBLIC;
GRANT SELECT ON user_profiles TO app_user;

-- Friends the caller shares with `p_other`: needs the other's friendships, which the caller's
-- policy hides, so it runs as app_profiles. Nothing when the two are a blocked pair.
CREATE OR REPLACE FUNCTION app.mutual_friend_ids(p_other uuid) RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    WITH me AS (SELECT app.current_user_id() AS id, app.current_company_id() AS company),
    friends_of AS (
        SELECT CASE WHEN f.user_a = x.uid THEN f.user_b ELSE f.user_a END AS friend, x.uid AS of
        FROM me
        CROSS JOIN LATERAL (VALUES (me.id), (p_other)) x (uid)
        JOIN friendships f ON f.company_id = me.company AND f.status = 'accepted'
                          AND x.uid IN (f.user_a, f.user_b)
    )
    SELECT a.friend FROM friends_of a JOIN friends_of b ON a.friend = b.friend, me
    WHERE a.of = me.id AND b.of = p_other AND me.id <> p_other
      AND NOT EXISTS (SELECT 1 FROM friendships f
                      WHERE f.company_id = me.company AND f.status = 'blocked'
                        AND f.user_a = LEAST(me.id, p_other) AND f.user_b = GREATEST(me.id, p_other))
$$;
ALTER FUNCTION app.mutual_friend_ids(uuid) OWNER TO app_profiles;
REVOKE ALL ON FUNCTION app.mutual_friend_ids(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.mutual_friend_ids(uuid) TO app_user;
REVOKE CREATE ON SCHEMA app, public FROM app_profiles;
