-- The request's identity set with one SET LOCAL command each, which Citus repeats on every
-- connection the transaction opens to a worker, so that the policies there see the caller too
-- (migration/sql/current/app.sql says why, and README.md's "Scaling out" how). On plain
-- PostgreSQL SET LOCAL is what set_config(..., true) was.
CREATE OR REPLACE FUNCTION app.begin_request(p_user uuid, p_company uuid, p_role text, p_session uuid, p_read_only boolean)
    RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_catalog.set_config('citus.propagate_set_commands', 'local', true);
    IF p_read_only THEN
        SET LOCAL transaction_read_only = on;
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.user_id = %L', p_user);
    EXECUTE pg_catalog.format('SET LOCAL app.company_id = %L', p_company);
    EXECUTE pg_catalog.format('SET LOCAL app.role = %L', p_role);
    IF NOT app.identity_is_live(p_user, p_company, p_role, p_session) THEN
        RAISE EXCEPTION 'the session has ended, or its user is no longer an active member of that company with that role'
            USING ERRCODE = '28000';
    END IF;
END
$$;
