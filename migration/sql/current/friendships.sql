-- friendships: the pair's two members, as their friendship permissions allow; the state machine
-- of requests and blocks is app.friendships_guard.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

ALTER TABLE friendships ENABLE ROW LEVEL SECURITY;
ALTER TABLE friendships FORCE ROW LEVEL SECURITY;
REVOKE ALL ON friendships FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT ON friendships TO app_profiles;
GRANT SELECT, INSERT, UPDATE, DELETE ON friendships TO app_user;

-- The profile role reads the caller's company, nothing else, and writes nothing.
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

-- The state machine of requests and blocks, for requests. A request is sent
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
REVOKE ALL ON FUNCTION app.friendships_guard() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER friendships_guard BEFORE INSERT OR UPDATE OR DELETE ON friendships
    FOR EACH ROW EXECUTE FUNCTION app.friendships_guard();

CREATE OR REPLACE TRIGGER friendships_touch_updated_at BEFORE UPDATE ON friendships
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Friends the caller shares with `p_other`: needs the other's friendships, which the caller's
-- policy hides, so it runs as app_profiles. Nothing when the two are a blocked pair.
CREATE OR REPLACE FUNCTION app.mutual_friend_ids(p_other uuid) RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
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
REVOKE ALL ON FUNCTION app.mutual_friend_ids(uuid) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT EXECUTE ON FUNCTION app.mutual_friend_ids(uuid) TO app_user;
