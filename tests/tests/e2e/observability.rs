//! Metrics, the access log and traces.
//!
//! In process: `/metrics` after real requests (counts by outcome, a rate-limit rejection, a
//! failed chat reply, Redis fallbacks) and closed unless configured. The recorder is global to
//! the test process, so exact counts are asserted only for operation names no other test uses,
//! and shared series by how much they grew.
//!
//! The real binary as a child process: its stdout in JSON (one object per line from the
//! first, with the access log line and without PostgreSQL's notices while it migrates) and in
//! text, and the spans it exports to an OTLP/HTTP receiver on loopback, under the request's
//! `traceparent`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value,
};
use prost::Message as _;
use serde_json::{Value, json};
use tests::{
    TEST_JWT_SECRET, TestApp, cluster, eventually,
    fake_llm::{FakeLlm, Reply},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use super::chat_support::{chat_app, create_conversation, member, send_ok, stored, subscribe};

const TOKEN: &str = "metrics-token-0123456789";
const WAIT: Duration = Duration::from_secs(60);

/// One sample of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let mut labels = BTreeMap::new();
                for pair in rest.trim_end_matches('}').split("\",") {
                    if let Some((key, value)) = pair.split_once("=\"") {
                        labels.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
                    }
                }
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The sum of the samples of `name` carrying every label of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

async fn scrape(app: &TestApp) -> anyhow::Result<Vec<Sample>> {
    let (status, text) = get(&app.client, &app.url("/metrics"), Some(TOKEN)).await?;
    anyhow::ensure!(status == 200, "GET /metrics: {status} {text}");
    Ok(parse_metrics(&text))
}

#[tokio::test]
async fn metrics_count_operations_by_outcome_rate_limits_and_failed_replies() -> anyhow::Result<()>
{
    let fake = FakeLlm::start(Reply::Status {
        code: 500,
        retry_after: None,
    })
    .await?;
    let app = chat_app(&fake, |c| {
        c.metrics_token = Some(TOKEN.into());
        c.rate_limit_login_per_email = 1;
        c.llm_breaker_threshold = 1;
        c.llm_breaker_cool_down_secs = 3600;
    })
    .await?;
    let url = app.url("/metrics");

    // Closed without the token.
    let (status, _) = get(&app.client, &url, None).await?;
    assert_eq!(status, 401);
    let (status, _) = get(&app.client, &url, Some("not-the-metrics-token")).await?;
    assert_eq!(status, 401);
    let before = scrape(&app).await?;

    let (user, token) = member(&app, "Acme").await?;
    for _ in 0..3 {
        app.graphql(Some(&token), "query ObsMe { me { id } }", json!({}))
            .await?
            .data()?;
    }
    let anonymous = app
        .graphql(None, "query ObsMe { me { id } }", json!({}))
        .await?;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    let invalid = app
        .graphql(Some(&token), "query ObsInvalid { noSuchField }", json!({}))
        .await?;
    assert_eq!(invalid.error_code(), Some("BAD_USER_INPUT"));
    // Refused before it runs: the credentials are not a token.
    let refused = app
        .graphql(Some("not-a-token"), "query ObsMe { me { id } }", json!({}))
        .await?;
    assert_eq!(refused.status, 401);

    // The second login attempt for the address is over RATE_LIMIT_LOGIN_PER_EMAIL.
    let login = "mutation ObsLogin($input: LoginInput!) { login(input: $input) { accessToken } }";
    let attempt = json!({ "input": { "email": user.email, "password": "not the password" } });
    let first = app.graphql(None, login, attempt.clone()).await?;
    assert_ne!(first.error_code(), Some("RATE_LIMITED"));
    let second = app.graphql(None, login, attempt).await?;
    assert_eq!(second.error_code(), Some("RATE_LIMITED"));

    // A subscriber, and a reply the provider fails (which opens the breaker: threshold 1).
    let conversation = create_conversation(&app, &token, None).await?;
    let _subscriber = subscribe(app.addr, &token, &conversation).await?;
    let reply = send_ok(&app, &token, &conversation, "Hello").await?;
    eventually(WAIT, "the reply to fail", || async {
        stored(&app, &user, &reply)
            .await
            .is_ok_and(|m| m["status"] == "failed")
    })
    .await?;

    let grew = |after: &[Sample], name: &str, labels: &[(&str, &str)]| {
        value(after, name, labels) - value(&before, name, labels)
    };
    eventually(WAIT, "the subscription to be counted", || async {
        scrape(&app).await.is_ok_and(|after| {
            value(
                &after,
                "graphql_subscriptions",
                &[("field", "conversationEvents")],
            ) >= 1.0
        })
    })
    .await?;
    let after = scrape(&app).await?;

    let ops = "graphql_requests_total";
    let me_ok = [("operation", "ObsMe"), ("type", "query"), ("outcome", "ok")];
    assert_eq!(value(&after, ops, &me_ok), 3.0);
    let me_unauthenticated = [
        ("operation", "ObsMe"),
        ("type", "query"),
        ("outcome", "UNAUTHENTICATED"),
    ];
    assert_eq!(value(&after, ops, &me_unauthenticated), 1.0);
    let invalid = [("operation", "ObsInvalid"), ("outcome", "BAD_USER_INPUT")];
    assert_eq!(value(&after, ops, &invalid), 1.0);
    let limited = [
        ("operation", "ObsLogin"),
        ("type", "mutation"),
        ("outcome", "RATE_LIMITED"),
    ];
    assert_eq!(value(&after, ops, &limited), 1.0);
    assert_eq!(value(&after, ops, &[("operation", "ObsLogin")]), 2.0);
    let refused = [("operation", "unknown"), ("outcome", "UNAUTHENTICATED")];
    assert!(grew(&after, ops, &refused) >= 1.0);
    assert_eq!(
        value(
            &after,
            "graphql_request_duration_seconds_count",
            &[("operation", "ObsMe"), ("type", "query")]
        ),
        4.0
    );
    assert!(
        grew(
            &after,
            "http_requests_total",
            &[("route", "/graphql"), ("status", "401")]
        ) >= 2.0
    );

    assert!(
        grew(
            &after,
            "rate_limit_rejections_total",
            &[("limit", "login_email")]
        ) >= 1.0
    );
    assert!(grew(&after, "chat_replies_started_total", &[]) >= 1.0);
    assert!(grew(&after, "chat_replies_total", &[("outcome", "failed")]) >= 1.0);
    assert!(grew(&after, "llm_circuit_breaker_opened_total", &[]) >= 1.0);
    // Read from this server when scraped.
    assert_eq!(value(&after, "llm_circuit_breaker_open", &[]), 1.0);
    assert_eq!(value(&after, "db_pool_max_connections", &[]), 4.0);
    let open = value(&after, "db_pool_connections", &[]);
    assert!((1.0..=4.0).contains(&open), "{open}");
    assert!(grew(&after, "db_pool_acquire_seconds_count", &[]) >= 4.0);
    assert!(value(&after, "websocket_connections", &[]) >= 1.0);
    assert!(grew(&after, "websocket_connections_total", &[]) >= 1.0);

    // The breaker refuses the next message at once.
    let next = super::chat_support::send(&app, &token, &conversation, "Again").await?;
    assert_eq!(next.error_code(), Some("UNAVAILABLE"));
    Ok(())
}

#[tokio::test]
async fn metrics_are_closed_unless_configured() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(|c| c.metrics_addr = "127.0.0.1:0".parse().ok()).await?;
    // No token: not on the main listener.
    let (status, _) = get(&app.client, &app.url("/metrics"), None).await?;
    assert_eq!(status, 404);
    // On its own listener, without a token.
    let addr = app
        .metrics_addr()
        .ok_or_else(|| anyhow::anyhow!("no metrics listener"))?;
    app.graphql(None, "query ObsListener { __typename }", json!({}))
        .await?
        .data()?;
    let (status, text) = get(&app.client, &format!("http://{addr}/metrics"), None).await?;
    assert_eq!(status, 200, "{text}");
    let samples = parse_metrics(&text);
    assert_eq!(
        value(
            &samples,
            "graphql_requests_total",
            &[("operation", "ObsListener"), ("outcome", "ok")]
        ),
        1.0
    );

    // A guessable token is refused at start-up.
    let mut config = app.config.clone();
    config.metrics_addr = None;
    config.metrics_token = Some("short".into());
    let error = server::start(config)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(error.contains("METRICS_TOKEN"), "{error}");
    Ok(())
}

#[tokio::test]
async fn redis_fallbacks_are_counted() -> anyhow::Result<()> {
    let mut app =
        TestApp::spawn_with_own_redis_and(|c| c.metrics_token = Some(TOKEN.into())).await?;
    let (_, _, members) = app.company_with_users("Acme", 1).await?;
    let user = members
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no member"))?;
    let token = app.token_for(&user);
    let before = scrape(&app).await?;
    if let Some(redis) = app.own_redis.as_mut() {
        redis.stop();
    }
    // The session is checked in PostgreSQL, the login attempt limited in process.
    app.graphql(Some(&token), "{ me { id } }", json!({}))
        .await?
        .data()?;
    let login = app.login(&user.email, "not the password").await?;
    assert_ne!(login.error_code(), Some("RATE_LIMITED"));
    let after = scrape(&app).await?;
    for component in ["session_cache", "rate_limit"] {
        let labels = [("component", component)];
        assert!(
            value(&after, "redis_fallbacks_total", &labels)
                > value(&before, "redis_fallbacks_total", &labels),
            "{component}"
        );
        assert!(
            value(&after, "redis_errors_total", &labels)
                > value(&before, "redis_errors_total", &labels),
            "{component}"
        );
    }
    Ok(())
}

/// The `server` binary next to this test binary (`target/debug/server`: `make test` builds
/// it first).
fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/e2e-<hash> -> target/debug/server
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| anyhow::anyhow!("no target directory above {}", exe.display()))?;
    let binary = dir.join(format!("server{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: build it first (`cargo build -p server-cli`; `make test` does)",
        binary.display()
    );
    Ok(binary)
}

/// The binary serving as a child process, its output collected line by line.
struct Child {
    process: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Child {
    async fn spawn(env: &[(&str, String)]) -> anyhow::Result<Self> {
        let dir = cluster()
            .await?
            .dir()
            .join(format!("child-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut command = tokio::process::Command::new(server_binary()?);
        command
            .arg("serve")
            // Nothing inherited: no RUST_LOG, no .env (the working directory has none).
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATA_DIR", &dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut process = command.spawn()?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = process.stdout.take() {
            tokio::spawn(collect(out, stdout.clone()));
        }
        if let Some(err) = process.stderr.take() {
            tokio::spawn(collect(err, stderr.clone()));
        }
        Ok(Self {
            process,
            stdout,
            stderr,
        })
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn output(&self) -> String {
        let err = self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{err}", self.lines().join("\n"))
    }

    /// The first line `matches` accepts, waiting for it.
    async fn line(&self, what: &str, matches: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let found = eventually(Duration::from_secs(120), what, || async {
            self.lines().iter().any(|l| matches(l))
        })
        .await;
        if let Err(error) = found {
            anyhow::bail!("{error}\n{}", self.output());
        }
        self.lines()
            .into_iter()
            .find(|l| matches(l))
            .ok_or_else(|| anyhow::anyhow!("{what}: gone"))
    }

    /// SIGTERM, and the exit (which must be clean).
    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.process.id() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid)?),
                nix::sys::signal::Signal::SIGTERM,
            )?;
        }
        let status = tokio::time::timeout(WAIT, self.process.wait()).await??;
        anyhow::ensure!(status.success(), "exit {status}\n{}", self.output());
        // The reader tasks end at EOF; what remains is read by now or never will be.
        eventually(Duration::from_secs(10), "stdout to close", || async {
            Arc::strong_count(&self.stdout) == 1
        })
        .await?;
        Ok(())
    }
}

async fn collect(stream: impl tokio::io::AsyncRead + Unpin, into: Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut all) = into.lock() {
            all.push(line);
        }
    }
}

/// The path and body of every request a [`Receiver`] got.
type Posts = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A span as exported: ids in hex.
#[derive(Debug, Clone)]
struct ExportedSpan {
    trace_id: String,
    span_id: String,
    parent_id: String,
    name: String,
    attributes: BTreeMap<String, String>,
}

/// An OTLP/HTTP receiver on loopback: records every POST's path and body, answers 200.
struct Receiver {
    addr: SocketAddr,
    posts: Posts,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let posts = Arc::new(Mutex::new(Vec::new()));
        let recorded = posts.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let _ = receive(socket, recorded).await;
                });
            }
        });
        Ok(Self { addr, posts, task })
    }

    /// Every span received.
    fn spans(&self) -> Vec<ExportedSpan> {
        let posts = self.posts.lock().map(|p| p.clone()).unwrap_or_default();
        let mut spans = Vec::new();
        for (path, body) in posts {
            if path != "/v1/traces" {
                continue;
            }
            let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) else {
                continue;
            };
            for span in request
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
            {
                let attributes = span
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        let value = match kv.value.as_ref()?.value.as_ref()? {
                            any_value::Value::StringValue(s) => s.clone(),
                            any_value::Value::IntValue(i) => i.to_string(),
                            other => format!("{other:?}"),
                        };
                        Some((kv.key.clone(), value))
                    })
                    .collect();
                spans.push(ExportedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                    name: span.name,
                    attributes,
                });
            }
        }
        spans
    }
}

/// One HTTP/1.1 connection: requests with a Content-Length body, each answered 200.
async fn receive(socket: tokio::net::TcpStream, posts: Posts) -> anyhow::Result<()> {
    let mut reader = BufReader::new(socket);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        if let Ok(mut posts) = posts.lock() {
            posts.push((path, body));
        }
        reader
            .get_mut()
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
            )
            .await?;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every stdout line is one JSON object with at most one `message` key; the lines that match.
fn json_lines(child: &Child) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for line in child.lines() {
        let object: Value =
            serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("not JSON ({e}): {line}"))?;
        anyhow::ensure!(object.is_object(), "not an object: {line}");
        // serde keeps the last of two equal keys: count them in the text (an escaped quote
        // inside a string is `\"`, never a bare `"message":`).
        let keys = line.match_indices("\"message\":").count()
            - line.match_indices("\\\"message\\\":").count();
        anyhow::ensure!(keys <= 1, "two message keys: {line}");
        objects.push(object);
    }
    Ok(objects)
}

async fn sign_up(client: &reqwest::Client, addr: &str, company: &str) -> anyhow::Result<Value> {
    let response: Value = client
        .post(format!("http://{addr}/graphql"))
        .json(&json!({
            "query": "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken user { id } } }",
            "variables": { "input": {
                "companyName": company,
                "email": format!("ann@{}.example", company.to_lowercase()),
                "password": "correct horse battery",
                "displayName": "Ann",
            } },
        }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(response["errors"].is_null(), "{response}");
    Ok(response["data"]["signUp"].clone())
}

#[tokio::test]
async fn the_binary_logs_json_only_with_an_access_line_and_exports_the_request_trace()
-> anyhow::Result<()> {
    let cluster = cluster().await?;
    // An empty database: the child migrates it, with RUST_LOG=info.
    let db = format!("obs_json_{}", std::process::id());
    devservices::ensure_database(&cluster.admin_url("postgres"), &db).await?;
    let receiver = Receiver::start().await?;
    let mut child = Child::spawn(&[
        ("LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("METRICS_ADDR", "127.0.0.1:0".into()),
        ("DATABASE_URL", cluster.app_url(&db)),
        ("DATABASE_ADMIN_URL", cluster.admin_url(&db)),
        ("REDIS_URL", cluster.redis_url()),
        ("REDIS_KEY_PREFIX", format!("{db}:")),
        ("JWT_SECRET", TEST_JWT_SECRET.into()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", receiver.addr),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("LLM_DEMO_TOKEN_MS", "1".into()),
    ])
    .await?;
    let ready = child
        .line("the ready line", |l| l.contains("GraphQL server ready"))
        .await?;
    let ready: Value = serde_json::from_str(&ready)?;
    let addr = ready["fields"]["addr"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let metrics = ready["fields"]["metrics"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;

    let signed_up = sign_up(&client, &addr, "Jsonco").await?;
    let token = signed_up["accessToken"].as_str().unwrap_or_default();
    let user_id = signed_up["user"]["id"].as_str().unwrap_or_default();
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let response: Value = client
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .header("x-request-id", "obs-json-1")
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .json(&json!({ "query": "query ObsTraced { me { id } }" }))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(response["data"]["me"]["id"], user_id, "{response}");

    // The access log line.
    let line = child
        .line("the access line", |l| {
            l.contains("\"request_id\":\"obs-json-1\"") && l.contains("graphql request")
        })
        .await?;
    let line: Value = serde_json::from_str(&line)?;
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["target"], "access", "{line}");
    let fields = &line["fields"];
    assert_eq!(fields["message"], "graphql request", "{line}");
    assert_eq!(fields["operation"], "ObsTraced", "{line}");
    assert_eq!(fields["operation_type"], "query", "{line}");
    assert_eq!(fields["outcome"], "ok", "{line}");
    assert_eq!(fields["caller"], user_id, "{line}");
    assert_eq!(fields["status"], 200, "{line}");
    assert!(fields["duration_ms"].as_f64().is_some(), "{line}");

    // The spans, in the caller's trace: the request's under the caller's span.
    let wanted = |spans: &[ExportedSpan]| {
        let ours: Vec<_> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
        let request = ours
            .iter()
            .find(|s| s.name == "request" && s.parent_id == parent_id);
        let graphql = ours.iter().find(|s| {
            s.name == "graphql"
                && s.attributes.get("operation").map(String::as_str) == Some("ObsTraced")
                && request.is_some_and(|r| r.span_id == s.parent_id)
        });
        let resolve = ours.iter().find(|s| {
            s.name == "resolve"
                && s.attributes.get("field").map(String::as_str) == Some("me")
                && graphql.is_some_and(|g| g.span_id == s.parent_id)
        });
        let db = ours.iter().any(|s| s.name == "db_begin");
        request.is_some() && graphql.is_some() && resolve.is_some() && db
    };
    let exported = eventually(WAIT, "the request's spans", || async {
        wanted(&receiver.spans())
    })
    .await;
    if let Err(error) = exported {
        anyhow::bail!("{error}: {:#?}", receiver.spans());
    }

    // A chat reply (the demo model): its span belongs to the trace of `sendMessage`, and its
    // log lines are JSON like the others.
    let chat_trace = uuid::Uuid::new_v4().simple().to_string();
    let post = |query: &str, variables: Value, trace: Option<&str>| {
        let mut request = client
            .post(format!("http://{addr}/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(trace) = trace {
            request = request.header("traceparent", format!("00-{trace}-{parent_id}-01"));
        }
        request
    };
    let created: Value = post(
        "mutation { createConversation(input: { title: \"Traced\" }) { id } }",
        json!({}),
        None,
    )
    .send()
    .await?
    .json()
    .await?;
    let conversation = created["data"]["createConversation"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sent: Value = post(
        "mutation ObsSend($c: ID!) { sendMessage(conversationId: $c, content: \"Hi\") { assistantMessage { id } } }",
        json!({ "c": conversation }),
        Some(&chat_trace),
    )
    .send()
    .await?
    .json()
    .await?;
    let reply = sent["data"]["sendMessage"]["assistantMessage"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(!reply.is_empty(), "{sent}");
    child
        .line("the reply stored", |l| {
            l.contains("reply stored") && l.contains(&reply)
        })
        .await?;
    let replied = eventually(WAIT, "the reply's span", || async {
        receiver.spans().iter().any(|s| {
            s.trace_id == chat_trace
                && s.name == "chat_reply"
                && s.attributes.get("message_id") == Some(&reply)
        })
    })
    .await;
    if let Err(error) = replied {
        anyhow::bail!("{error}: {:#?}", receiver.spans());
    }

    // Metrics on their own listener, none on the main one without a token.
    let (status, text) = get(&client, &metrics, None).await?;
    assert_eq!(status, 200, "{text}");
    let samples = parse_metrics(&text);
    let traced = [
        ("operation", "ObsTraced"),
        ("type", "query"),
        ("outcome", "ok"),
    ];
    assert_eq!(value(&samples, "graphql_requests_total", &traced), 1.0);
    let (status, _) = get(&client, &format!("http://{addr}/metrics"), None).await?;
    assert_eq!(status, 404);

    child.stop().await?;
    // Nothing but JSON from the first line to the last; the migrations ran at info without
    // PostgreSQL's notices.
    let objects = json_lines(&child)?;
    if let Ok(path) = std::env::var("OBS_DUMP") {
        std::fs::write(path, child.lines().join("\n"))?;
    }
    assert!(
        objects.iter().any(|o| o["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("sea_orm_migration"))),
        "no migration line"
    );
    assert!(
        !objects
            .iter()
            .any(|o| o["target"] == "sqlx::postgres::notice"),
        "a notice was logged"
    );
    Ok(())
}

#[tokio::test]
async fn the_binary_logs_one_text_line_per_request() -> anyhow::Result<()> {
    let cluster = cluster().await?;
    let db = format!("obs_text_{}", std::process::id());
    cluster.create_database(&db).await?;
    let mut child = Child::spawn(&[
        ("LOG_FORMAT", "text".into()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("DATABASE_URL", cluster.app_url(&db)),
        ("REDIS_URL", cluster.redis_url()),
        ("REDIS_KEY_PREFIX", format!("{db}:")),
        ("JWT_SECRET", TEST_JWT_SECRET.into()),
        ("MIGRATE_ON_START", "false".into()),
    ])
    .await?;
    // The banner, for people: `  GraphQL:    http://ADDR/graphql  (WebSocket: ...)`.
    let banner = child
        .line("the banner", |l| l.trim_start().starts_with("GraphQL:"))
        .await?;
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let response = client
        .post(format!("http://{addr}/graphql"))
        .header("x-request-id", "obs-text-1")
        .json(&json!({ "query": "query ObsText { me { id } }" }))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 401);
    let line = child
        .line("the access line", |l| {
            l.contains("graphql request") && l.contains("request_id=obs-text-1")
        })
        .await?;
    for part in [
        " INFO ",
        "transport=http",
        "caller=anonymous",
        "operation=ObsText",
        "operation_type=query",
        "outcome=UNAUTHENTICATED",
        "status=401",
        "duration_ms=",
    ] {
        assert!(line.contains(part), "{part} is not in: {line}");
    }
    // One line per request: nothing else logged at info for it.
    let lines = child.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("obs-text-1") && l.contains(" INFO "))
            .count(),
        1,
        "{lines:#?}"
    );
    child.stop().await?;
    Ok(())
}
