//! The README's permission table, generated from the policy files.

use uuid::Uuid;

use super::{Action, Authz, Object, Permission};
use crate::caller::BuiltInRole;

/// A Markdown table: one row per object, one column per built-in role, each cell the actions
/// that role may take (`all` when it may `manage` the object, `—` for none).
pub async fn permissions_table(authz: &Authz) -> String {
    // Least powerful first, the way people read such tables.
    let mut roles = authz.built_in_roles().await;
    let rank = |role: &String| {
        BuiltInRole::ALL
            .iter()
            .rev()
            .position(|r| r.as_str() == role)
    };
    roles.sort_by_key(|role| (rank(role).unwrap_or(usize::MAX), role.clone()));
    // Built-in roles hold in every company: any company id gives the same answers.
    let company = Uuid::nil();
    let mut out = String::new();
    out.push_str("| object |");
    for role in &roles {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(roles.len()));
    out.push('\n');
    for object in Object::ALL {
        out.push_str(&format!("| `{}` |", object.as_str()));
        for role in &roles {
            let mut allowed = Vec::new();
            for action in Action::ALL {
                if authz
                    .enforce(role, company, Permission { object, action })
                    .await
                {
                    allowed.push(action.as_str());
                }
            }
            let cell = if allowed.contains(&Action::Manage.as_str()) {
                "all".to_owned()
            } else if allowed.is_empty() {
                "—".to_owned()
            } else {
                allowed.join(", ")
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}
