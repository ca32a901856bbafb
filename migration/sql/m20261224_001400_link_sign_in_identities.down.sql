DROP TRIGGER IF EXISTS identities_keep_a_way_in ON identities;
DROP FUNCTION IF EXISTS app.identities_guard();
DROP FUNCTION IF EXISTS app.keeps_a_way_in(uuid, uuid, uuid);
DROP FUNCTION IF EXISTS app.oidc_identity(text, text);
DROP FUNCTION IF EXISTS app.oidc_link(uuid, uuid, uuid, text, text, text, text);
DROP FUNCTION IF EXISTS app.oidc_sign_up(uuid, text, uuid, text, text, uuid, text, text, text);
DROP FUNCTION IF EXISTS app.oidc_join(uuid, uuid, text, text, text, uuid, text, text, text);
DROP TABLE IF EXISTS identities;
