
DROP FUNCTION IF EXISTS app.chat_finish_message(uuid, uuid, text, text, text, integer, integer, text);
DROP TABLE IF EXISTS knowledge;
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS conversations;
