//! Privacy: who sees a user's e-mail and attributes (viewer relation x visibility x field),
//! enforced by PostgreSQL; blocked pairs in `users` and mutual friends.

use serde_json::{Value, json};
use tests::{TestApp, TestUser};

use crate::friends::{BLOCK, befriend, run};

const PRIVACY: &str = "mutation($input: PrivacyInput!) {
  updatePrivacy(input: $input) { id privacy { profileVisibility visibleAttributes } }
}";
const PROFILE: &str =
    "query($id: ID!) { user(id: $id) { email attributes privacy { profileVisibility } } }";
const SEARCH: &str = "query($s: String) { users(search: $s) { edges { node { id } } totalCount } }";
const MUTUAL: &str =
    "query($id: ID!) { user(id: $id) { mutualFriends { edges { node { id } } totalCount } } }";

fn ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn set_privacy(app: &TestApp, user: &TestUser, input: Value) -> anyhow::Result<Value> {
    let response = run(app, user, PRIVACY, json!({ "input": input })).await?;
    Ok(response.data()?["updatePrivacy"].clone())
}

/// (email, attributes) of `target` as `viewer` sees them through GraphQL, checked against what
/// a raw query of the view returns in the viewer's own request transaction.
async fn seen(
    app: &TestApp,
    viewer: &TestUser,
    target: &TestUser,
) -> anyhow::Result<(Value, Value)> {
    let response = run(app, viewer, PROFILE, json!({ "id": target.id })).await?;
    let user = &response.data()?["user"];
    let raw = app
        .query_as(
            viewer,
            &format!(
                "SELECT email, attributes FROM user_profiles WHERE id = '{}'",
                target.id
            ),
        )
        .await?;
    let row = raw.first().cloned().unwrap_or_default();
    anyhow::ensure!(
        row["email"] == user["email"],
        "view and API disagree: {row} vs {user}"
    );
    Ok((user["email"].clone(), user["attributes"].clone()))
}

#[tokio::test]
async fn email_and_attributes_follow_visibility_relation_and_role() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 4).await?;
    let (target, friend, colleague, blocked) = (&m[0], &m[1], &m[2], &m[3]);
    app.sql(&format!(
        "UPDATE users SET attributes = '{{\"plan\": \"pro\", \"city\": \"Oslo\"}}' WHERE id = '{}'",
        target.id
    ))
    .await?;
    befriend(&app, target, friend).await?;
    run(&app, target, BLOCK, json!({ "user": blocked.id })).await?;
    let all = json!({ "plan": "pro", "city": "Oslo" });
    let email = json!(target.email);
    let hidden = (Value::Null, json!({}));

    // Visibility -> who sees everything (the rest sees nothing).
    let matrix: [(&str, Vec<&TestUser>, Vec<&TestUser>); 3] = [
        (
            "COMPANY",
            vec![target, &admin, friend, colleague],
            vec![blocked],
        ),
        (
            "FRIENDS",
            vec![target, &admin, friend],
            vec![colleague, blocked],
        ),
        (
            "PRIVATE",
            vec![target, &admin],
            vec![friend, colleague, blocked],
        ),
    ];
    for (visibility, see, blind) in matrix {
        let set = set_privacy(&app, target, json!({ "profileVisibility": visibility })).await?;
        assert_eq!(set["privacy"]["profileVisibility"], visibility);
        for viewer in see {
            let got = seen(&app, viewer, target).await?;
            assert_eq!(
                got,
                (email.clone(), all.clone()),
                "{visibility}: {}",
                viewer.email
            );
        }
        for viewer in blind {
            let got = seen(&app, viewer, target).await?;
            assert_eq!(got, hidden, "{visibility}: {}", viewer.email);
        }
    }

    // Only some attributes for those who may see the profile; all of them for self and admins.
    set_privacy(
        &app,
        target,
        json!({ "profileVisibility": "COMPANY", "visibleAttributes": ["plan"] }),
    )
    .await?;
    for viewer in [friend, colleague] {
        let got = seen(&app, viewer, target).await?;
        assert_eq!(
            got,
            (email.clone(), json!({ "plan": "pro" })),
            "{}",
            viewer.email
        );
    }
    for viewer in [target, &admin] {
        assert_eq!(
            seen(&app, viewer, target).await?,
            (email.clone(), all.clone())
        );
    }
    // Privacy settings are shown to the user and admins only.
    let other = run(&app, colleague, PROFILE, json!({ "id": target.id })).await?;
    assert!(other.data()?["user"]["privacy"].is_null());
    let own = run(&app, &admin, PROFILE, json!({ "id": target.id })).await?;
    assert_eq!(
        own.data()?["user"]["privacy"]["profileVisibility"],
        "COMPANY"
    );
    let reset = set_privacy(&app, target, json!({ "visibleAttributes": null })).await?;
    assert!(reset["privacy"]["visibleAttributes"].is_null());
    Ok(())
}

#[tokio::test]
async fn hidden_emails_cannot_be_found_by_search() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 2).await?;
    let (target, colleague) = (&m[0], &m[1]);
    set_privacy(&app, target, json!({ "profileVisibility": "PRIVATE" })).await?;
    // The local part of the e-mail is the display name; search by the domain-qualified address.
    let found = run(&app, colleague, SEARCH, json!({ "s": target.email })).await?;
    assert!(ids(&found.data()?["users"]).is_empty(), "{}", found.body);
    let by_admin = run(&app, &admin, SEARCH, json!({ "s": target.email })).await?;
    assert_eq!(ids(&by_admin.data()?["users"]), vec![target.id.to_string()]);
    Ok(())
}

#[tokio::test]
async fn blocked_pairs_vanish_from_search_and_mutual_friends() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, m) = app.company_with_users("Acme", 4).await?;
    let (ann, bob, cat, dan) = (&m[0], &m[1], &m[2], &m[3]);
    // Cat is a friend of both Ann and Bob; Dan is a friend of Bob only.
    befriend(&app, ann, cat).await?;
    befriend(&app, bob, cat).await?;
    befriend(&app, bob, dan).await?;
    let mutual = run(&app, ann, MUTUAL, json!({ "id": bob.id })).await?;
    assert_eq!(
        ids(&mutual.data()?["user"]["mutualFriends"]),
        vec![cat.id.to_string()]
    );
    assert_eq!(mutual.data()?["user"]["mutualFriends"]["totalCount"], 1);

    run(&app, bob, BLOCK, json!({ "user": ann.id })).await?;
    for (viewer, other) in [(ann, bob), (bob, ann)] {
        let all = run(&app, viewer, SEARCH, json!({})).await?;
        let listed = ids(&all.data()?["users"]);
        assert!(!listed.contains(&other.id.to_string()), "{}", viewer.email);
        assert!(listed.contains(&cat.id.to_string()));
        let mutual = run(&app, viewer, MUTUAL, json!({ "id": other.id })).await?;
        assert!(ids(&mutual.data()?["user"]["mutualFriends"]).is_empty());
    }
    // Admins still see the whole company.
    let all = run(&app, &admin, SEARCH, json!({})).await?;
    assert_eq!(all.data()?["users"]["totalCount"], 5);
    Ok(())
}
