//! What a constraint of the database means to a client: for each unique, foreign-key and check
//! constraint a client's input can run into, the field of the input that clashes and what to
//! say. A violation of a constraint not listed keeps the generic answer (see
//! [`crate::error::AppError`]); the end-to-end test `sql_functions` checks that every one
//! listed exists in a migrated database with that kind.

/// The kind of a constraint, and so the SQLSTATE its violation raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A unique constraint or unique index (`23505`): `CONFLICT`.
    Unique,
    /// A foreign key (`23503`): `BAD_USER_INPUT`.
    ForeignKey,
    /// A check constraint (`23514`): `BAD_USER_INPUT`.
    Check,
}

impl Kind {
    /// The kind whose violations raise `sqlstate`.
    pub fn of_sqlstate(sqlstate: &str) -> Option<Self> {
        match sqlstate {
            "23505" => Some(Self::Unique),
            "23503" => Some(Self::ForeignKey),
            "23514" => Some(Self::Check),
            _ => None,
        }
    }
}

/// One constraint and what its violation tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constraint {
    /// Its name (of the index, for a unique index).
    pub name: &'static str,
    /// The table it belongs to.
    pub table: &'static str,
    pub kind: Kind,
    /// The input field that clashes, as the GraphQL input names it (`extensions.field`).
    pub field: &'static str,
    pub message: &'static str,
}

const fn unique(
    name: &'static str,
    table: &'static str,
    field: &'static str,
    message: &'static str,
) -> Constraint {
    Constraint {
        name,
        table,
        kind: Kind::Unique,
        field,
        message,
    }
}

const fn foreign_key(
    name: &'static str,
    table: &'static str,
    field: &'static str,
    message: &'static str,
) -> Constraint {
    Constraint {
        name,
        table,
        kind: Kind::ForeignKey,
        field,
        message,
    }
}

const fn check(
    name: &'static str,
    table: &'static str,
    field: &'static str,
    message: &'static str,
) -> Constraint {
    Constraint {
        name,
        table,
        kind: Kind::Check,
        field,
        message,
    }
}

/// Every constraint whose violation is mapped on purpose.
pub const CONSTRAINTS: &[Constraint] = &[
    // Unique values.
    unique(
        "company_domains_company_id_domain_key",
        "company_domains",
        "domain",
        "your company has this domain already",
    ),
    unique(
        "verified_domains_pkey",
        "verified_domains",
        "id",
        "another company has verified this domain",
    ),
    unique(
        "login_emails_pkey",
        "login_emails",
        "email",
        "an account with this e-mail address already exists",
    ),
    unique(
        "activity_kinds_company_name_key",
        "activity_kinds",
        "name",
        "a kind of activity with this name already exists in the company",
    ),
    unique(
        "presets_company_name_key",
        "presets",
        "name",
        "a preset with this name already exists in the company",
    ),
    unique(
        "roles_pkey",
        "roles",
        "name",
        "a role with this name already exists",
    ),
    unique(
        "audience_fields_pkey",
        "audience_fields",
        "name",
        "a company field with this name already exists",
    ),
    unique(
        "friendships_pair_key",
        "friendships",
        "userId",
        "there is already a friendship, request or block between you and this user",
    ),
    unique(
        "messages_one_streaming_key",
        "messages",
        "conversationId",
        "a reply is streaming in this conversation; cancel it first",
    ),
    // References to something the caller named.
    foreign_key(
        "friendships_user_a_fkey",
        "friendships",
        "userId",
        "no such user",
    ),
    foreign_key(
        "friendships_user_b_fkey",
        "friendships",
        "userId",
        "no such user",
    ),
    foreign_key(
        "messages_conversation_fkey",
        "messages",
        "conversationId",
        "no such conversation",
    ),
    // Checks of values a client writes (the resolvers check them first; these are the last
    // word).
    check(
        "companies_name_check",
        "companies",
        "name",
        "must be 1 to 200 characters long",
    ),
    check(
        "users_email_check",
        "users",
        "email",
        "not a valid e-mail address",
    ),
    check(
        "users_display_name_check",
        "users",
        "displayName",
        "must be 1 to 200 characters long",
    ),
    check(
        "invitations_email_check",
        "invitations",
        "email",
        "not a valid e-mail address",
    ),
    check(
        "roles_name_check",
        "roles",
        "name",
        "a role name has 2 to 40 characters: lowercase letters, digits, `_` and `-`, starting \
         with a letter, and is not a built-in role",
    ),
    check(
        "roles_description_check",
        "roles",
        "description",
        "the description is longer than 500 characters",
    ),
    check(
        "presets_name_check",
        "presets",
        "name",
        "must be 1 to 200 characters long",
    ),
    check(
        "presets_description_check",
        "presets",
        "description",
        "the description is longer than 2000 characters",
    ),
    check(
        "audience_fields_name_check",
        "audience_fields",
        "name",
        "a field name has 1 to 63 characters: lowercase letters, digits and `_`, starting \
         with a letter, and is not a built-in field",
    ),
    check(
        "audience_fields_description_check",
        "audience_fields",
        "description",
        "the description is longer than 500 characters",
    ),
    check(
        "friendships_message_check",
        "friendships",
        "message",
        "the message is longer than 500 characters",
    ),
    check(
        "conversations_title_check",
        "conversations",
        "title",
        "must be 1 to 200 characters long",
    ),
    check(
        "conversations_system_prompt_check",
        "conversations",
        "systemPrompt",
        "the system prompt is longer than 20000 characters",
    ),
    check(
        "knowledge_content_check",
        "knowledge",
        "content",
        "must be 1 to 20000 characters long",
    ),
];

/// The mapping of a violation of constraint `name` with SQLSTATE `sqlstate`, if it is mapped.
pub fn lookup(sqlstate: &str, name: &str) -> Option<&'static Constraint> {
    let kind = Kind::of_sqlstate(sqlstate)?;
    CONSTRAINTS
        .iter()
        .find(|c| c.kind == kind && c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constraint_is_found_by_name_and_kind() {
        let email = lookup("23505", "login_emails_pkey").map(|c| c.field);
        assert_eq!(email, Some("email"));
        // The same name under another SQLSTATE is no match.
        assert!(lookup("23514", "login_emails_pkey").is_none());
        assert!(lookup("23505", "no_such_constraint").is_none());
        assert!(lookup("42501", "login_emails_pkey").is_none());
    }

    #[test]
    fn each_constraint_is_listed_once() {
        let mut names: Vec<_> = CONSTRAINTS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CONSTRAINTS.len());
    }
}
