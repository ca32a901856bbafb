//! Directory tables for the values that are unique across companies (e-mail addresses, OpenID
//! subjects, verified domains), kept in step by triggers; the tenant tables' unique keys all
//! include company_id. The SQL is in `migration/sql/`.

sql_migration!(m20261228_001801_directories_of_global_keys);
