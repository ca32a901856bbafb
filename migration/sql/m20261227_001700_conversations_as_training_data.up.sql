-- Conversations as training data: a company's policy (the default, and whether its people may
-- choose otherwise per conversation) and each conversation's choice (NULL: the company's
-- default); the trigger that enforces the policy, and the export function with the policy that
-- lets it read (their current definitions: migration/sql/current/ companies.sql,
-- conversations.sql and training.sql).

ALTER TABLE companies
    ADD COLUMN IF NOT EXISTS training_default_allowed boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS training_users_may_change boolean NOT NULL DEFAULT true;

ALTER TABLE conversations ADD COLUMN IF NOT EXISTS training_allowed boolean;

GRANT UPDATE (training_default_allowed, training_users_may_change) ON companies TO app_user;
GRANT SELECT ON conversations TO app_auth;

INSERT INTO app.builtin_grants (role, object, action) VALUES ('admin', 'training_data', 'read')
    ON CONFLICT DO NOTHING;

GRANT CREATE ON SCHEMA app, public TO app_auth, app_profiles;

-- The owner of app.training_export reads conversations of the caller's company only, and only
-- while the caller may export training data: the function's own filter is not the only guard.
DROP POLICY IF EXISTS conversations_training_export ON conversations;
CREATE POLICY conversations_training_export ON conversations FOR SELECT TO app_auth
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('training_data', 'read')));

-- A conversation's training choice (training_allowed; NULL follows the company's default) may be
-- set or changed only while the company lets its people choose (companies.training_users_may_change):
-- 42501 otherwise. A definer, so that it reads the company's policy whatever the caller may read.
CREATE OR REPLACE FUNCTION app.conversations_training_choice() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.training_allowed IS NOT DISTINCT FROM OLD.training_allowed THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.training_allowed IS NULL THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM companies c
                    WHERE c.id = NEW.company_id AND c.training_users_may_change) THEN
        RAISE EXCEPTION 'this company does not let its people choose whether a conversation is used for training'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END
$$;
ALTER FUNCTION app.conversations_training_choice() OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.conversations_training_choice() FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;

CREATE OR REPLACE TRIGGER conversations_training_choice BEFORE INSERT OR UPDATE OF training_allowed ON conversations
    FOR EACH ROW EXECUTE FUNCTION app.conversations_training_choice();

-- One JSON Lines line per conversation: {"messages": [{"role": ..., "content": ...}, ...]}, the
-- conversation's system prompt first (when it has one), then its exchanges in order. An exchange
-- is a user message and the reply that follows it, taken only when the reply is complete (not
-- streaming, failed or cancelled) and not empty, and when the user message was sent in
-- [p_since, p_until) (NULL: unbounded). A conversation without such an exchange (a cleared one,
-- say) has no line; a deleted one is gone. Allowed: the owner's choice while the company lets its
-- people choose, else the company's default. Lines come in no particular order.
--
-- Other callers get no line: the function checks the permission, and the policy
-- conversations_training_export lets its owner read conversations only for such a caller, of
-- the caller's company.
--
-- SQL, not PL/pgSQL, on purpose (unlike the other definer functions): called in a select list
-- (`SELECT app.training_export(...)`), a SQL function's last query runs lazily, a row at a time,
-- so a cursor over it streams the export; PL/pgSQL would collect the whole result first.
CREATE OR REPLACE FUNCTION app.training_export(p_since timestamptz, p_until timestamptz)
    RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    SELECT json_build_object('messages', x.messages)::text
      FROM companies co
      JOIN conversations c ON c.company_id = co.id
      CROSS JOIN LATERAL (
          SELECT json_agg(json_build_object('role', t.role, 'content', t.content) ORDER BY t.seq) AS messages,
                 count(*) FILTER (WHERE t.role = 'assistant') AS replies
            FROM (
                SELECT -1::bigint AS seq, 'system'::text AS role, c.system_prompt AS content
                 WHERE c.system_prompt IS NOT NULL AND btrim(c.system_prompt) <> ''
                UNION ALL
                SELECT e.seq, e.role, e.content
                  FROM (SELECT m.seq, m.role, m.content, m.status, m.created_at,
                               lead(m.role) OVER w AS next_role, lead(m.status) OVER w AS next_status,
                               lead(m.content) OVER w AS next_content,
                               lag(m.role) OVER w AS prev_role, lag(m.created_at) OVER w AS prev_created_at
                          FROM messages m
                         WHERE m.company_id = c.company_id AND m.conversation_id = c.id
                        WINDOW w AS (ORDER BY m.seq)) e
                 WHERE (e.role = 'user' AND e.next_role = 'assistant' AND e.next_status = 'complete'
                        AND e.next_content <> ''
                        AND (p_since IS NULL OR e.created_at >= p_since)
                        AND (p_until IS NULL OR e.created_at < p_until))
                    OR (e.role = 'assistant' AND e.status = 'complete' AND e.content <> ''
                        AND e.prev_role = 'user'
                        AND (p_since IS NULL OR e.prev_created_at >= p_since)
                        AND (p_until IS NULL OR e.prev_created_at < p_until))
            ) t
      ) x
     WHERE co.id = (SELECT app.current_company_id())
       AND (SELECT app.may('training_data', 'read'))
       AND CASE WHEN co.training_users_may_change
                THEN coalesce(c.training_allowed, co.training_default_allowed)
                ELSE co.training_default_allowed END
       AND x.replies > 0
$$;
ALTER FUNCTION app.training_export(timestamptz, timestamptz) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.training_export(timestamptz, timestamptz) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.training_export(timestamptz, timestamptz) TO app_user;

REVOKE CREATE ON SCHEMA app, public FROM app_auth, app_profiles;
