
DROP INDEX IF EXISTS users_company_email_domain_idx;
DROP INDEX IF EXISTS users_company_last_active_idx;
DROP INDEX IF EXISTS users_attributes_idx;
DROP TABLE IF EXISTS presets;
DROP TABLE IF EXISTS audience_fields;
