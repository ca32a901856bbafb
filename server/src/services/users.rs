//! Users and their company: profiles (read through `user_profiles`, which masks what the
//! target's privacy settings hide), the `users` list, and the administration of users with its
//! rules on roles and the last admin.

use chrono::{DateTime, Utc};
/// The caller's relation to a person, and who may see a person's e-mail and attributes.
pub use entity::user_profiles::{ProfileVisibility, Relationship};
use entity::{companies, user_profiles, users};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryResult,
    QuerySelect,
    sea_query::{Alias, Expr},
};
use uuid::Uuid;

/// A further condition on `user_profiles` (friends, mutual friends, blocked users).
pub use sea_orm::sea_query::SimpleExpr as Condition;

use super::{
    auth as auth_service,
    keyset::{self, Sort, SortKey},
    roles as role_service,
};
use crate::{
    caller::{BuiltInRole, Principal, RoleName, UnknownRole},
    error::{AppError, AppResult},
    paging::{DefaultSize, Page, PageArgs, like_pattern, search_text},
};

/// A person as the caller may see them.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: Uuid,
    pub company_id: Uuid,
    /// `None` when the person's privacy settings hide it from the caller.
    pub email: Option<String>,
    pub display_name: String,
    /// Built-in or custom; `RoleName::BuiltIn(BuiltInRole::Member)` where a list did not read it.
    pub role: RoleName,
    /// Only the keys the caller may see (`{}` when none).
    pub attributes: serde_json::Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_active_at: Option<DateTime<Utc>>,
    /// The caller's relation to this person, as `user_profiles` computes it.
    pub relation: Relationship,
    /// Shown to the person themselves and admins only.
    pub profile_visibility: Option<ProfileVisibility>,
    pub visible_attributes: Option<Vec<String>>,
    /// Whether the person proved their address is theirs.
    pub email_verified: bool,
}

impl TryFrom<user_profiles::Model> for Profile {
    type Error = DbErr;

    /// A stored role that is no role name is an error, never a default.
    fn try_from(m: user_profiles::Model) -> Result<Self, DbErr> {
        Ok(Self {
            id: m.id,
            company_id: m.company_id,
            email: m.email,
            display_name: m.display_name,
            role: stored_role(&m.role)?,
            attributes: m.attributes,
            is_active: m.is_active,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
            last_active_at: m.last_active_at.map(|t| t.with_timezone(&Utc)),
            relation: m.relation,
            profile_visibility: m.profile_visibility,
            visible_attributes: m.visible_attributes,
            email_verified: m.email_verified,
        })
    }
}

/// The role stored in `users.role`; a name that is no role (the column's check refuses one) is
/// an error.
fn stored_role(name: &str) -> Result<RoleName, DbErr> {
    name.parse()
        .map_err(|e: UnknownRole| DbErr::Type(format!("users.role: {e}")))
}

/// A role asked for in `input.role`: a built-in role or a well-formed custom role name (whether
/// the company has that custom role is [`administer`]'s check), else `BAD_USER_INPUT`.
pub fn requested_role(name: &str) -> AppResult<RoleName> {
    let name = name.trim();
    name.parse().map_err(|_| unknown_role(name))
}

fn unknown_role(name: &str) -> AppError {
    AppError::bad_input(
        "input.role",
        format!("unknown role `{name}`: use a built-in role or create it first"),
    )
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    /// Whether its conversations may be used as training data.
    pub training: super::training::Policy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<companies::Model> for Company {
    fn from(m: companies::Model) -> Self {
        Self {
            id: m.id,
            training: super::training::Policy::from(&m),
            name: m.name,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// What the `users` list sorts by; ties are broken by id, so every order is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    DisplayName,
    Email,
}

/// An ordering of the `users` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub field: SortField,
    pub descending: bool,
}

impl Order {
    /// The list name its cursors carry: a cursor is valid only in the ordering it came from.
    pub fn list(self) -> &'static str {
        use SortField::*;
        match (self.field, self.descending) {
            (CreatedAt, false) => "users/created_at/asc",
            (CreatedAt, true) => "users/created_at/desc",
            (DisplayName, false) => "users/display_name/asc",
            (DisplayName, true) => "users/display_name/desc",
            (Email, false) => "users/email/asc",
            (Email, true) => "users/email/desc",
        }
    }

    /// The sort columns, ending with the id. Masked e-mails sort as empty text.
    fn sort(self) -> Sort {
        let column: Condition = match self.field {
            SortField::CreatedAt => Expr::col(user_profiles::Column::CreatedAt),
            SortField::DisplayName => Expr::col(user_profiles::Column::DisplayName),
            SortField::Email => Expr::cust("COALESCE(email, '')"),
        };
        let columns = [column, Expr::col(user_profiles::Column::Id)];
        if self.descending {
            Sort::desc(columns)
        } else {
            Sort::asc(columns)
        }
    }
}

/// Which users a list asks for.
#[derive(Debug, Clone)]
pub struct UserFilter {
    company_id: Uuid,
    search: Option<String>,
    role: Option<String>,
    is_active: Option<bool>,
    /// Leave out users in a blocked pair with the caller.
    hide_blocked: bool,
    /// Any further condition (friends, mutual friends, blocked users).
    extra: Option<Condition>,
}

impl UserFilter {
    /// Users of `company` matching `condition`.
    pub fn matching(company_id: Uuid, condition: Condition) -> Self {
        Self {
            company_id,
            search: None,
            role: None,
            is_active: None,
            hide_blocked: false,
            extra: Some(condition),
        }
    }

    /// The `users` query's filter. `search` is trimmed (at most 200 characters, else
    /// `BAD_USER_INPUT`); `hide_blocked` leaves out the other half of a blocked pair.
    pub fn search(
        company_id: Uuid,
        search: Option<String>,
        role: Option<String>,
        is_active: Option<bool>,
        hide_blocked: bool,
    ) -> AppResult<Self> {
        Ok(Self {
            company_id,
            search: search_text(search)?,
            role: role.map(|r| r.trim().to_owned()),
            is_active,
            hide_blocked,
            extra: None,
        })
    }

    /// People are read through `user_profiles`, which masks what privacy settings hide, so
    /// neither results nor search matches nor orderings reveal a hidden e-mail.
    fn select(&self) -> sea_orm::Select<user_profiles::Entity> {
        // The explicit company filter duplicates RLS on purpose: it lets the planner use the
        // (company_id, ...) indexes and routes the query in a sharded deployment.
        let mut select = user_profiles::Entity::find()
            .filter(user_profiles::Column::CompanyId.eq(self.company_id));
        if let Some(search) = &self.search {
            select = select.filter(name_or_email_matches(search));
        }
        if let Some(role) = &self.role {
            select = select.filter(user_profiles::Column::Role.eq(role.as_str()));
        }
        if let Some(active) = self.is_active {
            select = select.filter(user_profiles::Column::IsActive.eq(active));
        }
        if self.hide_blocked {
            select =
                select.filter(user_profiles::Column::Relation.is_not_in(["blocked", "blocked_by"]));
        }
        if let Some(extra) = &self.extra {
            select = select.filter(extra.clone());
        }
        select
    }
}

/// People of `user_profiles` whose display name or visible e-mail contains `search`: the
/// e-mail the caller may not see does not match.
pub(super) fn name_or_email_matches(search: &str) -> Condition {
    Expr::cust_with_values(
        "(display_name || ' ' || COALESCE(email, '')) ILIKE $1",
        [like_pattern(search)],
    )
}

/// Which columns of `user_profiles` a list of people reads: the id always, the others when
/// asked for. Reading only what an answer shows spares PostgreSQL the masking of columns nobody
/// asked for (`email`, `attributes`) and the server their decoding. The fields of a
/// [`Profile`] whose column was not read hold a placeholder (`None`, empty, `false`, the epoch,
/// JSON `null`), so only what was asked for may be shown of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileColumns {
    pub company_id: bool,
    pub email: bool,
    pub display_name: bool,
    pub role: bool,
    pub attributes: bool,
    pub is_active: bool,
    pub created_at: bool,
    pub updated_at: bool,
    pub last_active_at: bool,
    pub relation: bool,
    /// `profile_visibility` and `visible_attributes`.
    pub privacy: bool,
    pub email_verified: bool,
}

impl ProfileColumns {
    /// Every column.
    pub fn all() -> Self {
        Self {
            company_id: true,
            email: true,
            display_name: true,
            role: true,
            attributes: true,
            is_active: true,
            created_at: true,
            updated_at: true,
            last_active_at: true,
            relation: true,
            privacy: true,
            email_verified: true,
        }
    }

    /// These and the sort key of `field` (cursors are made of it).
    fn with_key_of(mut self, field: SortField) -> Self {
        match field {
            SortField::CreatedAt => self.created_at = true,
            SortField::DisplayName => self.display_name = true,
            SortField::Email => self.email = true,
        }
        self
    }

    /// `select` reading only these columns.
    fn select(
        &self,
        select: sea_orm::Select<user_profiles::Entity>,
    ) -> sea_orm::Select<user_profiles::Entity> {
        use user_profiles::Column as C;
        let wanted = [
            (true, C::Id),
            (self.company_id, C::CompanyId),
            (self.email, C::Email),
            (self.display_name, C::DisplayName),
            (self.role, C::Role),
            (self.attributes, C::Attributes),
            (self.is_active, C::IsActive),
            (self.created_at, C::CreatedAt),
            (self.updated_at, C::UpdatedAt),
            (self.last_active_at, C::LastActiveAt),
            (self.relation, C::Relation),
            (self.privacy, C::ProfileVisibility),
            (self.privacy, C::VisibleAttributes),
            (self.email_verified, C::EmailVerified),
        ];
        wanted
            .into_iter()
            .filter_map(|(read, column)| read.then_some(column))
            .fold(select.select_only(), |select, column| select.column(column))
    }

    /// A profile from a row of [`Self::select`].
    fn decode(&self, row: &QueryResult) -> Result<Profile, DbErr> {
        fn read<T: sea_orm::TryGetable + Default>(
            row: &QueryResult,
            read: bool,
            column: &str,
        ) -> Result<T, DbErr> {
            read_or(row, read, column, T::default())
        }
        /// A column the selection did not read holds `unread`, which no answer shows.
        fn read_or<T: sea_orm::TryGetable>(
            row: &QueryResult,
            read: bool,
            column: &str,
            unread: T,
        ) -> Result<T, DbErr> {
            if read {
                row.try_get("", column)
            } else {
                Ok(unread)
            }
        }
        let time = |read: bool, column: &str| -> Result<DateTime<Utc>, DbErr> {
            if read {
                Ok(row
                    .try_get::<sea_orm::prelude::DateTimeWithTimeZone>("", column)?
                    .to_utc())
            } else {
                Ok(DateTime::<Utc>::UNIX_EPOCH)
            }
        };
        Ok(Profile {
            id: row.try_get("", "id")?,
            company_id: read(row, self.company_id, "company_id")?,
            email: read(row, self.email, "email")?,
            display_name: read(row, self.display_name, "display_name")?,
            role: if self.role {
                stored_role(&row.try_get::<String>("", "role")?)?
            } else {
                RoleName::BuiltIn(BuiltInRole::Member)
            },
            attributes: read(row, self.attributes, "attributes")?,
            is_active: read(row, self.is_active, "is_active")?,
            created_at: time(self.created_at, "created_at")?,
            updated_at: time(self.updated_at, "updated_at")?,
            last_active_at: if self.last_active_at {
                row.try_get::<Option<sea_orm::prelude::DateTimeWithTimeZone>>("", "last_active_at")?
                    .map(|t| t.to_utc())
            } else {
                None
            },
            relation: read_or(row, self.relation, "relation", Relationship::None)?,
            profile_visibility: read(row, self.privacy, "profile_visibility")?,
            visible_attributes: read(row, self.privacy, "visible_attributes")?,
            email_verified: read(row, self.email_verified, "email_verified")?,
        })
    }
}

/// How many users match `filter`, over all pages.
pub async fn count(conn: &impl ConnectionTrait, filter: &UserFilter) -> AppResult<u64> {
    Ok(filter
        .select()
        .select_only()
        .column(user_profiles::Column::Id)
        .count(conn)
        .await?)
}

/// A page of the users matching `filter` in `order`, of which `columns` are read (and the
/// ordering's key, which its cursors carry).
pub async fn page(
    conn: &impl ConnectionTrait,
    filter: &UserFilter,
    order: Order,
    args: PageArgs,
    columns: &ProfileColumns,
) -> AppResult<Page<Profile>> {
    async fn run<K: SortKey>(
        conn: &impl ConnectionTrait,
        filter: &UserFilter,
        order: Order,
        args: PageArgs,
        columns: ProfileColumns,
        key: impl Fn(&Profile) -> K,
    ) -> AppResult<Page<Profile>> {
        let request = args.validate::<K>(order.list(), DefaultSize::First(20))?;
        let select = columns.select(filter.select());
        let decode = |row: &QueryResult| columns.decode(row);
        keyset::fetch_rows(
            conn,
            select,
            &order.sort(),
            order.list(),
            &request,
            decode,
            key,
        )
        .await
    }
    let columns = columns.with_key_of(order.field);
    match order.field {
        SortField::CreatedAt => {
            run(conn, filter, order, args, columns, |u| (u.created_at, u.id)).await
        }
        SortField::DisplayName => {
            run(conn, filter, order, args, columns, |u| {
                (u.display_name.clone(), u.id)
            })
            .await
        }
        SortField::Email => {
            run(conn, filter, order, args, columns, |u| {
                (u.email.clone().unwrap_or_default(), u.id)
            })
            .await
        }
    }
}

/// User `id` of `company`, as the caller may see them.
pub async fn profile(
    conn: &impl ConnectionTrait,
    company: Uuid,
    id: Uuid,
) -> AppResult<Option<Profile>> {
    Ok(user_profiles::Entity::find_by_id((company, id))
        .one(conn)
        .await?
        .map(Profile::try_from)
        .transpose()?)
}

/// The caller's own profile; `UNAUTHENTICATED` when they no longer exist.
pub async fn me(conn: &impl ConnectionTrait, principal: &Principal) -> AppResult<Profile> {
    profile(conn, principal.company_id, principal.user_id)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the signed-in user no longer exists".into()))
}

/// The caller's company.
pub async fn company(conn: &impl ConnectionTrait, principal: &Principal) -> AppResult<Company> {
    companies::Entity::find_by_id(principal.company_id)
        .one(conn)
        .await?
        .map(Company::from)
        .ok_or_else(|| AppError::NotFound("company not found".into()))
}

/// Renames the caller's company (RLS lets only admins); `None` leaves it as it is.
pub async fn update_company(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    name: Option<String>,
) -> AppResult<Company> {
    let name = name
        .map(|name| name.trim().to_owned())
        .map(|name| {
            if (1..=200).contains(&name.chars().count()) {
                Ok(name)
            } else {
                Err(AppError::bad_input(
                    "input.name",
                    "the company name must have 1 to 200 characters",
                ))
            }
        })
        .transpose()?;
    match name {
        Some(name) => companies::Entity::update_many()
            .filter(companies::Column::Id.eq(principal.company_id))
            .col_expr(companies::Column::Name, Expr::value(name))
            .exec_with_returning(conn)
            .await?
            .into_iter()
            .next(),
        None => {
            companies::Entity::find_by_id(principal.company_id)
                .one(conn)
                .await?
        }
    }
    .map(Company::from)
    .ok_or_else(|| AppError::NotFound("company not found".into()))
}

/// Validated changes to a user row.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub role: Option<RoleName>,
    pub is_active: Option<bool>,
    pub display_name: Option<String>,
    pub attributes: Option<serde_json::Value>,
}

impl UserChanges {
    /// Display name and attributes, checked (the rest left as it is).
    pub fn profile(
        display_name: Option<String>,
        attributes: Option<serde_json::Value>,
    ) -> AppResult<Self> {
        Ok(Self {
            display_name: valid_display_name(display_name)?,
            attributes: valid_attributes(attributes)?,
            ..Self::default()
        })
    }

    /// Updates user `id` of `company` (RLS decides whether the caller may) and returns it.
    async fn apply(
        self,
        conn: &impl ConnectionTrait,
        company: Uuid,
        id: Uuid,
    ) -> AppResult<Profile> {
        let mut update = users::Entity::update_many()
            .filter(users::Column::CompanyId.eq(company))
            .filter(users::Column::Id.eq(id));
        let mut changed = false;
        if let Some(role) = self.role {
            update = update.col_expr(users::Column::Role, Expr::value(role.to_string()));
            changed = true;
        }
        if let Some(active) = self.is_active {
            update = update.col_expr(users::Column::IsActive, Expr::value(active));
            changed = true;
        }
        if let Some(name) = self.display_name {
            update = update.col_expr(users::Column::DisplayName, Expr::value(name));
            changed = true;
        }
        if let Some(attributes) = self.attributes {
            // Request roles may write `attributes` but not read it, so the request entity does
            // not map it: the column is named here.
            update = update.col_expr(Alias::new("attributes"), Expr::value(attributes));
            changed = true;
        }
        if changed && update.exec(conn).await?.rows_affected == 0 {
            return Err(AppError::NotFound("no such user".into()));
        }
        // Read back through the view, which masks what the caller may not see.
        profile(conn, company, id)
            .await?
            .ok_or_else(|| AppError::NotFound("no such user".into()))
    }
}

/// The caller's change to their own profile.
pub async fn update_own_profile(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    changes: UserChanges,
) -> AppResult<Profile> {
    changes
        .apply(conn, principal.company_id, principal.user_id)
        .await
}

/// What an administrative change did, for what must follow its commit.
#[derive(Debug, Clone)]
pub struct Administered {
    pub user: Profile,
    /// Sessions revoked by a deactivation.
    pub revoked_sessions: Vec<Uuid>,
    /// Whether the user's role changed (their tokens carry the old one).
    pub role_changed: bool,
}

/// An admin's change to user `id`, with the rules on roles and the last admin. Role and
/// activity changes lock the company row first (see [`role_service::lock_company_for_admin`]),
/// so concurrent changes are checked one after another. `role_is_built_in`: whether the
/// requested role (if any) is one of the policy's built-in roles.
pub async fn administer(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    id: Uuid,
    changes: UserChanges,
    role_is_built_in: bool,
) -> AppResult<Administered> {
    let company = principal.company_id;
    let membership_change = changes.role.is_some() || changes.is_active.is_some();
    if membership_change {
        role_service::lock_company_for_admin(conn, principal).await?;
    }
    let target = profile(conn, company, id)
        .await?
        .ok_or_else(|| AppError::NotFound("no such user".into()))?;
    let new_role = changes.role.as_ref().filter(|role| **role != target.role);
    let deactivating = changes.is_active == Some(false) && target.is_active;
    if id == principal.user_id && new_role.is_some() {
        return Err(AppError::Forbidden(
            "nobody can change their own role".into(),
        ));
    }
    if let Some(role) = new_role
        && !role_is_built_in
        && role_service::find(conn, company, role).await?.is_none()
    {
        return Err(unknown_role(role));
    }
    let target_is_admin = target.role == BuiltInRole::Admin;
    if target_is_admin && target.is_active && (new_role.is_some() || deactivating) {
        role_service::ensure_another_admin(conn, company, id).await?;
    }
    let role_changed = new_role.is_some();
    let user = changes.apply(conn, company, id).await?;
    // A deactivated user's sessions end at once, not when their tokens expire.
    let revoked_sessions = if deactivating {
        auth_service::revoke_user_sessions(conn, company, id, "deactivated").await?
    } else {
        Vec::new()
    };
    Ok(Administered {
        user,
        revoked_sessions,
        role_changed,
    })
}

/// 1 to 200 characters once trimmed.
pub fn valid_display_name(name: Option<String>) -> AppResult<Option<String>> {
    let Some(name) = name else {
        return Ok(None);
    };
    let name = name.trim().to_owned();
    if (1..=200).contains(&name.chars().count()) {
        Ok(Some(name))
    } else {
        Err(AppError::bad_input(
            "input.displayName",
            "the display name must have 1 to 200 characters",
        ))
    }
}

/// A JSON object of at most 16 KiB.
pub fn valid_attributes(
    attributes: Option<serde_json::Value>,
) -> AppResult<Option<serde_json::Value>> {
    let Some(attributes) = attributes else {
        return Ok(None);
    };
    if !attributes.is_object() {
        return Err(AppError::bad_input(
            "input.attributes",
            "attributes must be a JSON object",
        ));
    }
    if attributes.to_string().len() > 16 * 1024 {
        return Err(AppError::bad_input(
            "input.attributes",
            "attributes must be at most 16 KiB of JSON",
        ));
    }
    Ok(Some(attributes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ordering_has_a_list_of_its_own() {
        use SortField::*;
        let mut lists: Vec<&str> = [CreatedAt, DisplayName, Email]
            .into_iter()
            .flat_map(|field| [false, true].map(|descending| Order { field, descending }.list()))
            .collect();
        lists.sort();
        lists.dedup();
        assert_eq!(lists.len(), 6);
    }

    #[test]
    fn lists_read_the_columns_asked_for_and_their_sort_key() {
        use sea_orm::{DbBackend, QueryTrait};
        let filter = UserFilter::matching(Uuid::nil(), Expr::cust("true"));
        let columns = ProfileColumns {
            email: true,
            ..ProfileColumns::default()
        }
        .with_key_of(SortField::DisplayName);
        let sql = columns
            .select(filter.select())
            .build(DbBackend::Postgres)
            .to_string();
        assert!(
            sql.starts_with(
                r#"SELECT "user_profiles"."id", "user_profiles"."email", "user_profiles"."display_name" FROM"#
            ),
            "{sql}"
        );
        let all = ProfileColumns::all()
            .select(filter.select())
            .build(DbBackend::Postgres)
            .to_string();
        for column in [
            "attributes",
            "relation",
            "visible_attributes",
            "last_active_at",
        ] {
            assert!(
                all.contains(&format!(r#""user_profiles"."{column}""#)),
                "{all}"
            );
        }
    }

    #[test]
    fn attributes_must_be_a_small_object() {
        assert!(valid_attributes(Some(serde_json::json!([1]))).is_err());
        assert!(valid_attributes(Some(serde_json::json!({"plan": "pro"}))).is_ok());
        let big = serde_json::json!({ "x": "y".repeat(17 * 1024) });
        assert!(valid_attributes(Some(big)).is_err());
        assert_eq!(valid_attributes(None).ok(), Some(None));
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(
            valid_display_name(Some("  Ann ".into())).ok(),
            Some(Some("Ann".to_owned()))
        );
        assert!(valid_display_name(Some("   ".into())).is_err());
        assert!(valid_display_name(Some("x".repeat(201))).is_err());
    }
}
