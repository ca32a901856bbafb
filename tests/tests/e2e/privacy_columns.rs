//! Privacy below the resolvers: request roles cannot read hidden columns of `users`, and
//! audiences cannot probe people who keep their profile to themselves.

use serde_json::json;
use tests::TestApp;

#[tokio::test]
async fn audiences_of_non_admins_leave_out_private_profiles() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 3).await?;
    app.sql(&format!(
        "UPDATE users SET profile_visibility = 'private' WHERE id = '{}'",
        members[2].id
    ))
    .await?;
    let query = "query($f: JSON) { audienceSize(filter: $f) }";
    let filter = json!({ "f": { "include": { "field": "role", "op": "eq", "value": "member" } } });
    let as_admin = app
        .graphql(Some(&app.token_for(&admin)), query, filter.clone())
        .await?;
    assert_eq!(as_admin.data()?["audienceSize"], 3);
    let as_member = app
        .graphql(Some(&app.token_for(&members[0])), query, filter)
        .await?;
    assert_eq!(as_member.data()?["audienceSize"], 2);
    Ok(())
}

#[tokio::test]
async fn request_roles_cannot_read_hidden_user_columns() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 1).await?;
    for column in ["email", "attributes", "password_hash"] {
        let denied = app
            .query_as(&admin, &format!("SELECT {column} FROM users"))
            .await;
        assert!(
            denied.is_err_and(|e| format!("{e:?}").contains("permission denied")),
            "{column}"
        );
    }
    // The masked view is the way in.
    let own = app
        .query_as(
            &admin,
            &format!("SELECT email FROM user_profiles WHERE id = '{}'", admin.id),
        )
        .await?;
    assert_eq!(own[0]["email"], json!(admin.email));
    Ok(())
}
