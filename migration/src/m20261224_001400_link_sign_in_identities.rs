//! Identities of OpenID providers linked to users (`identities`). The SQL is in
//! `migration/sql/`; the table's policies and functions in `migration/sql/current/identities.sql`.

sql_migration!(m20261224_001400_link_sign_in_identities);
