-- Audience conditions over activities: what an audience filter may aggregate. Only activities
-- shared with the whole company (visibility 'company'), for admins too (no one reads a private
-- or friends-only activity through an audience count), of the caller's company, for callers who
-- may read audiences, and never those of someone in a blocked pair with the caller (as the
-- policies of activities say). A security barrier of app_profiles, like the audience views of
-- users; the people an audience is drawn from are still those of audience_users(_admin).
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs. It comes after activities.sql, whose grants it extends.

GRANT SELECT ON activities TO app_profiles;

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
ALTER VIEW audience_activities OWNER TO app_profiles;
REVOKE ALL ON audience_activities FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_activities TO app_user;
