//! Every tenant table's primary key starts with company_id (for distribution by company); the
//! foreign keys between tenant tables reference those keys. The SQL is in `migration/sql/`.

sql_migration!(m20261228_001800_key_tenant_tables_by_company);
