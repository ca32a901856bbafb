//! The definitions of this release, as the current files hold them: a frozen copy, so that the
//! history builds what the current definitions describe. The SQL is in `migration/sql/`.

sql_migration!(m20261230_002000_definitions_of_this_release);
