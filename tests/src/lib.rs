//! The end-to-end test harness: one private PostgreSQL cluster and one redis-server per test
//! run, a migrated template database, and per test a fresh database cloned from it with a
//! real server on a random port.

mod cluster;
pub mod fake_llm;
mod gql;
pub mod oidc;
pub mod policy;
pub mod process;
pub mod restartable;
pub mod smtp;
pub mod ws;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use devservices::PrivateRedis;
use jsonwebtoken::{EncodingKey, Header};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use server::{RunningServer, config::Config};
use uuid::Uuid;

pub use cluster::{Cluster, citus_cluster, cluster, hold_cluster_roles, targets_citus};
pub use gql::GqlResponse;

/// The HS256 secret every test server signs with.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A user created directly in the database for a test.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub company_id: Uuid,
    pub email: String,
    pub role: String,
    /// A live session made for the user, which `token_for` tokens name.
    pub session_id: Uuid,
}

impl TestUser {
    /// The same user with another role in their tokens (a stale or forged claim).
    pub fn with_role(&self, role: &str) -> Self {
        Self {
            role: role.to_owned(),
            ..self.clone()
        }
    }
}

/// A running server on its own fresh database.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub db_name: String,
    pub client: reqwest::Client,
    /// Superuser connection to this test's database (bypasses RLS: for arranging data).
    pub admin: DatabaseConnection,
    pub config: Config,
    server: Option<RunningServer>,
    /// A redis-server of this app's own, when the test needs to stop it.
    pub own_redis: Option<PrivateRedis>,
}

impl TestApp {
    /// A server with the default configuration on a fresh database.
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(|_| {}).await
    }

    /// A server whose configuration `customize` adjusts first.
    pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        Self::spawn_inner(false, customize).await
    }

    /// A server with a redis-server of its own (`own_redis`), which the test may stop.
    pub async fn spawn_with_own_redis() -> anyhow::Result<Self> {
        Self::spawn_inner(true, |_| {}).await
    }

    /// A server on a fresh database of the private Citus cluster, whatever the run targets.
    pub async fn spawn_on_citus() -> anyhow::Result<Self> {
        Box::pin(Self::spawn_on(citus_cluster().await?, false, |_| {})).await
    }

    /// The same, with the configuration adjusted by `customize` first.
    pub async fn spawn_with_own_redis_and(
        customize: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        Self::spawn_inner(true, customize).await
    }

    async fn spawn_inner(
        own_redis: bool,
        customize: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        // Boxed: the server's start-up is a deep future, and callers' futures hold this one.
        Box::pin(Self::spawn_on(cluster().await?, own_redis, customize)).await
    }

    async fn spawn_on(
        cluster: &'static Cluster,
        own_redis: bool,
        customize: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let db_name = format!(
            "t{}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        cluster.create_database(&db_name).await?;
        let own_redis = if own_redis {
            let dir = cluster.dir().join(format!("redis-{db_name}"));
            Some(PrivateRedis::start(&dir, "own-redis-password", false).await?)
        } else {
            None
        };
        let mut config = Config::defaults();
        config.bind_addr = "127.0.0.1:0".parse()?;
        config.database_url = Some(cluster.app_url(&db_name));
        config.database_admin_url = Some(cluster.admin_url(&db_name));
        config.redis_url = Some(match &own_redis {
            Some(redis) => redis.url(),
            None => cluster.redis_url(),
        });
        config.redis_key_prefix = format!("{db_name}:");
        config.jwt_secret = Some(TEST_JWT_SECRET.to_owned());
        config.migrate_on_start = false;
        config.db_max_connections = 4;
        // The test machine is loaded: wait for a connection rather than fail a request.
        config.db_acquire_timeout_ms = 30_000;
        customize(&mut config);
        let server = server::start(config.clone()).await?;
        // The database the server was given, which `customize` may have pointed elsewhere.
        let admin_url = config
            .database_admin_url
            .clone()
            .unwrap_or_else(|| cluster.admin_url(&db_name));
        let admin = server::db::connect_pool(&admin_url, 2, Duration::from_secs(30)).await?;
        Ok(Self {
            addr: server.addr,
            db_name,
            // The server closes a keep-alive connection that has sent nothing for
            // HTTP_HEADER_TIMEOUT_SECS (10 s; hyper's header timer runs while it waits for the
            // next request too): a pooled connection idle for that long may be closed just as it
            // is reused, which fails that request. The client drops its idle connections first.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()?,
            admin,
            config,
            server: Some(server),
            own_redis,
        })
    }

    /// A second server instance on the same database and Redis (for cross-instance tests).
    pub async fn spawn_peer(&self) -> anyhow::Result<RunningServer> {
        server::start(self.config.clone()).await
    }

    /// The running server's state (its pool logs in as the unprivileged pool role).
    pub fn state(&self) -> &server::state::AppState {
        #[allow(clippy::expect_used)]
        &self.server.as_ref().expect("server running").state
    }

    /// Where the server serves `/metrics` on a listener of its own (`METRICS_ADDR`), if it does.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().and_then(|s| s.metrics_addr)
    }

    /// Stops the server gracefully.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates a company directly in the database.
    pub async fn create_company(&self, name: &str) -> anyhow::Result<Uuid> {
        let id = Uuid::new_v4();
        self.admin
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO companies (id, name) VALUES ($1, $2)",
                [id.into(), name.into()],
            ))
            .await?;
        Ok(id)
    }

    /// Creates a user directly in the database.
    pub async fn create_user(
        &self,
        company_id: Uuid,
        email: &str,
        role: &str,
    ) -> anyhow::Result<TestUser> {
        let id = Uuid::now_v7();
        let name = email.split('@').next().unwrap_or(email).to_owned();
        self.admin
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO users (id, company_id, email, display_name, role) VALUES ($1, $2, $3, $4, $5)",
                [id.into(), company_id.into(), email.into(), name.into(), role.into()],
            ))
            .await?;
        let session_id = self.create_session(company_id, id).await?;
        Ok(TestUser {
            id,
            company_id,
            email: email.to_owned(),
            role: role.to_owned(),
            session_id,
        })
    }

    /// Creates a live session (with one refresh token nobody knows) for a user.
    pub async fn create_session(&self, company_id: Uuid, user_id: Uuid) -> anyhow::Result<Uuid> {
        let session_id = Uuid::now_v7();
        self.admin
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO sessions (id, company_id, user_id, expires_at, absolute_expires_at, fingerprint_hash) \
                 VALUES ($1, $2, $3, now() + interval '1 day', now() + interval '2 days', 'test')",
                [session_id.into(), company_id.into(), user_id.into()],
            ))
            .await?;
        self.admin
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO refresh_tokens (token_hash, company_id, session_id, user_id) VALUES ($1, $2, $3, $4)",
                [Uuid::new_v4().to_string().into(), company_id.into(), session_id.into(), user_id.into()],
            ))
            .await?;
        Ok(session_id)
    }

    /// The one-time token of the newest e-mail queued to `recipient` (`...?token=<token>` in
    /// its body), as the invitee or account owner reads it from their mailbox.
    pub async fn token_mailed_to(&self, recipient: &str) -> anyhow::Result<String> {
        let row = self
            .admin
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT body FROM outbound_emails WHERE lower(recipient) = lower($1) \
                 ORDER BY created_at DESC, id DESC LIMIT 1",
                [recipient.into()],
            ))
            .await?
            .with_context(|| format!("no e-mail to {recipient}"))?;
        let body: String = row.try_get("", "body")?;
        body.split("token=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .with_context(|| format!("no token in the e-mail to {recipient}: {body}"))
    }

    /// Runs SQL as the superuser on this test's database (arranging data, bypassing RLS).
    pub async fn sql(&self, sql: &str) -> anyhow::Result<u64> {
        Ok(self.admin.execute_unprepared(sql).await?.rows_affected())
    }

    /// A company with one admin and `members` members: (company id, admin, members).
    pub async fn company_with_users(
        &self,
        name: &str,
        members: usize,
    ) -> anyhow::Result<(Uuid, TestUser, Vec<TestUser>)> {
        let company = self.create_company(name).await?;
        let slug = name.to_lowercase().replace(' ', "-");
        let admin = self
            .create_user(company, &format!("admin@{slug}.example"), "admin")
            .await?;
        let mut users = Vec::with_capacity(members);
        for i in 0..members {
            users.push(
                self.create_user(company, &format!("member{i}@{slug}.example"), "member")
                    .await?,
            );
        }
        Ok((company, admin, users))
    }

    /// A valid access token for `user`.
    pub fn token_for(&self, user: &TestUser) -> String {
        self.sign(&self.claims_for(user))
    }

    /// The claims a valid token for `user` carries, for tests that tamper with them.
    pub fn claims_for(&self, user: &TestUser) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "sub": user.id, "company": user.company_id, "role": user.role, "sid": user.session_id,
            "iat": now, "exp": now + 900,
            "iss": self.config.jwt_issuer, "aud": self.config.jwt_audience,
        })
    }

    /// Signs arbitrary claims with the server's HS256 secret.
    pub fn sign(&self, claims: &Value) -> String {
        sign_hs256(claims, TEST_JWT_SECRET.as_bytes())
    }

    /// POSTs a GraphQL operation, with a bearer token when given.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<GqlResponse> {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        GqlResponse::from_reqwest(request.send().await.context("POST /graphql")?).await
    }

    /// POSTs a GraphQL operation with extra headers (and a bearer token when given).
    pub async fn graphql_with(
        &self,
        headers: &[(&str, &str)],
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<GqlResponse> {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        GqlResponse::from_reqwest(request.send().await.context("POST /graphql")?).await
    }

    /// Signs up a new company through GraphQL; returns the `AuthPayload` JSON.
    pub async fn sign_up(
        &self,
        company: &str,
        email: &str,
        password: &str,
    ) -> anyhow::Result<Value> {
        let response = self
            .graphql(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken refreshToken expiresAt user { id email role } } }",
                json!({ "input": { "companyName": company, "email": email, "password": password, "displayName": "Founder" } }),
            )
            .await?;
        Ok(response.data()?["signUp"].clone())
    }

    /// Logs in through GraphQL; returns the whole response.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<GqlResponse> {
        self.graphql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken expiresAt user { id email role } } }",
            json!({ "input": { "email": email, "password": password } }),
        )
        .await
    }

    /// Runs `sql` as the caller `user` inside a request transaction, exactly as resolvers do,
    /// and returns the rows as JSON objects.
    pub async fn query_as(&self, user: &TestUser, sql: &str) -> anyhow::Result<Vec<Value>> {
        let tx = self.request_tx(user, server::db::Access::ReadOnly).await?;
        let rows = tx
            .conn()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT to_jsonb(t) AS row FROM ({sql}) t"),
            ))
            .await?;
        tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        rows.iter()
            .map(|r| r.try_get::<Value>("", "row").map_err(Into::into))
            .collect()
    }

    /// Executes `sql` as the caller `user` in a read-write request transaction and returns
    /// the number of rows it affected (the transaction is committed).
    pub async fn execute_as(&self, user: &TestUser, sql: &str) -> anyhow::Result<u64> {
        let tx = self.request_tx(user, server::db::Access::ReadWrite).await?;
        let result = tx.conn().execute_unprepared(sql).await?;
        tx.commit().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(result.rows_affected())
    }

    /// A request transaction for `user` on the server's own pool.
    pub async fn request_tx(
        &self,
        user: &TestUser,
        access: server::db::Access,
    ) -> anyhow::Result<server::db::RequestTx> {
        let viewer = server::auth::Viewer::User(server::auth::Principal {
            user_id: user.id,
            company_id: user.company_id,
            role: user
                .role
                .parse()
                .map_err(|e| anyhow::anyhow!("the test user's role: {e}"))?,
            session_id: user.session_id,
        });
        server::db::RequestTx::begin(&self.state().db, &viewer, access)
            .await
            .map_err(|e| anyhow::anyhow!("begin request transaction: {e:?}"))
    }

    /// Proves Row Level Security isolates `table` (which must have a `company_id` column, or be
    /// `companies`): `owner`'s company has rows; `outsider` (another company) sees none of them
    /// through a raw `SELECT *` in a request transaction, and a raw `UPDATE` or `DELETE` of
    /// them affects 0 rows. Returns how many rows `owner` sees, so callers can check the
    /// fixture was not empty.
    pub async fn assert_tenant_isolation(
        &self,
        table: &str,
        owner: &TestUser,
        outsider: &TestUser,
    ) -> anyhow::Result<usize> {
        anyhow::ensure!(
            owner.company_id != outsider.company_id,
            "pick users of two companies"
        );
        let column = if table == "companies" {
            "id"
        } else {
            "company_id"
        };
        // `users` hides some columns from request roles (privacy): select the readable ones.
        // `company_llm_providers` and `company_oidc_providers` hide their sealed secrets from
        // every request role.
        let star = match table {
            "users" => "id, company_id, display_name, role",
            "company_llm_providers" => "company_id, base_url, model, has_api_key",
            "company_oidc_providers" => {
                "company_id, id, name, issuer, client_id, has_client_secret"
            }
            _ => "*",
        };
        let owners = match self
            .query_as(owner, &format!("SELECT {star} FROM {table}"))
            .await
        {
            Ok(rows) => rows,
            // Tables only SECURITY DEFINER functions may read (one-time secrets, the outbox):
            // nobody reads them in a request, so nobody reads another company's rows either.
            Err(e) if format!("{e:?}").contains("permission denied") => {
                let outsider = self
                    .query_as(outsider, &format!("SELECT {star} FROM {table}"))
                    .await;
                anyhow::ensure!(
                    outsider.is_err_and(|e| format!("{e:?}").contains("permission denied")),
                    "{table}: unreadable for the owner but readable for another company"
                );
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        anyhow::ensure!(
            !owners.is_empty(),
            "{table}: the owner's company has no rows to protect"
        );
        for row in &owners {
            anyhow::ensure!(
                row[column] == json!(owner.company_id),
                "{table}: the owner sees a row of another company: {row}"
            );
        }
        let seen = self
            .query_as(
                outsider,
                &format!(
                    "SELECT {star} FROM {table} WHERE {column} = '{}'",
                    owner.company_id
                ),
            )
            .await?;
        anyhow::ensure!(
            seen.is_empty(),
            "{table}: another company's user sees {} rows",
            seen.len()
        );
        let all = self
            .query_as(outsider, &format!("SELECT {star} FROM {table}"))
            .await?;
        anyhow::ensure!(
            all.iter()
                .all(|row| row[column] == json!(outsider.company_id)),
            "{table}: SELECT * shows another company's rows"
        );
        let updated = self
            .execute_as(
                outsider,
                &format!(
                    "UPDATE {table} SET {column} = {column} WHERE {column} = '{}'",
                    owner.company_id
                ),
            )
            .await
            // Columns a request may not update at all change as little as rows it cannot see.
            .or_else(|e| {
                if format!("{e:?}").contains("permission denied") {
                    Ok(0)
                } else {
                    Err(e)
                }
            })?;
        anyhow::ensure!(
            updated == 0,
            "{table}: another company's user updated {updated} rows"
        );
        let deleted = self
            .execute_as(
                outsider,
                &format!(
                    "DELETE FROM {table} WHERE {column} = '{}'",
                    owner.company_id
                ),
            )
            .await
            // No DELETE privilege at all is as good as deleting nothing.
            .or_else(|e| {
                if format!("{e:?}").contains("permission denied") {
                    Ok(0)
                } else {
                    Err(e)
                }
            })?;
        anyhow::ensure!(
            deleted == 0,
            "{table}: another company's user deleted {deleted} rows"
        );
        let after = self
            .query_as(owner, &format!("SELECT {star} FROM {table}"))
            .await?;
        anyhow::ensure!(after == owners, "{table}: the owner's rows changed");
        Ok(owners.len())
    }
}

/// Signs claims with HS256 and `secret`.
pub fn sign_hs256(claims: &Value, secret: &[u8]) -> String {
    #[allow(clippy::expect_used)]
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// Waits for `condition` to hold, polling, for at most `timeout`.
pub async fn eventually<F, Fut>(
    timeout: Duration,
    what: &str,
    mut condition: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
