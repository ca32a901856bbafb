DROP FUNCTION IF EXISTS app.reseal_company_oidc_secret(uuid, uuid, text, text);
DROP FUNCTION IF EXISTS app.sealed_company_oidc_secrets(uuid, uuid, integer);
DROP FUNCTION IF EXISTS app.company_oidc_link_email(uuid, uuid, uuid, text, text, text);
DROP FUNCTION IF EXISTS app.company_oidc_join(uuid, uuid, uuid, text, text, uuid, text, text);
DROP FUNCTION IF EXISTS app.company_oidc_client_secret(uuid, uuid);
DROP FUNCTION IF EXISTS app.company_oidc_provider(uuid, text);
DROP TABLE IF EXISTS company_oidc_providers;
