//! The caller of a request and the roles people hold: a leaf module every layer imports and
//! that imports nothing of the server.
//!
//! Whether a role may do something is Casbin's question (`crate::authz`), never answered here:
//! this module only names roles. [`BuiltInRole`] is the closed set the database and its Row
//! Level Security policies know; [`RoleName`] is any role a user can hold, built-in or one of a
//! company's custom roles.

use std::{fmt, ops::Deref, str::FromStr};

use uuid::Uuid;

/// The roles every company has, defined by `policy.csv` and known to RLS policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltInRole {
    /// Everything, including people, roles, invitations and the company itself.
    Admin,
    /// What members may, plus audiences and pending invitations.
    Manager,
    /// Reads the company and its people; keeps their own things.
    Member,
}

impl BuiltInRole {
    /// Every built-in role, most powerful first.
    pub const ALL: [Self; 3] = [Self::Admin, Self::Manager, Self::Member];

    /// The name stored in `users.role` and used in policies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Member => "member",
        }
    }

    /// What the role is for, in a sentence.
    pub const fn description(self) -> &'static str {
        match self {
            Self::Admin => {
                "Everything, including people, roles, invitations and the company itself."
            }
            Self::Manager => "What members may, plus audiences and pending invitations.",
            Self::Member => "Reads the company and its people; keeps their own things.",
        }
    }
}

impl fmt::Display for BuiltInRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a built-in role (or, for [`RoleName`], not a role name at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role name")]
pub struct UnknownRole(pub String);

impl FromStr for BuiltInRole {
    type Err = UnknownRole;

    /// Exactly one of the built-in names; anything else is an error.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| UnknownRole(name.to_owned()))
    }
}

/// The role a user holds: built-in, or a custom role of their company (whose name follows
/// [`RoleName::valid_custom`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoleName {
    BuiltIn(BuiltInRole),
    Custom(String),
}

impl RoleName {
    /// The name as stored.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BuiltIn(role) => role.as_str(),
            Self::Custom(name) => name,
        }
    }

    /// The built-in role, if it is one.
    pub fn built_in(&self) -> Option<BuiltInRole> {
        match self {
            Self::BuiltIn(role) => Some(*role),
            Self::Custom(_) => None,
        }
    }

    /// Whether this is the built-in `role`.
    pub fn is(&self, role: BuiltInRole) -> bool {
        self.built_in() == Some(role)
    }

    /// A custom role name: 2 to 40 characters, lowercase letters, digits, `-` and `_`, starting
    /// with a letter (the database's check), and not a built-in name.
    pub fn valid_custom(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && (2..=40).contains(&name.len())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && name.parse::<BuiltInRole>().is_err()
    }
}

impl FromStr for RoleName {
    type Err = UnknownRole;

    /// A built-in role, or a well-formed custom role name; anything else is an error.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if let Ok(role) = name.parse::<BuiltInRole>() {
            Ok(Self::BuiltIn(role))
        } else if Self::valid_custom(name) {
            Ok(Self::Custom(name.to_owned()))
        } else {
            Err(UnknownRole(name.to_owned()))
        }
    }
}

impl From<BuiltInRole> for RoleName {
    fn from(role: BuiltInRole) -> Self {
        Self::BuiltIn(role)
    }
}

impl Deref for RoleName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for RoleName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for RoleName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RoleName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<BuiltInRole> for RoleName {
    fn eq(&self, other: &BuiltInRole) -> bool {
        self.is(*other)
    }
}

/// A signed-in user, as proven by a valid access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub role: RoleName,
    pub session_id: Uuid,
}

/// The caller is anonymous where a signed-in user is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sign in first")]
pub struct NotSignedIn;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Anonymous,
    User(Principal),
}

impl Viewer {
    /// The signed-in user, or [`NotSignedIn`] (`UNAUTHENTICATED` as an API error).
    pub fn principal(&self) -> Result<&Principal, NotSignedIn> {
        match self {
            Self::User(principal) => Ok(principal),
            Self::Anonymous => Err(NotSignedIn),
        }
    }

    /// The caller's company; `None` when anonymous.
    pub fn company_id(&self) -> Option<Uuid> {
        match self {
            Self::User(principal) => Some(principal.company_id),
            Self::Anonymous => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_roles_parse_strictly() {
        for role in BuiltInRole::ALL {
            assert_eq!(role.as_str().parse::<BuiltInRole>(), Ok(role));
        }
        for bad in ["Admin", "admin ", "owner", ""] {
            assert!(bad.parse::<BuiltInRole>().is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names_are_built_in_or_well_formed_custom_names() {
        assert_eq!(
            "manager".parse::<RoleName>(),
            Ok(RoleName::BuiltIn(BuiltInRole::Manager))
        );
        assert_eq!(
            "coach".parse::<RoleName>(),
            Ok(RoleName::Custom("coach".into()))
        );
        for good in ["coach", "athlete", "team-lead", "qa_2", "ab"] {
            assert!(RoleName::valid_custom(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "Coach",
            "2fa",
            "-x",
            "with space",
            "é-role",
            "admin",
            &"x".repeat(41),
        ] {
            assert!(!RoleName::valid_custom(bad), "{bad}");
        }
        assert!("Coach".parse::<RoleName>().is_err());
        assert!("x; DROP".parse::<RoleName>().is_err());
    }

    #[test]
    fn a_role_name_compares_with_its_text() {
        let admin = RoleName::from(BuiltInRole::Admin);
        assert!(admin == "admin");
        assert!(admin == BuiltInRole::Admin);
        assert!(RoleName::Custom("coach".into()) != BuiltInRole::Admin);
    }
}
