//! User administration: profiles, roles, deactivation, the last admin, the company, and the
//! `users` filters and orderings.

use serde_json::{Value, json};
use tests::TestApp;

const UPDATE_USER: &str = "mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) { id role isActive displayName attributes }
}";
const DEACTIVATE: &str = "mutation($id: ID!) { deactivateUser(id: $id) { id isActive } }";

async fn active_admins(app: &TestApp, company: uuid::Uuid) -> anyhow::Result<i64> {
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &app.admin,
        sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM users WHERE company_id = $1 AND role = 'admin' AND is_active",
            [company.into()],
        ),
    )
    .await?
    .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get("", "n")?)
}

#[tokio::test]
async fn members_update_their_own_profile_only() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 2).await?;
    let token = app.token_for(&members[0]);
    let updated = app
        .graphql(
            Some(&token),
            "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { id displayName attributes } }",
            json!({ "input": { "displayName": "  Ann  ", "attributes": { "plan": "pro" } } }),
        )
        .await?;
    let user = &updated.data()?["updateProfile"];
    assert_eq!(user["id"], json!(members[0].id));
    assert_eq!(user["displayName"], "Ann");
    assert_eq!(user["attributes"], json!({ "plan": "pro" }));

    let bad = app
        .graphql(
            Some(&token),
            "mutation { updateProfile(input: { attributes: [1, 2] }) { id } }",
            json!({}),
        )
        .await?;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        bad.body["errors"][0]["extensions"]["path"],
        "input.attributes"
    );

    // Someone else's profile goes through updateUser, which members may not use.
    let other = app
        .graphql(
            Some(&token),
            UPDATE_USER,
            json!({ "id": members[1].id, "input": { "displayName": "Hacked" } }),
        )
        .await?;
    assert_eq!(other.error_code(), Some("FORBIDDEN"));
    assert_eq!(other.error_message(), Some("your role may not manage user"));
    Ok(())
}

#[tokio::test]
async fn admins_update_users_and_unknown_roles_are_bad_input() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let (_, outsider_admin, _) = app.company_with_users("Globex", 0).await?;
    let token = app.token_for(&admin);
    let updated = app
        .graphql(
            Some(&token),
            UPDATE_USER,
            json!({ "id": members[0].id, "input": {
                "role": "manager", "displayName": "Mia", "attributes": { "team": "red" } } }),
        )
        .await?;
    let user = &updated.data()?["updateUser"];
    assert_eq!(user["role"], "manager");
    assert_eq!(user["displayName"], "Mia");
    assert_eq!(user["attributes"], json!({ "team": "red" }));

    let unknown = app
        .graphql(
            Some(&token),
            UPDATE_USER,
            json!({ "id": members[0].id, "input": { "role": "overlord" } }),
        )
        .await?;
    assert_eq!(unknown.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        unknown.body["errors"][0]["extensions"]["path"],
        "input.role"
    );

    // Users of another company do not exist, as far as the caller can tell.
    let foreign = app
        .graphql(
            Some(&token),
            UPDATE_USER,
            json!({ "id": outsider_admin.id, "input": { "role": "member" } }),
        )
        .await?;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    let foreign = app
        .graphql(Some(&token), DEACTIVATE, json!({ "id": outsider_admin.id }))
        .await?;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    assert_eq!(active_admins(&app, outsider_admin.company_id).await?, 1);
    Ok(())
}

#[tokio::test]
async fn nobody_can_change_their_own_role() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Acme", 0).await?;
    app.create_user(company, "second@acme.example", "admin")
        .await?;
    let token = app.token_for(&admin);
    let demote = app
        .graphql(
            Some(&token),
            UPDATE_USER,
            json!({ "id": admin.id, "input": { "role": "member" } }),
        )
        .await?;
    assert_eq!(demote.error_code(), Some("FORBIDDEN"));
    assert_eq!(
        demote.error_message(),
        Some("nobody can change their own role")
    );
    // Other changes to oneself are fine, and so is naming one's current role.
    let renamed = app
        .graphql(
            Some(&token),
            UPDATE_USER,
            json!({ "id": admin.id, "input": { "role": "admin", "displayName": "Boss" } }),
        )
        .await?;
    assert_eq!(renamed.data()?["updateUser"]["displayName"], "Boss");
    assert_eq!(active_admins(&app, company).await?, 2);
    Ok(())
}

#[tokio::test]
async fn the_last_active_admin_cannot_leave() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Acme", 1).await?;
    let refused = app
        .graphql(
            Some(&app.token_for(&admin)),
            DEACTIVATE,
            json!({ "id": admin.id }),
        )
        .await?;
    assert_eq!(refused.error_code(), Some("CONFLICT"));
    assert_eq!(active_admins(&app, company).await?, 1);

    // With a second admin, one may deactivate themselves.
    let second = app
        .create_user(company, "second@acme.example", "admin")
        .await?;
    let left = app
        .graphql(
            Some(&app.token_for(&admin)),
            DEACTIVATE,
            json!({ "id": admin.id }),
        )
        .await?;
    assert_eq!(left.data()?["deactivateUser"]["isActive"], false);
    let last = app
        .graphql(
            Some(&app.token_for(&second)),
            DEACTIVATE,
            json!({ "id": second.id }),
        )
        .await?;
    assert_eq!(last.error_code(), Some("CONFLICT"));
    assert_eq!(active_admins(&app, company).await?, 1);
    Ok(())
}

#[tokio::test]
async fn two_concurrent_demotions_of_the_last_two_admins_leave_one_admin() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    for round in 0..5 {
        let (company, a, _) = app.company_with_users(&format!("Duo {round}"), 0).await?;
        let b = app
            .create_user(company, &format!("b@duo-{round}.example"), "admin")
            .await?;
        // Each demotes the other at the same moment.
        let (a_token, b_token) = (app.token_for(&a), app.token_for(&b));
        let (ab, ba) = tokio::join!(
            app.graphql(
                Some(&a_token),
                UPDATE_USER,
                json!({ "id": b.id, "input": { "role": "member" } }),
            ),
            app.graphql(
                Some(&b_token),
                UPDATE_USER,
                json!({ "id": a.id, "input": { "role": "member" } }),
            ),
        );
        let outcomes = [ab?, ba?];
        let succeeded = outcomes.iter().filter(|r| r.data().is_ok()).count();
        assert_eq!(
            succeeded,
            1,
            "{:?}",
            outcomes.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
        for failed in outcomes.iter().filter(|r| r.data().is_err()) {
            // Refused after waiting for the winner (no longer an admin) or at once (its token's
            // role is stale).
            assert!(
                matches!(failed.error_code(), Some("FORBIDDEN" | "UNAUTHENTICATED")),
                "{:?}",
                failed.body
            );
        }
        assert_eq!(active_admins(&app, company).await?, 1);

        // Each deactivates themselves at the same moment: one must stay.
        let (_, c, _) = app.company_with_users(&format!("Trio {round}"), 0).await?;
        let d = app
            .create_user(c.company_id, &format!("d@trio-{round}.example"), "admin")
            .await?;
        let (c_token, d_token) = (app.token_for(&c), app.token_for(&d));
        let (cc, dd) = tokio::join!(
            app.graphql(Some(&c_token), DEACTIVATE, json!({ "id": c.id })),
            app.graphql(Some(&d_token), DEACTIVATE, json!({ "id": d.id })),
        );
        let outcomes = [cc?, dd?];
        assert_eq!(outcomes.iter().filter(|r| r.data().is_ok()).count(), 1);
        assert!(outcomes.iter().any(|r| r.error_code() == Some("CONFLICT")));
        assert_eq!(active_admins(&app, c.company_id).await?, 1);
    }
    Ok(())
}

#[tokio::test]
async fn a_deactivated_user_is_refused_on_the_next_request() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let member = app.token_for(&members[0]);
    app.graphql(Some(&member), "{ me { id } }", json!({}))
        .await?
        .data()?;
    let deactivated = app
        .graphql(
            Some(&app.token_for(&admin)),
            DEACTIVATE,
            json!({ "id": members[0].id }),
        )
        .await?;
    assert_eq!(deactivated.data()?["deactivateUser"]["isActive"], false);
    let refused = app
        .graphql(Some(&member), "{ me { id } }", json!({}))
        .await?;
    assert_eq!(refused.error_code(), Some("UNAUTHENTICATED"));

    let inactive = app
        .graphql(
            Some(&app.token_for(&admin)),
            "{ users(isActive: false) { totalCount edges { node { id } } } }",
            json!({}),
        )
        .await?;
    assert_eq!(inactive.data()?["users"]["totalCount"], 1);
    assert_eq!(
        inactive.data()?["users"]["edges"][0]["node"]["id"],
        json!(members[0].id)
    );
    let back = app
        .graphql(
            Some(&app.token_for(&admin)),
            UPDATE_USER,
            json!({ "id": members[0].id, "input": { "isActive": true } }),
        )
        .await?;
    assert_eq!(back.data()?["updateUser"]["isActive"], true);
    Ok(())
}

#[tokio::test]
async fn admins_rename_the_company_and_others_may_not() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 1).await?;
    let rename = "mutation($name: String) { updateCompany(input: { name: $name }) { name } }";
    let renamed = app
        .graphql(
            Some(&app.token_for(&admin)),
            rename,
            json!({ "name": " Acme Inc " }),
        )
        .await?;
    assert_eq!(renamed.data()?["updateCompany"]["name"], "Acme Inc");
    let blank = app
        .graphql(
            Some(&app.token_for(&admin)),
            rename,
            json!({ "name": "  " }),
        )
        .await?;
    assert_eq!(blank.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(blank.body["errors"][0]["extensions"]["path"], "input.name");
    let manager = app
        .create_user(admin.company_id, "boss@acme.example", "manager")
        .await?;
    for user in [&members[0], &manager] {
        let denied = app
            .graphql(
                Some(&app.token_for(user)),
                rename,
                json!({ "name": "Mine" }),
            )
            .await?;
        assert_eq!(denied.error_code(), Some("FORBIDDEN"));
        assert_eq!(
            denied.error_message(),
            Some("your role may not update company")
        );
    }
    Ok(())
}

const USERS: &str =
    "query($first: Int, $after: String, $role: String, $active: Boolean, $order: UserOrder) {
  users(first: $first, after: $after, role: $role, isActive: $active, orderBy: $order) {
    totalCount
    edges { cursor node { displayName email role } }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Every page of `users` with these variables, `first` at a time: the display names in order.
async fn all_pages(
    app: &TestApp,
    token: &str,
    mut variables: Value,
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for _ in 0..20 {
        let response = app.graphql(Some(token), USERS, variables.clone()).await?;
        let page = response.data()?["users"].clone();
        names.extend(
            page["edges"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["node"]["displayName"].as_str().map(str::to_owned)),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            return Ok(names);
        }
        variables["after"] = page["pageInfo"]["endCursor"].clone();
    }
    anyhow::bail!("more than 20 pages")
}

#[tokio::test]
async fn users_filter_by_role_and_activity_and_page_in_every_order() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, _) = app.company_with_users("Acme", 0).await?;
    // Same names on purpose: ties must be broken by id without losing or repeating anyone.
    for (email, role, name) in [
        ("carol@acme.example", "member", "Carol"),
        ("bob@acme.example", "manager", "Bob"),
        ("dave@acme.example", "member", "Dave"),
        ("bob2@acme.example", "member", "Bob"),
        ("erin@acme.example", "member", "Erin"),
    ] {
        let user = app.create_user(company, email, role).await?;
        app.sql(&format!(
            "UPDATE users SET display_name = '{name}' WHERE id = '{}'",
            user.id
        ))
        .await?;
    }
    app.sql("UPDATE users SET is_active = false WHERE email = 'erin@acme.example'")
        .await?;
    app.sql(&format!(
        "UPDATE users SET display_name = 'Ada' WHERE id = '{}'",
        admin.id
    ))
    .await?;
    let token = app.token_for(&admin);

    let by_name = all_pages(
        &app,
        &token,
        json!({ "first": 2, "order": { "field": "DISPLAY_NAME", "direction": "ASC" } }),
    )
    .await?;
    assert_eq!(by_name, ["Ada", "Bob", "Bob", "Carol", "Dave", "Erin"]);
    let by_name_desc = all_pages(
        &app,
        &token,
        json!({ "first": 4, "order": { "field": "DISPLAY_NAME", "direction": "DESC" } }),
    )
    .await?;
    assert_eq!(by_name_desc, ["Erin", "Dave", "Carol", "Bob", "Bob", "Ada"]);
    let by_email = all_pages(
        &app,
        &token,
        json!({ "first": 1, "order": { "field": "EMAIL", "direction": "ASC" } }),
    )
    .await?;
    assert_eq!(by_email, ["Ada", "Bob", "Bob", "Carol", "Dave", "Erin"]);
    let oldest_first = all_pages(&app, &token, json!({ "first": 5 })).await?;
    assert_eq!(oldest_first, ["Ada", "Carol", "Bob", "Dave", "Bob", "Erin"]);
    let newest_first = all_pages(
        &app,
        &token,
        json!({ "first": 3, "order": { "field": "CREATED_AT", "direction": "DESC" } }),
    )
    .await?;
    assert_eq!(newest_first, ["Erin", "Bob", "Dave", "Bob", "Carol", "Ada"]);

    let active_members = all_pages(
        &app,
        &token,
        json!({ "role": "member", "active": true, "order": { "field": "DISPLAY_NAME" } }),
    )
    .await?;
    assert_eq!(active_members, ["Bob", "Carol", "Dave"]);
    let counted = app
        .graphql(
            Some(&token),
            USERS,
            json!({ "role": "member", "active": true }),
        )
        .await?;
    assert_eq!(counted.data()?["users"]["totalCount"], 3);

    // A cursor belongs to its ordering.
    let first = app
        .graphql(
            Some(&token),
            USERS,
            json!({ "first": 1, "order": { "field": "EMAIL" } }),
        )
        .await?;
    let cursor = first.data()?["users"]["pageInfo"]["endCursor"].clone();
    let mixed = app
        .graphql(
            Some(&token),
            USERS,
            json!({ "after": cursor, "order": { "field": "DISPLAY_NAME" } }),
        )
        .await?;
    assert_eq!(mixed.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(mixed.body["errors"][0]["extensions"]["path"], "after");
    Ok(())
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_powers_with_the_next_token() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (company, admin, members) = app.company_with_users("Acme", 1).await?;
    let second = app
        .create_user(company, "second@acme.example", "admin")
        .await?;
    app.graphql(
        Some(&app.token_for(&admin)),
        UPDATE_USER,
        json!({ "id": second.id, "input": { "role": "member" } }),
    )
    .await?
    .data()?;
    // The old admin token is refused outright; a member token cannot administer.
    let stale = app
        .graphql(
            Some(&app.token_for(&second)),
            DEACTIVATE,
            json!({ "id": members[0].id }),
        )
        .await?;
    assert_eq!(stale.error_code(), Some("UNAUTHENTICATED"));
    let demoted = app
        .graphql(
            Some(&app.token_for(&second.with_role("member"))),
            DEACTIVATE,
            json!({ "id": members[0].id }),
        )
        .await?;
    assert_eq!(demoted.error_code(), Some("FORBIDDEN"));
    Ok(())
}
