//! Roles: the built-in ones (from `policy.csv`) and the company's custom roles, which admins
//! create and delete at run time (`roles`, `createRole`, `deleteRole`).

use std::collections::BTreeSet;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{principal, scope};
use crate::{
    authz::{Action, Authz, Object as PermissionObject, Permission, requires},
    caller::{BuiltInRole, RoleName},
    error::{AppError, AppResult},
    services::roles::{self as role_service, CustomRole},
    state::AppState,
};

/// The server's enforcer.
pub(super) fn authz<'a>(ctx: &Context<'a>) -> AppResult<&'a Authz> {
    ctx.data::<AppState>()
        .map(|state| &state.authz)
        .map_err(|_| AppError::internal(anyhow::anyhow!("no AppState in the GraphQL schema")))
}

/// One permission a role grants: an action on an object. `MANAGE` implies every action.
#[derive(Debug, Clone, Copy, SimpleObject)]
pub struct Grant {
    /// What the permission is about.
    pub object: PermissionObject,
    /// What may be done to it.
    pub action: Action,
}

impl From<Permission> for Grant {
    fn from(p: Permission) -> Self {
        Self {
            object: p.object,
            action: p.action,
        }
    }
}

/// A role users of the company can hold.
#[derive(Debug, Clone, SimpleObject)]
pub struct Role {
    /// The name stored in `User.role`.
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Built-in roles come from the server's policy files and exist in every company; the
    /// others are this company's custom roles.
    pub built_in: bool,
    /// What the role may do (for built-in roles, including what they inherit).
    pub grants: Vec<Grant>,
    /// When a custom role was created; null for built-in roles.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<CustomRole> for Role {
    fn from(role: CustomRole) -> Self {
        Self {
            name: role.name,
            description: role.description,
            built_in: false,
            grants: role.grants.into_iter().map(Grant::from).collect(),
            created_at: Some(role.created_at),
        }
    }
}

/// One permission of a new role.
#[derive(Debug, Clone, Copy, InputObject)]
pub struct GrantInput {
    /// What the permission is about.
    pub object: PermissionObject,
    /// What may be done to it.
    pub action: Action,
}

/// A new custom role.
#[derive(Debug, Clone, InputObject)]
pub struct CreateRoleInput {
    /// 2 to 40 characters: lowercase letters, digits, `-` and `_`, starting with a letter; not
    /// the name of a built-in role.
    pub name: String,
    /// What the role is for (at most 500 characters).
    #[graphql(default)]
    pub description: String,
    /// What the role may do. A custom role may be granted only what the built-in `manager`
    /// role may do: administrative powers stay with admins, as Row Level Security expects.
    pub grants: Vec<GrantInput>,
}

/// Queries about roles.
#[derive(Default)]
pub struct RoleQuery;

#[Object]
impl RoleQuery {
    /// Every role of the caller's company: the built-in ones, then custom roles by name.
    #[graphql(directive = requires::apply(PermissionObject::Company, Action::Read))]
    async fn roles(&self, ctx: &Context<'_>) -> AppResult<Vec<Role>> {
        let principal = principal(ctx)?;
        let authz = authz(ctx)?;
        let mut roles = Vec::new();
        for name in authz.built_in_roles().await {
            let grants = authz.permissions_of(&name, principal.company_id).await;
            roles.push(Role {
                description: built_in_description(&name).to_owned(),
                name,
                built_in: true,
                grants: grants.into_iter().map(Grant::from).collect(),
                created_at: None,
            });
        }
        let company = principal.company_id;
        let custom = scope(ctx)?
            .read(move |tx| Box::pin(role_service::custom_roles(tx.conn(), company)))
            .await?;
        roles.extend(custom.into_iter().map(Role::from));
        Ok(roles)
    }
}

fn built_in_description(name: &str) -> &'static str {
    match name.parse::<BuiltInRole>() {
        Ok(role) => role.description(),
        // A role `policy.csv` defines beyond the ones the database knows.
        Err(_) => "Defined in the server's policy files.",
    }
}

/// Mutations of roles.
#[derive(Default)]
pub struct RoleMutation;

#[Object]
impl RoleMutation {
    /// Creates a custom role in the caller's company. It can be assigned at once and takes
    /// effect without a restart.
    #[graphql(directive = requires::apply(PermissionObject::Company, Action::Manage))]
    async fn create_role(&self, ctx: &Context<'_>, input: CreateRoleInput) -> AppResult<Role> {
        let principal = principal(ctx)?;
        let authz = authz(ctx)?;
        let name = input.name.trim().to_owned();
        if matches!(name.parse::<RoleName>(), Ok(RoleName::BuiltIn(_)))
            || authz.is_built_in(&name).await
        {
            return Err(AppError::bad_input(
                "input.name",
                format!("`{name}` is a built-in role"),
            ));
        }
        let description = role_service::check_new(&name, &input.description)?;
        let grants = grantable(authz, principal.company_id, &input.grants).await?;
        let role = scope(ctx)?
            .write({
                let name = name.clone();
                let company = principal.company_id;
                move |tx| {
                    Box::pin(async move {
                        role_service::insert(tx.conn(), company, &name, &description, &grants).await
                    })
                }
            })
            .await?;
        authz.invalidate_company(principal.company_id).await;
        tracing::info!(company = %principal.company_id, role = %name, "custom role created");
        Ok(role.into())
    }

    /// Deletes a custom role of the caller's company. Refused (`CONFLICT`) while any user,
    /// active or not, holds it, or a pending invitation offers it.
    #[graphql(directive = requires::apply(PermissionObject::Company, Action::Manage))]
    async fn delete_role(&self, ctx: &Context<'_>, name: String) -> AppResult<bool> {
        let principal = principal(ctx)?;
        let authz = authz(ctx)?;
        let name = name.trim().to_owned();
        if authz.is_built_in(&name).await {
            return Err(AppError::bad_input(
                "name",
                format!("`{name}` is a built-in role and cannot be deleted"),
            ));
        }
        scope(ctx)?
            .write({
                let (principal, name) = (principal.clone(), name.clone());
                move |tx| {
                    Box::pin(async move {
                        role_service::delete_custom(tx.conn(), &principal, &name).await
                    })
                }
            })
            .await?;
        authz.invalidate_company(principal.company_id).await;
        tracing::info!(company = %principal.company_id, role = %name, "custom role deleted");
        Ok(true)
    }
}

/// The requested grants, without duplicates; `BAD_USER_INPUT` for any the built-in `manager`
/// role does not have.
async fn grantable(
    authz: &Authz,
    company: uuid::Uuid,
    grants: &[GrantInput],
) -> AppResult<Vec<Permission>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (index, grant) in grants.iter().enumerate() {
        let permission = Permission {
            object: grant.object,
            action: grant.action,
        };
        if !authz
            .enforce(BuiltInRole::Manager.as_str(), company, permission)
            .await
        {
            return Err(AppError::bad_input(
                format!("input.grants.{index}"),
                format!(
                    "a custom role cannot be granted `{permission}`: custom roles get at most what \
                     the built-in manager role may do"
                ),
            ));
        }
        if seen.insert(permission) {
            out.push(permission);
        }
    }
    Ok(out)
}
