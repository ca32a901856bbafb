//! `server seed --company NAME --users N`: a company with an admin and N users with realistic,
//! deterministic attributes (plans, countries, tags, scores, dates), bulk-inserted by
//! `generate_series` statements of 50,000 rows, two at a time. Row `g` draws each attribute from
//! `hashint8extended(g, k)`, so the same N gives the same data; a failure removes the company.
//! Connects with DATABASE_ADMIN_URL (or as the private cluster's superuser): that role must
//! bypass Row Level Security (superuser or BYPASSRLS), since the tables FORCE it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use uuid::Uuid;

use server::auth::password;

/// The password of the demo admin `make run` seeds on first start (development only).
pub const DEMO_PASSWORD: &str = "demo-password-2026";

/// What `seed` made.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub company_id: Uuid,
    pub admin_email: String,
    pub users: u64,
    pub elapsed: Duration,
}

/// The fields the seeded attributes use, declared for audience filters.
const FIELDS: [(&str, &str, &str); 6] = [
    (
        "plan",
        "string",
        "Subscription plan: free, pro or enterprise.",
    ),
    ("country", "string", "ISO 3166 country code."),
    ("tags", "string_list", "Marketing tags."),
    ("score", "number", "Engagement score, 0 to 100."),
    ("newsletter", "boolean", "Subscribed to the newsletter."),
    ("renewal_on", "date", "Next renewal day (paying plans)."),
];

/// One row per user `g` in `$2..=$3`; `$1` company, `$4` e-mail tag (unique per company), `$5`
/// the seed's start in Unix milliseconds. Ids are UUIDv7-shaped (that time, then `g`), so they
/// ascend and the id indexes grow at their right edge instead of splitting pages at random.
const USERS_SQL: &str = r#"
INSERT INTO users (id, company_id, email, display_name, role, attributes, is_active, created_at,
                   last_active_at)
SELECT (lpad(to_hex($5::bigint), 12, '0') || '7000' || '8' || lpad(to_hex(g), 15, '0'))::uuid,
       $1::uuid,
       'user' || g || '.' || $4 || '@' ||
           (ARRAY['gmail.com', 'gmail.com', 'outlook.com', 'yahoo.com', 'acme.io',
                  'example.org'])[1 + abs(hashint8extended(g, 1)) % 6],
       'User ' || g,
       CASE WHEN abs(hashint8extended(g, 2)) % 100 < 2 THEN 'manager' ELSE 'member' END,
       jsonb_strip_nulls(jsonb_build_object(
           'plan', CASE WHEN p < 60 THEN 'free' WHEN p < 90 THEN 'pro' ELSE 'enterprise' END,
           'country', (ARRAY['US', 'US', 'US', 'US', 'US', 'US', 'DE', 'DE', 'DE', 'FR', 'FR',
                             'GB', 'GB', 'ES', 'IT', 'NL', 'BR', 'IN', 'JP', 'CA'])
                      [1 + abs(hashint8extended(g, 4)) % 20],
           'tags', to_jsonb(array_remove(ARRAY[
               CASE WHEN abs(hashint8extended(g, 5)) % 100 < 30 THEN 'newsletter' END,
               CASE WHEN abs(hashint8extended(g, 6)) % 100 < 8 THEN 'churn-risk' END,
               CASE WHEN abs(hashint8extended(g, 7)) % 100 < 5 THEN 'beta' END,
               CASE WHEN abs(hashint8extended(g, 8)) % 100 < 2 THEN 'vip' END], NULL)),
           'score', abs(hashint8extended(g, 9)) % 101,
           'newsletter', abs(hashint8extended(g, 5)) % 100 < 30,
           'renewal_on', CASE WHEN p >= 60 THEN
               to_char(DATE '2026-01-01' + (abs(hashint8extended(g, 10)) % 365)::int, 'YYYY-MM-DD')
           END)),
       abs(hashint8extended(g, 11)) % 100 >= 3,
       now() - make_interval(mins => (abs(hashint8extended(g, 12)) % (3 * 365 * 1440))::int),
       CASE WHEN abs(hashint8extended(g, 13)) % 100 < 85
            THEN now() - make_interval(mins => (abs(hashint8extended(g, 14)) % (120 * 1440))::int)
       END
FROM generate_series($2::bigint, $3::bigint) AS g,
     LATERAL (SELECT abs(hashint8extended(g, 3)) % 100 AS p) AS draw
"#;

/// Creates company `name` with an admin (`admin_password`) and `users` seeded users.
pub async fn seed(
    admin_url: &str,
    name: &str,
    users: u64,
    admin_password: &str,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let hash = password::Passwords::new(1, Duration::from_secs(60))
        .hash(admin_password.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("hash the admin password: {}", e.message()))?;
    let db = server::db::connect_pool(admin_url, WORKERS as u32, Duration::from_secs(30)).await?;
    let tx = db.begin().await.context("begin the seed transaction")?;
    let stmt = |sql: &str, values: Vec<sea_orm::Value>| {
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    };
    let row = tx
        .query_one_raw(stmt(
            "INSERT INTO companies (name) VALUES ($1) RETURNING id",
            vec![name.into()],
        ))
        .await?
        .context("no company id returned")?;
    let company_id: Uuid = row.try_get("", "id")?;
    let tag = company_id.simple().to_string()[..8].to_owned();
    let admin_email = format!("admin.{tag}@example.com");
    tx.execute_raw(stmt(
        "INSERT INTO users (company_id, email, display_name, role, password_hash) \
         VALUES ($1, $2, 'Admin', 'admin', $3)",
        vec![company_id.into(), admin_email.clone().into(), hash.into()],
    ))
    .await?;
    for (field, ty, description) in FIELDS {
        tx.execute_raw(stmt(
            "INSERT INTO audience_fields (company_id, name, type, description) \
             VALUES ($1, $2, $3, $4)",
            vec![
                company_id.into(),
                field.into(),
                ty.into(),
                description.into(),
            ],
        ))
        .await?;
    }
    tx.commit().await?;
    if let Err(error) = insert_users(&db, company_id, users, &tag).await {
        // Leave no half-seeded company behind.
        let cleanup = stmt(
            "DELETE FROM companies WHERE id = $1",
            vec![company_id.into()],
        );
        if let Err(e) = db.execute_raw(cleanup).await {
            tracing::warn!(error = %e, "could not remove the half-seeded company");
        }
        return Err(error);
    }
    // Statistics for the planner, and the visibility map for index-only counts; the audience
    // bitmaps the users' trigger built too.
    db.execute_unprepared("VACUUM (ANALYZE) users, audience_members, audience_bits")
        .await?;
    Ok(Seeded {
        company_id,
        admin_email,
        users,
        elapsed: started.elapsed(),
    })
}

/// Rows per INSERT statement (each its own transaction).
const CHUNK: u64 = 50_000;
/// Statements running at once.
const WORKERS: usize = 2;

/// Inserts users `1..=users` of `company` in chunks, `WORKERS` at a time.
async fn insert_users(
    db: &sea_orm::DatabaseConnection,
    company: Uuid,
    users: u64,
    tag: &str,
) -> anyhow::Result<()> {
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let millis = chrono::Utc::now().timestamp_millis();
    let chunks = (0..users.div_ceil(CHUNK)).map(|i| (i * CHUNK + 1, ((i + 1) * CHUNK).min(users)));
    futures_util::stream::iter(chunks)
        .map(|(from, to)| async move {
            let values: Vec<sea_orm::Value> = vec![
                company.into(),
                i64::try_from(from)?.into(),
                i64::try_from(to)?.into(),
                tag.into(),
                millis.into(),
            ];
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                USERS_SQL,
                values,
            ))
            .await
            .with_context(|| format!("insert users {from} to {to}"))?;
            anyhow::Ok(())
        })
        .buffer_unordered(WORKERS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The demo company of `make run`, as the start-up banner tells it.
#[derive(Debug, Clone)]
pub struct Demo {
    pub admin_email: String,
    /// Its users besides the admin.
    pub users: u64,
    /// Seeded by this start.
    pub seeded_now: bool,
    /// The admin's password is still [`DEMO_PASSWORD`].
    pub password_unchanged: bool,
}

/// The demo company seeded on the first start of a private cluster ("Demo", its first admin),
/// if it is still there.
pub async fn find_demo(admin_url: &str) -> anyhow::Result<Option<Demo>> {
    let db = server::db::connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT u.email, u.password_hash, \
                    (SELECT count(*) FROM users m WHERE m.company_id = c.id) - 1 AS users \
             FROM companies c JOIN users u ON u.company_id = c.id \
             WHERE c.name = 'Demo' AND u.role = 'admin' AND u.display_name = 'Admin' \
             ORDER BY c.created_at, u.created_at LIMIT 1",
        ))
        .await?;
    let _ = db.close().await;
    let Some(row) = row else {
        return Ok(None);
    };
    let admin_email: String = row.try_get("", "email")?;
    let hash: Option<String> = row.try_get("", "password_hash")?;
    let users: i64 = row.try_get("", "users")?;
    let password_unchanged = password::Passwords::new(1, Duration::from_secs(60))
        .verify(DEMO_PASSWORD.to_owned(), hash)
        .await
        .unwrap_or(false);
    Ok(Some(Demo {
        admin_email,
        users: u64::try_from(users).unwrap_or(0),
        seeded_now: false,
        password_unchanged,
    }))
}

/// Whether the database has no company yet (a fresh `make run`).
pub async fn is_empty(admin_url: &str) -> anyhow::Result<bool> {
    let db = server::db::connect_pool(admin_url, 1, Duration::from_secs(30)).await?;
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT NOT EXISTS (SELECT 1 FROM companies) AS empty",
        ))
        .await?
        .context("no answer")?;
    Ok(row.try_get("", "empty")?)
}

/// `server seed`: connects like `server migrate` does (DATABASE_ADMIN_URL, DATABASE_URL, or the
/// private cluster), seeds, and prints the admin's credentials.
pub async fn run(
    mut config: server::config::Config,
    company: &str,
    users: u64,
    admin_password: Option<String>,
) -> anyhow::Result<()> {
    let admin = config
        .database_admin_url
        .clone()
        .or_else(|| config.database_url.clone());
    let (url, services) = match admin {
        Some(url) => (url, None),
        None => {
            let services = crate::prepare_private(&mut config).await?;
            let url = config
                .database_admin_url
                .clone()
                .context("private mode gave no admin URL")?;
            (url, Some(services))
        }
    };
    let password = admin_password.unwrap_or_else(random_password);
    let seeded = seed(&url, company, users, &password).await?;
    println!(
        "seeded company {company:?} ({}) with {} users in {:.1} s",
        seeded.company_id,
        seeded.users,
        seeded.elapsed.as_secs_f64()
    );
    println!("  admin: {}  password: {password}", seeded.admin_email);
    drop(services);
    Ok(())
}

/// 20 random URL-safe characters.
pub fn random_password() -> String {
    use base64::Engine as _;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
