//! Logging and traces: `RUST_LOG` levels (default `info`), text or JSON lines on stdout (JSON:
//! one object per line, target included), and OpenTelemetry spans exported over OTLP/HTTP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, each request's span the child of the caller's
//! W3C `traceparent`.
//!
//! The subscriber is global: [`init`] installs it once per process and later calls change
//! nothing, so code that runs several servers in one process (the tests) shares it.

use std::{
    io::IsTerminal as _,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use opentelemetry::{propagation::TextMapPropagator as _, trace::TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::Targets, fmt, layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

/// Levels when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn";

/// PostgreSQL's notices (`CREATE ... IF NOT EXISTS` skipping, and the like) are logged by sqlx
/// at info; they stay out unless `RUST_LOG` names this target itself.
const NOTICE_TARGET: &str = "sqlx::postgres::notice";

static INSTALLED: OnceLock<()> = OnceLock::new();
static JSON: AtomicBool = AtomicBool::new(false);
static TRACES: AtomicBool = AtomicBool::new(false);

/// Keeps the trace exporter of [`init`]; [`Telemetry::shutdown`] sends what is left.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter (waits for the collector at most a few seconds).
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let stopped = tokio::task::spawn_blocking(move || provider.shutdown());
            if let Ok(Ok(Err(error))) = tokio::time::timeout(Duration::from_secs(10), stopped).await
            {
                tracing::warn!(%error, "traces not flushed");
            }
        }
    }
}

/// Whether log lines are JSON, so that what would be printed for people is logged instead.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// The log filter: `RUST_LOG`, else [`DEFAULT_FILTER`]; PostgreSQL's notices below warn
/// unless `RUST_LOG` asks for them by name.
fn log_filter() -> EnvFilter {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let names_notices = from_env
        .as_deref()
        .is_some_and(|v| v.contains(NOTICE_TARGET));
    let filter = from_env
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    if names_notices {
        return filter;
    }
    match format!("{NOTICE_TARGET}=warn").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Installs the global subscriber (once; later calls return an empty [`Telemetry`]):
/// `format` is `text` or `json`; with an OTLP endpoint, spans are exported to it.
pub fn init(format: &str, otlp_endpoint: Option<&str>) -> Telemetry {
    let mut telemetry = Telemetry::default();
    let mut first = false;
    INSTALLED.get_or_init(|| first = true);
    if !first {
        return telemetry;
    }
    let json = format.eq_ignore_ascii_case("json");
    JSON.store(json, Ordering::Relaxed);
    let ansi = !json && std::io::stdout().is_terminal();
    let logs = if json {
        fmt::layer()
            .json()
            .with_target(true)
            .with_ansi(false)
            .with_filter(log_filter())
            .boxed()
    } else {
        fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_filter(log_filter())
            .boxed()
    };
    let mut export_error = None;
    let traces = match otlp_endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        Some(endpoint) => match tracer_provider(endpoint) {
            Ok(provider) => {
                let tracer = provider.tracer("graphql-server");
                telemetry.provider = Some(provider);
                TRACES.store(true, Ordering::Relaxed);
                // Spans at info, whatever RUST_LOG says; not the database driver's.
                let targets = Targets::new()
                    .with_default(tracing::Level::INFO)
                    .with_target("sqlx", tracing::Level::WARN)
                    .with_target("sea_orm", tracing::Level::WARN)
                    .with_target("access", tracing::level_filters::LevelFilter::OFF);
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(targets),
                )
            }
            Err(error) => {
                export_error = Some(error);
                None
            }
        },
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if let Some(error) = export_error {
        tracing::warn!(error = %format!("{error:#}"), "traces are not exported");
    }
    telemetry
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let runtime = tokio::runtime::Handle::try_current()?;
    let client = ExportClient {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        runtime,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("graphql-server");
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Sends the exporter's requests with the server's HTTP client on the server's runtime (the
/// exporter runs on a thread of its own, outside it).
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = sent.await??;
        let mut response = opentelemetry_http::Response::builder()
            .status(status)
            .body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Reads W3C trace context from request headers.
struct Headers<'a>(&'a poem::http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` (a request's) the child of the caller's `traceparent`, when traces are
/// exported and the request carries one.
pub fn set_remote_parent(span: &tracing::Span, headers: &poem::http::HeaderMap) {
    if !TRACES.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The arguments of every `tracing::<macro>!(...)` call in `source`.
    fn macro_calls(source: &str) -> Vec<&str> {
        let mut calls = Vec::new();
        for level in ["trace", "debug", "info", "warn", "error", "event"] {
            let opening = format!("tracing::{level}!(");
            let mut rest = source;
            while let Some(at) = rest.find(&opening) {
                let args = &rest[at + opening.len()..];
                let mut depth = 1usize;
                let end = args
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map_or(args.len(), |(i, _)| i);
                calls.push(&args[..end]);
                rest = &args[end..];
            }
        }
        calls
    }

    /// `args` split at the commas outside parentheses, brackets, braces and strings.
    fn top_level_args(args: &str) -> Vec<&str> {
        let (mut parts, mut depth, mut quoted, mut escaped, mut from) =
            (Vec::new(), 0i32, false, false, 0);
        for (i, c) in args.char_indices() {
            if quoted {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => quoted = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => quoted = true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(args[from..i].trim());
                    from = i + 1;
                }
                _ => {}
            }
        }
        parts.push(args[from..].trim());
        parts
    }

    /// Whether a macro argument is a field named `message` (`message = x`, `%message`, ...).
    fn names_message(arg: &str) -> bool {
        let name = arg.split('=').next().unwrap_or("").trim();
        let bare = arg.trim_start_matches(['%', '?']);
        (arg.contains('=') && name == "message") || (!arg.contains('=') && bare == "message")
    }

    #[test]
    fn finds_fields_named_message() {
        assert!(names_message("message = %id"));
        assert!(names_message("%message"));
        assert!(names_message("message"));
        assert!(!names_message("message_id = %message"));
        assert!(!names_message("\"the message = x\""));
        assert_eq!(
            top_level_args("a = f(x, y), \"s, t\", %b"),
            vec!["a = f(x, y)", "\"s, t\"", "%b"]
        );
    }

    fn sources(dir: &Path, into: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                into.push((path.display().to_string(), text));
            }
        }
    }

    /// A field named `message` next to the format string is a second `message` key in JSON.
    #[test]
    fn no_log_event_has_a_field_named_message() {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 10, "sources not found");
        let mut offenders = Vec::new();
        for (path, text) in &files {
            for call in macro_calls(text) {
                let call: String = call.split_whitespace().collect::<Vec<_>>().join(" ");
                if top_level_args(&call).iter().any(|arg| names_message(arg)) {
                    offenders.push(format!("{path}: {call}"));
                }
            }
        }
        assert!(offenders.is_empty(), "{offenders:#?}");
    }
}
