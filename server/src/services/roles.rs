//! Roles: a company's custom roles in the database, and the rules of role assignment (the
//! company lock, the last admin). Services on a request transaction: Row Level Security applies
//! to all of it, and every query also names the company. Whether a role may do something is
//! Casbin's answer (`crate::authz`), which loads custom roles from here; grants are checked
//! against the vocabulary of `crate::permissions`.

use chrono::{DateTime, Utc};
use entity::{companies, invitations, roles, users};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::LockType,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    caller::{BuiltInRole, Principal, RoleName},
    error::{AppError, AppResult},
    permissions::{Action, Object, Permission},
};

/// A company's custom role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    pub name: String,
    pub description: String,
    pub grants: Vec<Permission>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How grants are stored in `roles.grants`.
#[derive(Debug, Serialize, Deserialize)]
struct StoredGrant {
    object: String,
    action: String,
}

impl From<roles::Model> for CustomRole {
    fn from(m: roles::Model) -> Self {
        let stored: Vec<StoredGrant> = match serde_json::from_value(m.grants) {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(%error, role = %m.name, "unreadable grants; the role grants nothing");
                Vec::new()
            }
        };
        // Grants this server does not know (an object since removed, say) grant nothing.
        let grants = stored
            .iter()
            .filter_map(|g| {
                let permission = Object::parse(&g.object)
                    .zip(Action::parse(&g.action))
                    .map(|(object, action)| Permission { object, action });
                if permission.is_none() {
                    tracing::warn!(role = %m.name, object = %g.object, action = %g.action,
                        "ignoring an unknown grant");
                }
                permission
            })
            .collect();
        Self {
            name: m.name,
            description: m.description,
            grants,
            created_at: m.created_at.with_timezone(&Utc),
            updated_at: m.updated_at.with_timezone(&Utc),
        }
    }
}

/// Every custom role of `company`, by name.
pub async fn custom_roles(
    conn: &impl ConnectionTrait,
    company: Uuid,
) -> AppResult<Vec<CustomRole>> {
    Ok(roles::Entity::find()
        .filter(roles::Column::CompanyId.eq(company))
        .order_by_asc(roles::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(CustomRole::from)
        .collect())
}

/// The custom role `name` of `company`, if there is one.
pub async fn find(
    conn: &impl ConnectionTrait,
    company: Uuid,
    name: &str,
) -> AppResult<Option<CustomRole>> {
    Ok(roles::Entity::find_by_id((company, name.to_owned()))
        .filter(roles::Column::CompanyId.eq(company))
        .one(conn)
        .await?
        .map(CustomRole::from))
}

/// Stores a new custom role (the caller has validated it). `CONFLICT` when the name is taken.
pub async fn insert(
    conn: &impl ConnectionTrait,
    company: Uuid,
    name: &str,
    description: &str,
    grants: &[Permission],
) -> AppResult<CustomRole> {
    let stored: Vec<StoredGrant> = grants
        .iter()
        .map(|g| StoredGrant {
            object: g.object.as_str().to_owned(),
            action: g.action.as_str().to_owned(),
        })
        .collect();
    let model = roles::ActiveModel {
        company_id: Set(company),
        name: Set(name.to_owned()),
        description: Set(description.to_owned()),
        grants: Set(serde_json::to_value(stored).map_err(AppError::internal)?),
        ..Default::default()
    };
    match roles::Entity::insert(model).exec_with_returning(conn).await {
        Ok(model) => Ok(model.into()),
        Err(error) => match AppError::from(error) {
            refused @ (AppError::Conflict(_) | AppError::Refused { .. })
                if refused.code() == crate::error::code::CONFLICT =>
            {
                Err(refused.reworded(format!("a role named `{name}` already exists")))
            }
            other => Err(other),
        },
    }
}

/// Deletes the custom role `name` of `company`; whether there was one.
pub async fn delete(conn: &impl ConnectionTrait, company: Uuid, name: &str) -> AppResult<bool> {
    let result = roles::Entity::delete_many()
        .filter(roles::Column::CompanyId.eq(company))
        .filter(roles::Column::Name.eq(name))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}

/// How many users of `company` hold `role`, active or not.
pub async fn holders(conn: &impl ConnectionTrait, company: Uuid, role: &str) -> AppResult<u64> {
    // Only the columns request roles may read (`email`, `attributes` and the password hash
    // are not among them).
    Ok(users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .filter(users::Column::CompanyId.eq(company))
        .filter(users::Column::Role.eq(role))
        .count(conn)
        .await?)
}

/// How many invitations of `company` that can still be accepted offer `role`.
pub async fn pending_invitations(
    conn: &impl ConnectionTrait,
    company: Uuid,
    role: &str,
) -> AppResult<u64> {
    Ok(invitations::Entity::find()
        .filter(invitations::Column::CompanyId.eq(company))
        .filter(invitations::Column::Role.eq(role))
        .filter(invitations::Column::AcceptedAt.is_null())
        .filter(invitations::Column::ExpiresAt.gt(Utc::now()))
        .count(conn)
        .await?)
}

/// Serializes every change of role assignments in the caller's company: locks the company row
/// (`FOR NO KEY UPDATE`, which RLS lets only admins take) until the transaction ends, then
/// checks that the caller is still an active admin — a concurrent request may have demoted
/// them after their transaction began.
pub async fn lock_company_for_admin(
    conn: &impl ConnectionTrait,
    principal: &Principal,
) -> AppResult<()> {
    let locked = companies::Entity::find_by_id(principal.company_id)
        .select_only()
        .column(companies::Column::Id)
        .lock(LockType::NoKeyUpdate)
        .into_tuple::<Uuid>()
        .one(conn)
        .await?;
    if locked.is_none() {
        return Err(AppError::Forbidden(
            "only admins may change roles and memberships".into(),
        ));
    }
    let caller = users::Entity::find_by_id((principal.company_id, principal.user_id))
        .select_only()
        .column(users::Column::IsActive)
        .column(users::Column::Role)
        .into_tuple::<(bool, String)>()
        .one(conn)
        .await?;
    match caller {
        Some((true, role)) if role == BuiltInRole::Admin.as_str() => Ok(()),
        _ => Err(AppError::Forbidden(
            "you are no longer an active admin of this company".into(),
        )),
    }
}

/// `CONFLICT` unless `company` keeps an active admin other than `user`. Call it after
/// [`lock_company_for_admin`], so two concurrent demotions cannot both pass.
pub async fn ensure_another_admin(
    conn: &impl ConnectionTrait,
    company: Uuid,
    user: Uuid,
) -> AppResult<()> {
    let others = users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .filter(users::Column::CompanyId.eq(company))
        .filter(users::Column::Role.eq(BuiltInRole::Admin.as_str()))
        .filter(users::Column::IsActive.eq(true))
        .filter(users::Column::Id.ne(user))
        .count(conn)
        .await?;
    if others == 0 {
        return Err(AppError::Conflict(
            "the last active admin of a company cannot be demoted or deactivated; make someone \
             else an admin first"
                .into(),
        ));
    }
    Ok(())
}

/// Checks a new custom role's name, description and grants (the caller has refused built-in
/// names and grants beyond the `manager` role's); returns the trimmed description.
pub fn check_new(name: &str, description: &str) -> AppResult<String> {
    if !RoleName::valid_custom(name) {
        return Err(AppError::bad_input(
            "input.name",
            "a role name has 2 to 40 characters: lowercase letters, digits, `-` and `_`, \
             starting with a letter",
        ));
    }
    let description = description.trim().to_owned();
    if description.chars().count() > 500 {
        return Err(AppError::bad_input(
            "input.description",
            "the description is longer than 500 characters",
        ));
    }
    Ok(description)
}

/// Deletes the custom role `name` of the caller's company (the caller must be an active admin).
/// `CONFLICT` while any user holds it or a pending invitation offers it.
pub async fn delete_custom(
    conn: &impl ConnectionTrait,
    principal: &Principal,
    name: &str,
) -> AppResult<()> {
    // Serializes with role assignments (updateUser), so nobody is given the role while it is
    // being deleted.
    lock_company_for_admin(conn, principal).await?;
    let holders = holders(conn, principal.company_id, name).await?;
    if holders > 0 {
        return Err(AppError::Conflict(format!(
            "`{name}` is held by {holders} user(s); give them another role first"
        )));
    }
    let invited = pending_invitations(conn, principal.company_id, name).await?;
    if invited > 0 {
        return Err(AppError::Conflict(format!(
            "`{name}` is offered by {invited} pending invitation(s); try again once they are \
             accepted or expired"
        )));
    }
    if !delete(conn, principal.company_id, name).await? {
        return Err(AppError::NotFound(format!(
            "there is no custom role `{name}`"
        )));
    }
    Ok(())
}

/// `role` as a role of the company: a built-in role or one of the company's custom roles, else
/// `BAD_USER_INPUT` at `input.role`.
pub async fn check_exists(
    conn: &impl ConnectionTrait,
    company: Uuid,
    role: &str,
) -> AppResult<RoleName> {
    let unknown = || AppError::bad_input("input.role", format!("unknown role `{role}`"));
    match role.parse::<RoleName>().map_err(|_| unknown())? {
        RoleName::Custom(name) if find(conn, company, &name).await?.is_none() => Err(unknown()),
        known => Ok(known),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_stored_grants_grant_nothing() {
        let now = chrono::Utc::now().fixed_offset();
        let role = CustomRole::from(roles::Model {
            company_id: Uuid::new_v4(),
            name: "coach".into(),
            description: String::new(),
            grants: serde_json::json!([
                {"object": "preset", "action": "update"},
                {"object": "spaceship", "action": "fly"},
            ]),
            created_at: now,
            updated_at: now,
        });
        assert_eq!(
            role.grants,
            vec![Permission {
                object: Object::Preset,
                action: Action::Update
            }]
        );
    }
}
