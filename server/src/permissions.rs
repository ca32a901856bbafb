//! The vocabulary of permissions: the objects a permission is about, the actions that may be
//! done to them, and a permission (an action on an object). Casbin (`crate::authz`) decides
//! which role has which; the roles service checks custom roles' grants against these names.
//! Imports nothing of the server.

use async_graphql::Enum;

/// What a permission is about.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[graphql(name = "PermissionObject")]
pub enum Object {
    /// The caller's company and its settings (including its custom roles).
    Company,
    /// People of the company.
    User,
    /// Saved filter presets.
    Preset,
    /// Audience segments.
    Audience,
    /// Friendships between users.
    Friendship,
    /// Chat conversations.
    Conversation,
    /// Chat messages.
    Message,
    /// Sign-in sessions.
    Session,
    /// Invitations to join the company.
    Invitation,
    /// Activities people record (one's own; others' as their visibility allows).
    Activity,
    /// The company's kinds of activity and their metrics.
    ActivityKind,
    /// The company's conversations that may be used as training data (`read`: export them).
    TrainingData,
}

impl Object {
    /// Every object, in the order tables list them.
    pub const ALL: [Self; 12] = [
        Self::Company,
        Self::User,
        Self::Preset,
        Self::Audience,
        Self::Friendship,
        Self::Conversation,
        Self::Message,
        Self::Session,
        Self::Invitation,
        Self::Activity,
        Self::ActivityKind,
        Self::TrainingData,
    ];

    /// The name used in policies and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::User => "user",
            Self::Preset => "preset",
            Self::Audience => "audience",
            Self::Friendship => "friendship",
            Self::Conversation => "conversation",
            Self::Message => "message",
            Self::Session => "session",
            Self::Invitation => "invitation",
            Self::Activity => "activity",
            Self::ActivityKind => "activity_kind",
            Self::TrainingData => "training_data",
        }
    }

    /// Parses a policy name; `None` for anything unknown.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// What may be done to an object. `Manage` implies every other action.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[graphql(name = "PermissionAction")]
pub enum Action {
    /// See it.
    Read,
    /// Make a new one.
    Create,
    /// Change it.
    Update,
    /// Remove it (or deactivate it, for people).
    Delete,
    /// Everything above, and administrative changes.
    Manage,
}

impl Action {
    /// Every action, weakest first.
    pub const ALL: [Self; 5] = [
        Self::Read,
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Manage,
    ];

    /// The name used in policies and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Manage => "manage",
        }
    }

    /// Parses a policy name; `None` for anything unknown.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// One permission: an action on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    pub object: Object,
    pub action: Action,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.action.as_str(), self.object.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_rejected() {
        for object in Object::ALL {
            assert_eq!(Object::parse(object.as_str()), Some(object));
        }
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Object::parse("role"), None);
        assert_eq!(Action::parse("write"), None);
        assert_eq!(Object::parse("Company"), None);
    }
}
