//! The definer functions every request runs (`app.may`, `app.identity_is_live`,
//! `app.session_state`, and `app.current_password_hash` with them) are PL/pgSQL instead of SQL,
//! so that PostgreSQL plans their queries once per session instead of in every statement that
//! calls them. The SQL is in `migration/sql/`.

sql_migration!(m20261221_001150_plan_definer_functions_once);
