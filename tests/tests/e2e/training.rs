//! Conversations as training data: each conversation's choice and the company's policy (in the
//! API and in PostgreSQL, each layer alone), and the admins' JSON Lines export over HTTP,
//! checked line by line over a few thousand conversations seeded with set-based SQL.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tests::{TestApp, TestUser};
use uuid::Uuid;

/// Conversations seeded in the exporting company.
const CONVERSATIONS: usize = 3000;
/// Conversations seeded in another company, allowed there.
const OTHER_COMPANY: usize = 200;

/// What a seeded conversation is, by `g % 6` of its number `g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Allowed by its owner; two complete exchanges.
    Allowed,
    /// Forbidden by its owner.
    Forbidden,
    /// No choice: the company's default.
    Default,
    /// Allowed, then cleared (its messages deleted) where a test says so.
    Cleared,
    /// Allowed; one complete exchange, then a failed reply and a cancelled one.
    Partly,
    /// Allowed, then deleted.
    Deleted,
}

fn kind(g: usize) -> Kind {
    match g % 6 {
        0 => Kind::Allowed,
        1 => Kind::Forbidden,
        2 => Kind::Default,
        3 => Kind::Cleared,
        4 => Kind::Partly,
        _ => Kind::Deleted,
    }
}

/// Whether conversation `g` has a system prompt.
fn has_system_prompt(g: usize) -> bool {
    g.is_multiple_of(5)
}

/// Whether conversation `g`'s messages were sent in January (the others in March).
fn in_january(g: usize) -> bool {
    g.is_multiple_of(12)
}

/// Seeds `count` conversations titled `<prefix><g>` for `owners` in `company`, as [`kind`]
/// says, with set-based SQL as the superuser. Message contents name their conversation:
/// `q1 <title>`, `a1 <title>`, ...
async fn seed(
    app: &TestApp,
    company: Uuid,
    owners: &[TestUser],
    prefix: &str,
    count: usize,
) -> anyhow::Result<()> {
    let owners = owners
        .iter()
        .map(|u| format!("'{}'::uuid", u.id))
        .collect::<Vec<_>>()
        .join(", ");
    app.sql(&format!(
        "INSERT INTO conversations (id, company_id, user_id, title, system_prompt, training_allowed)
         SELECT gen_random_uuid(), '{company}', (ARRAY[{owners}])[1 + g % array_length(ARRAY[{owners}], 1)],
                '{prefix}' || g, CASE WHEN g % 5 = 0 THEN 'Answer briefly.' END,
                CASE g % 6 WHEN 1 THEN false WHEN 2 THEN NULL ELSE true END
           FROM generate_series(0, {last}) g",
        last = count - 1
    ))
    .await?;
    // One statement per position, so that `seq` orders each conversation's messages.
    let steps = [
        ("user", "q1", "complete", "true"),
        ("assistant", "a1", "complete", "true"),
        ("user", "q2", "complete", "true"),
        ("assistant", "a2", "complete", "g % 6 <> 4"),
        ("assistant", "partial", "failed", "g % 6 = 4"),
        ("user", "q3", "complete", "g % 6 = 4"),
        ("assistant", "stopped", "cancelled", "g % 6 = 4"),
    ];
    for (role, label, status, which) in steps {
        app.sql(&format!(
            "INSERT INTO messages (id, company_id, user_id, conversation_id, role, content, status, created_at)
             SELECT gen_random_uuid(), c.company_id, c.user_id, c.id, '{role}', '{label} ' || c.title, '{status}',
                    CASE WHEN g % 12 = 0 THEN timestamptz '2026-01-15T00:00:00Z' ELSE timestamptz '2026-03-01T00:00:00Z' END
               FROM conversations c
               CROSS JOIN LATERAL (SELECT substr(c.title, length('{prefix}') + 1)::int AS g) n
              WHERE c.company_id = '{company}' AND c.title LIKE '{prefix}%' AND {which}"
        ))
        .await?;
    }
    Ok(())
}

/// The messages the export should give conversation `title` (number `g`).
fn expected_messages(title: &str, g: usize) -> Vec<Value> {
    let mut messages = Vec::new();
    if has_system_prompt(g) {
        messages.push(json!({ "role": "system", "content": "Answer briefly." }));
    }
    messages.push(json!({ "role": "user", "content": format!("q1 {title}") }));
    messages.push(json!({ "role": "assistant", "content": format!("a1 {title}") }));
    if kind(g) != Kind::Partly {
        messages.push(json!({ "role": "user", "content": format!("q2 {title}") }));
        messages.push(json!({ "role": "assistant", "content": format!("a2 {title}") }));
    }
    messages
}

/// The export's lines for `token`, parsed one by one, by the conversation each names; its
/// HTTP status and headers first.
async fn export(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, String)> {
    let mut request = app
        .client
        .get(app.url(&format!("/exports/training-data.jsonl{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Ok((status, headers, response.text().await?))
}

/// Parses an export body line by line: each line one JSON object with only `messages`, whose
/// first user message names the conversation. Fails on a duplicate.
fn by_title(body: &str) -> anyhow::Result<BTreeMap<String, Vec<Value>>> {
    let mut lines = BTreeMap::new();
    anyhow::ensure!(
        body.is_empty() || body.ends_with('\n'),
        "the last line is cut"
    );
    for line in body.lines() {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("not a JSON line ({e}): {line}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| anyhow::anyhow!("not an object: {line}"))?;
        anyhow::ensure!(object.len() == 1, "more than `messages`: {line}");
        let messages = object["messages"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("no messages: {line}"))?
            .clone();
        let title = messages
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .and_then(|c| c.strip_prefix("q1 "))
            .ok_or_else(|| anyhow::anyhow!("no first question: {line}"))?
            .to_owned();
        anyhow::ensure!(
            lines.insert(title.clone(), messages).is_none(),
            "{title} twice"
        );
    }
    Ok(lines)
}

/// Checks an export holds exactly the conversations `wanted` picks among the seeded ones, each
/// with its expected messages.
fn check(
    lines: &BTreeMap<String, Vec<Value>>,
    prefix: &str,
    wanted: impl Fn(usize) -> bool,
) -> anyhow::Result<usize> {
    let expected: BTreeSet<usize> = (0..CONVERSATIONS).filter(|&g| wanted(g)).collect();
    for (title, messages) in lines {
        let g: usize = title
            .strip_prefix(prefix)
            .and_then(|g| g.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("a conversation not of this company: {title}"))?;
        anyhow::ensure!(
            expected.contains(&g),
            "{title} ({:?}) should not be exported",
            kind(g)
        );
        assert_eq!(messages, &expected_messages(title, g), "{title}");
    }
    anyhow::ensure!(
        lines.len() == expected.len(),
        "{} lines, {} expected",
        lines.len(),
        expected.len()
    );
    Ok(lines.len())
}

#[tokio::test]
async fn admins_export_the_allowed_conversations_line_by_line_and_nobody_else_does()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, members) = app.company_with_users("Acme", 3).await?;
    let (other, other_admin, other_members) = app.company_with_users("Other", 1).await?;
    seed(&app, company, &members, "acme-", CONVERSATIONS).await?;
    seed(&app, other, &other_members, "other-", OTHER_COMPANY).await?;
    // Cleared and deleted, as clearConversation and deleteConversation leave them.
    app.sql(&format!(
        "DELETE FROM messages m USING conversations c
          WHERE m.conversation_id = c.id AND c.company_id = '{company}'
            AND substr(c.title, 6)::int % 6 = 3;
         DELETE FROM conversations c
          WHERE c.company_id = '{company}' AND substr(c.title, 6)::int % 6 = 5"
    ))
    .await?;
    let admin_token = app.token_for(&admin);

    // The company's default forbids; its people may choose.
    let (status, headers, body) = export(&app, Some(&admin_token), "").await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers[reqwest::header::CONTENT_TYPE]
            .to_str()?
            .starts_with("application/jsonl")
    );
    // Streamed: no length known in advance.
    assert!(headers.get(reqwest::header::CONTENT_LENGTH).is_none());
    let lines = by_title(&body)?;
    let allowed = |g: usize| matches!(kind(g), Kind::Allowed | Kind::Partly);
    assert!(check(&lines, "acme-", allowed)? > 900);

    // The window picks the exchanges by when their message was sent.
    let (status, _, body) = export(
        &app,
        Some(&admin_token),
        "?since=2026-02-01T00:00:00Z&until=2026-04-01T00:00:00%2B00:00",
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    check(&by_title(&body)?, "acme-", |g| allowed(g) && !in_january(g))?;
    let (_, _, body) = export(&app, Some(&admin_token), "?until=2026-02-01T00:00:00Z").await?;
    check(&by_title(&body)?, "acme-", |g| allowed(g) && in_january(g))?;

    // The company decides alone: its default now allows every conversation.
    let policy = app
        .graphql(
            Some(&admin_token),
            "mutation { setCompanyTrainingPolicy(defaultAllowed: true, usersMayChange: false) {
               trainingPolicy { defaultAllowed usersMayChange } } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        policy.data()?["setCompanyTrainingPolicy"]["trainingPolicy"],
        json!({ "defaultAllowed": true, "usersMayChange": false })
    );
    let (_, _, body) = export(&app, Some(&admin_token), "").await?;
    check(&by_title(&body)?, "acme-", |g| {
        !matches!(kind(g), Kind::Cleared | Kind::Deleted)
    })?;

    // Another company's admin gets their own company's conversations only.
    let (status, _, body) = export(&app, Some(&app.token_for(&other_admin)), "").await?;
    assert_eq!(status, 200);
    let theirs = by_title(&body)?;
    assert!(theirs.keys().all(|t| t.starts_with("other-")));
    assert_eq!(
        theirs.len(),
        (0..OTHER_COMPANY)
            .filter(|&g| !matches!(kind(g), Kind::Forbidden | Kind::Default))
            .count()
    );

    // A member may not export; nor may anyone signed out, or with a bad window.
    let member_token = app.token_for(&members[0]);
    let (status, _, body) = export(&app, Some(&member_token), "").await?;
    assert_eq!(status, 403, "{body}");
    let error: Value = serde_json::from_str(&body)?;
    assert_eq!(error["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let (status, headers, body) = export(&app, None, "").await?;
    assert_eq!(status, 401, "{body}");
    assert!(headers.get(reqwest::header::WWW_AUTHENTICATE).is_some());
    let (status, _, body) = export(&app, Some("not-a-token"), "").await?;
    assert_eq!(status, 401, "{body}");
    let (status, _, body) = export(&app, Some(&admin_token), "?since=yesterday").await?;
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body)?;
    assert_eq!(error["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(error["errors"][0]["extensions"]["path"], "since");

    // Cookie sign-in works as for /graphql (a GET changes nothing: no CSRF token needed).
    let response = app
        .client
        .get(app.url("/exports/training-data.jsonl"))
        .header("cookie", format!("__Host-access_token={admin_token}"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        by_title(&response.text().await?)?.len(),
        lines_now(&app, &admin).await?
    );
    Ok(())
}

/// How many lines PostgreSQL gives `user` calling the export function directly.
async fn lines_now(app: &TestApp, user: &TestUser) -> anyhow::Result<usize> {
    Ok(app
        .query_as(user, "SELECT app.training_export(NULL, NULL) AS line")
        .await?
        .len())
}

#[tokio::test]
async fn postgresql_returns_the_export_only_to_who_may_export_and_casbin_refuses_alone()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, members) = app.company_with_users("Acme", 2).await?;
    seed(&app, company, &members, "acme-", 60).await?;
    let allowed = (0..60)
        .filter(|&g| !matches!(kind(g), Kind::Forbidden | Kind::Default))
        .count();
    assert_eq!(lines_now(&app, &admin).await?, allowed);
    // A member calling the function gets nothing, and reads no one else's conversation.
    assert_eq!(lines_now(&app, &members[0]).await?, 0);
    let seen = app
        .query_as(
            &members[0],
            &format!(
                "SELECT id FROM conversations WHERE user_id = '{}'",
                members[1].id
            ),
        )
        .await?;
    assert!(seen.is_empty());
    // Neither does the function's owner see conversations without the permission: the policy
    // holds even if the function's own check were gone.
    let policies = app
        .query_as(
            &admin,
            "SELECT policyname FROM pg_policies WHERE tablename = 'conversations' \
             AND 'app_auth' = ANY (roles)",
        )
        .await?;
    assert_eq!(
        policies,
        [json!({ "policyname": "conversations_training_export" })]
    );

    // PostgreSQL would let members export once the database grants it; Casbin still refuses.
    app.sql("INSERT INTO app.builtin_grants (role, object, action) VALUES ('member', 'training_data', 'read')")
        .await?;
    assert_eq!(lines_now(&app, &members[0]).await?, allowed);
    let (status, _, _) = export(&app, Some(&app.token_for(&members[0])), "").await?;
    assert_eq!(status, 403);
    app.sql("DELETE FROM app.builtin_grants WHERE role = 'member' AND object = 'training_data'")
        .await?;

    // The GraphQL field answers where to download, for admins only.
    let query = "query($s: DateTime, $u: DateTime) { exportTrainingData(since: $s, until: $u) { url since until } }";
    let answer = app
        .graphql(
            Some(&app.token_for(&admin)),
            query,
            json!({ "s": "2026-01-01T00:00:00Z" }),
        )
        .await?;
    assert_eq!(
        answer.data()?["exportTrainingData"]["url"],
        "/exports/training-data.jsonl?since=2026-01-01T00%3A00%3A00Z"
    );
    let reversed = app
        .graphql(
            Some(&app.token_for(&admin)),
            query,
            json!({ "s": "2026-02-01T00:00:00Z", "u": "2026-01-01T00:00:00Z" }),
        )
        .await?;
    assert_eq!(reversed.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(reversed.body["errors"][0]["extensions"]["path"], "until");
    let denied = app
        .graphql(Some(&app.token_for(&members[0])), query, json!({}))
        .await?;
    assert_eq!(denied.error_code(), Some("FORBIDDEN"));
    Ok(())
}

const SET: &str = "mutation($id: ID!, $allowed: Boolean) {
  setConversationTraining(id: $id, allowed: $allowed) { id trainingChoice trainingAllowed } }";

#[tokio::test]
async fn people_choose_for_their_own_conversations_while_the_company_lets_them()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 2).await?;
    let token = app.token_for(&members[0]);
    let created = app
        .graphql(
            Some(&token),
            "mutation { createConversation(input: { title: \"Mine\" }) { id trainingChoice trainingAllowed } }",
            json!({}),
        )
        .await?;
    let conversation = created.data()?["createConversation"].clone();
    // Closed by default: no choice, and the company's default forbids.
    assert_eq!(conversation["trainingChoice"], Value::Null);
    assert_eq!(conversation["trainingAllowed"], false);
    let id = conversation["id"].clone();
    let set = app
        .graphql(Some(&token), SET, json!({ "id": id, "allowed": true }))
        .await?;
    assert_eq!(
        set.data()?["setConversationTraining"],
        json!({ "id": id, "trainingChoice": true, "trainingAllowed": true })
    );
    // Someone else's conversation does not exist for them.
    let theirs = app
        .graphql(
            Some(&app.token_for(&members[1])),
            SET,
            json!({ "id": id, "allowed": false }),
        )
        .await?;
    assert_eq!(theirs.error_code(), Some("NOT_FOUND"));
    // Only who may update the company sets its policy.
    let policy = "mutation($d: Boolean!, $u: Boolean!) { setCompanyTrainingPolicy(defaultAllowed: $d, usersMayChange: $u) { trainingPolicy { defaultAllowed usersMayChange } } }";
    let refused = app
        .graphql(Some(&token), policy, json!({ "d": true, "u": true }))
        .await?;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    app.graphql(
        Some(&app.token_for(&admin)),
        policy,
        json!({ "d": false, "u": false }),
    )
    .await?
    .data()?;
    let read = app
        .graphql(
            Some(&token),
            "query($id: ID!) { company { trainingPolicy { defaultAllowed usersMayChange } }
               conversation(id: $id) { trainingChoice trainingAllowed } }",
            json!({ "id": id }),
        )
        .await?;
    let read = read.data()?;
    assert_eq!(
        read["company"]["trainingPolicy"],
        json!({ "defaultAllowed": false, "usersMayChange": false })
    );
    // The choice is kept but no longer counts.
    assert_eq!(
        read["conversation"],
        json!({ "trainingChoice": true, "trainingAllowed": false })
    );

    // The API refuses a choice now, PostgreSQL aside (its trigger disabled for the check)...
    app.sql("ALTER TABLE conversations DISABLE TRIGGER conversations_training_choice")
        .await?;
    let api = app
        .graphql(Some(&token), SET, json!({ "id": id, "allowed": false }))
        .await?;
    app.sql("ALTER TABLE conversations ENABLE TRIGGER conversations_training_choice")
        .await?;
    assert_eq!(api.error_code(), Some("FORBIDDEN"));
    // ... and PostgreSQL refuses it alone, to a statement that skips the API.
    let uuid = id.as_str().unwrap_or_default();
    let sql = app
        .execute_as(
            &members[0],
            &format!("UPDATE conversations SET training_allowed = false WHERE id = '{uuid}'"),
        )
        .await;
    let error = format!("{:?}", sql.err());
    assert!(error.contains("does not let its people choose"), "{error}");
    let inserted = app
        .execute_as(
            &members[0],
            &format!(
                "INSERT INTO conversations (id, company_id, user_id, title, training_allowed) \
                 VALUES (gen_random_uuid(), '{}', '{}', 'x', true)",
                members[0].company_id, members[0].id
            ),
        )
        .await;
    assert!(inserted.is_err());
    // Renaming still works: only a change of the choice is refused.
    let renamed = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { renameConversation(id: $id, title: \"Renamed\") { title trainingChoice } }",
            json!({ "id": id }),
        )
        .await?;
    assert_eq!(
        renamed.data()?["renameConversation"],
        json!({ "title": "Renamed", "trainingChoice": true })
    );
    Ok(())
}
