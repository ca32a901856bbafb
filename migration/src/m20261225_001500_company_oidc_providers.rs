//! OpenID providers of a company (`company_oidc_providers`), configured by its admins: issuer,
//! client id, the client secret sealed by the server before it is stored, the role of new
//! members, the allowed e-mail domains and whether a verified address links to its account.
//! Row Level Security lets the company's admins write it and no request role read the sealed
//! secret; the sign-in flow reads what it needs through definer functions. The SQL is in
//! `migration/sql/`.

sql_migration!(m20261225_001500_company_oidc_providers);
