//! The typed seam to SQL holds against a migrated database: every `app.*` function the server
//! declares (`server::db::functions::DECLARED`) exists with exactly those argument types and
//! that result, its calling role may execute it, and no function granted to a role of the
//! application goes undeclared (unless only SQL calls it). Every constraint mapped on purpose
//! (`server::db::constraints::CONSTRAINTS`) exists with its kind, and violations reach clients
//! with their field, code and message.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use server::db::{
    constraints::{CONSTRAINTS, Kind},
    functions::{CALLED_ONLY_BY_SQL, Caller, DECLARED},
};
use tests::{GqlResponse, TestApp};

/// The roles the server runs as (those the query below asks about).
const APP_ROLES: [Caller; 3] = [Caller::User, Caller::Anonymous, Caller::Worker];

/// One function of schema `app` as `pg_proc` has it.
struct Proc {
    returns: String,
    /// The roles of the application that may execute it.
    executable_by: BTreeSet<String>,
}

async fn app_functions(app: &TestApp) -> anyhow::Result<BTreeMap<String, Proc>> {
    let rows = app
        .admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT p.proname::text || '(' || oidvectortypes(p.proargtypes) || ')' AS signature,
                    pg_get_function_result(p.oid) AS returns,
                    array_to_string(ARRAY(
                        SELECT r FROM unnest(ARRAY['app_user', 'app_anon', 'app_worker']) AS r
                        WHERE has_function_privilege(r, p.oid, 'EXECUTE')), ',') AS executable_by
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'app'",
        ))
        .await?;
    let mut functions = BTreeMap::new();
    for row in rows {
        let signature: String = row.try_get("", "signature")?;
        let roles: String = row.try_get("", "executable_by")?;
        functions.insert(
            signature,
            Proc {
                returns: row.try_get("", "returns")?,
                executable_by: roles
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
        );
    }
    Ok(functions)
}

#[tokio::test]
async fn declared_sql_functions_match_pg_proc() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let functions = app_functions(&app).await?;
    let mut problems = Vec::new();
    for declared in DECLARED {
        let signature = declared.signature();
        let Some(found) = functions.get(&signature) else {
            let same_name: Vec<&String> = functions
                .keys()
                .filter(|s| s.starts_with(&format!("{}(", declared.name)))
                .collect();
            problems.push(format!(
                "app.{signature} does not exist (app.{} has: {same_name:?})",
                declared.name
            ));
            continue;
        };
        let returns = declared.returns.to_sql();
        if found.returns != returns {
            problems.push(format!(
                "app.{signature} returns `{}`, declared `{returns}`",
                found.returns
            ));
        }
        let role = declared.caller.role();
        if !found.executable_by.contains(role) {
            problems.push(format!(
                "{role}, which calls app.{signature}, may not execute it"
            ));
        }
    }
    let declared: BTreeSet<String> = DECLARED.iter().map(|f| f.signature()).collect();
    let only_sql: BTreeSet<String> = CALLED_ONLY_BY_SQL
        .iter()
        .map(|(s, _)| (*s).to_owned())
        .collect();
    for (signature, found) in &functions {
        if !found.executable_by.is_empty()
            && !declared.contains(signature)
            && !only_sql.contains(signature)
        {
            problems.push(format!(
                "app.{signature} is executable by {:?} but neither declared in \
                 server::db::functions nor listed as called only by SQL",
                found.executable_by
            ));
        }
    }
    for signature in &only_sql {
        if !functions.contains_key(signature) {
            problems.push(format!(
                "app.{signature} is listed as called only by SQL but does not exist"
            ));
        }
        if declared.contains(signature) {
            problems.push(format!(
                "app.{signature} is both declared and listed as called only by SQL"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The roles the declarations name are the roles the server runs as.
    assert!(DECLARED.iter().all(|f| APP_ROLES.contains(&f.caller)));
    Ok(())
}

#[tokio::test]
async fn mapped_constraints_exist_with_their_kind() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let mut missing = Vec::new();
    for constraint in CONSTRAINTS {
        let sql = match constraint.kind {
            // A unique constraint or a unique index: violations name the index.
            Kind::Unique => {
                "SELECT 1 AS one FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indexrelid
                   JOIN pg_class t ON t.oid = i.indrelid
                   JOIN pg_namespace n ON n.oid = t.relnamespace
                  WHERE i.indisunique AND c.relname = $1 AND t.relname = $2 AND n.nspname = 'public'"
            }
            Kind::ForeignKey | Kind::Check => {
                "SELECT 1 AS one FROM pg_constraint k
                   JOIN pg_class t ON t.oid = k.conrelid
                   JOIN pg_namespace n ON n.oid = t.relnamespace
                  WHERE k.conname = $1 AND t.relname = $2 AND n.nspname = 'public'
                    AND k.contype = $3"
            }
        };
        let mut values = vec![constraint.name.into(), constraint.table.into()];
        match constraint.kind {
            Kind::Unique => {}
            Kind::ForeignKey => values.push("f".into()),
            Kind::Check => values.push("c".into()),
        }
        let found = app
            .admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await?;
        if found.is_none() {
            missing.push(format!(
                "{:?} {} on {}",
                constraint.kind, constraint.name, constraint.table
            ));
        }
    }
    assert!(missing.is_empty(), "no such constraints: {missing:?}");
    Ok(())
}

/// Asserts that `response` failed with `code`, `extensions.field` `field` and `message`.
fn assert_refused(response: &GqlResponse, code: &str, field: &str, message: &str) {
    let error = &response.body["errors"][0];
    assert_eq!(error["extensions"]["code"], code, "{}", response.body);
    assert_eq!(error["extensions"]["field"], field, "{}", response.body);
    assert_eq!(error["message"], message, "{}", response.body);
}

#[tokio::test]
async fn a_taken_e_mail_address_is_a_conflict_on_email() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sign_up("Acme", "ann@acme.example", "correct horse battery")
        .await?;
    // Another company, the same address in another case: one account per address.
    let again = app
        .graphql(
            None,
            "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
            json!({ "input": { "companyName": "Other", "email": "ANN@acme.example",
                               "password": "correct horse battery", "displayName": "Ann" } }),
        )
        .await?;
    assert_refused(
        &again,
        "CONFLICT",
        "email",
        "an account with this e-mail address already exists",
    );
    Ok(())
}

#[tokio::test]
async fn a_taken_preset_name_is_a_conflict_on_name() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let create = "mutation($input: CreatePresetInput!) { createPreset(input: $input) { id } }";
    let first = app
        .graphql(
            Some(&app.token_for(&admin)),
            create,
            json!({ "input": { "name": "Pro users", "filter": {} } }),
        )
        .await?;
    first.data()?;
    // Names are unique in the company whatever their case, and whoever owns the first.
    let taken = app
        .graphql(
            Some(&app.token_for(&members[0])),
            create,
            json!({ "input": { "name": "PRO USERS", "filter": {} } }),
        )
        .await?;
    assert_refused(
        &taken,
        "CONFLICT",
        "name",
        "a preset with this name already exists in the company",
    );
    Ok(())
}

#[tokio::test]
async fn a_taken_role_name_is_a_conflict_on_name() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let create = "mutation($input: CreateRoleInput!) { createRole(input: $input) { name } }";
    let input = json!({ "input": { "name": "coach",
                                   "grants": [{ "object": "USER", "action": "READ" }] } });
    let token = app.token_for(&admin);
    app.graphql(Some(&token), create, input.clone())
        .await?
        .data()?;
    let taken = app.graphql(Some(&token), create, input).await?;
    assert_refused(
        &taken,
        "CONFLICT",
        "name",
        "a role named `coach` already exists",
    );
    Ok(())
}

#[tokio::test]
async fn a_taken_audience_field_is_a_conflict_on_name() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let define =
        "mutation($input: AudienceFieldInput!) { defineAudienceField(input: $input) { name } }";
    let input = json!({ "input": { "name": "plan", "type": "STRING" } });
    let token = app.token_for(&admin);
    app.graphql(Some(&token), define, input.clone())
        .await?
        .data()?;
    let taken = app.graphql(Some(&token), define, input).await?;
    assert_refused(
        &taken,
        "CONFLICT",
        "name",
        "a company field with this name already exists",
    );
    Ok(())
}

/// How many rows `table` holds (read as the superuser: past Row Level Security).
async fn rows_of(app: &TestApp, table: &str) -> anyhow::Result<i64> {
    let row = app
        .admin
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM {table}"),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    Ok(row.try_get("", "n")?)
}

/// `error` is the refusal of a constraint: `code`, `extensions.field` `field`, `message`.
fn assert_constraint_refusal(
    error: &server::error::AppError,
    code: &str,
    field: &str,
    message: &str,
) {
    match error {
        server::error::AppError::Refused {
            code: refused_code,
            field: refused_field,
            message: refused_message,
        } => {
            assert_eq!(
                (*refused_code, *refused_field, refused_message.as_str()),
                (code, field, message),
                "{error:?}"
            );
        }
        other => panic!("not the refusal of a constraint: {other:?}"),
    }
}

// Foreign keys and checks: the services check first (the resolvers validate every value those
// checks hold, and the rows a request names are read and locked before it writes), so no
// GraphQL operation reaches these constraints; the database stays the last word. These tests
// hand the database what the services would refuse, as a request's role, and prove the
// answer a client would get and that nothing was written.

#[tokio::test]
async fn a_friendship_with_nobody_is_refused_on_user_id() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let nobody = uuid::Uuid::now_v7();
    let (user_a, user_b) = if admin.id < nobody {
        (admin.id, nobody)
    } else {
        (nobody, admin.id)
    };
    let tx = app
        .request_tx(&admin, server::db::Access::ReadWrite)
        .await?;
    let refused = tx
        .conn()
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO friendships (company_id, user_a, user_b, status, requested_by) \
             VALUES ($1, $2, $3, 'pending', $4)",
            [
                admin.company_id.into(),
                user_a.into(),
                user_b.into(),
                admin.id.into(),
            ],
        ))
        .await
        .err()
        .map(server::error::AppError::from);
    // Rolled back on drop, as a request's transaction whose statement failed.
    drop(tx);
    let error = refused.ok_or_else(|| anyhow::anyhow!("a friendship with nobody was stored"))?;
    assert_constraint_refusal(&error, "BAD_USER_INPUT", "userId", "no such user");
    assert_eq!(
        rows_of(&app, "friendships").await?,
        0,
        "nothing is half-written"
    );
    Ok(())
}

#[tokio::test]
async fn a_note_of_blanks_is_refused_on_content() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let principal = server::auth::Principal {
        user_id: admin.id,
        company_id: admin.company_id,
        role: admin.role.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        session_id: admin.session_id,
    };
    let tx = app
        .request_tx(&admin, server::db::Access::ReadWrite)
        .await?;
    // `addKnowledge` trims and refuses an empty note before this.
    let refused =
        server::services::chat::add_knowledge(tx.conn(), &principal, "   ".to_owned()).await;
    drop(tx);
    let error = refused
        .err()
        .ok_or_else(|| anyhow::anyhow!("a blank note was stored"))?;
    assert_constraint_refusal(
        &error,
        "BAD_USER_INPUT",
        "content",
        "must be 1 to 20000 characters long",
    );
    assert_eq!(
        rows_of(&app, "knowledge").await?,
        0,
        "nothing is half-written"
    );
    Ok(())
}
