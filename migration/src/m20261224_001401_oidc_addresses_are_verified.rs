//! Users created by a first OpenID Connect sign-in start with a verified address, which their
//! provider asserted. The SQL is in `migration/sql/`.

sql_migration!(m20261224_001401_oidc_addresses_are_verified);
