
DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF;
    ELSE
        RAISE WARNING 'audience filters on attributes cannot use their GIN index under Row Level '
            'Security until a superuser runs: ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF';
    END IF;
END
$$;
