//! GraphiQL at `/`: its files come from the server (hashed names, long cache, a strict
//! Content-Security-Policy), and it works in a real browser with no other host reachable —
//! headless Chromium (Debian's `chromium`, installed by `scripts/install-deps.sh --all`)
//! driven over the DevTools protocol, failing every request that leaves the server's origin.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use chromiumoxide::{
    Browser, BrowserConfig, Page,
    cdp::browser_protocol::{
        fetch::{ContinueRequestParams, EventRequestPaused, FailRequestParams},
        input::{DispatchKeyEventParams, DispatchKeyEventType, InsertTextParams},
        network::{ErrorReason, EventWebSocketCreated},
    },
};
use futures_util::StreamExt;
use serde_json::json;
use tests::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Every wait of the browser test: generous, for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The `src` / `href` of the page's scripts and style sheets.
fn page_assets(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["src=\"", "href=\""] {
        for piece in page.split(marker).skip(1) {
            if let Some(end) = piece.find('"') {
                let url = &piece[..end];
                if url.starts_with('/') {
                    found.push(url.to_owned());
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn the_page_and_its_files_are_served_by_the_server() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let response = app.client.get(app.url("/")).send().await?;
    assert_eq!(response.status(), 200);
    let csp = header(&response, "content-security-policy").to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&response, "cache-control"), "no-cache");
    let page = response.text().await?;
    assert!(
        !page.contains("unpkg") && !page.contains("https://cdn"),
        "{page}"
    );
    let assets = page_assets(&page);
    assert_eq!(
        assets
            .iter()
            .filter(|a| a.starts_with("/graphiql/assets/"))
            .count(),
        7,
        "{assets:?}"
    );
    for asset in &assets {
        let response = app.client.get(app.url(asset)).send().await?;
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable",
            "{asset}"
        );
        let content_type = header(&response, "content-type").to_owned();
        let expected = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            content_type.starts_with(expected),
            "{asset}: {content_type}"
        );
        assert!(!response.bytes().await?.is_empty(), "{asset}");
    }
    // Only the hashed names exist: a stale or guessed name is not found.
    for path in [
        "/graphiql/assets/graphiql.min.js",
        "/graphiql/assets/graphiql.min.000000000000.js",
        "/graphiql/assets/..%2F..%2FCargo.toml",
    ] {
        let response = app.client.get(app.url(path)).send().await?;
        assert_eq!(response.status(), 404, "{path}");
    }
    Ok(())
}

/// A fresh Chromium profile directory, removed at the end.
struct Profile(PathBuf);

impl Profile {
    fn new() -> anyhow::Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("e2e-chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the browser asked for beyond the server's origin, and its WebSockets.
#[derive(Debug, Clone, Default)]
struct Traffic {
    blocked: Vec<String>,
    allowed: Vec<String>,
    websockets: Vec<String>,
}

/// Evaluates `expression` until it is true, for at most [`PATIENCE`].
async fn until(page: &Page, what: &str, expression: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let holds = page
            .evaluate(expression)
            .await
            .ok()
            .and_then(|result| result.into_value::<bool>().ok())
            .unwrap_or(false);
        if holds {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let response = text_of(page, RESPONSE).await.unwrap_or_default();
            anyhow::bail!(
                "timed out after {PATIENCE:?} waiting for {what}; result pane: {response}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(page: &Page, selector: &str) -> anyhow::Result<String> {
    let expression = format!(
        "(() => {{ const e = document.querySelector({}); return e ? e.innerText : ''; }})()",
        json!(selector)
    );
    Ok(page.evaluate(expression).await?.into_value::<String>()?)
}

const QUERY_EDITOR: &str = ".graphiql-query-editor .CodeMirror";
const HEADERS_EDITOR: &str = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror";
const RESPONSE: &str = ".graphiql-response .result-window";
const RUN: &str = ".graphiql-execute-button";

/// Clicks into the editor at `selector`, selects all its text (Ctrl-A) and types `text` over it.
async fn type_into(page: &Page, selector: &str, text: &str) -> anyhow::Result<()> {
    page.find_element(selector).await?.click().await?;
    for kind in [
        DispatchKeyEventType::RawKeyDown,
        DispatchKeyEventType::KeyUp,
    ] {
        page.execute(
            DispatchKeyEventParams::builder()
                .r#type(kind)
                .modifiers(2) // Ctrl
                .key("a")
                .code("KeyA")
                .windows_virtual_key_code(65)
                .build()
                .map_err(anyhow::Error::msg)?,
        )
        .await?;
    }
    page.execute(InsertTextParams::new(text)).await?;
    let typed = format!(
        "document.querySelector({}).CodeMirror.getValue() === {}",
        json!(selector),
        json!(text)
    );
    until(page, &format!("{text:?} in {selector}"), &typed).await
}

/// Presses the Run button once GraphiQL has parsed the document typed, whose one operation is
/// `name`: the active tab takes the operation's name then (with several operations the button
/// opens a menu of them instead).
async fn run(page: &Page, name: &str) -> anyhow::Result<()> {
    until(
        page,
        &format!("GraphiQL to read operation {name}"),
        &format!(
            "(() => {{ const tab = document.querySelector('.graphiql-tab-active'); \
             return !!tab && tab.innerText.trim() === {} && \
             !document.querySelector({}).hasAttribute('aria-haspopup'); }})()",
            json!(name),
            json!(RUN)
        ),
    )
    .await?;
    page.find_element(RUN).await?.click().await?;
    Ok(())
}

#[tokio::test]
async fn graphiql_runs_a_query_and_a_subscription_in_chromium_offline() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/install-deps.sh --all installs Debian's chromium"
    );
    let app = TestApp::spawn().await?;
    let (_, _, members) = app.company_with_users("Acme", 2).await?;
    let (ann, bob) = (&members[0], &members[1]);
    let origin = format!("http://{}", app.addr);

    let profile = Profile::new()?;
    let config = BrowserConfig::builder()
        .chrome_executable(CHROMIUM)
        .disable_default_args()
        .no_sandbox()
        .user_data_dir(&profile.0)
        .args([
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            // A second wall behind the interception: no host name resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .enable_request_intercept()
        .launch_timeout(PATIENCE)
        .request_timeout(PATIENCE)
        .build()
        .map_err(anyhow::Error::msg)?;
    let (mut browser, mut handler) = Browser::launch(config).await?;
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });

    let page = Arc::new(browser.new_page("about:blank").await?);
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    // Every request of the page pauses here: the server's origin goes on, anything else fails.
    let mut paused = page.event_listener::<EventRequestPaused>().await?;
    let mut sockets = page.event_listener::<EventWebSocketCreated>().await?;
    let gate = tokio::spawn({
        let page = page.clone();
        let traffic = traffic.clone();
        let origin = format!("{origin}/");
        async move {
            while let Some(event) = paused.next().await {
                let url = event.request.url.clone();
                let ours = url.starts_with(&origin);
                if let Ok(mut traffic) = traffic.lock() {
                    if ours {
                        traffic.allowed.push(url);
                    } else {
                        traffic.blocked.push(url);
                    }
                }
                let _ = if ours {
                    page.execute(ContinueRequestParams::new(event.request_id.clone()))
                        .await
                        .map(|_| ())
                } else {
                    page.execute(FailRequestParams::new(
                        event.request_id.clone(),
                        ErrorReason::BlockedByClient,
                    ))
                    .await
                    .map(|_| ())
                };
            }
        }
    });
    let socket_log = tokio::spawn({
        let traffic = traffic.clone();
        async move {
            while let Some(event) = sockets.next().await {
                if let Ok(mut traffic) = traffic.lock() {
                    traffic.websockets.push(event.url.clone());
                }
            }
        }
    });
    page.evaluate_on_new_document(
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
         (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
    )
    .await?;

    page.goto(format!("{origin}/")).await?;
    until(
        &page,
        "the editor",
        &format!("!!document.querySelector({})", json!(QUERY_EDITOR)),
    )
    .await?;
    // The default document is the README's first queries.
    let default_document = page
        .evaluate(format!(
            "document.querySelector({}).CodeMirror.getValue()",
            json!(QUERY_EDITOR)
        ))
        .await?
        .into_value::<String>()?;
    assert!(
        default_document.contains("signUp(input:") && default_document.contains("me {"),
        "{default_document}"
    );

    // A query typed in the editor, with a token typed in the Headers pane.
    let token = app.token_for(ann);
    type_into(
        &page,
        HEADERS_EDITOR,
        &format!("{{\"Authorization\": \"Bearer {token}\"}}"),
    )
    .await?;
    type_into(&page, QUERY_EDITOR, "query Me { me { email role } }").await?;
    run(&page, "Me").await?;
    until(
        &page,
        "the query's result",
        &format!(
            "document.querySelector({}).innerText.includes({})",
            json!(RESPONSE),
            json!(ann.email)
        ),
    )
    .await?;
    let result = text_of(&page, RESPONSE).await?;
    assert!(result.contains("\"role\": \"member\""), "{result}");

    // A subscription over /graphql/ws, authenticated by the Headers pane's token.
    type_into(
        &page,
        QUERY_EDITOR,
        "subscription Events { friendEvents { kind requestId userId } }",
    )
    .await?;
    run(&page, "Events").await?;
    // Nothing acknowledges a subscription: publish warm-up events for Ann until one shows.
    let topic = server::friends::events::topic(ann.id);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let warm_up = json!({
            "kind": "REQUEST_CANCELLED",
            "request_id": uuid::Uuid::nil(),
            "user_id": uuid::Uuid::nil(),
            "occurred_at": chrono::Utc::now(),
        });
        app.state().pubsub.publish(&topic, &warm_up).await;
        if text_of(&page, RESPONSE)
            .await?
            .contains("REQUEST_CANCELLED")
        {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the subscription never showed an event: {}",
            text_of(&page, RESPONSE).await?
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A real event: Bob asks Ann to be friends.
    let sent = app
        .graphql(
            Some(&app.token_for(bob)),
            "mutation($to: ID!) { sendFriendRequest(userId: $to) { id } }",
            json!({ "to": ann.id }),
        )
        .await?;
    let request_id = sent.data()?["sendFriendRequest"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(!request_id.is_empty(), "{:?}", sent.body);
    until(
        &page,
        "the friend request event",
        &format!(
            "document.querySelector({0}).innerText.includes('REQUEST_RECEIVED') && \
             document.querySelector({0}).innerText.includes({1})",
            json!(RESPONSE),
            json!(request_id)
        ),
    )
    .await?;

    let violations = page
        .evaluate("window.cspViolations")
        .await?
        .into_value::<Vec<String>>()?;
    browser.close().await?;
    let _ = browser.wait().await;
    driver.abort();
    gate.abort();
    socket_log.abort();

    let traffic = traffic
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    assert!(
        traffic.blocked.is_empty(),
        "the page asked for other hosts: {:?}",
        traffic.blocked
    );
    for asset in [
        "react.production.min.",
        "graphiql.min.",
        "graphql-ws.min.",
        "page.",
    ] {
        assert!(
            traffic.allowed.iter().any(|url| url.contains(asset)),
            "{asset} was not loaded: {:?}",
            traffic.allowed
        );
    }
    let ws = format!("ws://{}/graphql/ws", app.addr);
    assert!(!traffic.websockets.is_empty(), "no WebSocket was opened");
    assert!(
        traffic.websockets.iter().all(|url| url == &ws),
        "{:?}",
        traffic.websockets
    );
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    Ok(())
}
