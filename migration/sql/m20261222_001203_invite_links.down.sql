DROP FUNCTION IF EXISTS app.accept_invite_link(text, uuid, text, text, text);
DROP TABLE IF EXISTS invite_links;
