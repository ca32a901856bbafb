//! Cookie mode for browser apps, and its CSRF protection.

use serde_json::json;
use server::auth::cookies::names;
use tests::{GqlResponse, TestApp};

/// Tests run without private mode, so cookies are `Secure` and `__Host-` prefixed.
const ACCESS: &str = "__Host-access_token";
const REFRESH: &str = "__Host-refresh_token";
const CSRF: &str = "__Host-csrf_token";

const PASSWORD: &str = "correct horse battery";
const LOGIN: &str = "mutation { login(input: { email: \"ann@acme.example\", password: \"correct horse battery\", cookie: true }) { accessToken refreshToken user { email } } }";

struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn absorb(&mut self, response: &GqlResponse) {
        for name in [ACCESS, REFRESH, CSRF] {
            if let Some(value) = response.cookie(name) {
                self.cookies.retain(|(n, _)| n != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_owned(), value));
                }
            }
        }
    }

    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> String {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    async fn post(
        &mut self,
        app: &TestApp,
        csrf: Option<&str>,
        query: &str,
    ) -> anyhow::Result<GqlResponse> {
        let cookie = self.header();
        let mut headers = vec![("cookie", cookie.as_str())];
        if let Some(csrf) = csrf {
            headers.push(("x-csrf-token", csrf));
        }
        let response = app.graphql_with(&headers, None, query, json!({})).await?;
        self.absorb(&response);
        Ok(response)
    }
}

async fn signed_in_browser(app: &TestApp) -> anyhow::Result<(Browser, GqlResponse)> {
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let mut browser = Browser {
        cookies: Vec::new(),
    };
    let login = browser.post(app, None, LOGIN).await?;
    Ok((browser, login))
}

#[tokio::test]
async fn cookie_login_sets_httponly_cookies_and_keeps_tokens_out_of_the_body() -> anyhow::Result<()>
{
    let app = TestApp::spawn().await?;
    let (browser, login) = signed_in_browser(&app).await?;
    let data = &login.data()?["login"];
    assert_eq!(data["accessToken"], "");
    assert_eq!(data["refreshToken"], "");
    assert_eq!(data["user"]["email"], "ann@acme.example");
    for name in [ACCESS, REFRESH] {
        let cookie = login.set_cookie(name).unwrap_or_default();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
    }
    let csrf = login.set_cookie(CSRF).unwrap_or_default();
    assert!(!csrf.contains("HttpOnly"), "{csrf}");
    // `__Host-` cookies are host-only, for every path.
    assert!(
        login
            .set_cookie(REFRESH)
            .unwrap_or_default()
            .contains("Path=/")
    );
    // Private mode is off in tests: cookies are Secure by default.
    assert!(
        login
            .set_cookie(ACCESS)
            .unwrap_or_default()
            .contains("Secure")
    );
    assert!(!browser.get(ACCESS).is_empty());
    Ok(())
}

#[tokio::test]
async fn cookies_authenticate_queries_but_mutations_need_the_csrf_header() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (mut browser, _) = signed_in_browser(&app).await?;
    let me = browser.post(&app, None, "{ me { email } }").await?;
    assert_eq!(me.data()?["me"]["email"], "ann@acme.example");

    let without = browser.post(&app, None, "mutation { logout }").await?;
    assert_eq!(
        (without.status, without.error_code()),
        (403, Some("FORBIDDEN"))
    );
    let wrong = browser
        .post(&app, Some("not-the-csrf-value"), "mutation { logout }")
        .await?;
    assert_eq!((wrong.status, wrong.error_code()), (403, Some("FORBIDDEN")));

    let csrf = browser.get(CSRF);
    let out = browser
        .post(&app, Some(&csrf), "mutation { logout }")
        .await?;
    assert_eq!(out.data()?["logout"], true);
    assert!(
        out.set_cookie(ACCESS)
            .unwrap_or_default()
            .contains("Max-Age=0")
    );
    assert!(browser.get(ACCESS).is_empty());
    Ok(())
}

#[tokio::test]
async fn refresh_in_cookie_mode_reads_and_rotates_the_cookie() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (mut browser, _) = signed_in_browser(&app).await?;
    let before = browser.get(REFRESH);
    let csrf = browser.get(CSRF);
    let refreshed = browser
        .post(
            &app,
            Some(&csrf),
            "mutation { refreshToken { accessToken user { email } } }",
        )
        .await?;
    assert_eq!(
        refreshed.data()?["refreshToken"]["user"]["email"],
        "ann@acme.example"
    );
    assert_eq!(refreshed.data()?["refreshToken"]["accessToken"], "");
    let after = browser.get(REFRESH);
    assert!(!after.is_empty() && after != before);
    let me = browser.post(&app, None, "{ me { email } }").await?;
    assert!(me.data().is_ok());
    Ok(())
}

#[tokio::test]
async fn a_bearer_header_takes_precedence_over_cookies() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (browser, _) = signed_in_browser(&app).await?;
    let (_, other_admin, _) = app.company_with_users("Globex", 0).await?;
    let cookie = browser.header();
    let response = app
        .graphql_with(
            &[("cookie", cookie.as_str())],
            Some(&app.token_for(&other_admin)),
            "{ me { email } }",
            json!({}),
        )
        .await?;
    assert_eq!(response.data()?["me"]["email"], json!(other_admin.email));
    // And a bearer-authenticated mutation needs no CSRF header.
    let logout = app
        .graphql_with(
            &[("cookie", cookie.as_str())],
            Some(&app.token_for(&other_admin)),
            "mutation { logout }",
            json!({}),
        )
        .await?;
    assert_eq!(logout.data()?["logout"], true);
    Ok(())
}

#[tokio::test]
async fn a_revoked_session_cookie_does_not_stop_signing_in_again() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (mut browser, _) = signed_in_browser(&app).await?;
    let stale = browser.header();
    let csrf = browser.get(CSRF);
    browser
        .post(&app, Some(&csrf), "mutation { logout }")
        .await?;
    // The browser still sends the old cookies (say, the logout response was lost).
    let me = app
        .graphql_with(
            &[("cookie", stale.as_str())],
            None,
            "{ me { email } }",
            json!({}),
        )
        .await?;
    assert_eq!(me.error_code(), Some("UNAUTHENTICATED"));
    let again = app
        .graphql_with(
            &[("cookie", stale.as_str()), ("x-csrf-token", csrf.as_str())],
            None,
            LOGIN,
            json!({}),
        )
        .await?;
    assert_eq!(again.data()?["login"]["user"]["email"], "ann@acme.example");
    Ok(())
}

#[tokio::test]
async fn login_issues_a_csrf_token_of_its_own_session_never_a_planted_one() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let planted = "attacker-chosen-value";
    let mut browser = Browser {
        cookies: vec![(CSRF.to_owned(), planted.to_owned())],
    };
    browser.post(&app, None, LOGIN).await?;
    let csrf = browser.get(CSRF);
    assert_ne!(csrf, planted);
    // It names the session and is signed: `<session id>.<mac>`.
    let (session, mac) = csrf.split_once('.').unwrap_or_default();
    assert!(
        uuid::Uuid::parse_str(session).is_ok() && !mac.is_empty(),
        "{csrf}"
    );
    // The planted value never authorizes a mutation, the issued one does.
    let refused = browser
        .post(&app, Some(planted), "mutation { logout }")
        .await;
    assert_eq!(refused?.status, 403);
    let done = browser
        .post(&app, Some(&csrf), "mutation { logout }")
        .await?;
    assert_eq!(done.data()?["logout"], true);
    Ok(())
}

#[tokio::test]
async fn two_csrf_cookies_or_another_sessions_token_are_refused() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (browser, _) = signed_in_browser(&app).await?;
    let csrf = browser.get(CSRF);
    // A second sign-in (another tab, another device) has a token of its own session.
    let mut second = Browser {
        cookies: Vec::new(),
    };
    second.post(&app, None, LOGIN).await?;
    let other_csrf = second.get(CSRF);
    assert_ne!(csrf, other_csrf);

    let cookie = browser.header();
    let mixed = cookie.replace(&csrf, &other_csrf);
    let response = app
        .graphql_with(
            &[
                ("cookie", mixed.as_str()),
                ("x-csrf-token", other_csrf.as_str()),
            ],
            None,
            "mutation { logout }",
            json!({}),
        )
        .await?;
    assert_eq!(response.status, 403, "{}", response.body);

    let doubled = format!("{cookie}; {CSRF}={csrf}");
    let response = app
        .graphql_with(
            &[
                ("cookie", doubled.as_str()),
                ("x-csrf-token", csrf.as_str()),
            ],
            None,
            "mutation { logout }",
            json!({}),
        )
        .await?;
    assert_eq!(response.status, 403, "{}", response.body);

    // The refresh cookie alone, with the other session's token: refused too.
    let refresh_only = format!("{REFRESH}={}; {CSRF}={other_csrf}", browser.get(REFRESH));
    let response = app
        .graphql_with(
            &[
                ("cookie", refresh_only.as_str()),
                ("x-csrf-token", other_csrf.as_str()),
            ],
            None,
            "mutation { refreshToken { expiresAt } }",
            json!({}),
        )
        .await?;
    assert_eq!(
        response.error_code(),
        Some("FORBIDDEN"),
        "{}",
        response.body
    );
    Ok(())
}

#[tokio::test]
async fn without_secure_cookies_the_plain_names_are_used_and_the_prefixed_ones_ignored()
-> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.cookie_secure = Some(false)).await?;
    app.sign_up("Acme", "ann@acme.example", PASSWORD).await?;
    let login = app.graphql(None, LOGIN, json!({})).await?;
    let plain = names(false);
    assert!(login.set_cookie(plain.access).is_some());
    assert!(
        login
            .set_cookie(plain.refresh)
            .unwrap_or_default()
            .contains("Path=/graphql")
    );
    assert!(login.set_cookie(ACCESS).is_none());
    // In Secure mode, a plain-named cookie (which a sibling subdomain could plant) is ignored.
    let secure = TestApp::spawn().await?;
    let token = secure
        .sign_up("Globex", "bob@globex.example", PASSWORD)
        .await?["accessToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let me = secure
        .graphql_with(
            &[("cookie", format!("access_token={token}").as_str())],
            None,
            "{ me { email } }",
            json!({}),
        )
        .await?;
    assert_eq!(me.error_code(), Some("UNAUTHENTICATED"), "{}", me.body);
    Ok(())
}
