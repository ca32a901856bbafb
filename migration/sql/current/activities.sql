-- activity_kinds, activities, activity_shares: what people record (a kind of the company, typed
-- metrics), and who else may read it. An activity is its owner's; another user reads it only
-- if its visibility (company, or friends and they are friends) or an explicit share allows it,
-- and never when either of the two blocked the other. Admins read others' activities as
-- anyone does: never a private one that is not shared with them. The metrics of an activity
-- are checked against its kind here (app.activities_check_metrics), whatever the server says.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

-- Whether `p` is a valid list of metric definitions: 1 to 50 objects {name, type, unit?} with
-- distinct names of 1 to 63 characters (lowercase letters, digits and `_`, starting with a
-- letter: they are used as JSON keys in SQL), a type among number, integer, boolean and
-- string, and a unit of at most 20 characters. The CHECK of activity_kinds.metrics.
CREATE OR REPLACE FUNCTION app.activity_metric_definitions_valid(p jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p) IS DISTINCT FROM 'array' THEN false
                WHEN pg_catalog.jsonb_array_length(p) NOT BETWEEN 1 AND 50 THEN false
                ELSE NOT EXISTS (
                    SELECT 1 FROM pg_catalog.jsonb_array_elements(p) e (m)
                    WHERE CASE WHEN pg_catalog.jsonb_typeof(m) IS DISTINCT FROM 'object' THEN true
                               ELSE EXISTS (SELECT 1 FROM pg_catalog.jsonb_object_keys(m) k (key)
                                            WHERE k.key NOT IN ('name', 'type', 'unit'))
                                    OR pg_catalog.jsonb_typeof(m -> 'name') IS DISTINCT FROM 'string'
                                    OR (m ->> 'name') !~ '^[a-z][a-z0-9_]{0,62}$'
                                    OR (m ->> 'type') IS NULL
                                    OR (m ->> 'type') NOT IN ('number', 'integer', 'boolean', 'string')
                                    OR pg_catalog.jsonb_typeof(m -> 'type') IS DISTINCT FROM 'string'
                                    OR COALESCE(pg_catalog.jsonb_typeof(m -> 'unit'), 'null') NOT IN ('string', 'null')
                                    OR COALESCE(pg_catalog.length(m ->> 'unit'), 0) > 20 END)
                     AND (SELECT count(DISTINCT m ->> 'name') FROM pg_catalog.jsonb_array_elements(p) e (m))
                         = pg_catalog.jsonb_array_length(p) END
$$;
REVOKE ALL ON FUNCTION app.activity_metric_definitions_valid(jsonb) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.activity_metric_definitions_valid(jsonb) TO app_user;

-- What is wrong with the metrics `p_metrics` of an activity whose kind defines `p_definitions`:
-- the path of the first offending metric (by name) and why, e.g. `metrics.score: a number`;
-- NULL when nothing is. Every key must be a metric of the kind, of its type (a number of
-- magnitude under 10^15; an integer; a boolean; a string of at most 1,000 characters); metrics
-- may be left out, not set to null.
CREATE OR REPLACE FUNCTION app.activity_metrics_problem(p_definitions jsonb, p_metrics jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p_metrics) IS DISTINCT FROM 'object'
                THEN 'metrics: an object of metric values, by metric name'
                ELSE (SELECT 'metrics.' || k.key || ': '
                             || CASE WHEN d.type IS NULL THEN 'not a metric of this kind'
                                     WHEN d.type = 'number' THEN 'a number of magnitude under 10^15'
                                     WHEN d.type = 'integer' THEN 'an integer of magnitude under 10^15'
                                     WHEN d.type = 'string' THEN 'a string of at most 1000 characters'
                                     ELSE 'a ' || d.type END
                      FROM pg_catalog.jsonb_each(p_metrics) k (key, value)
                      LEFT JOIN LATERAL (SELECT e ->> 'type' AS type
                                         FROM pg_catalog.jsonb_array_elements(p_definitions) e
                                         WHERE e ->> 'name' = k.key LIMIT 1) d ON true
                      WHERE NOT CASE WHEN d.type IN ('number', 'integer')
                                     THEN CASE WHEN pg_catalog.jsonb_typeof(k.value) = 'number'
                                               THEN pg_catalog.abs(k.value::numeric) < 1e15
                                                    AND (d.type = 'number'
                                                         OR k.value::numeric = pg_catalog.trunc(k.value::numeric))
                                               ELSE false END
                                     WHEN d.type = 'boolean' THEN pg_catalog.jsonb_typeof(k.value) = 'boolean'
                                     WHEN d.type = 'string'
                                     THEN CASE WHEN pg_catalog.jsonb_typeof(k.value) = 'string'
                                               THEN pg_catalog.length(k.value #>> '{}') <= 1000
                                               ELSE false END
                                     ELSE false END
                      ORDER BY k.key LIMIT 1) END
$$;
REVOKE ALL ON FUNCTION app.activity_metrics_problem(jsonb, jsonb) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT EXECUTE ON FUNCTION app.activity_metrics_problem(jsonb, jsonb) TO app_user;

-- The caller's friends (accepted friendships), for the statements of the server (the policies
-- read app.friend_ids(), set by app.begin_request). It reads the friendships of the caller's
-- company as app_profiles, so that a role which may not list its friendships still has them.
CREATE OR REPLACE FUNCTION app.activity_friend_ids() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE me uuid := app.current_user_id();
BEGIN
    RETURN ARRAY(SELECT CASE WHEN f.user_a = me THEN f.user_b ELSE f.user_a END
                 FROM friendships f
                 WHERE f.company_id = app.current_company_id() AND f.status = 'accepted'
                   AND (f.user_a = me OR f.user_b = me));
END
$$;
ALTER FUNCTION app.activity_friend_ids() OWNER TO app_profiles;
REVOKE ALL ON FUNCTION app.activity_friend_ids() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT EXECUTE ON FUNCTION app.activity_friend_ids() TO app_user;

-- Both at once, for app.begin_request, which sets them as the transaction's app.friend_ids and
-- app.blocked_ids (read by the policies through app.friend_ids() and app.blocked_ids()): one
-- scan of the caller's friendships per request.
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

-- Kinds: everyone of the company who may read them; defined by whoever manages them (admins).
-- A kind never changes once defined (its activities were checked against it).
ALTER TABLE activity_kinds ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity_kinds FORCE ROW LEVEL SECURITY;
REVOKE ALL ON activity_kinds FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT ON activity_kinds TO app_user;

DROP POLICY IF EXISTS activity_kinds_select ON activity_kinds;
CREATE POLICY activity_kinds_select ON activity_kinds FOR SELECT TO app_user
    USING (company_id = app.current_company_id() AND app.may('activity_kind', 'read'));

DROP POLICY IF EXISTS activity_kinds_insert ON activity_kinds;
CREATE POLICY activity_kinds_insert ON activity_kinds FOR INSERT TO app_user
    WITH CHECK (company_id = app.current_company_id() AND app.may('activity_kind', 'create'));

-- Activities: the owner writes their own; readers as the header says.
ALTER TABLE activities ENABLE ROW LEVEL SECURITY;
ALTER TABLE activities FORCE ROW LEVEL SECURITY;
REVOKE ALL ON activities FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
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

-- The metrics of a row match its kind: every writer, every path (requests, definer functions,
-- the owner). A kind the writer cannot read is no kind.
CREATE OR REPLACE FUNCTION app.activities_check_metrics() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE
    definitions jsonb;
    problem text;
BEGIN
    SELECT k.metrics INTO definitions FROM activity_kinds k
    WHERE k.company_id = NEW.company_id AND k.id = NEW.kind_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'kind: no such activity kind' USING ERRCODE = '23503';
    END IF;
    problem := app.activity_metrics_problem(definitions, NEW.metrics);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = '23514', CONSTRAINT = 'activities_metrics_match_kind';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION app.activities_check_metrics() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;

CREATE OR REPLACE TRIGGER activities_check_metrics BEFORE INSERT OR UPDATE OF kind_id, metrics ON activities
    FOR EACH ROW EXECUTE FUNCTION app.activities_check_metrics();

-- What the owner edits; not shared_with, which the share mutation keeps in step with the shares.
CREATE OR REPLACE TRIGGER activities_touch_updated_at BEFORE UPDATE OF kind_id, occurred_at, metrics, note, visibility
    ON activities FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Shares: the owner of the activity shares it and takes the share back; the owner and the one
-- it is shared with see it. The share mutation keeps activities.shared_with equal to the
-- activity's shares in the same transaction: the activity policy reads that column, not this
-- table (a policy reads no other table). (owner_id is the activity's user, through the foreign key, so that
-- these policies need not read activities, whose policy reads them.)
ALTER TABLE activity_shares ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity_shares FORCE ROW LEVEL SECURITY;
REVOKE ALL ON activity_shares FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, INSERT, DELETE ON activity_shares TO app_user;

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
