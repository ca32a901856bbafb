DROP VIEW IF EXISTS audience_activities;
DROP POLICY IF EXISTS activities_audience ON activities;
REVOKE SELECT ON activities FROM app_profiles;
