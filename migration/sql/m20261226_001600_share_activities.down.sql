-- One statement: the policies of activities and activity_shares read each other's table.
DROP TABLE IF EXISTS activity_shares, activities, activity_kinds;
DROP FUNCTION IF EXISTS app.activities_check_metrics();
DROP FUNCTION IF EXISTS app.activity_friend_ids();
DROP FUNCTION IF EXISTS app.activity_blocked_ids();
DROP FUNCTION IF EXISTS app.activity_metrics_problem(jsonb, jsonb);
DROP FUNCTION IF EXISTS app.activity_metric_definitions_valid(jsonb);

DELETE FROM app.builtin_grants;
INSERT INTO app.builtin_grants (role, object, action)
SELECT r.role, g.object, g.action
FROM (VALUES ('member', 0), ('manager', 1), ('admin', 2)) r (role, rank)
JOIN (VALUES
    ('company', 'read', 0), ('user', 'read', 0), ('user', 'update', 0), ('preset', 'manage', 0),
    ('audience', 'read', 0), ('friendship', 'manage', 0), ('conversation', 'manage', 0),
    ('message', 'manage', 0), ('session', 'manage', 0),
    ('audience', 'manage', 1), ('invitation', 'read', 1),
    ('company', 'manage', 2), ('user', 'manage', 2), ('invitation', 'manage', 2)
) g (object, action, rank) ON g.rank <= r.rank;
