//! The request's identity set so that it reaches every Citus node. The SQL is in
//! `migration/sql/`.

sql_migration!(m20261229_001900_set_the_identity_for_every_node);
