
CREATE INDEX IF NOT EXISTS users_company_created_idx ON users (company_id, created_at, id);
CREATE INDEX IF NOT EXISTS users_company_display_name_idx ON users (company_id, display_name, id);
CREATE INDEX IF NOT EXISTS users_company_email_idx ON users (company_id, email, id);
CREATE INDEX IF NOT EXISTS users_company_role_idx ON users (company_id, role);
