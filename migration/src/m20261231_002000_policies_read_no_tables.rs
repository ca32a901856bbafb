//! Policies that read no table and hold no sub-select, as Citus runs them on the workers. The
//! SQL is in `migration/sql/`.

sql_migration!(m20261231_002000_policies_read_no_tables);
