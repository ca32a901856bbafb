//! Every policy decides from the row and the transaction's variables alone: no sub-select (Citus
//! refuses a policy with one on a distributed table) and no function that reads a table (on
//! Citus a policy runs on the worker that holds the row, where reading another table is a
//! distributed query from within one, which Citus refuses too).

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tests::TestApp;

/// Each policy (`table.policy`) that holds a sub-select or calls a function that may read a
/// table, with why: the functions a policy calls, and the `app` functions those call (by name in
/// their body), must be SQL functions without a FROM. PL/pgSQL and other languages count as
/// reading, since their bodies cannot be checked here.
const OFFENDERS: &str = r"
WITH RECURSIVE pol AS (
    SELECT c.relname || '.' || p.polname AS policy, e.tree, e.text
    FROM pg_policy p
    JOIN pg_class c ON c.oid = p.polrelid
    CROSS JOIN LATERAL (VALUES (p.polqual::text, pg_get_expr(p.polqual, p.polrelid)),
                               (p.polwithcheck::text, pg_get_expr(p.polwithcheck, p.polrelid))) e (tree, text)
    WHERE e.tree IS NOT NULL AND c.relnamespace = 'public'::regnamespace
),
called (policy, oid, via, depth) AS (
    SELECT DISTINCT pol.policy, f.oid, f.oid::regproc::text, 1
    FROM pol
    CROSS JOIN LATERAL regexp_matches(pol.tree, ':(?:funcid|opfuncid) (\d+)', 'g') m
    JOIN pg_proc f ON f.oid = m[1]::oid
    WHERE f.pronamespace <> 'pg_catalog'::regnamespace
    UNION
    SELECT c.policy, g.oid, c.via || ' calls ' || g.oid::regproc::text, c.depth + 1
    FROM called c
    JOIN pg_proc f ON f.oid = c.oid
    CROSS JOIN LATERAL regexp_matches(f.prosrc, 'app\.(\w+)\s*\(', 'g') m
    JOIN pg_proc g ON g.proname = m[1] AND g.pronamespace = 'app'::regnamespace
    WHERE c.depth < 10
)
SELECT policy, 'a sub-select: ' || text AS why FROM pol
WHERE tree LIKE '%{SUBLINK%' OR text ~* '\mselect\M'
UNION ALL
SELECT c.policy, c.via || ': ' || CASE WHEN l.lanname <> 'sql' THEN 'a ' || l.lanname || ' function'
                                       ELSE 'reads a table (FROM in its body)' END
FROM called c
JOIN pg_proc f ON f.oid = c.oid
JOIN pg_language l ON l.oid = f.prolang
WHERE l.lanname <> 'sql' OR f.prosrc ~* '\mfrom\M'
ORDER BY 1, 2
";

async fn offenders(app: &TestApp) -> anyhow::Result<Vec<(String, String)>> {
    app.admin
        .query_all_raw(Statement::from_string(DbBackend::Postgres, OFFENDERS))
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "policy")?, row.try_get("", "why")?)))
        .collect()
}

#[tokio::test]
async fn no_policy_holds_a_sub_select_or_reads_a_table() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let policies: i64 = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
             WHERE c.relnamespace = 'public'::regnamespace",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?
        .try_get("", "n")?;
    assert!(
        policies > 50,
        "only {policies} policies: is this the application's database?"
    );
    assert_eq!(offenders(&app).await?, Vec::<(String, String)>::new());
    Ok(())
}

/// The check sees each way a policy could read a table: a sub-select, a PL/pgSQL function, a SQL
/// function with a FROM, and such a function called by an `app` function the policy calls.
#[tokio::test]
async fn the_check_sees_each_way_a_policy_reads_a_table() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sql(
        "CREATE TABLE local_probe (company_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (company_id, id));
         CREATE FUNCTION app.probe_plpgsql() RETURNS boolean LANGUAGE plpgsql STABLE
             AS $$ BEGIN RETURN true; END $$;
         CREATE FUNCTION app.probe_reads() RETURNS boolean LANGUAGE sql STABLE
             AS $$ SELECT EXISTS (SELECT 1 FROM companies) $$;
         CREATE FUNCTION app.probe_calls() RETURNS boolean LANGUAGE sql STABLE
             AS $$ SELECT app.probe_reads() $$;
         CREATE POLICY probe_sub_select ON local_probe
             USING (EXISTS (SELECT 1 FROM companies c WHERE c.id = local_probe.company_id));
         CREATE POLICY probe_init_plan ON local_probe USING (company_id = (SELECT app.current_company_id()));
         CREATE POLICY probe_plpgsql ON local_probe USING (app.probe_plpgsql());
         CREATE POLICY probe_reads ON local_probe FOR INSERT WITH CHECK (app.probe_reads());
         CREATE POLICY probe_calls ON local_probe USING (app.probe_calls());
         CREATE POLICY probe_fine ON local_probe USING (company_id = app.current_company_id() AND app.may('user', 'read'));",
    )
    .await?;
    let found = offenders(&app).await?;
    let policies: Vec<&str> = found.iter().map(|(policy, _)| policy.as_str()).collect();
    for expected in [
        "local_probe.probe_calls",
        "local_probe.probe_init_plan",
        "local_probe.probe_plpgsql",
        "local_probe.probe_reads",
        "local_probe.probe_sub_select",
    ] {
        assert!(
            policies.contains(&expected),
            "{expected} not seen: {found:?}"
        );
    }
    assert!(!policies.contains(&"local_probe.probe_fine"), "{found:?}");
    let calls = found
        .iter()
        .find(|(policy, _)| policy == "local_probe.probe_calls")
        .map(|(_, why)| why.as_str());
    assert_eq!(
        calls,
        Some("app.probe_calls calls app.probe_reads: reads a table (FROM in its body)")
    );
    Ok(())
}
