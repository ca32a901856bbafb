//! The activities service (see the module documentation of `services`): kinds of activity,
//! activities, their shares, the lists and feeds of them, and comparisons. Every statement runs
//! in the caller's transaction, so Row Level Security decides which activities the caller reads
//! (their own; others' as visibility, friendship, shares and blocks allow) and which they
//! change (their own only); the metrics of every row are checked against its kind by
//! PostgreSQL as well as here (`crate::activities`).

use chrono::{DateTime, Utc};
use entity::{
    activities::{self, ActivityVisibility},
    activity_kinds,
};
use sea_orm::{
    ActiveEnum as _, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryResult, RuntimeErr, Statement, Value, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::keyset::{self, Sort};
use crate::{
    activities::{
        Activity, ActivityEventPayload, ActivityNotice, Aggregate, Kind, MetricDef, NewKind, Scope,
        Standing, Visibility,
    },
    auth::Principal,
    db::functions::activity_friend_ids_sql,
    error::{AppError, AppResult},
    paging::{DefaultSize, Direction, Page, PageArgs, PageRequest},
};

/// The list name of the cursors of a user's activities and of the feed, newest first.
pub const LIST: &str = "activities";
pub const FEED: &str = "friend_feed";

/// An activity's sort key: when it occurred, then its id (newest first).
pub type Key = (DateTime<Utc>, Uuid);

fn to_visibility(v: ActivityVisibility) -> Visibility {
    match v {
        ActivityVisibility::Private => Visibility::Private,
        ActivityVisibility::Friends => Visibility::Friends,
        ActivityVisibility::Company => Visibility::Company,
    }
}

fn stored_visibility(v: Visibility) -> ActivityVisibility {
    match v {
        Visibility::Private => ActivityVisibility::Private,
        Visibility::Friends => ActivityVisibility::Friends,
        Visibility::Company => ActivityVisibility::Company,
    }
}

fn kind_of(m: activity_kinds::Model) -> AppResult<Kind> {
    let metrics: Vec<MetricDef> = serde_json::from_value(m.metrics).map_err(|e| {
        AppError::internal(anyhow::anyhow!("unreadable metrics of kind {}: {e}", m.id))
    })?;
    Ok(Kind {
        id: m.id,
        company_id: m.company_id,
        name: m.name,
        metrics,
        created_at: m.created_at.with_timezone(&Utc),
    })
}

fn activity_of(m: activities::Model, kind: String) -> Activity {
    Activity {
        id: m.id,
        company_id: m.company_id,
        user_id: m.user_id,
        kind_id: m.kind_id,
        kind,
        occurred_at: m.occurred_at.with_timezone(&Utc),
        metrics: m.metrics,
        note: m.note,
        visibility: to_visibility(m.visibility),
        created_at: m.created_at.with_timezone(&Utc),
        updated_at: m.updated_at.with_timezone(&Utc),
    }
}

fn statement(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A refusal of the database's own check of metrics (`app.activities_check_metrics`) as
/// `BAD_USER_INPUT` at the path its message starts with (under `prefix`); other errors as
/// they are.
fn metrics_refused(error: DbErr, prefix: &str) -> AppError {
    if let DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) = &error
        && let Some(database) = e.as_database_error()
        && database.code().as_deref() == Some("23514")
        && database.constraint() == Some("activities_metrics_match_kind")
    {
        let message = database.message();
        let (path, why) = message.split_once(": ").unwrap_or(("metrics", message));
        let path = path.strip_prefix("metrics").unwrap_or_default();
        return AppError::bad_input(format!("{prefix}{path}"), format!("refused: {why}"));
    }
    error.into()
}

// Kinds ----------------------------------------------------------------------------------------

/// Defines a kind of activity in the caller's company; `CONFLICT` when its name (whatever the
/// case) is taken. Row Level Security lets only those who manage kinds insert.
pub async fn define_kind(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    new: NewKind,
) -> AppResult<Kind> {
    let metrics = serde_json::to_value(&new.metrics).map_err(AppError::internal)?;
    let row = activity_kinds::Entity::find()
        .from_raw_sql(statement(
            "INSERT INTO activity_kinds (company_id, name, metrics) VALUES ($1, $2, $3) RETURNING *",
            vec![caller.company_id.into(), new.name.into(), metrics.into()],
        ))
        .one(conn)
        .await?
        .ok_or_else(|| AppError::Forbidden("defining kinds of activity is not allowed to this caller".into()))?;
    kind_of(row)
}

/// The kinds of the caller's company, by name.
pub async fn kinds(conn: &impl ConnectionTrait, caller: &Principal) -> AppResult<Vec<Kind>> {
    activity_kinds::Entity::find()
        .from_raw_sql(statement(
            "SELECT * FROM activity_kinds WHERE company_id = $1 ORDER BY lower(name), id",
            vec![caller.company_id.into()],
        ))
        .all(conn)
        .await?
        .into_iter()
        .map(kind_of)
        .collect()
}

/// The kind named `name` (whatever the case) of the caller's company.
pub async fn kind_named(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    name: &str,
) -> AppResult<Option<Kind>> {
    activity_kinds::Entity::find()
        .from_raw_sql(statement(
            "SELECT * FROM activity_kinds WHERE company_id = $1 AND lower(name) = lower($2)",
            vec![caller.company_id.into(), name.trim().to_owned().into()],
        ))
        .one(conn)
        .await?
        .map(kind_of)
        .transpose()
}

/// The kind named `name`, or `BAD_USER_INPUT` at `path`.
pub async fn require_kind(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    name: &str,
    path: &str,
) -> AppResult<Kind> {
    kind_named(conn, caller, name)
        .await?
        .ok_or_else(|| AppError::bad_input(path, format!("there is no kind of activity `{name}`")))
}

async fn kind_names(
    conn: &impl ConnectionTrait,
    company: Uuid,
    ids: impl IntoIterator<Item = Uuid>,
) -> AppResult<std::collections::HashMap<Uuid, String>> {
    let mut ids: Vec<Uuid> = ids.into_iter().collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = conn
        .query_all_raw(statement(
            "SELECT id, name FROM activity_kinds WHERE company_id = $1 \
             AND id IN (SELECT value::uuid FROM jsonb_array_elements_text($2::jsonb) AS value)",
            vec![company.into(), json!(ids).into()],
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "name")?)))
        .collect::<Result<_, DbErr>>()
        .map_err(AppError::from)
}

/// Activities of rows, with their kinds' names.
async fn with_kinds(
    conn: &impl ConnectionTrait,
    company: Uuid,
    rows: Vec<activities::Model>,
) -> AppResult<Vec<Activity>> {
    let names = kind_names(conn, company, rows.iter().map(|r| r.kind_id)).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let kind = names.get(&row.kind_id).cloned().unwrap_or_default();
            activity_of(row, kind)
        })
        .collect())
}

// Writing --------------------------------------------------------------------------------------

/// An activity to record, checked against its kind (`crate::activities::check_metrics`).
#[derive(Debug, Clone)]
pub struct NewActivity {
    pub kind: Kind,
    pub occurred_at: DateTime<Utc>,
    pub metrics: serde_json::Value,
    pub note: Option<String>,
    pub visibility: Visibility,
}

/// The caller's friends (accepted friendships), as PostgreSQL answers them.
pub async fn friend_ids(conn: &impl ConnectionTrait) -> AppResult<Vec<Uuid>> {
    let rows = conn
        .query_all_raw(statement(
            &format!("SELECT unnest({}) AS value", activity_friend_ids_sql()),
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<Uuid>("", "value"))
        .collect::<Result<_, DbErr>>()
        .map_err(AppError::from)
}

/// Whom a new activity of the caller's is announced to: their friends, unless it is private
/// (each subscriber's read decides again whether they see it).
async fn notice(
    conn: &impl ConnectionTrait,
    activity: &Activity,
    recipients: Option<Vec<Uuid>>,
) -> AppResult<Option<ActivityNotice>> {
    let recipients = match recipients {
        Some(recipients) => recipients,
        None if activity.visibility == Visibility::Private => return Ok(None),
        None => friend_ids(conn).await?,
    };
    Ok((!recipients.is_empty()).then_some(ActivityNotice {
        recipients,
        payload: ActivityEventPayload {
            company_id: activity.company_id,
            activity_id: activity.id,
            user_id: activity.user_id,
        },
    }))
}

/// Records an activity of the caller's; the notice to publish once committed.
pub async fn record(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    new: NewActivity,
) -> AppResult<(Activity, Option<ActivityNotice>)> {
    let row = activities::Entity::find()
        .from_raw_sql(statement(
            "INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics, note, visibility) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
            vec![
                caller.company_id.into(),
                caller.user_id.into(),
                new.kind.id.into(),
                new.occurred_at.into(),
                new.metrics.into(),
                new.note.into(),
                stored_visibility(new.visibility).to_value().into(),
            ],
        ))
        .one(conn)
        .await
        .map_err(|e| metrics_refused(e, "metrics"))?
        .ok_or_else(|| AppError::Forbidden("recording activities is not allowed to this caller".into()))?;
    let activity = activity_of(row, new.kind.name);
    let notice = notice(conn, &activity, None).await?;
    Ok((activity, notice))
}

/// Records a batch of the caller's activities in one statement: all or none. How many.
pub async fn import(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    batch: Vec<NewActivity>,
) -> AppResult<u64> {
    let rows: Vec<serde_json::Value> = batch
        .iter()
        .map(|a| {
            json!({
                "kind_id": a.kind.id,
                "occurred_at": a.occurred_at,
                "metrics": a.metrics,
                "note": a.note,
                "visibility": stored_visibility(a.visibility).to_value(),
            })
        })
        .collect();
    let done = conn
        .execute_raw(statement(
            "INSERT INTO activities (company_id, user_id, kind_id, occurred_at, metrics, note, visibility) \
             SELECT $1, $2, t.kind_id, t.occurred_at, t.metrics, t.note, t.visibility \
             FROM jsonb_to_recordset($3::jsonb) AS t (kind_id uuid, occurred_at timestamptz, \
                                                      metrics jsonb, note text, visibility text)",
            vec![
                caller.company_id.into(),
                caller.user_id.into(),
                serde_json::Value::Array(rows).into(),
            ],
        ))
        .await
        .map_err(|e| metrics_refused(e, "activities.?.metrics"))?;
    Ok(done.rows_affected())
}

/// The activity `id`, if the caller may read it.
pub async fn find(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
) -> AppResult<Option<Activity>> {
    let row = activities::Entity::find()
        .filter(activities::Column::CompanyId.eq(caller.company_id))
        .filter(activities::Column::Id.eq(id))
        .one(conn)
        .await?;
    match row {
        Some(row) => Ok(with_kinds(conn, caller.company_id, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// The caller's own activity `id`, locked, with its kind: `NOT_FOUND` when the caller reads
/// no such activity, `FORBIDDEN` when it is someone else's.
async fn own_locked(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
) -> AppResult<(activities::Model, Kind)> {
    let seen = activities::Entity::find()
        .filter(activities::Column::CompanyId.eq(caller.company_id))
        .filter(activities::Column::Id.eq(id))
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound("no such activity".into()))?;
    if seen.user_id != caller.user_id {
        return Err(not_yours());
    }
    // Locked as the owner's own: Row Level Security lets the owner alone lock it.
    let row = activities::Entity::find()
        .from_raw_sql(statement(
            "SELECT * FROM activities WHERE company_id = $1 AND id = $2 AND user_id = $3 FOR UPDATE",
            vec![caller.company_id.into(), id.into(), caller.user_id.into()],
        ))
        .one(conn)
        .await?
        .ok_or_else(not_yours)?;
    let kind = activity_kinds::Entity::find()
        .filter(activity_kinds::Column::CompanyId.eq(caller.company_id))
        .filter(activity_kinds::Column::Id.eq(row.kind_id))
        .one(conn)
        .await?
        .ok_or_else(|| AppError::NotFound("no such activity".into()))?;
    Ok((row, kind_of(kind)?))
}

fn not_yours() -> AppError {
    AppError::Forbidden("only the owner of an activity changes it".into())
}

/// Changes to an activity; `None` keeps a value (`note: Some(None)` clears the note).
#[derive(Debug, Clone, Default)]
pub struct ActivityChanges {
    pub occurred_at: Option<DateTime<Utc>>,
    pub metrics: Option<serde_json::Value>,
    pub note: Option<Option<String>>,
    pub visibility: Option<Visibility>,
}

/// The caller's activity `id`, locked, and its kind, to check changes against.
pub async fn own_activity(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
) -> AppResult<Kind> {
    Ok(own_locked(conn, caller, id).await?.1)
}

/// Applies `changes` (already checked against the kind `own_activity` gave) to the caller's
/// activity `id`.
pub async fn update(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
    kind: &Kind,
    changes: ActivityChanges,
) -> AppResult<Activity> {
    let row = activities::Entity::find()
        .from_raw_sql(statement(
            "UPDATE activities SET occurred_at = COALESCE($3, occurred_at), \
             metrics = COALESCE($4, metrics), \
             note = CASE WHEN $5 THEN $6 ELSE note END, \
             visibility = COALESCE($7, visibility) \
             WHERE company_id = $1 AND id = $2 AND user_id = $8 RETURNING *",
            vec![
                caller.company_id.into(),
                id.into(),
                changes.occurred_at.into(),
                changes.metrics.into(),
                changes.note.is_some().into(),
                changes.note.flatten().into(),
                changes
                    .visibility
                    .map(|v| stored_visibility(v).to_value())
                    .into(),
                caller.user_id.into(),
            ],
        ))
        .one(conn)
        .await
        .map_err(|e| metrics_refused(e, "input.metrics"))?
        .ok_or_else(not_yours)?;
    Ok(activity_of(row, kind.name.clone()))
}

/// Deletes the caller's activity `id` (and its shares).
pub async fn delete(conn: &impl ConnectionTrait, caller: &Principal, id: Uuid) -> AppResult<()> {
    own_locked(conn, caller, id).await?;
    let done = conn
        .execute_raw(statement(
            "DELETE FROM activities WHERE company_id = $1 AND id = $2 AND user_id = $3",
            vec![caller.company_id.into(), id.into(), caller.user_id.into()],
        ))
        .await?;
    if done.rows_affected() == 0 {
        return Err(not_yours());
    }
    Ok(())
}

/// Shares the caller's activity `id` with exactly `users` (others of the company; a share to
/// someone not among them is taken back). The activity, and the notice to publish once
/// committed to those newly shared with who are the caller's friends.
pub async fn share(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
    users: Vec<Uuid>,
) -> AppResult<(Activity, Option<ActivityNotice>)> {
    let (row, kind) = own_locked(conn, caller, id).await?;
    for (i, user) in users.iter().enumerate() {
        if *user == caller.user_id {
            return Err(AppError::bad_input(
                format!("withUserIds.{i}"),
                "an activity is always its owner's: share it with others",
            ));
        }
    }
    let known: Vec<Uuid> = conn
        .query_all_raw(statement(
            "SELECT id FROM user_profiles WHERE company_id = $1 \
             AND id IN (SELECT value::uuid FROM jsonb_array_elements_text($2::jsonb) AS value)",
            vec![caller.company_id.into(), json!(users).into()],
        ))
        .await?
        .iter()
        .map(|row| row.try_get::<Uuid>("", "id"))
        .collect::<Result<_, DbErr>>()?;
    if let Some((i, _)) = users.iter().enumerate().find(|(_, u)| !known.contains(u)) {
        return Err(AppError::bad_input(
            format!("withUserIds.{i}"),
            "no such user in your company",
        ));
    }
    conn.execute_raw(statement(
        "DELETE FROM activity_shares WHERE company_id = $1 AND activity_id = $2 \
         AND user_id NOT IN (SELECT value::uuid FROM jsonb_array_elements_text($3::jsonb) AS value)",
        vec![caller.company_id.into(), id.into(), json!(users).into()],
    ))
    .await?;
    let added: Vec<Uuid> = conn
        .query_all_raw(statement(
            "INSERT INTO activity_shares (company_id, activity_id, user_id, owner_id) \
             SELECT DISTINCT $1::uuid, $2::uuid, value::uuid, $3::uuid \
             FROM jsonb_array_elements_text($4::jsonb) AS value \
             ON CONFLICT DO NOTHING RETURNING user_id",
            vec![
                caller.company_id.into(),
                id.into(),
                caller.user_id.into(),
                json!(users).into(),
            ],
        ))
        .await?
        .iter()
        .map(|row| row.try_get::<Uuid>("", "user_id"))
        .collect::<Result<_, DbErr>>()?;
    // The activity's own copy of whom it is shared with, which its policy reads (a policy reads
    // no other table): exactly the shares just written.
    conn.execute_raw(statement(
        "UPDATE activities SET shared_with = ARRAY(SELECT DISTINCT value::uuid \
         FROM jsonb_array_elements_text($4::jsonb) AS value ORDER BY 1) \
         WHERE company_id = $1 AND id = $2 AND user_id = $3",
        vec![
            caller.company_id.into(),
            id.into(),
            caller.user_id.into(),
            json!(users).into(),
        ],
    ))
    .await?;
    let activity = activity_of(row, kind.name);
    let friends = friend_ids(conn).await?;
    let recipients: Vec<Uuid> = added.into_iter().filter(|u| friends.contains(u)).collect();
    let notice = notice(conn, &activity, Some(recipients)).await?;
    Ok((activity, notice))
}

/// Whom the caller's activity `id` is shared with (for its owner; empty for anyone else, whose
/// view of the shares holds only their own).
pub async fn shared_with(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
) -> AppResult<Vec<Uuid>> {
    conn.query_all_raw(statement(
        "SELECT user_id FROM activity_shares WHERE company_id = $1 AND activity_id = $2 \
         AND owner_id = $3 ORDER BY user_id",
        vec![caller.company_id.into(), id.into(), caller.user_id.into()],
    ))
    .await?
    .iter()
    .map(|row| row.try_get::<Uuid>("", "user_id"))
    .collect::<Result<_, DbErr>>()
    .map_err(AppError::from)
}

// Reading --------------------------------------------------------------------------------------

/// Which activities a list shows: one user's (as the caller may read them), optionally of one
/// kind, in the window `[from, to)`.
#[derive(Debug, Clone)]
pub struct ActivityFilter {
    pub user_id: Uuid,
    pub kind_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

fn newest_first() -> Sort {
    Sort::desc([
        Expr::col(activities::Column::OccurredAt),
        Expr::col(activities::Column::Id),
    ])
}

fn window(
    mut select: sea_orm::Select<activities::Entity>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> sea_orm::Select<activities::Entity> {
    if let Some(from) = from {
        select = select.filter(activities::Column::OccurredAt.gte(from));
    }
    if let Some(to) = to {
        select = select.filter(activities::Column::OccurredAt.lt(to));
    }
    select
}

/// A page of the activities `filter` shows, newest first.
pub async fn page(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    filter: ActivityFilter,
    args: PageArgs,
) -> AppResult<Page<Activity>> {
    let request = args.validate::<Key>(LIST, DefaultSize::First(20))?;
    let mut select = activities::Entity::find()
        .filter(activities::Column::CompanyId.eq(caller.company_id))
        .filter(activities::Column::UserId.eq(filter.user_id));
    if let Some(kind) = filter.kind_id {
        select = select.filter(activities::Column::KindId.eq(kind));
    }
    let select = window(select, filter.from, filter.to);
    let page = keyset::fetch(conn, select, &newest_first(), LIST, &request, |a| {
        (a.occurred_at.to_utc(), a.id)
    })
    .await?;
    paged_with_kinds(conn, caller.company_id, page).await
}

async fn paged_with_kinds(
    conn: &impl ConnectionTrait,
    company: Uuid,
    page: Page<activities::Model>,
) -> AppResult<Page<Activity>> {
    let names = kind_names(conn, company, page.nodes().map(|a| a.kind_id)).await?;
    Ok(page.map(|row| {
        let kind = names.get(&row.kind_id).cloned().unwrap_or_default();
        activity_of(row, kind)
    }))
}

/// A page of the caller's friends' activities the caller may read, newest first.
pub async fn feed(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    args: PageArgs,
) -> AppResult<Page<Activity>> {
    let request = args.validate::<Key>(FEED, DefaultSize::First(20))?;
    let rows = activities::Entity::find()
        .from_raw_sql(feed_statement(caller.company_id, &request))
        .all(conn)
        .await?;
    let page = Page::build(rows, &request, FEED, |a| (a.occurred_at.to_utc(), a.id));
    paged_with_kinds(conn, caller.company_id, page).await
}

/// The statement of a page of the feed: `request.limit + 1` rows in the order the page is read
/// (newest first forward, oldest first backward), as `keyset::fetch` reads a page.
///
/// It is driven by the caller's friends, each read from the `(company_id, user_id,
/// occurred_at DESC, id DESC)` index, so that the policy judges a few rows per friend instead
/// of every activity of every friend. First each friend's first row of the page's window (their
/// `heads`); the `limit + 1`-th of those heads in page order is a `bound` no row of the page
/// passes (at least `limit + 1` rows reach it), so then the rows up to that bound of only the
/// friends whose head reaches it (at most `limit + 1` rows each) are merged. Without that many
/// heads there is no bound. Every read of `activities` is the caller's, under Row Level
/// Security: a row the caller may not read is neither a head nor a row of the page.
///
/// The bound is a column of a one-row CTE, not an expression of parameters: compared with a
/// column, it is an index condition (a COALESCE would not be leakproof, so it would only be
/// tested after the policy, on every row of every friend); and the plan's estimated cost stays
/// under the JIT threshold.
fn feed_statement(company: Uuid, request: &PageRequest<Key>) -> Statement {
    let mut values: Vec<Value> = vec![company.into()];
    let mut window = String::new();
    for (key, op) in [(&request.after, "<"), (&request.before, ">")] {
        if let Some((at, id)) = key {
            values.push(at.fixed_offset().into());
            values.push((*id).into());
            window.push_str(&format!(
                " AND (a.occurred_at, a.id) {op} (${}, ${})",
                values.len() - 1,
                values.len()
            ));
        }
    }
    let (order, reach, end) = match request.direction {
        Direction::Forward => ("DESC", ">=", "-infinity"),
        Direction::Backward => ("ASC", "<=", "infinity"),
    };
    // Validated sizes, written in as literals (see `keyset::keyset_statement`).
    let rows = request.limit + 1;
    let sql = format!(
        "WITH heads AS MATERIALIZED ( \
             SELECT f.user_id, h.occurred_at, h.id \
             FROM (SELECT DISTINCT unnest({friends}) AS user_id) f CROSS JOIN LATERAL ( \
                 SELECT a.occurred_at, a.id FROM activities a \
                 WHERE a.company_id = $1 AND a.user_id = f.user_id{window} \
                 ORDER BY a.occurred_at {order}, a.id {order} LIMIT 1) h), \
         bound AS MATERIALIZED ( \
             SELECT COALESCE((SELECT occurred_at FROM heads \
                              ORDER BY occurred_at {order}, id {order} OFFSET {offset} LIMIT 1), \
                             '{end}'::timestamptz) AS at) \
         SELECT p.* FROM bound b JOIN heads f ON f.occurred_at {reach} b.at CROSS JOIN LATERAL ( \
             SELECT a.* FROM activities a \
             WHERE a.company_id = $1 AND a.user_id = f.user_id{window} AND a.occurred_at {reach} b.at \
             ORDER BY a.occurred_at {order}, a.id {order} LIMIT {rows}) p \
         ORDER BY p.occurred_at {order}, p.id {order} LIMIT {rows}",
        friends = activity_friend_ids_sql(),
        offset = request.limit,
    );
    statement(&sql, values)
}

/// The activity `id` of a friend of the caller's, if the caller may read it now: what the
/// subscription of friends' activities shows of an announcement.
pub async fn friend_activity(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    id: Uuid,
) -> AppResult<Option<Activity>> {
    let row = activities::Entity::find()
        .filter(activities::Column::CompanyId.eq(caller.company_id))
        .filter(activities::Column::Id.eq(id))
        .filter(Expr::cust(format!(
            "\"activities\".\"user_id\" = ANY ((SELECT {})::uuid[])",
            activity_friend_ids_sql()
        )))
        .one(conn)
        .await?;
    match row {
        Some(row) => Ok(with_kinds(conn, caller.company_id, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

// Comparing ------------------------------------------------------------------------------------

/// What a comparison folds: a metric of a kind, with an aggregate, in the window `[from, to)`.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub kind_id: Uuid,
    pub metric: String,
    pub aggregate: Aggregate,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The SQL of an aggregate over the metric named by parameter `$param` of activities `a`.
fn fold(aggregate: Aggregate, param: usize) -> String {
    let number = format!("(a.metrics ->> ${param})::numeric");
    match aggregate {
        Aggregate::Avg => format!("avg({number})"),
        Aggregate::Sum => format!("sum({number})"),
        Aggregate::Min => format!("min({number})"),
        Aggregate::Max => format!("max({number})"),
        Aggregate::Count => format!("count(a.metrics -> ${param})"),
    }
}

fn standing(row: &QueryResult) -> Result<Standing, DbErr> {
    Ok(Standing {
        user_id: row.try_get("", "user_id")?,
        value: row.try_get("", "value")?,
        activity_count: row.try_get("", "activity_count")?,
        rank: row.try_get("", "rank")?,
    })
}

/// The SQL of the participants' standings, in one statement: `participants` is a query of
/// their `user_id`s; `$1` company, `$2` kind, `$3` metric, `$4` from, `$5` to, `$6` the caller.
/// Participants without an activity of the kind in the window the caller may read are left
/// out, except the caller when `keep_caller`. Each participant's activities are folded apart
/// (a lateral subquery), read from the `(company_id, user_id, kind_id, occurred_at)` index:
/// the policy judges only the participants' activities of the kind in the window, whatever
/// the planner guesses of the number of participants. The window's ends are columns of a
/// one-row CTE, so that they stay index conditions in a generic plan too (a COALESCE of
/// parameters is not leakproof: it would be tested after the policy).
fn standings_sql(aggregate: Aggregate, participants: &str, keep_caller: bool) -> String {
    format!(
        "WITH participants AS ({participants}), \
         win AS MATERIALIZED (SELECT COALESCE($4::timestamptz, '-infinity') AS since, \
                                     COALESCE($5::timestamptz, 'infinity') AS until) \
         SELECT p.user_id, f.value::float8 AS value, f.activity_count::int8 AS activity_count, \
                rank() OVER (ORDER BY f.value DESC NULLS LAST)::int8 AS rank \
         FROM win w CROSS JOIN participants p CROSS JOIN LATERAL ( \
             SELECT count(*) AS activity_count, {fold} AS value \
             FROM activities a \
             WHERE a.company_id = $1 AND a.user_id = p.user_id AND a.kind_id = $2 \
               AND a.occurred_at >= w.since AND a.occurred_at < w.until) f \
         WHERE f.activity_count > 0{keep} \
         ORDER BY rank, p.user_id",
        fold = fold(aggregate, 3),
        keep = if keep_caller {
            " OR p.user_id = $6"
        } else {
            ""
        },
    )
}

/// The caller and their friends (accepted friendships), as the participants of a comparison.
fn caller_and_friends() -> String {
    format!(
        "SELECT $6::uuid AS user_id UNION SELECT unnest({}) AS user_id",
        activity_friend_ids_sql()
    )
}

/// The caller and each friend with activities of the kind in the window the caller may read:
/// their value, number of activities and rank, in one statement, as the caller.
pub async fn compare_with_friends(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    comparison: &Comparison,
) -> AppResult<Vec<Standing>> {
    let sql = standings_sql(comparison.aggregate, &caller_and_friends(), true);
    standings(conn, caller, comparison, sql).await
}

async fn standings(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    comparison: &Comparison,
    sql: String,
) -> AppResult<Vec<Standing>> {
    conn.query_all_raw(statement(
        &sql,
        vec![
            caller.company_id.into(),
            comparison.kind_id.into(),
            comparison.metric.clone().into(),
            comparison.from.into(),
            comparison.to.into(),
            caller.user_id.into(),
        ],
    ))
    .await?
    .iter()
    .map(standing)
    .collect::<Result<_, DbErr>>()
    .map_err(AppError::from)
}

/// The first `first` standings of those who share at `scope`: the caller and their friends
/// (as the caller may read them), or everyone of the company over activities visible to the
/// whole company (the caller's own only when so visible).
pub async fn leaderboard(
    conn: &impl ConnectionTrait,
    caller: &Principal,
    comparison: &Comparison,
    scope: Scope,
    first: u64,
) -> AppResult<Vec<Standing>> {
    let sql = match scope {
        Scope::Friends => standings_sql(comparison.aggregate, &caller_and_friends(), false),
        Scope::Company => format!(
            "SELECT a.user_id, {fold}::float8 AS value, count(*)::int8 AS activity_count, \
                    rank() OVER (ORDER BY {fold} DESC NULLS LAST)::int8 AS rank \
             FROM activities a \
             WHERE a.company_id = $1 AND a.kind_id = $2 AND a.visibility = 'company' \
               AND a.occurred_at >= COALESCE($4::timestamptz, '-infinity') \
               AND a.occurred_at < COALESCE($5::timestamptz, 'infinity') \
             GROUP BY a.user_id ORDER BY rank, a.user_id",
            fold = fold(comparison.aggregate, 3)
        ),
    };
    // A validated size, written in as a literal (see `keyset::keyset_statement`).
    standings(conn, caller, comparison, format!("{sql} LIMIT {first}")).await
}
