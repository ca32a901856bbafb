//! The `user_profiles` view: people as the current request's caller may see them, with `email`
//! and `attributes` masked by the target's privacy settings (read-only).

use sea_orm::entity::prelude::*;

pub use super::users::ProfileVisibility;
use sea_orm::Iterable;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "user_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub company_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` when the caller may not see it.
    pub email: Option<String>,
    pub display_name: String,
    pub role: String,
    /// Only the keys the caller may see (`{}` when none).
    pub attributes: Json,
    pub is_active: bool,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub last_active_at: Option<DateTimeWithTimeZone>,
    /// The caller's relation to this user.
    pub relation: Relationship,
    /// Shown to the user themselves and admins only.
    pub profile_visibility: Option<ProfileVisibility>,
    /// Attribute keys others may see (`None`: all); shown like `profile_visibility`.
    pub visible_attributes: Option<Vec<String>>,
    /// Whether the user proved the address is theirs (a link sent to it was followed).
    pub email_verified: bool,
}

/// The caller's relation to a person, as the view computes it from their pair's friendship
/// (`text`). A value outside these is an error when the row is read, never a default.
///
/// A value type rather than an active enum: the view names the caller's own row `self`, and the
/// active-enum derive makes an identifier of every stored value (`Self` is none).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, EnumIter, DeriveValueType)]
#[sea_orm(
    value_type = "String",
    from_str = "Relationship::from_stored",
    to_str = "Relationship::as_str"
)]
pub enum Relationship {
    /// The caller themselves.
    Oneself,
    /// No friendship, request or block between the two.
    None,
    /// The caller asked them; no answer yet.
    PendingOutgoing,
    /// They asked the caller; no answer yet.
    PendingIncoming,
    /// Friends.
    Friends,
    /// The caller blocked them.
    Blocked,
    /// They blocked the caller.
    BlockedBy,
}

impl Relationship {
    /// The value as the view writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Oneself => "self",
            Self::None => "none",
            Self::PendingOutgoing => "pending_outgoing",
            Self::PendingIncoming => "pending_incoming",
            Self::Friends => "friends",
            Self::Blocked => "blocked",
            Self::BlockedBy => "blocked_by",
        }
    }

    /// The relation the view wrote as `text`; an unknown value is an error.
    pub fn from_stored(text: &str) -> Result<Self, UnknownRelationship> {
        <Self as Iterable>::iter()
            .find(|relation| relation.as_str() == text)
            .ok_or_else(|| UnknownRelationship(text.to_owned()))
    }
}

/// A `relation` the server does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRelationship(pub String);

impl std::fmt::Display for UnknownRelationship {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown relation {:?}", self.0)
    }
}

impl std::error::Error for UnknownRelationship {}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
