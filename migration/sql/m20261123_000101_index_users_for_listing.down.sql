
DROP INDEX IF EXISTS users_company_role_idx;
DROP INDEX IF EXISTS users_company_email_idx;
DROP INDEX IF EXISTS users_company_display_name_idx;
DROP INDEX IF EXISTS users_company_created_idx;
