//! Companies verify e-mail domains (`company_domains`): added by those who manage the company,
//! counted once an admin whose own verified address is in the domain confirms it; signing up
//! with `joinCompany` and an address in a verified domain makes a member, inactive until the
//! address is verified (`users.awaiting_verification`). The SQL is in `migration/sql/`.

sql_migration!(m20261222_001202_verify_company_domains);
