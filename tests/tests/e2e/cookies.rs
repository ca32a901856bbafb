//! Cookie mode for browser apps, and its CSRF protection.

use serde_json::json;
use tests::{GqlResponse, TestApp};

const PASSWORD: &str = "correct horse battery";
const LOGIN: &str = "mutation { login(input: { email: \"ann@acme.example\", password: \"correct horse battery\", cookie: true }) { accessToken refreshToken user { email } } }";

struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn absorb(&mut self, response: &GqlResponse) {
        for name in ["access_token", "refresh_token", "csrf_token"] {
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
    for name in ["access_token", "refresh_token"] {
        let cookie = login.set_cookie(name).unwrap_or_default();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
    }
    let csrf = login.set_cookie("csrf_token").unwrap_or_default();
    assert!(!csrf.contains("HttpOnly"), "{csrf}");
    assert!(
        login
            .set_cookie("refresh_token")
            .unwrap_or_default()
            .contains("Path=/graphql")
    );
    // Private mode is off in tests: cookies are Secure by default.
    assert!(
        login
            .set_cookie("access_token")
            .unwrap_or_default()
            .contains("Secure")
    );
    assert!(!browser.get("access_token").is_empty());
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

    let csrf = browser.get("csrf_token");
    let out = browser
        .post(&app, Some(&csrf), "mutation { logout }")
        .await?;
    assert_eq!(out.data()?["logout"], true);
    assert!(
        out.set_cookie("access_token")
            .unwrap_or_default()
            .contains("Max-Age=0")
    );
    assert!(browser.get("access_token").is_empty());
    Ok(())
}

#[tokio::test]
async fn refresh_in_cookie_mode_reads_and_rotates_the_cookie() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let (mut browser, _) = signed_in_browser(&app).await?;
    let before = browser.get("refresh_token");
    let csrf = browser.get("csrf_token");
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
    let after = browser.get("refresh_token");
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
    let csrf = browser.get("csrf_token");
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
