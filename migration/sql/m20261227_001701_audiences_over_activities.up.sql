-- Audience conditions over activities read the view audience_activities (its current definition,
-- with the grant and the policy it needs on activities, is migration/sql/current/
-- audience_activities.sql, which says why).
GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

GRANT SELECT ON activities TO app_profiles;

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
ALTER VIEW audience_activities OWNER TO app_profiles;
REVOKE ALL ON audience_activities FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_activities TO app_user;

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
