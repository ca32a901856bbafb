//! The server as the end-to-end tests run it in a process of its own, to kill it with SIGKILL
//! or stop it with SIGTERM: `server serve`, configured by the environment only (see
//! `tests::process`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = server::config::Config::defaults();
    let telemetry = server::telemetry::init(
        &config.log_format,
        config.otel_exporter_otlp_endpoint.as_deref(),
    );
    let served = devservices::serve(config).await;
    telemetry.shutdown().await;
    served
}
