//! A company's own LLM provider (`company_llm_providers`): base URL, model and the API key,
//! sealed by the server before it is stored; Row Level Security lets the company's admins
//! write it and no request role read the sealed key. The SQL is in `migration/sql/`.

sql_migration!(m20261223_001300_seal_company_llm_providers);
