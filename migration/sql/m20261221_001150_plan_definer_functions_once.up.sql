-- Definer functions that run a query become PL/pgSQL: PostgreSQL never inlines a SQL function
-- with SECURITY DEFINER or a SET clause, and parses and plans its body again in every statement
-- that calls it; PL/pgSQL keeps its plans for the session. Owners and grants are unchanged.

CREATE OR REPLACE FUNCTION app.may(p_object text, p_action text) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM app.builtin_grants g
        WHERE g.role = app.current_role() AND g.object = p_object AND g.action IN (p_action, 'manage')
    ) OR EXISTS (
        SELECT 1 FROM public.roles r CROSS JOIN LATERAL jsonb_array_elements(r.grants) e (grant_)
        WHERE r.company_id = app.current_company_id() AND r.name = app.current_role()
          AND e.grant_ ->> 'object' = p_object AND e.grant_ ->> 'action' IN (p_action, 'manage')
    );
END
$$;

CREATE OR REPLACE FUNCTION app.identity_is_live(p_user uuid, p_company uuid, p_role text, p_session uuid)
    RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM users u
        WHERE u.id = p_user AND u.company_id = p_company AND u.role = p_role AND u.is_active
    ) AND EXISTS (
        SELECT 1 FROM sessions s
        WHERE s.id = p_session AND s.company_id = p_company AND s.user_id = p_user
          AND s.revoked_at IS NULL AND s.absolute_expires_at > now()
    );
END
$$;

CREATE OR REPLACE FUNCTION app.session_state(p_session uuid) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN COALESCE((
        SELECT CASE WHEN s.revoked_at IS NULL AND s.absolute_expires_at > now() AND u.is_active
                    THEN 'active' ELSE 'revoked' END
        FROM sessions s JOIN users u ON u.company_id = s.company_id AND u.id = s.user_id
        WHERE s.id = p_session), 'missing');
END
$$;

CREATE OR REPLACE FUNCTION app.current_password_hash() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
BEGIN
    RETURN (SELECT u.password_hash FROM users u
            WHERE u.id = app.current_user_id() AND u.company_id = app.current_company_id() AND u.is_active);
END
$$;
