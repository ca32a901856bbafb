//! Audience conditions over activities: the view they read is a current definition. The SQL is
//! in `migration/sql/`.

sql_migration!(m20261227_001701_audiences_over_activities);
