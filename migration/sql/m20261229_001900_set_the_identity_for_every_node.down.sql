-- The identity set with set_config again, as migration 000800 defined it.
CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF p_read_only THEN
        PERFORM pg_catalog.set_config('transaction_read_only', 'on', true);
    END IF;
    PERFORM pg_catalog.set_config('app.user_id', p_user::text, true),
            pg_catalog.set_config('app.company_id', p_company::text, true),
            pg_catalog.set_config('app.role', p_role, true);
    IF NOT app.identity_is_live(p_user, p_company, p_role, p_session) THEN
        RAISE EXCEPTION 'the session has ended, or its user is no longer an active member of that company with that role'
            USING ERRCODE = '28000';
    END IF;
END
$$;
