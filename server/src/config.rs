//! Typed configuration: command-line flags, each also read from an environment variable (and `.env`).

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// GraphQL API server with a Postgres-native authorization layer.
///
/// With no DATABASE_URL / REDIS_URL it starts private PostgreSQL and Redis servers under DATA_DIR.
#[derive(Debug, Parser)]
#[command(name = "server", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub config: Config,
}

/// What the binary does; `serve` when none is given.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve the GraphQL API (the default).
    Serve,
    /// Apply pending migrations, then exit.
    Migrate,
    /// Print the GraphQL schema (SDL) to stdout.
    PrintSchema,
    /// Seal every stored secret (a company's LLM API key...) again under the first key of
    /// SECRETS_KEYS, so that older keys can be retired; prints what it did. Idempotent: a
    /// secret already under that key is left as it is. Connects as DATABASE_URL (a private
    /// cluster under DATA_DIR when unset).
    RotateSecrets,
    /// Print the database's authorization catalog (roles, grants, policies, views, functions)
    /// to stdout: of DATABASE_ADMIN_URL (else DATABASE_URL), or of a freshly migrated database
    /// in a throw-away private cluster when neither is set or with --fresh.
    PrintCatalog {
        /// Always use a throw-away private cluster, whatever DATABASE_URL says
        /// (`policies/database.sql` is made this way).
        #[arg(long)]
        fresh: bool,
    },
    /// Create a company with an admin and N users with realistic, deterministic attributes
    /// (for demos and benchmarks), then exit.
    Seed {
        /// Name of the new company.
        #[arg(long)]
        company: String,
        /// How many users to create besides the admin.
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// The admin's password; a random one is generated and printed when unset.
        #[arg(long, env = "SEED_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
}

/// Every option of the server. Each flag also reads the environment variable named in `--help`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8000")]
    pub bind_addr: SocketAddr,

    /// PostgreSQL URL the request pool logs in with (a role that can only SET ROLE to
    /// app_user / app_anon). Unset: a private cluster is started under DATA_DIR.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// PostgreSQL URL migrations run as (the owner of the tables). Defaults to DATABASE_URL.
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    pub database_admin_url: Option<String>,

    /// Redis URL for session state, rate limits and pub/sub. Unset: a private redis-server is
    /// started under DATA_DIR.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key this server writes, so several deployments can share a Redis.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "gql:")]
    pub redis_key_prefix: String,

    /// Longest one Redis call may take, taking a pooled connection included, in milliseconds;
    /// the caller then goes on without Redis.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 250)]
    pub redis_timeout_ms: u64,

    /// Failed Redis calls in a row after which calls fail at once, without asking Redis, for
    /// REDIS_BREAKER_COOLDOWN_MS (0: never).
    #[arg(long, env = "REDIS_BREAKER_FAILURES", default_value_t = 3)]
    pub redis_breaker_failures: u32,

    /// How long the open Redis circuit breaker refuses calls before one call probes Redis
    /// again, in milliseconds.
    #[arg(long, env = "REDIS_BREAKER_COOLDOWN_MS", default_value_t = 2000)]
    pub redis_breaker_cooldown_ms: u64,

    /// Directory of the private PostgreSQL and Redis data and generated secrets.
    #[arg(long, env = "DATA_DIR", default_value = "./.data")]
    pub data_dir: PathBuf,

    /// Directory holding the PostgreSQL server binaries (initdb, postgres) for private mode.
    /// Found automatically under /usr/lib/postgresql/<version>/bin or on PATH when unset.
    #[arg(long, env = "PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// Apply pending migrations at start-up.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub migrate_on_start: bool,

    /// Start even when the pool's role can bypass Row Level Security (superuser, BYPASSRLS, or
    /// owner of tenant tables); such a role's own privileges are then only warned about. Unsafe
    /// tenant tables and definer functions are refused all the same. Never do this in
    /// production.
    #[arg(long, env = "ALLOW_RLS_BYPASS", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_rls_bypass: bool,

    /// Maximum connections of the request pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a request waits for a pooled connection before failing, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    pub db_acquire_timeout_ms: u64,

    /// Longest a statement of the request pool may run before PostgreSQL cancels it
    /// (`statement_timeout`), in milliseconds (0: no limit).
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000)]
    pub db_statement_timeout_ms: u64,

    /// Longest a transaction of the request pool may sit idle before PostgreSQL ends its
    /// session (`idle_in_transaction_session_timeout`), in milliseconds (0: no limit).
    #[arg(
        long,
        env = "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub db_idle_in_transaction_timeout_ms: u64,

    /// Longest a statement of the request pool waits for a lock, such as a row another
    /// transaction is changing (`lock_timeout`), in milliseconds (0: no limit).
    #[arg(long, env = "DB_LOCK_TIMEOUT_MS", default_value_t = 2000)]
    pub db_lock_timeout_ms: u64,

    /// Share of DB_MAX_CONNECTIONS that one company's requests (and all anonymous requests
    /// together) may hold at once, in percent; at least one connection.
    #[arg(long, env = "DB_COMPANY_SHARE_PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub db_company_share_percent: u32,

    /// Operations of one request (a batch) that may use the database at once; each holds one
    /// connection at a time.
    #[arg(long, env = "DB_MAX_CONNECTIONS_PER_REQUEST", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub db_max_connections_per_request: u32,

    /// Secret for HS256 access tokens (32 bytes or more). Generated once and kept in DATA_DIR in
    /// private mode; required otherwise.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Private key for asymmetric access tokens: a PEM string or the path of a PEM file, Ed25519
    /// (PKCS#8, EdDSA) or RSA (PKCS#1 or PKCS#8, RS256, 2048 bits or more). When set, tokens are
    /// signed with it, JWT_SECRET is not needed, and the public key is served at
    /// /.well-known/jwks.json.
    #[arg(long, env = "JWT_PRIVATE_KEY", hide_env_values = true)]
    pub jwt_private_key: Option<String>,

    /// `iss` claim of access tokens, required and checked.
    #[arg(long, env = "JWT_ISSUER", default_value = "graphql-server")]
    pub jwt_issuer: String,

    /// `aud` claim of access tokens, required and checked.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "graphql-api")]
    pub jwt_audience: String,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "JWT_ACCESS_TTL_SECS", default_value_t = 900)]
    pub jwt_access_ttl_secs: u64,

    /// Clock skew tolerated when checking `exp` and `nbf`, in seconds.
    #[arg(long, env = "JWT_LEEWAY_SECS", default_value_t = 5)]
    pub jwt_leeway_secs: u64,

    /// Lifetime of a session's refresh token without use (sliding), in seconds.
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub session_ttl_secs: u64,

    /// Absolute lifetime of a session, which refreshing cannot extend, in seconds.
    #[arg(long, env = "SESSION_ABSOLUTE_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub session_absolute_ttl_secs: u64,

    /// How long after a rotation the previous refresh token may be retried (lost response, two
    /// tabs refreshing at once) and yield the same session, in seconds.
    #[arg(long, env = "REFRESH_GRACE_SECS", default_value_t = 10)]
    pub refresh_grace_secs: u64,

    /// Lifetime of a password-reset token, in seconds.
    #[arg(long, env = "PASSWORD_RESET_TTL_SECS", default_value_t = 30 * 60)]
    pub password_reset_ttl_secs: u64,

    /// Lifetime of an invitation, in seconds.
    #[arg(long, env = "INVITATION_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub invitation_ttl_secs: u64,

    /// Lifetime of an e-mail verification link, in seconds.
    #[arg(long, env = "EMAIL_VERIFICATION_TTL_SECS", default_value_t = 48 * 3600)]
    pub email_verification_ttl_secs: u64,

    /// Public URL of the frontend, used in links of outgoing e-mails (password reset,
    /// invitation). Defaults to http://BIND_ADDR.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// OpenID providers people may sign in with, as a JSON array (see README, "OpenID Connect
    /// sign-in"): each with `name`, `issuer`, `client_id`, `client_secret` and optionally
    /// `scopes`, `company_id`, `role`, `allowed_domains`, `link_verified_email`. None by default.
    #[arg(long, env = "OIDC_PROVIDERS", hide_env_values = true)]
    pub oidc_providers: Option<String>,

    /// A file holding the OIDC_PROVIDERS JSON array instead (its providers come after those of
    /// OIDC_PROVIDERS).
    #[arg(long, env = "OIDC_PROVIDERS_FILE")]
    pub oidc_providers_file: Option<PathBuf>,

    /// Public base URL of this server for the OpenID providers' callbacks
    /// (`<base>/auth/oidc/<provider>/callback`, the redirect URI to register at each provider).
    /// Defaults to PUBLIC_URL, else http://BIND_ADDR.
    #[arg(long, env = "OIDC_CALLBACK_BASE_URL")]
    pub oidc_callback_base_url: Option<String>,

    /// Shortest time between two fetches of a provider's JWKS when an ID token names a key it
    /// does not hold (a rotation), in milliseconds: tokens with made-up key ids cannot make the
    /// server hammer the provider.
    #[arg(long, env = "OIDC_JWKS_REFRESH_INTERVAL_MS", default_value_t = 10_000)]
    pub oidc_jwks_refresh_interval_ms: u64,

    /// Where the issuer of an OpenID provider a company's admins configure may be reached over
    /// plain `http://`: `never` (only `https://`), `loopback` (localhost, 127.0.0.0/8, ::1) or
    /// `any`.
    #[arg(long, env = "COMPANY_OIDC_HTTP", value_enum, default_value_t = HttpRule::Never)]
    pub company_oidc_http: HttpRule,

    /// SMTP server the outbox is delivered through: `smtp://host:25` (plain),
    /// `smtp://host:587?tls=opportunistic` (STARTTLS when offered), `smtp://host:587?tls=required`
    /// (STARTTLS or nothing), `smtps://host:465` (TLS from the start); credentials as
    /// `user:password@` (percent-encoded). Unset: e-mails stay in `outbound_emails` (and their
    /// links are written to the log in private mode).
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of outgoing e-mails, e.g. `Acme <no-reply@acme.example>`; required with
    /// SMTP_URL.
    #[arg(long, env = "MAIL_FROM")]
    pub mail_from: Option<String>,

    /// How often each instance looks for e-mails due in the outbox, in milliseconds.
    #[arg(long, env = "MAIL_POLL_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub mail_poll_ms: u64,

    /// Attempts at sending one e-mail before it is `failed` (a permanent refusal by the SMTP
    /// server fails it at once).
    #[arg(long, env = "MAIL_MAX_ATTEMPTS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub mail_max_attempts: u32,

    /// Wait before the first retry of an e-mail, in milliseconds; it doubles with each attempt,
    /// up to MAIL_RETRY_MAX_SECS.
    #[arg(long, env = "MAIL_RETRY_BASE_MS", default_value_t = 30_000)]
    pub mail_retry_base_ms: u64,

    /// Longest wait between two attempts at one e-mail, in seconds.
    #[arg(long, env = "MAIL_RETRY_MAX_SECS", default_value_t = 3_600)]
    pub mail_retry_max_secs: u64,

    /// Longest one SMTP command (connecting included) may take, in seconds.
    #[arg(long, env = "MAIL_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub mail_timeout_secs: u64,

    /// Mark auth cookies `Secure` (HTTPS only). Default: on, except in private mode.
    #[arg(long, env = "COOKIE_SECURE", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub cookie_secure: Option<bool>,

    /// Set by the server when it started private PostgreSQL/Redis (development): e-mail links
    /// are also written to the log, and cookies are not `Secure` unless COOKIE_SECURE says so.
    #[arg(skip)]
    pub private_mode: bool,

    /// Browser origins allowed cross-origin (CORS, and the WebSocket `Origin` check), comma
    /// separated, e.g. `https://app.example.com`. None by default: every cross-origin request
    /// is refused. Same-origin requests and requests without `Origin` always pass.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Request headers allowed cross-origin, comma separated.
    #[arg(
        long,
        env = "CORS_ALLOW_HEADERS",
        value_delimiter = ',',
        default_value = "authorization,content-type,x-request-id,x-csrf-token,x-device-id,\
traceparent,tracestate,baggage,sentry-trace,apollographql-client-name,\
apollographql-client-version,apollo-require-preflight"
    )]
    pub cors_allow_headers: Vec<String>,

    /// Proxies and load balancers in front of the server, comma separated addresses or CIDR
    /// ranges (e.g. `10.0.0.0/8,192.0.2.7`). A request whose TCP peer is one of them is taken to
    /// come from the client its TRUSTED_PROXY_HEADER names (the rightmost address that is not a
    /// trusted proxy); from any other peer the header is ignored. None by default: the client
    /// is always the TCP peer.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,

    /// The header the trusted proxies set: `x-forwarded-for` or `forwarded` (RFC 7239). Only
    /// that one is read, since a proxy passes the other on as the client sent it.
    #[arg(long, env = "TRUSTED_PROXY_HEADER", value_enum, default_value_t = ForwardedHeader::XForwardedFor)]
    pub trusted_proxy_header: ForwardedHeader,

    /// Longest time a client may take to send a request's headers, in seconds.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,

    /// Longest time one HTTP request may take, body and answer included, in seconds (`408`
    /// beyond). WebSockets are bounded by their credentials instead.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub http_request_timeout_secs: u64,

    /// How long a kept-alive connection may stay silent between requests, in seconds.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub http_idle_timeout_secs: u64,

    /// On SIGTERM, how long replies already streaming may take to finish, in seconds; then
    /// their text so far is stored as FAILED. `/ready` answers 503 and `sendMessage`
    /// `UNAVAILABLE` meanwhile; a second SIGTERM ends the wait at once.
    #[arg(long, env = "SHUTDOWN_DRAIN_SECS", default_value_t = 20)]
    pub shutdown_drain_secs: u64,

    /// Maximum depth of a GraphQL query.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", default_value_t = 15)]
    pub graphql_max_depth: usize,

    /// Maximum complexity of a GraphQL query (each field costs 1, lists multiply by `first`).
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", default_value_t = 2000)]
    pub graphql_max_complexity: usize,

    /// Maximum number of aliases in one GraphQL operation.
    #[arg(long, env = "GRAPHQL_MAX_ALIASES", default_value_t = 30)]
    pub graphql_max_aliases: usize,

    /// Maximum number of operations in one batched request.
    #[arg(long, env = "GRAPHQL_MAX_BATCH", default_value_t = 10)]
    pub graphql_max_batch: usize,

    /// Most values all the audience filters of one request may hold together (every
    /// condition counts its values, at least one); saved presets are bounded alike.
    #[arg(long, env = "AUDIENCE_MAX_VALUES", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub audience_max_values: u32,

    /// Maximum size of a request body, in bytes; also of one WebSocket message.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long a new GraphQL WebSocket may take to send `connection_init` and be
    /// acknowledged before it is closed (4408), in seconds.
    #[arg(long, env = "WS_CONNECTION_INIT_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_connection_init_timeout_secs: u64,

    /// Subscriptions one GraphQL WebSocket may run at once (0: unlimited).
    #[arg(long, env = "WS_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub ws_max_subscriptions: usize,

    /// GraphQL WebSockets one user may hold open at once on one server instance (0: unlimited).
    #[arg(long, env = "WS_MAX_SOCKETS_PER_USER", default_value_t = 20)]
    pub ws_max_sockets_per_user: usize,

    /// Period over which the RATE_LIMIT_* counts apply (they refill smoothly), in seconds.
    #[arg(long, env = "RATE_LIMIT_PERIOD_SECS", default_value_t = 60)]
    pub rate_limit_period_secs: u64,

    /// Login attempts per client IP per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_LOGIN_PER_IP", default_value_t = 20)]
    pub rate_limit_login_per_ip: u32,

    /// Login attempts per e-mail address per period, from all clients together (0: unlimited).
    /// Looser than the limit per address and client, so that a stranger's failed logins
    /// cannot lock the owner out.
    #[arg(long, env = "RATE_LIMIT_LOGIN_PER_EMAIL", default_value_t = 50)]
    pub rate_limit_login_per_email: u32,

    /// Login attempts per e-mail address from one client address per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_LOGIN_PER_EMAIL_AND_IP", default_value_t = 5)]
    pub rate_limit_login_per_email_and_ip: u32,

    /// Invitations per company per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_INVITE_PER_COMPANY", default_value_t = 20)]
    pub rate_limit_invite_per_company: u32,

    /// Sign-ups per client IP per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_SIGNUP_PER_IP", default_value_t = 5)]
    pub rate_limit_signup_per_ip: u32,

    /// Password-reset requests per client IP per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_RESET_PER_IP", default_value_t = 5)]
    pub rate_limit_reset_per_ip: u32,

    /// Password-reset requests per e-mail address per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_RESET_PER_EMAIL", default_value_t = 3)]
    pub rate_limit_reset_per_email: u32,

    /// Token refreshes per client IP per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_REFRESH_PER_IP", default_value_t = 60)]
    pub rate_limit_refresh_per_ip: u32,

    /// `changePassword` calls per user per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_CHANGE_PASSWORD_PER_USER", default_value_t = 5)]
    pub rate_limit_change_password_per_user: u32,

    /// `resendVerification` calls per user per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_VERIFICATION_PER_USER", default_value_t = 3)]
    pub rate_limit_verification_per_user: u32,

    /// Signed-out `requestVerificationEmail` calls per e-mail address per period (0:
    /// unlimited).
    #[arg(long, env = "RATE_LIMIT_VERIFICATION_PER_EMAIL", default_value_t = 3)]
    pub rate_limit_verification_per_email: u32,

    /// Signed-out `requestVerificationEmail` calls per client IP per period (0: unlimited).
    #[arg(long, env = "RATE_LIMIT_VERIFICATION_PER_IP", default_value_t = 10)]
    pub rate_limit_verification_per_ip: u32,

    /// Passwords hashed or verified at once (argon2 is CPU- and memory-hungry). Default: the
    /// number of CPUs.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub password_hash_concurrency: Option<u32>,

    /// Longest a request waits for a free password-hashing slot before `UNAVAILABLE`, in
    /// milliseconds.
    #[arg(long, env = "PASSWORD_HASH_MAX_WAIT_MS", default_value_t = 2000)]
    pub password_hash_max_wait_ms: u64,

    /// Directory of the Casbin policy files (`model.conf`, `policy.csv`), reloaded on SIGHUP.
    /// Unset: `./policies`, or the source tree's `policies/` when there is none.
    #[arg(long, env = "POLICY_DIR")]
    pub policy_dir: Option<PathBuf>,

    /// Log format: `text` or `json`. Levels come from RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    /// Serve Prometheus metrics at /metrics on this address of their own (e.g.
    /// 127.0.0.1:9464). Unset: no metrics listener.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Bearer token /metrics requires (16 characters or more). When set, /metrics is also
    /// served on the main listener. With neither this nor METRICS_ADDR, no metrics are served.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// OTLP/HTTP endpoint of an OpenTelemetry collector (e.g. http://127.0.0.1:4318): trace
    /// spans are exported to it (protobuf, at /v1/traces). Unset: no traces.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// Keys that encrypt the secrets the server stores (AES-256-GCM): `id:base64-key`, comma
    /// separated, each key 32 random bytes (`openssl rand -base64 32`). The first encrypts,
    /// all decrypt. Generated once into DATA_DIR in private mode; unset otherwise, storing a
    /// secret is refused.
    #[arg(long, env = "SECRETS_KEYS", hide_env_values = true,
          value_parser = SecretText::parse)]
    pub secrets_keys: Option<SecretText>,

    /// Where a company's own LLM provider may be reached over plain `http://`: `never` (only
    /// `https://`), `loopback` (localhost, 127.0.0.0/8, ::1) or `any`.
    #[arg(long, env = "COMPANY_LLM_HTTP", value_enum, default_value_t = HttpRule::Never)]
    pub company_llm_http: HttpRule,

    /// Base URL of an OpenAI-compatible chat-completions API (Groq, OpenAI, Ollama, vLLM,
    /// llama.cpp server), e.g. `https://api.openai.com/v1`. Unset: the offline demo provider.
    #[arg(long, env = "LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    /// API key sent as `Authorization: Bearer` to the LLM provider (none for local servers).
    #[arg(long, env = "LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,

    /// Model name asked of the LLM provider.
    #[arg(long, env = "LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,

    /// Timeout for connecting to the LLM provider, in milliseconds.
    #[arg(long, env = "LLM_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub llm_connect_timeout_ms: u64,

    /// Longest wait from sending a request to the first token of the reply, in milliseconds.
    #[arg(long, env = "LLM_FIRST_TOKEN_TIMEOUT_MS", default_value_t = 60_000)]
    pub llm_first_token_timeout_ms: u64,

    /// Longest silence between two tokens of a reply, in milliseconds.
    #[arg(long, env = "LLM_IDLE_TIMEOUT_MS", default_value_t = 30_000)]
    pub llm_idle_timeout_ms: u64,

    /// Retries of a failed LLM request before its first token (connection errors, 429, 5xx).
    #[arg(long, env = "LLM_MAX_RETRIES", default_value_t = 2)]
    pub llm_max_retries: u32,

    /// Failed replies in a row after which new ones are refused at once (0: never).
    #[arg(long, env = "LLM_BREAKER_THRESHOLD", default_value_t = 5)]
    pub llm_breaker_threshold: u32,

    /// How long new replies are refused once the circuit breaker opened, in seconds.
    #[arg(long, env = "LLM_BREAKER_COOL_DOWN_SECS", default_value_t = 30)]
    pub llm_breaker_cool_down_secs: u64,

    /// Pause between two words of the offline demo provider, in milliseconds.
    #[arg(long, env = "LLM_DEMO_TOKEN_MS", default_value_t = 120)]
    pub llm_demo_token_ms: u64,

    /// How many characters of recent conversation history are sent with each message
    /// (older messages are left out; the system prompt and the user's knowledge come first).
    #[arg(long, env = "CHAT_HISTORY_BUDGET", default_value_t = 16_000)]
    pub chat_history_budget: usize,

    /// Longest chat message a user may send, in characters.
    #[arg(long, env = "CHAT_MAX_MESSAGE_CHARS", default_value_t = 8_000)]
    pub chat_max_message_chars: usize,

    /// Chat messages a user may send per minute (0: unlimited).
    #[arg(long, env = "CHAT_MESSAGES_PER_MINUTE", default_value_t = 20)]
    pub chat_messages_per_minute: u32,

    /// Replies that may stream at once per company, across instances (0: unlimited).
    #[arg(long, env = "CHAT_MAX_CONCURRENT_PER_COMPANY", default_value_t = 20)]
    pub chat_max_concurrent_per_company: u32,

    /// The lease an instance holds on each reply it streams, in seconds, renewed every third
    /// of it (in Redis and PostgreSQL). When it lapses (the instance was killed, cut off or
    /// hung) any instance stores the reply as FAILED with its text so far.
    #[arg(long, env = "CHAT_LEASE_SECS", default_value_t = 10)]
    pub chat_lease_secs: u64,

    /// How often each instance looks for replies whose lease lapsed, in seconds (and once at
    /// start-up).
    #[arg(long, env = "CHAT_SWEEP_SECS", default_value_t = 5)]
    pub chat_sweep_secs: u64,

    /// How often the text so far of a streaming reply is stored in PostgreSQL, in
    /// milliseconds (only when it grew).
    #[arg(long, env = "CHAT_PERSIST_INTERVAL_MS", default_value_t = 1_000)]
    pub chat_persist_interval_ms: u64,

    /// How long a document registered by automatic persisted queries stays known (in Redis,
    /// to every instance) after its last use, in seconds.
    #[arg(long, env = "PERSISTED_QUERY_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub persisted_query_ttl_secs: u64,

    /// Largest document automatic persisted queries register, in bytes (larger ones still run,
    /// sent in full each time).
    #[arg(long, env = "PERSISTED_QUERY_MAX_BYTES", default_value_t = 64 * 1024)]
    pub persisted_query_max_bytes: usize,

    /// A JSON manifest of trusted documents, `{"<id>": "<document>"}` (graphql-codegen's
    /// client preset, Relay's persisted queries): ids are the document's sha256, sha1 or md5.
    #[arg(long, env = "TRUSTED_DOCUMENTS_FILE")]
    pub trusted_documents_file: Option<PathBuf>,

    /// `only`: refuse any document not in TRUSTED_DOCUMENTS_FILE; `allow` (the default with a
    /// manifest): run manifest documents by id and others too; `off`: ignore the manifest.
    #[arg(long, env = "TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<String>,
}

/// Where a company's own LLM provider may be reached over plain `http://`
/// (`COMPANY_LLM_HTTP`; see `crate::llm::company`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum HttpRule {
    /// Only `https://`.
    #[default]
    Never,
    /// `http://` to loopback hosts too.
    Loopback,
    /// `http://` anywhere.
    Any,
}

/// Text that holds secrets (`SECRETS_KEYS`): zeroized on drop, never shown by `Debug`.
#[derive(Clone)]
pub struct SecretText(zeroize::Zeroizing<String>);

impl SecretText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(text.into()))
    }

    /// For clap: any text is taken (`crate::secrets::Secrets::parse` checks it, and its
    /// errors do not echo it, unlike clap's).
    pub fn parse(text: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self::new(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(redacted)")
    }
}

/// The header that names the client behind a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    #[value(name = "forwarded")]
    Forwarded,
}

/// One entry of TRUSTED_PROXIES: an address (one host) or a CIDR range.
fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    match text.parse::<IpAddr>() {
        Ok(addr) => Ok(IpNet::from(addr)),
        Err(_) => Err(format!(
            "{text:?} is neither an IP address nor a CIDR range (such as 10.0.0.0/8 or fd00::/8)"
        )),
    }
}

impl Config {
    /// Whether auth cookies are `Secure` (and so `__Host-` prefixed).
    pub fn cookies_secure(&self) -> bool {
        self.cookie_secure.unwrap_or(!self.private_mode)
    }

    /// How long a request waits for a pooled database connection.
    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }

    /// Connections of the request pool one company (or all anonymous requests) may hold.
    pub fn db_company_share(&self) -> usize {
        let share =
            u64::from(self.db_max_connections) * u64::from(self.db_company_share_percent) / 100;
        usize::try_from(share).unwrap_or(usize::MAX).max(1)
    }

    /// How many passwords may be hashed at once.
    pub fn password_hash_concurrency(&self) -> usize {
        match self.password_hash_concurrency {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).max(1),
            None => std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// Where the policy files are: POLICY_DIR, else `./policies`, else (running from a checkout,
    /// e.g. the tests) the `policies/` directory of the source tree this was built from.
    pub fn policy_dir(&self) -> PathBuf {
        if let Some(dir) = &self.policy_dir {
            return dir.clone();
        }
        let local = PathBuf::from("./policies");
        if local.is_dir() {
            return local;
        }
        let built_from = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"));
        if built_from.is_dir() {
            built_from
        } else {
            local
        }
    }

    /// A configuration with every default, for tests and embedding.
    pub fn defaults() -> Self {
        // Parsing an empty argument list cannot fail: every option has a default or is optional.
        #[allow(clippy::expect_used)]
        Cli::try_parse_from(["server"])
            .map(|cli| cli.config)
            .expect("defaults parse")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(value: &str) -> Result<Vec<IpNet>, String> {
        Cli::try_parse_from(["server", "--trusted-proxies", value])
            .map(|cli| cli.config.trusted_proxies)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let nets = trusted("10.0.0.0/8, 192.0.2.7,fd00::/8,10.1.2.3/16").unwrap_or_default();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8", "10.1.0.0/16"]
        );
        assert!(Config::defaults().trusted_proxies.is_empty());
        assert_eq!(
            Config::defaults().trusted_proxy_header,
            ForwardedHeader::XForwardedFor
        );
    }

    #[test]
    fn a_bad_trusted_proxy_is_refused_by_name() {
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.1,", "10.0.0.1 10.0.0.2"] {
            let error = trusted(bad).err().unwrap_or_default();
            assert!(error.contains("--trusted-proxies"), "{bad}: {error}");
            assert!(
                error.contains("is neither an IP address nor a CIDR range"),
                "{bad}: {error}"
            );
        }
    }
}
