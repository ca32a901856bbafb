//! The real OpenID provider of the tests (`tests/fixtures/oidc-provider`: the `oidc-provider`
//! npm package under Node.js), started once per test run, and a small browser that walks a
//! sign-in through the server and the provider with plain HTTP: it keeps cookies per host and
//! follows redirects one by one, so a test can stop before any step and alter it.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// The running provider.
pub struct OidcProvider {
    pub issuer: String,
    // Held so that it lives as long as the test process; it exits when its stdin closes.
    _child: Child,
}

static PROVIDER: OnceCell<OidcProvider> = OnceCell::const_new();

/// The provider shared by every test of the run, started on first use.
pub async fn provider() -> anyhow::Result<&'static OidcProvider> {
    PROVIDER.get_or_try_init(OidcProvider::start).await
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/oidc-provider")
}

impl OidcProvider {
    async fn start() -> anyhow::Result<Self> {
        let dir = fixture_dir();
        if !dir.join("node_modules/oidc-provider").is_dir() {
            // `make deps` / `make test` install it; a bare `cargo test` does it here.
            let install = dir.clone();
            let status = tokio::task::spawn_blocking(move || {
                Command::new("npm")
                    .args(["ci", "--no-fund", "--no-audit", "--loglevel=error"])
                    .current_dir(&install)
                    .status()
            })
            .await?
            .context(
                "run npm ci for the OpenID provider of the tests (Node.js and npm are needed)",
            )?;
            anyhow::ensure!(
                status.success(),
                "npm ci in {} failed ({status}); run `make deps`",
                dir.display()
            );
        }
        // A std process, not tied to the runtime of the test that happened to start it.
        let mut child = Command::new("node")
            .arg("provider.js")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start node (Node.js is needed for the OpenID provider of the tests)")?;
        let stdout = child.stdout.take().context("provider stdout")?;
        let (ready, issuer) = std::sync::mpsc::channel();
        // Reads the READY line, then drains the output so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(issuer) = line.strip_prefix("READY ") {
                    let _ = ready.send(issuer.trim().to_owned());
                    sent = true;
                }
            }
        });
        let issuer =
            tokio::task::spawn_blocking(move || issuer.recv_timeout(Duration::from_secs(60)))
                .await?
                .context("the OpenID provider did not start within 60 s")?;
        Ok(Self {
            issuer,
            _child: child,
        })
    }

    /// A client of the calling test's runtime (a client's connections belong to the runtime
    /// that opened them, and each test has its own).
    fn http() -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = Self::http()?
            .post(self.url(path))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
        Ok(body)
    }

    /// Registers a client (dynamic client registration) for `redirect_uri`: its id and secret.
    pub async fn register_client(&self, redirect_uri: &str) -> anyhow::Result<(String, String)> {
        let client = self
            .post(
                "/reg",
                json!({
                    "redirect_uris": [redirect_uri],
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                }),
            )
            .await?;
        Ok((
            client["client_id"]
                .as_str()
                .context("client_id")?
                .to_owned(),
            client["client_secret"]
                .as_str()
                .context("client_secret")?
                .to_owned(),
        ))
    }

    /// Creates (or replaces) account `id` with `email`; `tamper` alters its ID tokens (see
    /// provider.js: `claims`, `expired`, `replayNonce`, `strayKey`).
    pub async fn account(
        &self,
        id: &str,
        email: &str,
        verified: bool,
        tamper: Option<Value>,
    ) -> anyhow::Result<()> {
        self.post(
            "/admin/accounts",
            json!({ "id": id, "email": email, "email_verified": verified, "name": id, "tamper": tamper }),
        )
        .await?;
        Ok(())
    }

    /// Signs with a new key from now on; the old one leaves the JWKS. The new key's id.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let body = self.post("/admin/rotate", json!({})).await?;
        Ok(body["kid"].as_str().context("kid")?.to_owned())
    }

    /// The id of the key the provider signs with now.
    pub async fn current_kid(&self) -> anyhow::Result<String> {
        let stats: Value = Self::http()?
            .get(self.url("/admin/stats"))
            .send()
            .await?
            .json()
            .await?;
        Ok(stats["kid"].as_str().context("kid")?.to_owned())
    }
}

/// One step of a walk: where the browser was sent and what it got.
#[derive(Debug, Clone)]
pub struct Hop {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// A browser for the tests: cookies per `host:port` (attributes ignored), no automatic
/// redirects.
pub struct Browser {
    http: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

fn host_of(url: &reqwest::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl Browser {
    pub fn new() -> Self {
        #[allow(clippy::expect_used)]
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        Self {
            http,
            jar: HashMap::new(),
        }
    }

    /// The cookie `name` the browser holds for the host of `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).ok()?;
        self.jar.get(&host_of(&url))?.get(name).cloned()
    }

    /// Sets a cookie for the host of `url`.
    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) -> anyhow::Result<()> {
        let url = reqwest::Url::parse(url)?;
        self.jar
            .entry(host_of(&url))
            .or_default()
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// One GET with the cookies of its host; stores the cookies it sets (an empty value or
    /// `Max-Age=0` removes one).
    pub async fn get(&mut self, url: &str) -> anyhow::Result<Hop> {
        self.get_with(url, &[]).await
    }

    /// [`Browser::get`] with extra headers.
    pub async fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Hop> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
        let host = host_of(&parsed);
        let mut request = self.http.get(parsed.clone());
        if let Some(cookies) = self.jar.get(&host).filter(|c| !c.is_empty()) {
            let header = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header("cookie", header);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        for set in response.headers().get_all("set-cookie") {
            let Ok(set) = set.to_str() else { continue };
            let first = set.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let cookies = self.jar.entry(host.clone()).or_default();
            if value.is_empty() || set.to_ascii_lowercase().contains("max-age=0") {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| parsed.join(l).map(|u| u.to_string()))
            .transpose()?;
        let body = response.text().await.unwrap_or_default();
        Ok(Hop {
            url: url.to_owned(),
            status,
            location,
            body,
        })
    }

    /// Follows redirects from `url` until one leads to a URL starting with `stop_at` (which it
    /// returns, not visited) or a response is no redirect (an error naming it).
    pub async fn follow_until(&mut self, url: &str, stop_at: &str) -> anyhow::Result<String> {
        let mut next = url.to_owned();
        for _ in 0..20 {
            if next.starts_with(stop_at) {
                return Ok(next);
            }
            let hop = self.get(&next).await?;
            match hop.location {
                Some(location) if (300..400).contains(&hop.status) => next = location,
                _ => anyhow::bail!(
                    "{} answered {} without reaching {stop_at}: {}",
                    hop.url,
                    hop.status,
                    hop.body
                ),
            }
        }
        anyhow::bail!("more than 20 redirects from {url}")
    }
}
