//! The audience filter language: a JSON document of `all` / `any` groups of typed conditions
//! (`include`, minus `exclude`), validated against the company's field registry
//! ([`parse`]), compiled to parameterized SQL by the audience service
//! (`services::audience::compile`) and, for tests and previews, evaluated in memory with exactly
//! the same semantics ([`eval`]). Counts of filters made of equality-type facts are taken from
//! per-term bitmaps instead ([`bits`] writes their SQL as plain text and parameters). A pure
//! module: it imports no database code.
//!
//! Semantics in one place (the compiler and the evaluator both follow them):
//! - a field has a value only when it is present with its declared JSON type (a string for
//!   `string` and `date`, a number, a boolean, an array for `string_list`); attribute dates
//!   are `YYYY-MM-DD` strings; a number has a value when `float8` holds it (0, or a magnitude
//!   from 1e-307 to 1e308) and compares as that `float8`;
//! - every operator but `not_exists` is false for a field without a value (so `neq` and
//!   `not_in` never match users lacking the field; add `not_exists` in an `any` for that);
//! - an absent `include` means everyone; `exclude` removes whoever matches it;
//! - an activity condition (`{"activity": "sleep", "metric": "score", "aggregate": "avg",
//!   "within_last_days": 30, "op": "lt", "value": 70}`) tests a number made of the user's
//!   activities of that kind in that window, those shared with the whole company only (see
//!   [`ActivityTerm`]); it takes the number operators.

pub mod bits;
pub mod cost;
pub mod eval;
pub mod parse;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

pub use parse::parse;

/// How deep `all` / `any` groups may nest (a condition directly under `include` is depth 1).
pub const MAX_DEPTH: usize = 5;
/// Most conditions in one filter.
pub const MAX_CONDITIONS: usize = 100;
/// Most values in one `in` / `not_in` / `contains_any` / `contains_all` list.
pub const MAX_LIST_VALUES: usize = 1000;
/// Longest string value, in characters.
pub const MAX_STRING_CHARS: usize = 500;
/// Largest `within_last_days`.
pub const MAX_DAYS: i64 = 36_500;

/// The type of a field: the one stored in `audience_fields.type`, defined with its table.
pub use entity::audience_fields::FieldType;

/// The operators each [`FieldType`] takes.
pub trait Operators {
    /// The operators valid on this type.
    fn operators(self) -> &'static [Op];
}

impl Operators for FieldType {
    fn operators(self) -> &'static [Op] {
        use Op::*;
        match self {
            Self::String => &[Eq, Neq, In, NotIn, StartsWith, Exists, NotExists],
            Self::Number => &[
                Eq, Neq, In, NotIn, Gt, Gte, Lt, Lte, Between, Exists, NotExists,
            ],
            Self::Boolean => &[Eq, Neq, Exists, NotExists],
            Self::Date => &[
                Gt,
                Gte,
                Lt,
                Lte,
                Between,
                WithinLastDays,
                Before,
                After,
                Exists,
                NotExists,
            ],
            Self::StringList => &[Contains, ContainsAny, ContainsAll, Exists, NotExists],
        }
    }
}

/// An operator of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Neq,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
    Exists,
    NotExists,
    Contains,
    ContainsAny,
    ContainsAll,
    StartsWith,
    WithinLastDays,
    Before,
    After,
}

impl Op {
    /// Every operator.
    pub const ALL: [Self; 18] = [
        Self::Eq,
        Self::Neq,
        Self::In,
        Self::NotIn,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::Between,
        Self::Exists,
        Self::NotExists,
        Self::Contains,
        Self::ContainsAny,
        Self::ContainsAll,
        Self::StartsWith,
        Self::WithinLastDays,
        Self::Before,
        Self::After,
    ];

    /// The name used in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Neq => "neq",
            Self::In => "in",
            Self::NotIn => "not_in",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::Between => "between",
            Self::Exists => "exists",
            Self::NotExists => "not_exists",
            Self::Contains => "contains",
            Self::ContainsAny => "contains_any",
            Self::ContainsAll => "contains_all",
            Self::StartsWith => "starts_with",
            Self::WithinLastDays => "within_last_days",
            Self::Before => "before",
            Self::After => "after",
        }
    }

    /// Parses an operator name; `None` for anything unknown.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// How an activity condition sums up a user's activities of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Avg,
    Sum,
    Min,
    Max,
    /// How many activities (with the metric, when one is named).
    Count,
}

impl Aggregate {
    /// Every aggregate.
    pub const ALL: [Self; 5] = [Self::Avg, Self::Sum, Self::Min, Self::Max, Self::Count];

    /// The name used in filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
        }
    }

    /// Parses an aggregate name; `None` for anything unknown.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// What an activity condition aggregates: the user's activities of `kind` that occurred at or
/// after `since` (`within_last_days` before the parse's `now`), as the caller may aggregate them
/// (activities shared with the whole company), their `metric` values (numbers that `float8`
/// holds; others are skipped) summed up by `aggregate`. The value is absent when no activity has
/// the metric, except for `count`, which is always a number (0 for none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActivityTerm {
    /// The kind's name, as the company defined it.
    pub kind: String,
    /// The kind's id (what the SQL matches).
    pub kind_id: Uuid,
    /// `None` only for `count`: every activity of the kind counts.
    pub metric: Option<String>,
    pub aggregate: Aggregate,
    pub within_last_days: i64,
    pub since: DateTime<Utc>,
}

/// An activity kind of the company: its metrics, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityKind {
    pub id: Uuid,
    pub name: String,
    pub metrics: BTreeMap<String, MetricType>,
}

/// The type of an activity kind's metric, as far as filters care: only numbers aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricType {
    Number,
    /// Anything else, by its name (for messages).
    Other(String),
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `users.role`.
    Role,
    /// The part of `users.email` after the `@`, lowercased.
    EmailDomain,
    /// `users.created_at`.
    CreatedAt,
    /// `users.last_active_at` (null until the first request).
    LastActiveAt,
    /// `users.is_active`.
    IsActive,
    /// `users.attributes -> <name>`, a field the company declared.
    Attribute(String),
    /// An aggregate of the user's activities (an activity condition; its field is a number
    /// named `activity`).
    Activity(ActivityTerm),
}

/// A field filters may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub source: Source,
    pub description: String,
}

/// Names of the built-in fields; company fields may not take them.
pub const BUILT_IN_FIELDS: [&str; 5] = [
    "role",
    "email_domain",
    "created_at",
    "last_active_at",
    "is_active",
];

/// Whether `name` is a valid name for a company-declared field: 1 to 63 characters, lowercase
/// letters, digits and `_`, starting with a letter, not a built-in name. Names are written into
/// SQL as JSON keys, so this check (repeated by a CHECK constraint) keeps them harmless.
pub fn valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !BUILT_IN_FIELDS.contains(&name)
}

/// The fields of one company: the built-in ones plus those it declared, and the activity kinds
/// its activity conditions may name, with their metrics.
#[derive(Debug, Clone)]
pub struct Registry {
    fields: BTreeMap<String, Field>,
    /// By lowercased name (kind names are unique per company whatever their case).
    activities: BTreeMap<String, ActivityKind>,
}

impl Registry {
    /// The built-in fields only.
    pub fn built_in() -> Self {
        let mut fields = BTreeMap::new();
        let built = [
            ("role", FieldType::String, Source::Role, "The user's role."),
            (
                "email_domain",
                FieldType::String,
                Source::EmailDomain,
                "The domain of the user's e-mail address, lowercased.",
            ),
            (
                "created_at",
                FieldType::Date,
                Source::CreatedAt,
                "When the user joined.",
            ),
            (
                "last_active_at",
                FieldType::Date,
                Source::LastActiveAt,
                "When the user last made a request; absent if never.",
            ),
            (
                "is_active",
                FieldType::Boolean,
                Source::IsActive,
                "Whether the account is active.",
            ),
        ];
        for (name, ty, source, description) in built {
            fields.insert(
                name.to_owned(),
                Field {
                    name: name.to_owned(),
                    ty,
                    source,
                    description: description.to_owned(),
                },
            );
        }
        Self {
            fields,
            activities: BTreeMap::new(),
        }
    }

    /// The built-in fields plus `declared` (name, type, description) attribute fields. Invalid
    /// names are skipped (the database refuses them anyway).
    pub fn with_attributes(
        declared: impl IntoIterator<Item = (String, FieldType, String)>,
    ) -> Self {
        let mut registry = Self::built_in();
        for (name, ty, description) in declared {
            if valid_field_name(&name) {
                registry.fields.insert(
                    name.clone(),
                    Field {
                        source: Source::Attribute(name.clone()),
                        name,
                        ty,
                        description,
                    },
                );
            }
        }
        registry
    }

    /// The same, with `kinds` as the activity kinds conditions may name.
    pub fn with_activity_kinds(mut self, kinds: impl IntoIterator<Item = ActivityKind>) -> Self {
        for kind in kinds {
            self.activities.insert(kind.name.to_lowercase(), kind);
        }
        self
    }

    /// The activity kind called `name` (whatever its case), if the company defined it.
    pub fn activity_kind(&self, name: &str) -> Option<&ActivityKind> {
        self.activities.get(&name.to_lowercase())
    }

    /// The field called `name`.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.get(name)
    }

    /// Every field: built-in ones first, then by name.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        let built = self
            .fields
            .values()
            .filter(|f| !matches!(f.source, Source::Attribute(_)));
        let declared = self
            .fields
            .values()
            .filter(|f| matches!(f.source, Source::Attribute(_)));
        built.chain(declared)
    }
}

/// A validated filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Who is in; `None` means everyone.
    pub include: Option<Node>,
    /// Who is then taken out; `None` means nobody.
    pub exclude: Option<Node>,
}

/// A group or a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Every child matches (never empty).
    All(Vec<Node>),
    /// At least one child matches (never empty).
    Any(Vec<Node>),
    /// One condition.
    Cond(Condition),
}

/// A typed condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub test: Test,
}

/// What a condition tests, with its values already typed for the field.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Exists,
    NotExists,
    Eq(Scalar),
    Neq(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    /// `gt` / `after` (strict), `gte`, `lt` / `before`, `lte`.
    Compare(Cmp, Scalar),
    /// Inclusive on both ends.
    Between(Scalar, Scalar),
    StartsWith(String),
    /// The list holds every one of these (one for `contains`).
    ContainsAll(Vec<String>),
    /// The list holds at least one of these.
    ContainsAny(Vec<String>),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A typed value of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
    /// An instant, for the built-in timestamp fields.
    Instant(DateTime<Utc>),
    /// A calendar day, for attribute dates (stored as `YYYY-MM-DD`).
    Day(NaiveDate),
}
