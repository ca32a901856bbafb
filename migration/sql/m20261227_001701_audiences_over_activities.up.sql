-- Audience conditions over activities read the view audience_activities, defined (with the
-- grant and policy it needs on activities) in migration/sql/current/audience_activities.sql,
-- which is applied after every versioned migration. Nothing else changes.
SELECT 1;
