//! An index of each user's activities by kind and time, for comparisons among friends. The SQL
//! is in `migration/sql/`.

sql_migration!(m20261231_002200_index_activities_by_owner_and_kind);
