//! In-memory evaluation of a [`Filter`] on one user, with exactly the semantics of the SQL the
//! compiler writes (the property test holds the two to it).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ActivityTerm, Aggregate, Cmp, Condition, FieldType, Filter, Node, Scalar, Source, Test,
    parse::is_day_shape,
};

/// What a filter looks at in a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub role: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub attributes: Value,
    /// The user's activities that the caller may aggregate (those shared with the whole
    /// company), for activity conditions.
    pub activities: Vec<Activity>,
}

/// One activity of a [`Subject`].
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    /// Its metrics, a JSON object by metric name.
    pub metrics: Value,
}

/// Whether `subject` is in the audience of `filter`.
pub fn matches(filter: &Filter, subject: &Subject) -> bool {
    let included = filter.include.as_ref().is_none_or(|n| node(n, subject));
    let excluded = filter.exclude.as_ref().is_some_and(|n| node(n, subject));
    included && !excluded
}

fn node(node: &Node, subject: &Subject) -> bool {
    match node {
        Node::All(children) => children.iter().all(|c| self::node(c, subject)),
        Node::Any(children) => children.iter().any(|c| self::node(c, subject)),
        Node::Cond(condition) => cond(condition, subject),
    }
}

/// A field's value, when it has one of its type.
#[derive(Debug, Clone, PartialEq)]
enum Got<'a> {
    Str(String),
    Num(f64),
    Bool(bool),
    Instant(DateTime<Utc>),
    /// An attribute date: its `YYYY-MM-DD` text.
    Day(&'a str),
    List(&'a [Value]),
}

fn get<'a>(condition: &Condition, subject: &'a Subject) -> Option<Got<'a>> {
    match &condition.field.source {
        Source::Role => Some(Got::Str(subject.role.clone())),
        Source::EmailDomain => Some(Got::Str(
            subject
                .email
                .split('@')
                .nth(1)
                .unwrap_or_default()
                .to_lowercase(),
        )),
        Source::CreatedAt => Some(Got::Instant(subject.created_at)),
        Source::LastActiveAt => subject.last_active_at.map(Got::Instant),
        Source::IsActive => Some(Got::Bool(subject.is_active)),
        Source::Activity(term) => activity(term, subject).map(Got::Num),
        Source::Attribute(key) => {
            let value = subject.attributes.get(key)?;
            match (condition.field.ty, value) {
                (FieldType::String, Value::String(s)) => Some(Got::Str(s.clone())),
                (FieldType::Number, Value::Number(n)) => {
                    n.as_f64().filter(|n| number_holds(*n)).map(Got::Num)
                }
                (FieldType::Boolean, Value::Bool(b)) => Some(Got::Bool(*b)),
                (FieldType::Date, Value::String(s)) if is_day_shape(s) => Some(Got::Day(s)),
                (FieldType::StringList, Value::Array(items)) => Some(Got::List(items)),
                _ => None,
            }
        }
    }
}

/// The number an activity condition tests: see [`ActivityTerm`].
fn activity(term: &ActivityTerm, subject: &Subject) -> Option<f64> {
    let activities = subject
        .activities
        .iter()
        .filter(|a| a.kind == term.kind && a.occurred_at >= term.since);
    let Some(metric) = &term.metric else {
        return Some(activities.count() as f64);
    };
    let values: Vec<f64> = activities
        .filter_map(|a| a.metrics.get(metric)?.as_f64())
        .filter(|n| number_holds(*n))
        .collect();
    if term.aggregate == Aggregate::Count {
        return Some(values.len() as f64);
    }
    let first = *values.first()?;
    Some(match term.aggregate {
        Aggregate::Sum => values.iter().sum(),
        Aggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Min => values.iter().copied().fold(first, f64::min),
        Aggregate::Max => values.iter().copied().fold(first, f64::max),
        Aggregate::Count => values.len() as f64,
    })
}

/// Whether a number has a value: 0, or a magnitude from 1e-307 to 1e308 (what the SQL checks
/// before it compares a JSON number as `float8`).
fn number_holds(n: f64) -> bool {
    n == 0.0 || (1e-307..=1e308).contains(&n.abs())
}

fn cond(condition: &Condition, subject: &Subject) -> bool {
    let got = get(condition, subject);
    let Some(got) = got else {
        return condition.test == Test::NotExists;
    };
    match &condition.test {
        Test::Exists => true,
        Test::NotExists => false,
        Test::Eq(v) => equal(&got, v),
        Test::Neq(v) => !equal(&got, v),
        Test::In(vs) => vs.iter().any(|v| equal(&got, v)),
        Test::NotIn(vs) => !vs.iter().any(|v| equal(&got, v)),
        Test::Compare(cmp, v) => compare(&got, *cmp, v),
        Test::Between(low, high) => compare(&got, Cmp::Gte, low) && compare(&got, Cmp::Lte, high),
        Test::StartsWith(prefix) => matches!(&got, Got::Str(s) if s.starts_with(prefix.as_str())),
        Test::ContainsAll(items) => list_has(&got, items, true),
        Test::ContainsAny(items) => list_has(&got, items, false),
    }
}

fn equal(got: &Got<'_>, want: &Scalar) -> bool {
    match (got, want) {
        (Got::Str(a), Scalar::Str(b)) => a == b,
        (Got::Num(a), Scalar::Num(b)) => a == b,
        (Got::Bool(a), Scalar::Bool(b)) => a == b,
        (Got::Instant(a), Scalar::Instant(b)) => a == b,
        _ => false,
    }
}

fn compare(got: &Got<'_>, cmp: Cmp, bound: &Scalar) -> bool {
    let ordering = match (got, bound) {
        (Got::Num(a), Scalar::Num(b)) => a.partial_cmp(b),
        (Got::Instant(a), Scalar::Instant(b)) => Some(a.cmp(b)),
        // `YYYY-MM-DD` text compares bytewise like the dates it spells (COLLATE "C" in SQL).
        (Got::Day(a), Scalar::Day(b)) => Some(
            a.as_bytes()
                .cmp(b.format("%Y-%m-%d").to_string().as_bytes()),
        ),
        _ => None,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match cmp {
        Cmp::Gt => ordering.is_gt(),
        Cmp::Gte => ordering.is_ge(),
        Cmp::Lt => ordering.is_lt(),
        Cmp::Lte => ordering.is_le(),
    }
}

fn list_has(got: &Got<'_>, items: &[String], all: bool) -> bool {
    let Got::List(list) = got else {
        return false;
    };
    let has = |item: &String| list.iter().any(|v| v.as_str() == Some(item.as_str()));
    if all {
        items.iter().all(has)
    } else {
        items.iter().any(has)
    }
}
