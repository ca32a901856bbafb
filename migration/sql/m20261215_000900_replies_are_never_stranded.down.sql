DROP FUNCTION IF EXISTS app.chat_interrupt_message(uuid, text, text, interval);
DROP FUNCTION IF EXISTS app.chat_silent_replies(interval, integer);
DROP FUNCTION IF EXISTS app.chat_progress_message(uuid, uuid, text);
DROP POLICY IF EXISTS messages_definer_progress ON messages;
DROP TRIGGER IF EXISTS messages_stamp_heartbeat ON messages;
DROP FUNCTION IF EXISTS app.messages_stamp_heartbeat();
DROP INDEX IF EXISTS messages_streaming_heartbeat_idx;
ALTER TABLE messages DROP COLUMN IF EXISTS heartbeat_at;
