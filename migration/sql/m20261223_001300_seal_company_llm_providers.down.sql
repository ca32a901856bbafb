DROP FUNCTION IF EXISTS app.reseal_company_llm_key(uuid, uuid, text, text);
DROP FUNCTION IF EXISTS app.sealed_company_llm_keys(uuid, uuid, integer);
DROP FUNCTION IF EXISTS app.company_llm_provider(uuid);
DROP TABLE IF EXISTS company_llm_providers;
