//! Activities and comparisons with friends: `activityKinds`, `activities`, `friendFeed`,
//! `compareWithFriends`, `leaderboard`, `User.activities`, the mutations that define kinds and
//! record, change, import, delete and share activities, and the `friendActivity`
//! subscription. The rules are `crate::activities`, the reads and writes
//! `crate::services::activities`; PostgreSQL decides who reads which activity.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject,
    Subscription,
};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use super::{
    connection::{Defaulted, PageInfo, connection, page_args, page_cost, parse_id},
    principal, scope,
    users::User,
};
use crate::{
    activities::{
        self as rules, Aggregate, MetricDef, MetricType, Scope, Standing, Visibility, events,
    },
    auth::Principal,
    authz::{Action, Object as Obj, requires},
    error::{AppError, AppResult},
    paging::{MAX_PAGE_SIZE, PageArgs},
    services::{
        activities::{self as service, ActivityChanges, ActivityFilter, Comparison, NewActivity},
        users as users_service,
    },
    state::AppState,
};

fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>()
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in context")))
}

/// The type of a metric's values.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityMetricType {
    /// Any JSON number of magnitude under 10^15.
    Number,
    /// A whole number of magnitude under 10^15.
    Integer,
    /// true / false (only `COUNT` compares it).
    Boolean,
    /// Text of at most 1,000 characters (only `COUNT` compares it).
    String,
}

impl From<MetricType> for ActivityMetricType {
    fn from(ty: MetricType) -> Self {
        match ty {
            MetricType::Number => Self::Number,
            MetricType::Integer => Self::Integer,
            MetricType::Boolean => Self::Boolean,
            MetricType::String => Self::String,
        }
    }
}

impl From<ActivityMetricType> for MetricType {
    fn from(ty: ActivityMetricType) -> Self {
        match ty {
            ActivityMetricType::Number => Self::Number,
            ActivityMetricType::Integer => Self::Integer,
            ActivityMetricType::Boolean => Self::Boolean,
            ActivityMetricType::String => Self::String,
        }
    }
}

/// Who besides its owner reads an activity. Whatever it is, those it is shared with
/// (`shareActivity`) read it too, and nobody in a blocked pair with the owner does; admins read
/// others' activities as anyone else does.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityVisibility {
    /// Nobody else (but those it is shared with).
    Private,
    /// The owner's friends.
    Friends,
    /// Everyone in the company.
    Company,
}

impl From<Visibility> for ActivityVisibility {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Private => Self::Private,
            Visibility::Friends => Self::Friends,
            Visibility::Company => Self::Company,
        }
    }
}

impl From<ActivityVisibility> for Visibility {
    fn from(v: ActivityVisibility) -> Self {
        match v {
            ActivityVisibility::Private => Self::Private,
            ActivityVisibility::Friends => Self::Friends,
            ActivityVisibility::Company => Self::Company,
        }
    }
}

/// How a comparison folds a metric of each participant's activities into one value.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityAggregate {
    /// The mean.
    Avg,
    /// The total.
    Sum,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// How many activities carry the metric (any type of metric).
    Count,
}

impl From<ActivityAggregate> for Aggregate {
    fn from(a: ActivityAggregate) -> Self {
        match a {
            ActivityAggregate::Avg => Self::Avg,
            ActivityAggregate::Sum => Self::Sum,
            ActivityAggregate::Min => Self::Min,
            ActivityAggregate::Max => Self::Max,
            ActivityAggregate::Count => Self::Count,
        }
    }
}

/// Whose activities a leaderboard ranks.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderboardScope {
    /// The caller and their friends, over the activities the caller may read.
    Friends,
    /// Everyone in the company, over activities visible to the whole company.
    Company,
}

impl From<LeaderboardScope> for Scope {
    fn from(s: LeaderboardScope) -> Self {
        match s {
            LeaderboardScope::Friends => Self::Friends,
            LeaderboardScope::Company => Self::Company,
        }
    }
}

/// A metric a kind of activity defines.
#[derive(Debug, Clone, SimpleObject)]
pub struct ActivityMetric {
    /// The key of its value in an activity's `metrics`.
    pub name: String,
    #[graphql(name = "type")]
    pub ty: ActivityMetricType,
    /// The unit of its values, if any (e.g. `min`).
    pub unit: Option<String>,
}

/// A kind of activity of the company, and the metrics its activities carry.
#[derive(Debug, Clone, SimpleObject)]
pub struct ActivityKind {
    pub id: ID,
    /// Unique in the company, whatever its case.
    pub name: String,
    pub metrics: Vec<ActivityMetric>,
    pub created_at: DateTime<Utc>,
}

impl From<rules::Kind> for ActivityKind {
    fn from(k: rules::Kind) -> Self {
        Self {
            id: ID(k.id.to_string()),
            name: k.name,
            metrics: k
                .metrics
                .into_iter()
                .map(|m| ActivityMetric {
                    name: m.name,
                    ty: m.ty.into(),
                    unit: m.unit,
                })
                .collect(),
            created_at: k.created_at,
        }
    }
}

/// An activity someone recorded.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Activity {
    pub id: ID,
    /// The name of its kind.
    pub kind: String,
    pub kind_id: ID,
    /// Its owner.
    pub user_id: ID,
    pub occurred_at: DateTime<Utc>,
    /// The values by metric name, as the kind defines them.
    pub metrics: Json<serde_json::Value>,
    pub note: Option<String>,
    pub visibility: ActivityVisibility,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    owner: uuid::Uuid,
    #[graphql(skip)]
    raw_id: uuid::Uuid,
    /// The owner, when already read (a subscription's event carries it: it has no request
    /// transaction to read it in later).
    #[graphql(skip)]
    preloaded_user: Option<User>,
}

impl From<rules::Activity> for Activity {
    fn from(a: rules::Activity) -> Self {
        Self {
            id: ID(a.id.to_string()),
            kind: a.kind,
            kind_id: ID(a.kind_id.to_string()),
            user_id: ID(a.user_id.to_string()),
            occurred_at: a.occurred_at,
            metrics: Json(a.metrics),
            note: a.note,
            visibility: a.visibility.into(),
            created_at: a.created_at,
            updated_at: a.updated_at,
            owner: a.user_id,
            raw_id: a.id,
            preloaded_user: None,
        }
    }
}

#[ComplexObject]
impl Activity {
    /// Its owner, as the caller may see them.
    async fn user(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        if let Some(user) = &self.preloaded_user {
            return Ok(Some(user.clone()));
        }
        let company = principal(ctx)?.company_id;
        let owner = self.owner;
        let profile = scope(ctx)?
            .read(move |tx| Box::pin(users_service::profile(tx.conn(), company, owner)))
            .await?;
        Ok(profile.map(User::from_row))
    }

    /// The users it is shared with, for its owner (empty for anyone else).
    async fn shared_with(&self, ctx: &Context<'_>) -> AppResult<Vec<ID>> {
        let caller = principal(ctx)?.clone();
        if caller.user_id != self.owner {
            return Ok(Vec::new());
        }
        let id = self.raw_id;
        let users = scope(ctx)?
            .read(move |tx| {
                Box::pin(async move { service::shared_with(tx.conn(), &caller, id).await })
            })
            .await?;
        Ok(users.into_iter().map(|u| ID(u.to_string())).collect())
    }
}

connection! {
    /// A page of activities, newest first.
    pub struct ActivityConnection {
        /// The activities of this page with their cursors.
        edges,
        /// Where the page ends.
        page_info: PageInfo,
    }
    /// An item of an [`ActivityConnection`].
    pub struct ActivityEdge {
        /// Pass it as `after` (or `before`) to page on from this activity.
        cursor,
        /// The activity.
        node: Activity,
    }
}

/// One participant of a comparison or a leaderboard.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct ActivityStanding {
    pub user_id: ID,
    /// The folded value; null when none of their activities carries the metric.
    pub value: Option<f64>,
    /// Their activities of the kind in the window (that the caller may read).
    pub activity_count: i64,
    /// 1 for the highest value; equal values share a rank; those without a value come last.
    pub rank: i64,
    #[graphql(skip)]
    raw_user: uuid::Uuid,
}

impl From<Standing> for ActivityStanding {
    fn from(s: Standing) -> Self {
        Self {
            user_id: ID(s.user_id.to_string()),
            value: s.value,
            activity_count: s.activity_count,
            rank: s.rank,
            raw_user: s.user_id,
        }
    }
}

#[ComplexObject]
impl ActivityStanding {
    /// The participant, as the caller may see them.
    async fn user(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let company = principal(ctx)?.company_id;
        let id = self.raw_user;
        let profile = scope(ctx)?
            .read(move |tx| Box::pin(users_service::profile(tx.conn(), company, id)))
            .await?;
        Ok(profile.map(User::from_row))
    }
}

/// A metric of a new kind.
#[derive(Debug, Clone, InputObject)]
pub struct ActivityMetricInput {
    /// 1 to 63 characters: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    #[graphql(name = "type")]
    pub ty: ActivityMetricType,
    /// At most 20 characters.
    pub unit: Option<String>,
}

/// A new kind of activity.
#[derive(Debug, Clone, InputObject)]
pub struct DefineActivityKindInput {
    /// 1 to 100 characters, unique in the company whatever the case.
    pub name: String,
    /// 1 to 50 metrics with distinct names.
    pub metrics: Vec<ActivityMetricInput>,
}

/// A new activity of the caller's.
#[derive(Debug, Clone, InputObject)]
pub struct RecordActivityInput {
    /// The name of its kind (whatever the case).
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    /// A JSON object of values by metric name, each of its metric's type; metrics may be left
    /// out.
    pub metrics: Json<serde_json::Value>,
    /// At most 2,000 characters.
    pub note: Option<String>,
    #[graphql(default_with = "ActivityVisibility::Private")]
    pub visibility: ActivityVisibility,
}

/// Changes to an activity of the caller's; omitted fields stay as they are (`note: null`
/// removes the note).
#[derive(Debug, Clone, InputObject)]
pub struct UpdateActivityInput {
    pub occurred_at: Option<DateTime<Utc>>,
    /// All of the activity's metrics, replacing the previous ones.
    pub metrics: Option<Json<serde_json::Value>>,
    pub note: MaybeUndefined<String>,
    pub visibility: Option<ActivityVisibility>,
}

/// What an import did.
#[derive(Debug, Clone, SimpleObject)]
pub struct ImportActivitiesPayload {
    /// How many activities were recorded (all of them, or the import failed as a whole).
    pub imported: u64,
}

/// A page size argument without cursors: 1 to 100, `BAD_USER_INPUT` naming it otherwise.
fn size(first: i32, name: &str) -> AppResult<u64> {
    if (1..=MAX_PAGE_SIZE).contains(&first) {
        Ok(first as u64)
    } else {
        Err(AppError::bad_input(
            name,
            format!("`{name}` must be between 1 and {MAX_PAGE_SIZE}, got {first}"),
        ))
    }
}

/// A checked new activity: its kind read (once per name, in `kinds`), its metrics and note
/// checked (paths under `path`).
async fn checked_new(
    tx: &crate::db::RequestTx,
    caller: &Principal,
    input: RecordActivityInput,
    path: &str,
    kinds: &mut HashMap<String, rules::Kind>,
) -> AppResult<NewActivity> {
    let kind_path = if path.is_empty() {
        "kind".to_owned()
    } else {
        format!("{path}.kind")
    };
    let prefix = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let key = input.kind.trim().to_lowercase();
    let kind = match kinds.get(&key) {
        Some(kind) => kind.clone(),
        None => {
            let kind = service::require_kind(tx.conn(), caller, &input.kind, &kind_path).await?;
            kinds.insert(key, kind.clone());
            kind
        }
    };
    rules::check_metrics(&kind, &input.metrics.0, &prefix("metrics"))?;
    let note = rules::check_note(input.note, &prefix("note"))?;
    Ok(NewActivity {
        kind,
        occurred_at: input.occurred_at,
        metrics: input.metrics.0,
        note,
        visibility: input.visibility.into(),
    })
}

/// Reads the kind named `kind` and checks `metric` and the window for a comparison.
async fn comparison(
    tx: &crate::db::RequestTx,
    caller: &Principal,
    kind: &str,
    metric: &str,
    aggregate: Aggregate,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> AppResult<Comparison> {
    rules::check_window(from, to)?;
    let kind = service::require_kind(tx.conn(), caller, kind, "kind").await?;
    rules::check_compared_metric(&kind, metric, aggregate)?;
    Ok(Comparison {
        kind_id: kind.id,
        metric: metric.to_owned(),
        aggregate,
        from,
        to,
    })
}

/// A page of `user`'s activities as the caller may read them.
async fn activities_page(
    ctx: &Context<'_>,
    user: uuid::Uuid,
    kind: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    args: PageArgs,
) -> AppResult<ActivityConnection> {
    rules::check_window(from, to)?;
    let caller = principal(ctx)?.clone();
    let page = scope(ctx)?
        .read(move |tx| {
            Box::pin(async move {
                let kind_id = match kind {
                    Some(kind) => Some(
                        service::require_kind(tx.conn(), &caller, &kind, "kind")
                            .await?
                            .id,
                    ),
                    None => None,
                };
                let filter = ActivityFilter {
                    user_id: user,
                    kind_id,
                    from,
                    to,
                };
                service::page(tx.conn(), &caller, filter, args).await
            })
        })
        .await?;
    Ok(ActivityConnection::from_page(page.map(Activity::from)))
}

/// `User.activities` (declared with the other per-viewer fields of `User`, in `friends`): this
/// user's activities the caller may read.
pub(super) async fn user_activities(
    ctx: &Context<'_>,
    user: &User,
    kind: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    args: PageArgs,
) -> AppResult<ActivityConnection> {
    let user = parse_id("id", &user.id)?;
    activities_page(ctx, user, kind, from, to, args).await
}

/// Queries of activities and comparisons.
#[derive(Default)]
pub struct ActivityQuery;

#[Object]
impl ActivityQuery {
    /// The company's kinds of activity, by name.
    #[graphql(directive = requires::apply(Obj::ActivityKind, Action::Read))]
    async fn activity_kinds(&self, ctx: &Context<'_>) -> AppResult<Vec<ActivityKind>> {
        let caller = principal(ctx)?.clone();
        let kinds = scope(ctx)?
            .read(move |tx| Box::pin(async move { service::kinds(tx.conn(), &caller).await }))
            .await?;
        Ok(kinds.into_iter().map(ActivityKind::from).collect())
    }

    /// The activities of `userId` (the caller when omitted) that the caller may read, newest
    /// first, optionally of one kind and in the window `[from, to)`.
    #[graphql(
        directive = requires::apply(Obj::Activity, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn activities(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        kind: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<ActivityConnection> {
        let user = match &user_id {
            Some(id) => parse_id("userId", id)?,
            None => principal(ctx)?.user_id,
        };
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        activities_page(ctx, user, kind, from, to, args).await
    }

    /// The caller's friends' activities the caller may read, newest first.
    #[graphql(
        directive = requires::apply(Obj::Activity, Action::Read),
        complexity = "page_cost(last, first, 20, child_complexity)"
    )]
    async fn friend_feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<ActivityConnection> {
        let caller = principal(ctx)?.clone();
        let args = page_args(ctx, Defaulted::First, first, after, last, before);
        let page = scope(ctx)?
            .read(move |tx| Box::pin(async move { service::feed(tx.conn(), &caller, args).await }))
            .await?;
        Ok(ActivityConnection::from_page(page.map(Activity::from)))
    }

    /// The caller and each friend who has activities of `kind` in `[from, to)` that the
    /// caller may read: `metric` folded by `aggregate`, the number of activities, and the rank
    /// (highest value first). The caller is always there, even without activities. One SQL
    /// statement, run as the caller.
    #[graphql(
        directive = requires::apply(Obj::Activity, Action::Read),
        complexity = "1 + 50 * child_complexity"
    )]
    async fn compare_with_friends(
        &self,
        ctx: &Context<'_>,
        kind: String,
        metric: String,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        aggregate: ActivityAggregate,
    ) -> AppResult<Vec<ActivityStanding>> {
        let caller = principal(ctx)?.clone();
        let standings = scope(ctx)?
            .read(move |tx| {
                Box::pin(async move {
                    let comparison =
                        comparison(tx, &caller, &kind, &metric, aggregate.into(), from, to).await?;
                    service::compare_with_friends(tx.conn(), &caller, &comparison).await
                })
            })
            .await?;
        Ok(standings.into_iter().map(ActivityStanding::from).collect())
    }

    /// The first `first` (1 to 100) of those who share activities of `kind` at `scope`,
    /// ranked by `metric` folded by `aggregate` over `[from, to)`.
    #[graphql(
        directive = requires::apply(Obj::Activity, Action::Read),
        complexity = "1 + (first.unwrap_or(10).max(0) as usize) * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn leaderboard(
        &self,
        ctx: &Context<'_>,
        kind: String,
        metric: String,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        aggregate: ActivityAggregate,
        scope: LeaderboardScope,
        #[graphql(default = 10)] first: Option<i32>,
    ) -> AppResult<Vec<ActivityStanding>> {
        let first = size(first.unwrap_or(10), "first")?;
        let caller = principal(ctx)?.clone();
        let standings = super::scope(ctx)?
            .read(move |tx| {
                Box::pin(async move {
                    let comparison =
                        comparison(tx, &caller, &kind, &metric, aggregate.into(), from, to).await?;
                    service::leaderboard(tx.conn(), &caller, &comparison, scope.into(), first).await
                })
            })
            .await?;
        Ok(standings.into_iter().map(ActivityStanding::from).collect())
    }
}

/// Kinds of activity, and the caller's activities.
#[derive(Default)]
pub struct ActivityMutation;

#[Object]
impl ActivityMutation {
    /// Defines a kind of activity with typed metrics (admins: managing kinds). `CONFLICT` when
    /// the name is taken; a kind does not change once defined.
    #[graphql(directive = requires::apply(Obj::ActivityKind, Action::Manage))]
    async fn define_activity_kind(
        &self,
        ctx: &Context<'_>,
        input: DefineActivityKindInput,
    ) -> AppResult<ActivityKind> {
        let metrics = input
            .metrics
            .into_iter()
            .map(|m| MetricDef {
                name: m.name,
                ty: m.ty.into(),
                unit: m.unit,
            })
            .collect();
        let new = rules::check_kind(&input.name, metrics)?;
        let caller = principal(ctx)?.clone();
        let kind = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::define_kind(tx.conn(), &caller, new).await })
            })
            .await?;
        Ok(kind.into())
    }

    /// Records an activity of the caller's. `BAD_USER_INPUT` for an unknown kind (`kind`), a
    /// metric that is not the kind's or not of its type (`metrics.<name>`) or a long note.
    /// Friends who may read it are told (`friendActivity`).
    #[graphql(directive = requires::apply(Obj::Activity, Action::Create))]
    async fn record_activity(
        &self,
        ctx: &Context<'_>,
        input: RecordActivityInput,
    ) -> AppResult<Activity> {
        let caller = principal(ctx)?.clone();
        let (activity, notice) = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    let new = checked_new(tx, &caller, input, "", &mut HashMap::new()).await?;
                    service::record(tx.conn(), &caller, new).await
                })
            })
            .await?;
        if let Some(notice) = notice {
            events::publish(&state(ctx)?.pubsub, &[notice]).await;
        }
        Ok(activity.into())
    }

    /// Records up to 1,000 activities of the caller's at once, in one transaction: all of them
    /// or, when one is refused, none (the error's path names it: `activities.<index>...`).
    /// Imports are not announced to friends.
    #[graphql(
        directive = requires::apply(Obj::Activity, Action::Create),
        complexity = "1 + activities.len()"
    )]
    async fn import_activities(
        &self,
        ctx: &Context<'_>,
        activities: Vec<RecordActivityInput>,
    ) -> AppResult<ImportActivitiesPayload> {
        if activities.is_empty() || activities.len() > rules::MAX_IMPORT {
            return Err(AppError::bad_input(
                "activities",
                format!("an import holds 1 to {} activities", rules::MAX_IMPORT),
            ));
        }
        let caller = principal(ctx)?.clone();
        let imported = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    let mut batch = Vec::with_capacity(activities.len());
                    let mut kinds = HashMap::new();
                    for (i, input) in activities.into_iter().enumerate() {
                        let path = format!("activities.{i}");
                        batch.push(checked_new(tx, &caller, input, &path, &mut kinds).await?);
                    }
                    service::import(tx.conn(), &caller, batch).await
                })
            })
            .await?;
        Ok(ImportActivitiesPayload { imported })
    }

    /// Changes an activity of the caller's: `NOT_FOUND` when the caller reads no such activity,
    /// `FORBIDDEN` when it is someone else's; new metrics are checked like a new activity's.
    #[graphql(directive = requires::apply(Obj::Activity, Action::Update))]
    async fn update_activity(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateActivityInput,
    ) -> AppResult<Activity> {
        let id = parse_id("id", &id)?;
        let note = match input.note {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(note) => Some(rules::check_note(Some(note), "input.note")?),
        };
        let caller = principal(ctx)?.clone();
        let activity = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move {
                    let kind = service::own_activity(tx.conn(), &caller, id).await?;
                    if let Some(metrics) = &input.metrics {
                        rules::check_metrics(&kind, &metrics.0, "input.metrics")?;
                    }
                    let changes = ActivityChanges {
                        occurred_at: input.occurred_at,
                        metrics: input.metrics.map(|m| m.0),
                        note,
                        visibility: input.visibility.map(Into::into),
                    };
                    service::update(tx.conn(), &caller, id, &kind, changes).await
                })
            })
            .await?;
        Ok(activity.into())
    }

    /// Deletes an activity of the caller's (and its shares); errors as `updateActivity`.
    #[graphql(directive = requires::apply(Obj::Activity, Action::Delete))]
    async fn delete_activity(&self, ctx: &Context<'_>, id: ID) -> AppResult<bool> {
        let id = parse_id("id", &id)?;
        let caller = principal(ctx)?.clone();
        scope(ctx)?
            .write(move |tx| Box::pin(async move { service::delete(tx.conn(), &caller, id).await }))
            .await?;
        Ok(true)
    }

    /// Shares an activity of the caller's with exactly `withUserIds` (at most 100 others of
    /// the company; `[]` takes every share back), whatever its visibility: a coach may so read
    /// a private activity. Never across a block. Friends newly shared with are told
    /// (`friendActivity`).
    #[graphql(directive = requires::apply(Obj::Activity, Action::Update))]
    async fn share_activity(
        &self,
        ctx: &Context<'_>,
        id: ID,
        with_user_ids: Vec<ID>,
    ) -> AppResult<Activity> {
        let id = parse_id("id", &id)?;
        if with_user_ids.len() > rules::MAX_SHARES {
            return Err(AppError::bad_input(
                "withUserIds",
                format!(
                    "an activity is shared with at most {} users",
                    rules::MAX_SHARES
                ),
            ));
        }
        let users = with_user_ids
            .iter()
            .enumerate()
            .map(|(i, u)| parse_id(&format!("withUserIds.{i}"), u))
            .collect::<AppResult<Vec<_>>>()?;
        let caller = principal(ctx)?.clone();
        let (activity, notice) = scope(ctx)?
            .write(move |tx| {
                Box::pin(async move { service::share(tx.conn(), &caller, id, users).await })
            })
            .await?;
        if let Some(notice) = notice {
            events::publish(&state(ctx)?.pubsub, &[notice]).await;
        }
        Ok(activity.into())
    }
}

/// Live activities of friends.
#[derive(Default)]
pub struct ActivitySubscription;

#[Subscription]
impl ActivitySubscription {
    /// A friend's new activity (or one a friend newly shared with the caller), as soon as it
    /// is recorded, on whichever instance: each is read as the caller, so only those the
    /// caller may read at that moment arrive.
    #[graphql(directive = requires::apply(Obj::Activity, Action::Read))]
    async fn friend_activity(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = Activity> + use<>, AppError> {
        let principal = principal(ctx)?.clone();
        let scope = Arc::clone(scope(ctx)?);
        let live = state(ctx)?
            .pubsub
            .subscribe(&events::topic(principal.user_id));
        // A subscription lives long: it must not keep a transaction (and a connection).
        scope.finish().await?;
        let stream = live.filter_map(move |payload| {
            let scope = Arc::clone(&scope);
            let principal = principal.clone();
            async move {
                let event = match serde_json::from_str::<events::ActivityEventPayload>(&payload) {
                    Ok(event) if event.company_id == principal.company_id => event,
                    Ok(_) => return None,
                    Err(error) => {
                        tracing::warn!(%error, "malformed activity event dropped");
                        return None;
                    }
                };
                let activity_id = event.activity_id;
                let read = scope
                    .read(|tx| {
                        Box::pin(async move {
                            let Some(activity) =
                                service::friend_activity(tx.conn(), &principal, activity_id)
                                    .await?
                            else {
                                return Ok(None);
                            };
                            let owner = users_service::profile(
                                tx.conn(),
                                principal.company_id,
                                activity.user_id,
                            )
                            .await?;
                            Ok(Some((activity, owner)))
                        })
                    })
                    .await;
                let _ = scope.finish().await;
                match read {
                    Ok(Some((activity, owner))) => {
                        let mut activity = Activity::from(activity);
                        activity.preloaded_user = owner.map(User::from_row);
                        Some(activity)
                    }
                    Ok(None) => None,
                    Err(error) => {
                        tracing::warn!(?error, %activity_id, "could not read a friend's activity");
                        None
                    }
                }
            }
        });
        super::live::bounded(ctx, stream)
    }
}
