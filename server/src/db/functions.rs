//! The typed seam to the `app.*` SQL functions: one Rust function per SQL function the server
//! calls, with typed arguments and a typed result.
//!
//! Each function is declared once, in [`DECLARED`]: its name, the SQL types of its arguments in
//! order, its result type and the role that calls it. The SQL text of every call is built from
//! that declaration (each argument cast to its declared type, so an overload is chosen by the
//! declaration, and an interval passed as seconds), the call runs as the declared role, and the
//! end-to-end test `sql_functions` compares the declaration with `pg_proc` (signature, result
//! type, `EXECUTE` of the calling role): a changed signature fails the test, not a request.
//!
//! Outcome codes the functions answer as text become enums, parsed strictly: a code this
//! server does not know is an error, never a default.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::messages::{MessageRole, MessageStatus};
use sea_orm::{
    ActiveEnum as _, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement,
    Value,
    sea_query::{Expr, SimpleExpr},
};
use uuid::Uuid;

use super::{SystemRole, query_all_as};

/// The role a function is called as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `app_user`, inside a signed-in request's transaction.
    User,
    /// `app_anon`: anonymous requests and the sign-in flows.
    Anonymous,
    /// `app_worker`: background work.
    Worker,
}

impl Caller {
    /// The database role.
    pub fn role(self) -> &'static str {
        match self {
            Self::User => "app_user",
            Self::Anonymous => "app_anon",
            Self::Worker => "app_worker",
        }
    }

    fn system_role(self) -> Option<SystemRole> {
        match self {
            Self::User => None,
            Self::Anonymous => Some(SystemRole::Anonymous),
            Self::Worker => Some(SystemRole::Worker),
        }
    }
}

/// What a function returns, in the SQL types `format_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    Void,
    /// One value.
    Scalar(&'static str),
    /// `SETOF type`: rows of one value.
    SetOf(&'static str),
    /// `TABLE(name type, ...)`.
    Table(&'static [(&'static str, &'static str)]),
}

impl Returns {
    /// As `pg_get_function_result` writes it.
    pub fn to_sql(self) -> String {
        match self {
            Self::Void => "void".to_owned(),
            Self::Scalar(ty) => ty.to_owned(),
            Self::SetOf(ty) => format!("SETOF {ty}"),
            Self::Table(columns) => format!(
                "TABLE({})",
                columns
                    .iter()
                    .map(|(name, ty)| format!("{name} {ty}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// One `app.*` SQL function as the server calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlFunction {
    /// Its name in schema `app`.
    pub name: &'static str,
    /// The SQL types of its arguments, in order, as `format_type` names them.
    pub args: &'static [&'static str],
    pub returns: Returns,
    /// The role that calls it (and so must have `EXECUTE`).
    pub caller: Caller,
}

/// The name of the single column scalar and set-of results are read from.
const VALUE: &str = "value";

impl SqlFunction {
    /// `name(type, type)`, as `oidvectortypes` lists the argument types.
    pub fn signature(&self) -> String {
        format!("{}({})", self.name, self.args.join(", "))
    }

    /// The call with placeholders `$1`.., each cast to its declared type; an `interval` is
    /// passed as its seconds.
    fn call(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, ty)| match *ty {
                "interval" => format!("make_interval(secs => ${})", i + 1),
                ty => format!("${}::{ty}", i + 1),
            })
            .collect();
        format!("app.{}({})", self.name, args.join(", "))
    }

    /// The statement that calls the function and returns its result.
    fn select(&self) -> String {
        let call = self.call();
        match self.returns {
            // A void value is read by no one: as text it is one the driver always decodes.
            Returns::Void => format!("SELECT {call}::text AS {VALUE}"),
            Returns::Scalar(_) => format!("SELECT {call} AS {VALUE}"),
            Returns::SetOf(_) => format!("SELECT {VALUE} FROM {call} AS {VALUE}"),
            Returns::Table(columns) => format!(
                "SELECT {} FROM {call}",
                columns
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn statement(&self, values: Vec<Value>) -> Result<Statement, DbErr> {
        if values.len() != self.args.len() {
            return Err(DbErr::Custom(format!(
                "app.{} takes {} arguments, {} given",
                self.name,
                self.args.len(),
                values.len()
            )));
        }
        Ok(Statement::from_sql_and_values(
            DbBackend::Postgres,
            self.select(),
            values,
        ))
    }

    /// Runs the call on `conn` (a request's transaction: the caller is `app_user`).
    async fn rows_on(
        &self,
        conn: &impl ConnectionTrait,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        conn.query_all_raw(self.statement(values)?).await
    }

    /// Runs the call in a transaction of its own as the declared system role.
    async fn rows(
        &self,
        db: &DatabaseConnection,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let role = self.caller.system_role().ok_or_else(|| {
            DbErr::Custom(format!(
                "app.{} is called inside a request transaction",
                self.name
            ))
        })?;
        query_all_as(db, role, self.statement(values)?).await
    }

    /// The single row of a scalar or void result.
    async fn one(&self, db: &DatabaseConnection, values: Vec<Value>) -> Result<QueryResult, DbErr> {
        self.rows(db, values)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| DbErr::Custom(format!("app.{} returned no row", self.name)))
    }
}

// The declarations ---------------------------------------------------------------------------

const TIMESTAMPTZ: &str = "timestamp with time zone";

pub const ACCEPT_INVITATION: SqlFunction = SqlFunction {
    name: "accept_invitation",
    args: &["uuid", "text", "uuid", "text", "text"],
    returns: Returns::Table(&[
        ("user_id", "uuid"),
        ("company_id", "uuid"),
        ("role", "text"),
    ]),
    caller: Caller::Anonymous,
};
pub const ACCEPT_INVITE_LINK: SqlFunction = SqlFunction {
    name: "accept_invite_link",
    args: &["uuid", "text", "uuid", "text", "text", "text"],
    returns: Returns::Table(&[
        ("user_id", "uuid"),
        ("company_id", "uuid"),
        ("role", "text"),
    ]),
    caller: Caller::Anonymous,
};
pub const BEGIN_REQUEST: SqlFunction = SqlFunction {
    name: "begin_request",
    args: &["uuid", "uuid", "text", "uuid", "boolean"],
    returns: Returns::Void,
    caller: Caller::User,
};
pub const CHANGE_EMAIL: SqlFunction = SqlFunction {
    name: "change_email",
    args: &["uuid", "uuid", "text", "text", TIMESTAMPTZ, "text", "text"],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Anonymous,
};
pub const CHAT_FINISH_MESSAGE: SqlFunction = SqlFunction {
    name: "chat_finish_message",
    args: &[
        "uuid", "uuid", "text", "text", "text", "integer", "integer", "text",
    ],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Worker,
};
pub const CHAT_INTERRUPT_MESSAGE: SqlFunction = SqlFunction {
    name: "chat_interrupt_message",
    args: &["uuid", "text", "text", "interval"],
    returns: Returns::Table(&[
        ("company_id", "uuid"),
        ("conversation_id", "uuid"),
        ("role", "text"),
        ("content", "text"),
        ("created_at", TIMESTAMPTZ),
        ("model", "text"),
        ("prompt_tokens", "integer"),
        ("completion_tokens", "integer"),
    ]),
    caller: Caller::Worker,
};
pub const CHAT_PROGRESS_MESSAGE: SqlFunction = SqlFunction {
    name: "chat_progress_message",
    args: &["uuid", "uuid", "text", "bigint"],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Worker,
};
pub const CHAT_SILENT_REPLIES: SqlFunction = SqlFunction {
    name: "chat_silent_replies",
    args: &["interval", "integer"],
    returns: Returns::Table(&[("id", "uuid")]),
    caller: Caller::Worker,
};
pub const COMPANY_LLM_PROVIDER: SqlFunction = SqlFunction {
    name: "company_llm_provider",
    args: &["uuid"],
    returns: Returns::Table(&[
        ("base_url", "text"),
        ("model", "text"),
        ("api_key_sealed", "text"),
    ]),
    caller: Caller::Worker,
};
/// A company's OpenID provider as the sign-in flow reads it (never its secret).
pub const COMPANY_OIDC_PROVIDER: SqlFunction = SqlFunction {
    name: "company_oidc_provider",
    args: &["uuid", "text"],
    returns: Returns::Table(&[
        ("id", "uuid"),
        ("issuer", "text"),
        ("client_id", "text"),
        ("role", "text"),
        ("allowed_domains", "jsonb"),
        ("link_verified_email", "boolean"),
        ("updated_at", TIMESTAMPTZ),
    ]),
    caller: Caller::Anonymous,
};
pub const COMPANY_OIDC_CLIENT_SECRET: SqlFunction = SqlFunction {
    name: "company_oidc_client_secret",
    args: &["uuid", "uuid"],
    returns: Returns::Scalar("text"),
    caller: Caller::Worker,
};
pub const COMPANY_OIDC_JOIN: SqlFunction = SqlFunction {
    name: "company_oidc_join",
    args: &[
        "uuid", "uuid", "uuid", "text", "text", "uuid", "text", "text",
    ],
    returns: Returns::Table(&[("outcome", "text"), ("role", "text")]),
    caller: Caller::Anonymous,
};
pub const COMPANY_OIDC_LINK_EMAIL: SqlFunction = SqlFunction {
    name: "company_oidc_link_email",
    args: &["uuid", "uuid", "uuid", "text", "text", "text"],
    returns: Returns::Table(&[("outcome", "text"), ("user_id", "uuid"), ("role", "text")]),
    caller: Caller::Anonymous,
};
/// Lists the sealed client secrets of company OpenID providers for `server rotate-secrets`.
pub const SEALED_COMPANY_OIDC_SECRETS: SqlFunction = SqlFunction {
    name: "sealed_company_oidc_secrets",
    args: &["uuid", "uuid", "integer"],
    returns: Returns::Table(SEALED_PAGE),
    caller: Caller::Worker,
};
/// Replaces one sealed client secret by its re-sealed form, unless it changed meanwhile.
pub const RESEAL_COMPANY_OIDC_SECRET: SqlFunction = SqlFunction {
    name: "reseal_company_oidc_secret",
    args: &["uuid", "uuid", "text", "text"],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Worker,
};
/// Lists sealed values of one column for `server rotate-secrets`, locked, after a key.
pub const SEALED_COMPANY_LLM_KEYS: SqlFunction = SqlFunction {
    name: "sealed_company_llm_keys",
    args: &["uuid", "uuid", "integer"],
    returns: Returns::Table(SEALED_PAGE),
    caller: Caller::Worker,
};
/// Replaces one sealed value by its re-sealed form, unless it changed meanwhile.
pub const RESEAL_COMPANY_LLM_KEY: SqlFunction = SqlFunction {
    name: "reseal_company_llm_key",
    args: &["uuid", "uuid", "text", "text"],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Worker,
};
/// The columns every function listing sealed values returns (see `crate::secrets::rotate`).
pub const SEALED_PAGE: &[(&str, &str)] = &[
    ("company_id", "uuid"),
    ("row_id", "uuid"),
    ("sealed", "text"),
];
pub const CONFIRM_COMPANY_DOMAIN: SqlFunction = SqlFunction {
    name: "confirm_company_domain",
    args: &["uuid"],
    returns: Returns::Scalar("text"),
    caller: Caller::User,
};
pub const CONSUME_PASSWORD_RESET: SqlFunction = SqlFunction {
    name: "consume_password_reset",
    args: &["uuid", "text", "text"],
    returns: Returns::Table(&[
        ("user_id", "uuid"),
        ("company_id", "uuid"),
        ("revoked_session", "uuid"),
    ]),
    caller: Caller::Anonymous,
};
pub const CREATE_EMAIL_VERIFICATION: SqlFunction = SqlFunction {
    name: "create_email_verification",
    args: &["uuid", "uuid", "text", TIMESTAMPTZ, "text", "text"],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Anonymous,
};
pub const CREATE_PASSWORD_RESET: SqlFunction = SqlFunction {
    name: "create_password_reset",
    args: &["uuid", "text", "text", TIMESTAMPTZ, "text", "text"],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Anonymous,
};
pub const CREATE_SESSION: SqlFunction = SqlFunction {
    name: "create_session",
    args: &[
        "uuid",
        "uuid",
        "uuid",
        "text",
        TIMESTAMPTZ,
        TIMESTAMPTZ,
        "text",
        "text",
        "text",
    ],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Anonymous,
};
pub const CURRENT_PASSWORD_HASH: SqlFunction = SqlFunction {
    name: "current_password_hash",
    args: &[],
    returns: Returns::Scalar("text"),
    caller: Caller::User,
};
pub const LOGIN_LOOKUP: SqlFunction = SqlFunction {
    name: "login_lookup",
    args: &["text"],
    returns: Returns::Table(&[
        ("user_id", "uuid"),
        ("company_id", "uuid"),
        ("role", "text"),
        ("password_hash", "text"),
        ("is_active", "boolean"),
    ]),
    caller: Caller::Anonymous,
};
pub const MAIL_ATTEMPT_FAILED: SqlFunction = SqlFunction {
    name: "mail_attempt_failed",
    args: &["uuid", "text", "interval"],
    returns: Returns::Scalar("text"),
    caller: Caller::Worker,
};
pub const MAIL_CLAIM: SqlFunction = SqlFunction {
    name: "mail_claim",
    args: &["interval", "integer"],
    returns: Returns::Table(&[
        ("id", "uuid"),
        ("recipient", "text"),
        ("subject", "text"),
        ("body", "text"),
        ("attempts", "integer"),
    ]),
    caller: Caller::Worker,
};
pub const MAIL_SENT: SqlFunction = SqlFunction {
    name: "mail_sent",
    args: &["uuid"],
    returns: Returns::Scalar("boolean"),
    caller: Caller::Worker,
};
pub const ACTIVITY_FRIEND_IDS: SqlFunction = SqlFunction {
    name: "activity_friend_ids",
    args: &[],
    returns: Returns::Scalar("uuid[]"),
    caller: Caller::User,
};
pub const MUTUAL_FRIEND_IDS: SqlFunction = SqlFunction {
    name: "mutual_friend_ids",
    args: &["uuid"],
    returns: Returns::SetOf("uuid"),
    caller: Caller::User,
};
pub const OIDC_IDENTITY: SqlFunction = SqlFunction {
    name: "oidc_identity",
    args: &["text", "text"],
    returns: Returns::Table(&[
        ("identity_id", "uuid"),
        ("user_id", "uuid"),
        ("company_id", "uuid"),
        ("role", "text"),
        ("is_active", "boolean"),
    ]),
    caller: Caller::Anonymous,
};
pub const OIDC_JOIN: SqlFunction = SqlFunction {
    name: "oidc_join",
    args: &[
        "uuid", "uuid", "text", "text", "text", "uuid", "text", "text", "text",
    ],
    returns: Returns::Void,
    caller: Caller::Anonymous,
};
pub const OIDC_LINK: SqlFunction = SqlFunction {
    name: "oidc_link",
    args: &["uuid", "uuid", "uuid", "text", "text", "text", "text"],
    returns: Returns::Scalar("text"),
    caller: Caller::Anonymous,
};
pub const OIDC_SIGN_UP: SqlFunction = SqlFunction {
    name: "oidc_sign_up",
    args: &[
        "uuid", "text", "uuid", "text", "text", "uuid", "text", "text", "text",
    ],
    returns: Returns::Void,
    caller: Caller::Anonymous,
};
pub const PENDING_INVITATION: SqlFunction = SqlFunction {
    name: "pending_invitation",
    args: &["uuid", "text"],
    returns: Returns::Scalar("text"),
    caller: Caller::Anonymous,
};
pub const PENDING_PASSWORD_RESET: SqlFunction = SqlFunction {
    name: "pending_password_reset",
    args: &["uuid", "text"],
    returns: Returns::Scalar("text"),
    caller: Caller::Anonymous,
};
pub const REFRESH_SESSION: SqlFunction = SqlFunction {
    name: "refresh_session",
    args: &["uuid", "text", "text", "text", "interval", "interval"],
    returns: Returns::Table(&[
        ("outcome", "text"),
        ("session_id", "uuid"),
        ("user_id", "uuid"),
        ("company_id", "uuid"),
        ("role", "text"),
        ("expires_at", TIMESTAMPTZ),
    ]),
    caller: Caller::Anonymous,
};
pub const SESSION_STATE: SqlFunction = SqlFunction {
    name: "session_state",
    args: &["uuid", "uuid"],
    returns: Returns::Scalar("text"),
    caller: Caller::Anonymous,
};
pub const SIGN_UP: SqlFunction = SqlFunction {
    name: "sign_up",
    args: &["uuid", "text", "uuid", "text", "text", "text"],
    returns: Returns::Void,
    caller: Caller::Anonymous,
};

pub const SIGN_UP_MEMBER: SqlFunction = SqlFunction {
    name: "sign_up_member",
    args: &["uuid", "text", "text", "text"],
    returns: Returns::Scalar("uuid"),
    caller: Caller::Anonymous,
};
/// Read through a cursor by `services::training::export`, a line at a time, not through
/// [`SqlFunction`]'s own calls.
pub const TRAINING_EXPORT: SqlFunction = SqlFunction {
    name: "training_export",
    args: &[TIMESTAMPTZ, TIMESTAMPTZ],
    returns: Returns::SetOf("text"),
    caller: Caller::User,
};
pub const VERIFY_EMAIL: SqlFunction = SqlFunction {
    name: "verify_email",
    args: &["uuid", "text"],
    returns: Returns::Table(&[("user_id", "uuid"), ("company_id", "uuid")]),
    caller: Caller::Anonymous,
};

/// Every `app.*` function the server calls.
pub const DECLARED: &[SqlFunction] = &[
    ACCEPT_INVITATION,
    ACCEPT_INVITE_LINK,
    ACTIVITY_FRIEND_IDS,
    BEGIN_REQUEST,
    CHANGE_EMAIL,
    CHAT_FINISH_MESSAGE,
    CHAT_INTERRUPT_MESSAGE,
    CHAT_PROGRESS_MESSAGE,
    CHAT_SILENT_REPLIES,
    COMPANY_LLM_PROVIDER,
    COMPANY_OIDC_CLIENT_SECRET,
    COMPANY_OIDC_JOIN,
    COMPANY_OIDC_LINK_EMAIL,
    COMPANY_OIDC_PROVIDER,
    CONFIRM_COMPANY_DOMAIN,
    CONSUME_PASSWORD_RESET,
    CREATE_EMAIL_VERIFICATION,
    CREATE_PASSWORD_RESET,
    CREATE_SESSION,
    CURRENT_PASSWORD_HASH,
    LOGIN_LOOKUP,
    MAIL_ATTEMPT_FAILED,
    MAIL_CLAIM,
    MAIL_SENT,
    MUTUAL_FRIEND_IDS,
    OIDC_IDENTITY,
    OIDC_JOIN,
    OIDC_LINK,
    OIDC_SIGN_UP,
    PENDING_INVITATION,
    PENDING_PASSWORD_RESET,
    REFRESH_SESSION,
    RESEAL_COMPANY_LLM_KEY,
    RESEAL_COMPANY_OIDC_SECRET,
    SEALED_COMPANY_LLM_KEYS,
    SEALED_COMPANY_OIDC_SECRETS,
    SESSION_STATE,
    SIGN_UP,
    SIGN_UP_MEMBER,
    TRAINING_EXPORT,
    VERIFY_EMAIL,
];

/// Functions granted to a role of the application that the server never calls itself: only
/// SQL does (policies, views, other functions). By signature, with the reason.
pub const CALLED_ONLY_BY_SQL: &[(&str, &str)] = &[
    (
        "current_user_id()",
        "read by the policies and views: the caller's user",
    ),
    (
        "current_company_id()",
        "read by the policies and views: the caller's company",
    ),
    (
        "current_role()",
        "read by the policies and views: the caller's role",
    ),
    (
        "may(text, text)",
        "asked by every policy of app_user: the permissions of the caller's role, as app.begin_request set them",
    ),
    (
        "identity_is_live(uuid, uuid, text, uuid)",
        "called by app.begin_request",
    ),
    (
        "keeps_a_way_in(uuid, uuid, uuid)",
        "called by app.identities_guard, the trigger that keeps a user a way to sign in",
    ),
    (
        "friend_ids()",
        "the caller's friends as a uuid[], as app.begin_request set them (the policies ask app.is_friend)",
    ),
    (
        "blocked_ids()",
        "who is in a blocked pair with the caller, as a uuid[] (the policies ask app.is_blocked)",
    ),
    (
        "is_friend(uuid)",
        "asked by the policy of activities: whether a user is among app.friend_ids",
    ),
    (
        "is_blocked(uuid)",
        "asked by the policy of activities and audience_activities: whether a user is among app.blocked_ids",
    ),
    (
        "request_grants(uuid, text)",
        "called by app.begin_request: the grants app.may reads",
    ),
    (
        "request_relationships()",
        "called by app.begin_request: the friends and blocks the policy of activities reads",
    ),
    (
        "invited_just_now(text)",
        "asked by the policy of outbound_emails: the addresses the caller invited in the transaction",
    ),
    (
        "activity_metric_definitions_valid(jsonb)",
        "the check constraint of activity_kinds.metrics",
    ),
    (
        "activity_metrics_problem(jsonb, jsonb)",
        "called by app.activities_check_metrics, the trigger that checks metrics against their kind",
    ),
    (
        "chat_progress_message(uuid, uuid, text)",
        "the form generators of the previous release call during a rolling deploy",
    ),
];

// Outcomes -----------------------------------------------------------------------------------

/// An outcome code the server does not know.
fn unknown(function: &SqlFunction, code: &str) -> DbErr {
    DbErr::Custom(format!(
        "app.{} answered the unknown outcome `{code}`",
        function.name
    ))
}

/// What `app.refresh_session` did with a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live: its successor is now.
    Rotated,
    /// The token was rotated moments ago (within the grace): its successor again.
    Replayed,
    /// No such token.
    Invalid,
    /// Its session is revoked.
    Revoked,
    /// Its session is past its sliding or absolute lifetime.
    Expired,
    /// Its user is deactivated: the session is now revoked.
    Inactive,
    /// Presented from another device: the session is now revoked.
    Fingerprint,
    /// A rotated token presented again: the session is now revoked.
    Reused,
}

impl RefreshOutcome {
    fn parse(code: &str) -> Result<Self, DbErr> {
        Ok(match code {
            "rotated" => Self::Rotated,
            "replayed" => Self::Replayed,
            "invalid" => Self::Invalid,
            "revoked" => Self::Revoked,
            "expired" => Self::Expired,
            "inactive" => Self::Inactive,
            "fingerprint" => Self::Fingerprint,
            "reused" => Self::Reused,
            other => return Err(unknown(&REFRESH_SESSION, other)),
        })
    }
}

/// The state of a session, as `app.session_state` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    /// Revoked or expired, or its user deactivated.
    Revoked,
    Missing,
}

impl SessionState {
    fn parse(code: &str) -> Result<Self, DbErr> {
        Ok(match code {
            "active" => Self::Active,
            "revoked" => Self::Revoked,
            "missing" => Self::Missing,
            other => return Err(unknown(&SESSION_STATE, other)),
        })
    }
}

/// What `app.oidc_link` did with an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    /// It is now linked to the user.
    Linked,
    /// It was linked to that user already.
    Already,
    /// Another user has it.
    Taken,
    /// No such active user.
    NoUser,
}

impl LinkOutcome {
    fn parse(code: &str) -> Result<Self, DbErr> {
        Ok(match code {
            "linked" => Self::Linked,
            "already" => Self::Already,
            "taken" => Self::Taken,
            "no_user" => Self::NoUser,
            other => return Err(unknown(&OIDC_LINK, other)),
        })
    }
}

/// What `app.confirm_company_domain` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainConfirmation {
    /// The domain counts for the caller's company (now, or already).
    Confirmed,
    /// No such domain in the caller's company.
    Missing,
    /// The caller is not an active admin.
    NotAdmin,
    /// The caller's own address is not verified.
    Unverified,
    /// The caller's own address is in another domain.
    OtherDomain,
    /// Another company verified the domain.
    Taken,
}

impl DomainConfirmation {
    fn parse(code: &str) -> Result<Self, DbErr> {
        Ok(match code {
            "confirmed" => Self::Confirmed,
            "missing" => Self::Missing,
            "not_admin" => Self::NotAdmin,
            "unverified" => Self::Unverified,
            "other_domain" => Self::OtherDomain,
            "taken" => Self::Taken,
            other => return Err(unknown(&CONFIRM_COMPANY_DOMAIN, other)),
        })
    }
}

// Results ------------------------------------------------------------------------------------

/// A row of `app.login_lookup`.
#[derive(Debug, Clone)]
pub struct LoginIdentity {
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub role: String,
    pub password_hash: Option<String>,
    pub is_active: bool,
}

/// The row of `app.refresh_session`. Every field but `outcome` is `None` for
/// [`RefreshOutcome::Invalid`].
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub outcome: RefreshOutcome,
    pub session_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub role: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A row of `app.consume_password_reset`: the user whose password changed, and one session of
/// theirs it revoked.
#[derive(Debug, Clone)]
pub struct ConsumedReset {
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub revoked_session: Option<Uuid>,
}

/// The user `app.accept_invitation` created.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub role: String,
}

/// The reply `app.chat_interrupt_message` stored as failed.
#[derive(Debug, Clone)]
pub struct Interrupted {
    pub company_id: Uuid,
    pub conversation_id: Uuid,
    pub role: MessageRole,
    pub content: String,
    pub created_at: DateTime<Utc>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
}

/// A message `app.mail_claim` handed to this instance to send.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Attempts at it so far, this one included.
    pub attempts: i32,
}

/// A one-time e-mail, for the definer functions that store a token and queue its message.
#[derive(Debug, Clone)]
pub struct TokenMail<'a> {
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub subject: &'a str,
    pub body: &'a str,
}

/// A new session, for `app.create_session`.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub session: Uuid,
    pub user: Uuid,
    pub company: Uuid,
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub fingerprint: &'a str,
}

/// The user `app.oidc_identity` found for an identity.
#[derive(Debug, Clone)]
pub struct LinkedUser {
    pub identity_id: Uuid,
    pub user_id: Uuid,
    pub company_id: Uuid,
    pub role: String,
    pub is_active: bool,
}

/// An identity to link or create with a user, for `app.oidc_link`, `app.oidc_sign_up` and
/// `app.oidc_join`.
#[derive(Debug, Clone)]
pub struct NewIdentity<'a> {
    pub id: Uuid,
    pub provider: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
}

/// A new company and its first admin, for `app.sign_up`.
#[derive(Debug, Clone)]
pub struct NewCompany<'a> {
    pub company: Uuid,
    pub company_name: &'a str,
    pub user: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
}

/// The outcome of a reply, for `app.chat_finish_message`.
#[derive(Debug, Clone)]
pub struct FinishedReply<'a> {
    pub company: Uuid,
    pub message: Uuid,
    pub content: &'a str,
    /// How it ended: `Complete`, `Failed` or `Cancelled` (a reply cannot end `Streaming`).
    pub status: MessageStatus,
    pub model: &'a str,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub error: Option<&'a str>,
}

fn text(value: Option<&str>) -> Value {
    value.map(str::to_owned).into()
}

fn secs(duration: Duration) -> Value {
    duration.as_secs_f64().into()
}

// The calls ----------------------------------------------------------------------------------

/// `app.accept_invitation`: creates the invited user, once, before the invitation expires.
pub async fn accept_invitation(
    db: &DatabaseConnection,
    company: Uuid,
    token_hash: &str,
    user: Uuid,
    password_hash: &str,
    display_name: &str,
) -> Result<Option<Accepted>, DbErr> {
    let rows = ACCEPT_INVITATION
        .rows(
            db,
            vec![
                company.into(),
                token_hash.into(),
                user.into(),
                password_hash.into(),
                display_name.into(),
            ],
        )
        .await?;
    rows.first()
        .map(|row| {
            Ok(Accepted {
                user_id: row.try_get("", "user_id")?,
                company_id: row.try_get("", "company_id")?,
                role: row.try_get("", "role")?,
            })
        })
        .transpose()
}

/// `app.accept_invite_link`: creates user `user` in the company of a live invite link, with
/// its role, counting one use; `None` when the link is unknown, revoked, expired or used up.
pub async fn accept_invite_link(
    db: &DatabaseConnection,
    company: Uuid,
    token_hash: &str,
    user: Uuid,
    email: &str,
    password_hash: &str,
    display_name: &str,
) -> Result<Option<Accepted>, DbErr> {
    let rows = ACCEPT_INVITE_LINK
        .rows(
            db,
            vec![
                company.into(),
                token_hash.into(),
                user.into(),
                email.into(),
                password_hash.into(),
                display_name.into(),
            ],
        )
        .await?;
    rows.first()
        .map(|row| {
            Ok(Accepted {
                user_id: row.try_get("", "user_id")?,
                company_id: row.try_get("", "company_id")?,
                role: row.try_get("", "role")?,
            })
        })
        .transpose()
}

/// The SQL text of `app.begin_request` for a simple-protocol round trip (which takes no bound
/// values), each value a literal of its declared type. `role` must be a plain name; quotes in it
/// are escaped all the same.
pub fn begin_request_sql(
    user: Uuid,
    company: Uuid,
    role: &str,
    session: Uuid,
    read_only: bool,
) -> String {
    let literals = [
        format!("'{user}'"),
        format!("'{company}'"),
        format!("'{}'", role.replace('\'', "''")),
        format!("'{session}'"),
        read_only.to_string(),
    ];
    let args: Vec<String> = BEGIN_REQUEST
        .args
        .iter()
        .zip(literals)
        .map(|(ty, literal)| format!("{literal}::{ty}"))
        .collect();
    format!("SELECT app.{}({})", BEGIN_REQUEST.name, args.join(", "))
}

/// `app.change_email`: active user `user` of `company` changes their address to `email`,
/// unverified until the link of `mail` (queued to it) is followed; whether the user changed.
pub async fn change_email(
    db: &DatabaseConnection,
    user: Uuid,
    company: Uuid,
    email: &str,
    mail: &TokenMail<'_>,
) -> Result<bool, DbErr> {
    CHANGE_EMAIL
        .one(
            db,
            vec![
                user.into(),
                company.into(),
                email.into(),
                mail.token_hash.into(),
                mail.expires_at.into(),
                mail.subject.into(),
                mail.body.into(),
            ],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.create_email_verification`: stores a verification token for the current address of
/// `user` and queues `mail` to it, unless the address is verified; whether it did.
pub async fn create_email_verification(
    db: &DatabaseConnection,
    user: Uuid,
    company: Uuid,
    mail: &TokenMail<'_>,
) -> Result<bool, DbErr> {
    CREATE_EMAIL_VERIFICATION
        .one(
            db,
            vec![
                user.into(),
                company.into(),
                mail.token_hash.into(),
                mail.expires_at.into(),
                mail.subject.into(),
                mail.body.into(),
            ],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.chat_finish_message`: stores the outcome of a reply; whether it was still streaming
/// (and so changed). A reply cannot end `Streaming`: that is refused before the call, as the
/// function refuses it.
pub async fn chat_finish_message(
    db: &DatabaseConnection,
    reply: &FinishedReply<'_>,
) -> Result<bool, DbErr> {
    if reply.status == MessageStatus::Streaming {
        return Err(DbErr::Custom(
            "app.chat_finish_message: a reply cannot end streaming".into(),
        ));
    }
    CHAT_FINISH_MESSAGE
        .one(
            db,
            vec![
                reply.company.into(),
                reply.message.into(),
                reply.content.into(),
                reply.status.to_value().into(),
                reply.model.into(),
                reply.prompt_tokens.into(),
                reply.completion_tokens.into(),
                text(reply.error),
            ],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.chat_interrupt_message`: stores reply `message`, still streaming and silent longer than
/// `silence`, as failed with `content` (else its stored text) and `reason`.
pub async fn chat_interrupt_message(
    db: &DatabaseConnection,
    message: Uuid,
    content: Option<&str>,
    reason: &str,
    silence: Duration,
) -> Result<Option<Interrupted>, DbErr> {
    let rows = CHAT_INTERRUPT_MESSAGE
        .rows(
            db,
            vec![message.into(), text(content), reason.into(), secs(silence)],
        )
        .await?;
    rows.first()
        .map(|row| {
            Ok(Interrupted {
                company_id: row.try_get("", "company_id")?,
                conversation_id: row.try_get("", "conversation_id")?,
                role: MessageRole::try_from_value(&row.try_get::<String>("", "role")?)?,
                content: row.try_get("", "content")?,
                created_at: row.try_get("", "created_at")?,
                model: row.try_get("", "model")?,
                prompt_tokens: row.try_get("", "prompt_tokens")?,
                completion_tokens: row.try_get("", "completion_tokens")?,
            })
        })
        .transpose()
}

/// `app.chat_progress_message`: stores the text so far (unless `None`) of a streaming reply,
/// made of its first `deltas` deltas, and its heartbeat; whether it still streams.
pub async fn chat_progress_message(
    db: &DatabaseConnection,
    company: Uuid,
    message: Uuid,
    content: Option<&str>,
    deltas: i64,
) -> Result<bool, DbErr> {
    CHAT_PROGRESS_MESSAGE
        .one(
            db,
            vec![company.into(), message.into(), text(content), deltas.into()],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.chat_silent_replies`: at most `limit` streaming replies silent longer than `silence`.
pub async fn chat_silent_replies(
    db: &DatabaseConnection,
    silence: Duration,
    limit: i32,
) -> Result<Vec<Uuid>, DbErr> {
    CHAT_SILENT_REPLIES
        .rows(db, vec![secs(silence), limit.into()])
        .await?
        .iter()
        .map(|row| row.try_get("", "id"))
        .collect()
}

/// What `app.company_llm_provider` answers: a company's own LLM provider, its key sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyLlmProvider {
    pub base_url: String,
    pub model: String,
    pub api_key_sealed: Option<String>,
}

/// `app.company_llm_provider`: the company's own LLM provider, if it set one.
pub async fn company_llm_provider(
    db: &DatabaseConnection,
    company: Uuid,
) -> Result<Option<CompanyLlmProvider>, DbErr> {
    let rows = COMPANY_LLM_PROVIDER.rows(db, vec![company.into()]).await?;
    rows.first()
        .map(|row| {
            Ok(CompanyLlmProvider {
                base_url: row.try_get("", "base_url")?,
                model: row.try_get("", "model")?,
                api_key_sealed: row.try_get("", "api_key_sealed")?,
            })
        })
        .transpose()
}

/// One sealed value listed for re-sealing: its company, its row and the stored text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub company_id: Uuid,
    pub row_id: Uuid,
    pub sealed: String,
}

/// Calls `list`, a function of [`SEALED_PAGE`] columns, in the worker transaction `conn`: at
/// most `limit` sealed values after `(company, row)`, in that order, locked until the end of
/// the transaction.
pub async fn sealed_page(
    conn: &impl ConnectionTrait,
    list: &SqlFunction,
    after: Option<(Uuid, Uuid)>,
    limit: i32,
) -> Result<Vec<SealedValue>, DbErr> {
    if list.returns != Returns::Table(SEALED_PAGE) || list.caller != Caller::Worker {
        return Err(DbErr::Custom(format!(
            "app.{} does not list sealed values",
            list.name
        )));
    }
    let (company, row) = match after {
        Some((company, row)) => (Some(company), Some(row)),
        None => (None, None),
    };
    list.rows_on(conn, vec![company.into(), row.into(), limit.into()])
        .await?
        .iter()
        .map(|row| {
            Ok(SealedValue {
                company_id: row.try_get("", "company_id")?,
                row_id: row.try_get("", "row_id")?,
                sealed: row.try_get("", "sealed")?,
            })
        })
        .collect()
}

/// Calls `replace` (company, row, old sealed text, new sealed text) in the worker transaction
/// `conn`: whether the value was still `old` and is now `new`.
pub async fn reseal_value(
    conn: &impl ConnectionTrait,
    replace: &SqlFunction,
    value: &SealedValue,
    new: &str,
) -> Result<bool, DbErr> {
    if replace.args != ["uuid", "uuid", "text", "text"] || replace.caller != Caller::Worker {
        return Err(DbErr::Custom(format!(
            "app.{} does not replace sealed values",
            replace.name
        )));
    }
    let rows = replace
        .rows_on(
            conn,
            vec![
                value.company_id.into(),
                value.row_id.into(),
                value.sealed.as_str().into(),
                new.into(),
            ],
        )
        .await?;
    match rows.first() {
        Some(row) => row.try_get("", VALUE),
        None => Ok(false),
    }
}

/// `app.confirm_company_domain`: the caller confirms domain `id` of their company, in their
/// request's transaction.
pub async fn confirm_company_domain(
    conn: &impl ConnectionTrait,
    id: Uuid,
) -> Result<DomainConfirmation, DbErr> {
    let row = CONFIRM_COMPANY_DOMAIN
        .rows_on(conn, vec![id.into()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DbErr::Custom("app.confirm_company_domain returned no row".into()))?;
    let code: String = row.try_get("", VALUE)?;
    DomainConfirmation::parse(&code)
}

/// `app.consume_password_reset`: sets the new password with a reset token (once) and revokes
/// the user's sessions; no row when the token is unusable.
pub async fn consume_password_reset(
    db: &DatabaseConnection,
    company: Uuid,
    token_hash: &str,
    password_hash: &str,
) -> Result<Vec<ConsumedReset>, DbErr> {
    CONSUME_PASSWORD_RESET
        .rows(
            db,
            vec![company.into(), token_hash.into(), password_hash.into()],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(ConsumedReset {
                user_id: row.try_get("", "user_id")?,
                company_id: row.try_get("", "company_id")?,
                revoked_session: row.try_get("", "revoked_session")?,
            })
        })
        .collect()
}

/// `app.create_password_reset`: stores a reset token for the user with this e-mail, if there
/// is one in `company`, and queues the e-mail; whether there was.
pub async fn create_password_reset(
    db: &DatabaseConnection,
    company: Uuid,
    email: &str,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    subject: &str,
    body: &str,
) -> Result<bool, DbErr> {
    CREATE_PASSWORD_RESET
        .one(
            db,
            vec![
                company.into(),
                email.into(),
                token_hash.into(),
                expires_at.into(),
                subject.into(),
                body.into(),
            ],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.create_session`: false when the user is not an active member of that company.
pub async fn create_session(db: &DatabaseConnection, new: &NewSession<'_>) -> Result<bool, DbErr> {
    CREATE_SESSION
        .one(
            db,
            vec![
                new.session.into(),
                new.user.into(),
                new.company.into(),
                new.token_hash.into(),
                new.expires_at.into(),
                new.absolute_expires_at.into(),
                text(new.user_agent),
                text(new.ip),
                new.fingerprint.into(),
            ],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.current_password_hash`: the signed-in caller's password hash, in their request's
/// transaction.
pub async fn current_password_hash(conn: &impl ConnectionTrait) -> Result<Option<String>, DbErr> {
    match CURRENT_PASSWORD_HASH
        .rows_on(conn, Vec::new())
        .await?
        .first()
    {
        Some(row) => row.try_get("", VALUE),
        None => Ok(None),
    }
}

/// `app.login_lookup`: the user with this e-mail address, of whichever company.
pub async fn login_lookup(
    db: &DatabaseConnection,
    email: &str,
) -> Result<Option<LoginIdentity>, DbErr> {
    let rows = LOGIN_LOOKUP.rows(db, vec![email.into()]).await?;
    rows.first()
        .map(|row| {
            Ok(LoginIdentity {
                user_id: row.try_get("", "user_id")?,
                company_id: row.try_get("", "company_id")?,
                role: row.try_get("", "role")?,
                password_hash: row.try_get("", "password_hash")?,
                is_active: row.try_get("", "is_active")?,
            })
        })
        .transpose()
}

/// `app.mail_attempt_failed`: an attempt at claimed message `id` failed with `error`; it is
/// due again after `retry_in`, or `failed` when that is `None`. The message's status, `None`
/// when it was no longer pending.
pub async fn mail_attempt_failed(
    db: &DatabaseConnection,
    id: Uuid,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<Option<String>, DbErr> {
    MAIL_ATTEMPT_FAILED
        .one(
            db,
            vec![
                id.into(),
                error.into(),
                retry_in.map(|d| d.as_secs_f64()).into(),
            ],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.mail_claim`: at most `limit` due messages, each not due again for `lease`.
pub async fn mail_claim(
    db: &DatabaseConnection,
    lease: Duration,
    limit: i32,
) -> Result<Vec<ClaimedMail>, DbErr> {
    MAIL_CLAIM
        .rows(db, vec![secs(lease), limit.into()])
        .await?
        .iter()
        .map(|row| {
            Ok(ClaimedMail {
                id: row.try_get("", "id")?,
                recipient: row.try_get("", "recipient")?,
                subject: row.try_get("", "subject")?,
                body: row.try_get("", "body")?,
                attempts: row.try_get("", "attempts")?,
            })
        })
        .collect()
}

/// `app.mail_sent`: claimed message `id` was accepted by the SMTP server; whether it was still
/// pending.
pub async fn mail_sent(db: &DatabaseConnection, id: Uuid) -> Result<bool, DbErr> {
    MAIL_SENT.one(db, vec![id.into()]).await?.try_get("", VALUE)
}

/// `app.activity_friend_ids()` as SQL, for statements of a signed-in request: the caller's
/// friends, as an array (wrap it in a sub-select to have it computed once per statement).
pub fn activity_friend_ids_sql() -> String {
    ACTIVITY_FRIEND_IDS.call()
}

/// `<column> IN app.mutual_friend_ids(other)`: a condition for a query of a signed-in request.
pub fn in_mutual_friend_ids(column: &str, other: Uuid) -> SimpleExpr {
    Expr::cust_with_values(
        format!(
            "{column} IN (SELECT {VALUE} FROM {} AS {VALUE})",
            MUTUAL_FRIEND_IDS.call()
        ),
        [Value::from(other)],
    )
}

/// `app.oidc_identity`: the user an identity is linked to, of whichever company.
pub async fn oidc_identity(
    db: &DatabaseConnection,
    issuer: &str,
    subject: &str,
) -> Result<Option<LinkedUser>, DbErr> {
    let rows = OIDC_IDENTITY
        .rows(db, vec![issuer.into(), subject.into()])
        .await?;
    rows.first()
        .map(|row| {
            Ok(LinkedUser {
                identity_id: row.try_get("", "identity_id")?,
                user_id: row.try_get("", "user_id")?,
                company_id: row.try_get("", "company_id")?,
                role: row.try_get("", "role")?,
                is_active: row.try_get("", "is_active")?,
            })
        })
        .transpose()
}

/// `app.oidc_join`: a new member of `company` with `role` and no password, and the identity.
pub async fn oidc_join(
    db: &DatabaseConnection,
    company: Uuid,
    user: Uuid,
    email: &str,
    display_name: &str,
    role: &str,
    identity: &NewIdentity<'_>,
) -> Result<(), DbErr> {
    OIDC_JOIN
        .one(
            db,
            vec![
                company.into(),
                user.into(),
                email.into(),
                display_name.into(),
                role.into(),
                identity.id.into(),
                identity.provider.into(),
                identity.issuer.into(),
                identity.subject.into(),
            ],
        )
        .await
        .map(|_| ())
}

/// `app.oidc_link`: links an identity to an active user.
pub async fn oidc_link(
    db: &DatabaseConnection,
    user: Uuid,
    company: Uuid,
    identity: &NewIdentity<'_>,
    email: Option<&str>,
) -> Result<LinkOutcome, DbErr> {
    let outcome: String = OIDC_LINK
        .one(
            db,
            vec![
                identity.id.into(),
                user.into(),
                company.into(),
                identity.provider.into(),
                identity.issuer.into(),
                identity.subject.into(),
                text(email),
            ],
        )
        .await?
        .try_get("", VALUE)?;
    LinkOutcome::parse(&outcome)
}

/// `app.oidc_sign_up`: a new company, its first admin with no password, and the identity.
pub async fn oidc_sign_up(
    db: &DatabaseConnection,
    company: Uuid,
    company_name: &str,
    user: Uuid,
    email: &str,
    display_name: &str,
    identity: &NewIdentity<'_>,
) -> Result<(), DbErr> {
    OIDC_SIGN_UP
        .one(
            db,
            vec![
                company.into(),
                company_name.into(),
                user.into(),
                email.into(),
                display_name.into(),
                identity.id.into(),
                identity.provider.into(),
                identity.issuer.into(),
                identity.subject.into(),
            ],
        )
        .await
        .map(|_| ())
}

/// `app.pending_invitation`: the e-mail address of a live invitation.
pub async fn pending_invitation(
    db: &DatabaseConnection,
    company: Uuid,
    token_hash: &str,
) -> Result<Option<String>, DbErr> {
    PENDING_INVITATION
        .one(db, vec![company.into(), token_hash.into()])
        .await?
        .try_get("", VALUE)
}

/// `app.pending_password_reset`: the e-mail address of a live reset token's user.
pub async fn pending_password_reset(
    db: &DatabaseConnection,
    company: Uuid,
    token_hash: &str,
) -> Result<Option<String>, DbErr> {
    PENDING_PASSWORD_RESET
        .one(db, vec![company.into(), token_hash.into()])
        .await?
        .try_get("", VALUE)
}

/// `app.refresh_session`: rotates a refresh token of `company` to `next_hash`.
pub async fn refresh_session(
    db: &DatabaseConnection,
    company: Uuid,
    token_hash: &str,
    next_hash: &str,
    fingerprint: &str,
    grace: Duration,
    sliding: Duration,
) -> Result<Option<Refreshed>, DbErr> {
    let rows = REFRESH_SESSION
        .rows(
            db,
            vec![
                company.into(),
                token_hash.into(),
                next_hash.into(),
                fingerprint.into(),
                secs(grace),
                secs(sliding),
            ],
        )
        .await?;
    rows.first()
        .map(|row| {
            let outcome: String = row.try_get("", "outcome")?;
            Ok(Refreshed {
                outcome: RefreshOutcome::parse(&outcome)?,
                session_id: row.try_get("", "session_id")?,
                user_id: row.try_get("", "user_id")?,
                company_id: row.try_get("", "company_id")?,
                role: row.try_get("", "role")?,
                expires_at: row.try_get("", "expires_at")?,
            })
        })
        .transpose()
}

/// `app.session_state`: of session `session` of `company`.
pub async fn session_state(
    db: &DatabaseConnection,
    company: Uuid,
    session: Uuid,
) -> Result<SessionState, DbErr> {
    let state: String = SESSION_STATE
        .one(db, vec![company.into(), session.into()])
        .await?
        .try_get("", VALUE)?;
    SessionState::parse(&state)
}

/// `app.sign_up`: creates a company and its first admin.
pub async fn sign_up(db: &DatabaseConnection, new: &NewCompany<'_>) -> Result<(), DbErr> {
    SIGN_UP
        .one(
            db,
            vec![
                new.company.into(),
                new.company_name.into(),
                new.user.into(),
                new.email.into(),
                new.password_hash.into(),
                new.display_name.into(),
            ],
        )
        .await
        .map(|_| ())
}

/// `app.sign_up_member`: creates user `user` as an inactive member of the company that
/// verified the domain of `email`, awaiting the address's verification; that company, or
/// `None` when no company verified the domain.
pub async fn sign_up_member(
    db: &DatabaseConnection,
    user: Uuid,
    email: &str,
    password_hash: &str,
    display_name: &str,
) -> Result<Option<Uuid>, DbErr> {
    SIGN_UP_MEMBER
        .one(
            db,
            vec![
                user.into(),
                email.into(),
                password_hash.into(),
                display_name.into(),
            ],
        )
        .await?
        .try_get("", VALUE)
}

/// `app.verify_email`: uses a verification token once; the user whose address it verified.
pub async fn verify_email(
    db: &DatabaseConnection,
    company: Uuid,
    token_hash: &str,
) -> Result<Option<(Uuid, Uuid)>, DbErr> {
    let rows = VERIFY_EMAIL
        .rows(db, vec![company.into(), token_hash.into()])
        .await?;
    rows.first()
        .map(|row| Ok((row.try_get("", "user_id")?, row.try_get("", "company_id")?)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_cast_each_argument_to_its_declared_type() {
        assert_eq!(
            REFRESH_SESSION.select(),
            "SELECT outcome, session_id, user_id, company_id, role, expires_at FROM \
             app.refresh_session($1::uuid, $2::text, $3::text, $4::text, \
             make_interval(secs => $5), make_interval(secs => $6))"
        );
        assert_eq!(
            SESSION_STATE.select(),
            "SELECT app.session_state($1::uuid, $2::uuid) AS value"
        );
        assert_eq!(
            MUTUAL_FRIEND_IDS.select(),
            "SELECT value FROM app.mutual_friend_ids($1::uuid) AS value"
        );
        assert_eq!(
            SIGN_UP.select(),
            "SELECT app.sign_up($1::uuid, $2::text, $3::uuid, $4::text, $5::text, $6::text)::text AS value"
        );
    }

    #[test]
    fn a_call_with_the_wrong_number_of_values_is_refused() {
        assert!(SESSION_STATE.statement(Vec::new()).is_err());
        assert!(SESSION_STATE.statement(vec![Uuid::nil().into()]).is_err());
        assert!(
            SESSION_STATE
                .statement(vec![Uuid::nil().into(), Uuid::nil().into()])
                .is_ok()
        );
    }

    #[test]
    fn begin_request_writes_typed_literals() {
        let id = Uuid::nil();
        assert_eq!(
            begin_request_sql(id, id, "o'neil", id, true),
            format!(
                "SELECT app.begin_request('{id}'::uuid, '{id}'::uuid, 'o''neil'::text, \
                 '{id}'::uuid, true::boolean)"
            )
        );
    }

    #[test]
    fn outcome_codes_are_parsed_strictly() {
        assert_eq!(
            RefreshOutcome::parse("rotated").ok(),
            Some(RefreshOutcome::Rotated)
        );
        assert!(RefreshOutcome::parse("Rotated").is_err());
        assert!(RefreshOutcome::parse("").is_err());
        assert_eq!(
            SessionState::parse("missing").ok(),
            Some(SessionState::Missing)
        );
        assert!(SessionState::parse("expired").is_err());
    }

    #[test]
    fn results_are_written_as_postgresql_writes_them() {
        assert_eq!(
            ACCEPT_INVITATION.returns.to_sql(),
            "TABLE(user_id uuid, company_id uuid, role text)"
        );
        assert_eq!(MUTUAL_FRIEND_IDS.returns.to_sql(), "SETOF uuid");
        assert_eq!(
            CHAT_PROGRESS_MESSAGE.signature(),
            "chat_progress_message(uuid, uuid, text, bigint)"
        );
    }

    #[test]
    fn each_function_is_declared_once() {
        let mut names: Vec<_> = DECLARED.iter().map(SqlFunction::signature).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DECLARED.len());
    }
}

// Company OpenID providers ------------------------------------------------------------------

/// What `app.company_oidc_provider` answers: a company's provider as the sign-in flow needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyOidcProvider {
    pub id: Uuid,
    pub issuer: String,
    pub client_id: String,
    pub role: String,
    pub allowed_domains: Vec<String>,
    pub link_verified_email: bool,
    pub updated_at: DateTime<Utc>,
}

/// `app.company_oidc_provider`: provider `name` of `company`, if there is one.
pub async fn company_oidc_provider(
    db: &DatabaseConnection,
    company: Uuid,
    name: &str,
) -> Result<Option<CompanyOidcProvider>, DbErr> {
    let rows = COMPANY_OIDC_PROVIDER
        .rows(db, vec![company.into(), name.into()])
        .await?;
    rows.first()
        .map(|row| {
            let domains: serde_json::Value = row.try_get("", "allowed_domains")?;
            let allowed_domains = serde_json::from_value(domains)
                .map_err(|e| DbErr::Custom(format!("allowed_domains: {e}")))?;
            Ok(CompanyOidcProvider {
                id: row.try_get("", "id")?,
                issuer: row.try_get("", "issuer")?,
                client_id: row.try_get("", "client_id")?,
                role: row.try_get("", "role")?,
                allowed_domains,
                link_verified_email: row.try_get("", "link_verified_email")?,
                updated_at: row.try_get("", "updated_at")?,
            })
        })
        .transpose()
}

/// `app.company_oidc_client_secret`: the sealed client secret of provider `id` of `company`.
pub async fn company_oidc_client_secret(
    db: &DatabaseConnection,
    company: Uuid,
    id: Uuid,
) -> Result<Option<String>, DbErr> {
    COMPANY_OIDC_CLIENT_SECRET
        .one(db, vec![company.into(), id.into()])
        .await?
        .try_get("", VALUE)
}

/// What `app.company_oidc_join` and `app.company_oidc_link_email` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompanyOidcOutcome {
    /// A new member (`joined`) or a linked account (`linked`, `already`): the user's role.
    Done { user: Option<Uuid>, role: String },
    /// Another account has the identity.
    Taken,
    /// The provider is gone.
    NoProvider,
    /// The identity is another issuer's.
    Issuer,
    /// The address's domain is not allowed.
    Domain,
    /// The provider does not link by address.
    NotAllowed,
    /// No active account of the company has the address.
    NoUser,
}

impl CompanyOidcOutcome {
    fn parse(
        function: &SqlFunction,
        code: &str,
        user: Option<Uuid>,
        role: Option<String>,
    ) -> Result<Self, DbErr> {
        Ok(match code {
            "joined" | "linked" | "already" => Self::Done {
                user,
                role: role.ok_or_else(|| unknown(function, "done without a role"))?,
            },
            "taken" => Self::Taken,
            "no_provider" => Self::NoProvider,
            "issuer" => Self::Issuer,
            "domain" => Self::Domain,
            "not_allowed" => Self::NotAllowed,
            "no_user" => Self::NoUser,
            other => return Err(unknown(function, other)),
        })
    }
}

/// `app.company_oidc_join`: a new member of `company` through its provider `provider`.
#[allow(clippy::too_many_arguments)]
pub async fn company_oidc_join(
    db: &DatabaseConnection,
    company: Uuid,
    provider: Uuid,
    user: Uuid,
    email: &str,
    display_name: &str,
    identity: &NewIdentity<'_>,
) -> Result<CompanyOidcOutcome, DbErr> {
    let row = COMPANY_OIDC_JOIN
        .one(
            db,
            vec![
                company.into(),
                provider.into(),
                user.into(),
                email.into(),
                display_name.into(),
                identity.id.into(),
                identity.issuer.into(),
                identity.subject.into(),
            ],
        )
        .await?;
    let outcome: String = row.try_get("", "outcome")?;
    CompanyOidcOutcome::parse(
        &COMPANY_OIDC_JOIN,
        &outcome,
        Some(user),
        row.try_get("", "role")?,
    )
}

/// `app.company_oidc_link_email`: links the identity to the account of `email` in `company`,
/// where its provider `provider` allows it.
pub async fn company_oidc_link_email(
    db: &DatabaseConnection,
    company: Uuid,
    provider: Uuid,
    identity: &NewIdentity<'_>,
    email: &str,
) -> Result<CompanyOidcOutcome, DbErr> {
    let row = COMPANY_OIDC_LINK_EMAIL
        .one(
            db,
            vec![
                company.into(),
                provider.into(),
                identity.id.into(),
                identity.issuer.into(),
                identity.subject.into(),
                email.into(),
            ],
        )
        .await?;
    let outcome: String = row.try_get("", "outcome")?;
    CompanyOidcOutcome::parse(
        &COMPANY_OIDC_LINK_EMAIL,
        &outcome,
        row.try_get("", "user_id")?,
        row.try_get("", "role")?,
    )
}
