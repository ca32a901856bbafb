//! Activities with typed metrics per kind, their visibility and explicit shares. The SQL is in
//! `migration/sql/`.

sql_migration!(m20261226_001600_share_activities);
