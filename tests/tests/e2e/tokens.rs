//! Access-token handling: anything but a valid token for a live user is UNAUTHENTICATED.

use base64::Engine as _;
use serde_json::json;
use tests::TestApp;

const ME: &str = "{ me { id email role } }";

async fn status_and_code(
    app: &TestApp,
    authorization: &str,
) -> anyhow::Result<(u16, Option<String>)> {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", authorization)
        .json(&json!({ "query": ME }))
        .send()
        .await?;
    let response = tests::GqlResponse::from_reqwest(response).await?;
    Ok((response.status, response.error_code().map(str::to_owned)))
}

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn a_valid_token_resolves_me() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let response = app
        .graphql(Some(&app.token_for(&admin)), ME, json!({}))
        .await?;
    assert_eq!(response.data()?["me"]["email"], json!(admin.email));
    assert_eq!(response.data()?["me"]["role"], "admin");
    Ok(())
}

#[tokio::test]
async fn missing_token_is_unauthenticated_for_protected_fields() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let response = app.graphql(None, ME, json!({})).await?;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(response.body["data"], json!(null));
    Ok(())
}

#[tokio::test]
async fn malformed_and_forged_tokens_are_rejected() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, _) = app.company_with_users("Acme", 0).await?;
    let claims = app.claims_for(&admin);
    let valid = app.token_for(&admin);
    let now = chrono::Utc::now().timestamp();

    let mut expired = claims.clone();
    expired["iat"] = json!(now - 3600);
    expired["exp"] = json!(now - 60);
    let mut not_yet = claims.clone();
    not_yet["nbf"] = json!(now + 600);
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("another-api");
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("someone-else");
    let mut no_aud = claims.clone();
    no_aud.as_object_mut().map(|c| c.remove("aud"));
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().map(|c| c.remove("exp"));
    let mut tampered = claims.clone();
    tampered["role"] = json!("superadmin");
    let tampered = {
        // Keep the original signature on altered claims.
        let parts: Vec<&str> = valid.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(&tampered), parts[2])
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims)
    );

    let cases = [
        ("no scheme", valid.clone()),
        ("basic scheme", format!("Basic {valid}")),
        ("empty bearer", "Bearer ".to_owned()),
        ("garbage", "Bearer not.a.jwt".to_owned()),
        (
            "wrong signature",
            format!(
                "Bearer {}",
                tests::sign_hs256(&claims, b"another-secret-another-secret-0123456789")
            ),
        ),
        ("alg none", format!("Bearer {alg_none}")),
        ("tampered claims", format!("Bearer {tampered}")),
        ("expired", format!("Bearer {}", app.sign(&expired))),
        ("not yet valid", format!("Bearer {}", app.sign(&not_yet))),
        ("wrong audience", format!("Bearer {}", app.sign(&wrong_aud))),
        ("wrong issuer", format!("Bearer {}", app.sign(&wrong_iss))),
        ("missing audience", format!("Bearer {}", app.sign(&no_aud))),
        ("missing expiry", format!("Bearer {}", app.sign(&no_exp))),
    ];
    for (name, header) in cases {
        let (status, code) = status_and_code(&app, &header).await?;
        assert_eq!(
            (status, code.as_deref()),
            (401, Some("UNAUTHENTICATED")),
            "{name}"
        );
    }
    // And the valid one still works.
    let (status, code) = status_and_code(&app, &format!("Bearer {valid}")).await?;
    assert_eq!((status, code), (200, None));
    Ok(())
}

#[tokio::test]
async fn a_token_claiming_another_company_is_unauthenticated() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, a_admin, _) = app.company_with_users("Acme", 0).await?;
    let (b, _, _) = app.company_with_users("Globex", 1).await?;
    let mut claims = app.claims_for(&a_admin);
    claims["company"] = json!(b);
    let response = app
        .graphql(
            Some(&app.sign(&claims)),
            "{ users { totalCount } }",
            json!({}),
        )
        .await?;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    assert_eq!(response.body["data"], json!(null));
    Ok(())
}

#[tokio::test]
async fn a_token_of_a_deactivated_or_demoted_user_is_unauthenticated() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (_, admin, members) = app.company_with_users("Acme", 2).await?;
    let (deactivated, demoted) = (&members[0], &admin);
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.admin,
        &format!(
            "UPDATE users SET is_active = false WHERE id = '{}'",
            deactivated.id
        ),
    )
    .await?;
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.admin,
        &format!(
            "UPDATE users SET role = 'member' WHERE id = '{}'",
            demoted.id
        ),
    )
    .await?;
    for user in [deactivated, demoted] {
        let response = app
            .graphql(Some(&app.token_for(user)), ME, json!({}))
            .await?;
        assert_eq!(
            response.error_code(),
            Some("UNAUTHENTICATED"),
            "{}",
            user.email
        );
    }
    let still_fine = app
        .graphql(Some(&app.token_for(&members[1])), ME, json!({}))
        .await?;
    assert!(still_fine.data().is_ok());
    Ok(())
}
