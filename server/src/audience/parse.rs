//! Validation: a JSON document becomes a typed [`Filter`], or a [`FilterError`] whose path
//! points at the offending part (`include.all[2].value`) and says what was expected.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::{
    ActivityTerm, Aggregate, Cmp, Condition, Field, FieldType, Filter, MAX_CONDITIONS, MAX_DAYS,
    MAX_DEPTH, MAX_LIST_VALUES, MAX_STRING_CHARS, MetricType, Node, Op, Operators as _, Registry,
    Scalar, Source, Test,
};
use crate::error::AppError;

/// A mistake in a filter document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Where, e.g. `include.all[2].value`; empty for the document itself.
    pub path: String,
    /// What was expected.
    pub message: String,
}

impl From<FilterError> for AppError {
    fn from(error: FilterError) -> Self {
        let path = if error.path.is_empty() {
            "filter".to_owned()
        } else {
            error.path
        };
        AppError::bad_input(path, error.message)
    }
}

type Result<T> = std::result::Result<T, FilterError>;

fn err<T>(path: &str, message: impl Into<String>) -> Result<T> {
    Err(FilterError {
        path: path.to_owned(),
        message: message.into(),
    })
}

/// Validates `doc` against `registry`. `now` anchors `within_last_days`, so that the compiled
/// SQL and the in-memory evaluation of one parse agree.
pub fn parse(doc: &Value, registry: &Registry, now: DateTime<Utc>) -> Result<Filter> {
    let Some(object) = doc.as_object() else {
        return err("", "expected a JSON object with `include` and/or `exclude`");
    };
    if let Some(key) = object.keys().find(|k| *k != "include" && *k != "exclude") {
        return err(
            key,
            format!("unknown key `{key}`; expected `include` and/or `exclude`"),
        );
    }
    let mut parser = Parser {
        registry,
        now,
        conditions: 0,
    };
    let include = match object.get("include") {
        None | Some(Value::Null) => None,
        Some(node) => Some(parser.node(node, "include", 1)?),
    };
    let exclude = match object.get("exclude") {
        None | Some(Value::Null) => None,
        Some(node) => Some(parser.node(node, "exclude", 1)?),
    };
    Ok(Filter { include, exclude })
}

struct Parser<'a> {
    registry: &'a Registry,
    now: DateTime<Utc>,
    conditions: usize,
}

impl Parser<'_> {
    fn node(&mut self, value: &Value, path: &str, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return err(
                path,
                format!("groups nest too deep: at most {MAX_DEPTH} levels"),
            );
        }
        let Some(object) = value.as_object() else {
            return err(
                path,
                "expected an object: {\"all\": [...]}, {\"any\": [...]} or a condition \
                 {\"field\", \"op\", \"value\"}",
            );
        };
        let group = ["all", "any"].into_iter().find(|k| object.contains_key(*k));
        match group {
            Some(kind) => {
                if let Some(key) = object.keys().find(|k| *k != kind) {
                    return err(
                        &format!("{path}.{key}"),
                        format!("unexpected key `{key}`: a group has only `{kind}`"),
                    );
                }
                let children = self.children(&object[kind], &format!("{path}.{kind}"), depth)?;
                Ok(if kind == "all" {
                    Node::All(children)
                } else {
                    Node::Any(children)
                })
            }
            None if object.contains_key("activity") => {
                self.activity_condition(object, path).map(Node::Cond)
            }
            None => self.condition(object, path).map(Node::Cond),
        }
    }

    /// An activity condition: `activity` (a kind), `metric` (a number metric of it; optional for
    /// `count`), `aggregate`, `within_last_days`, `op` (a number operator) and `value`.
    fn activity_condition(&mut self, object: &Map<String, Value>, path: &str) -> Result<Condition> {
        const KEYS: [&str; 6] = [
            "activity",
            "metric",
            "aggregate",
            "within_last_days",
            "op",
            "value",
        ];
        if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return err(
                &format!("{path}.{key}"),
                format!(
                    "unknown key `{key}`; an activity condition has `activity`, `metric`, \
                     `aggregate`, `within_last_days`, `op` and `value`"
                ),
            );
        }
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return err(
                path,
                format!("too many conditions: at most {MAX_CONDITIONS}"),
            );
        }
        let kind_path = format!("{path}.activity");
        let Some(kind) = object.get("activity").and_then(Value::as_str) else {
            return err(
                &kind_path,
                "expected the name of an activity kind (a string)",
            );
        };
        let Some(activity_kind) = self.registry.activity_kind(kind) else {
            return err(
                &kind_path,
                format!(
                    "unknown activity kind `{}`; see `activityKinds`",
                    clip(kind)
                ),
            );
        };
        let aggregate_path = format!("{path}.aggregate");
        let Some(name) = object.get("aggregate").and_then(Value::as_str) else {
            return err(
                &aggregate_path,
                "expected an aggregate: avg, sum, min, max or count",
            );
        };
        let Some(aggregate) = Aggregate::parse(name) else {
            return err(
                &aggregate_path,
                format!(
                    "unknown aggregate `{}`; expected one of: avg, sum, min, max, count",
                    clip(name)
                ),
            );
        };
        let kind = activity_kind.name.as_str();
        let metrics = &activity_kind.metrics;
        let metric_path = format!("{path}.metric");
        let metric = match object.get("metric") {
            None | Some(Value::Null) if aggregate == Aggregate::Count => None,
            None | Some(Value::Null) => {
                return err(
                    &metric_path,
                    format!("`{}` needs a number metric of `{kind}`", aggregate.as_str()),
                );
            }
            Some(Value::String(metric)) => match metrics.get(metric) {
                Some(MetricType::Number) => Some(metric.clone()),
                Some(MetricType::Other(ty)) => {
                    return err(
                        &metric_path,
                        format!(
                            "metric `{}` of `{kind}` is {ty}, not a number: only number metrics \
                             aggregate",
                            clip(metric)
                        ),
                    );
                }
                None => {
                    let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                    return err(
                        &metric_path,
                        format!(
                            "unknown metric `{}` of `{kind}`; it has: {}",
                            clip(metric),
                            known.join(", ")
                        ),
                    );
                }
            },
            Some(_) => return err(&metric_path, "expected the name of a metric (a string)"),
        };
        let days_path = format!("{path}.within_last_days");
        let Some(days) = object
            .get("within_last_days")
            .and_then(Value::as_i64)
            .filter(|d| (0..=MAX_DAYS).contains(d))
        else {
            return err(
                &days_path,
                format!("expected a whole number of days, 0 to {MAX_DAYS}"),
            );
        };
        let field = Field {
            name: "activity".to_owned(),
            ty: FieldType::Number,
            source: Source::Activity(ActivityTerm {
                kind: kind.to_owned(),
                kind_id: activity_kind.id,
                metric,
                aggregate,
                within_last_days: days,
                since: self.now - Duration::days(days),
            }),
            description: String::new(),
        };
        let op_path = format!("{path}.op");
        let Some(op_name) = object.get("op").and_then(Value::as_str) else {
            return err(&op_path, "expected an operator (a string)");
        };
        let valid = FieldType::Number.operators();
        let Some(op) = Op::parse(op_name).filter(|op| valid.contains(op)) else {
            let names: Vec<_> = valid.iter().map(|o| o.as_str()).collect();
            return err(
                &op_path,
                format!(
                    "operator `{}` is not valid for an activity aggregate (a number); expected \
                     one of: {}",
                    clip(op_name),
                    names.join(", ")
                ),
            );
        };
        let value = object.get("value").unwrap_or(&Value::Null);
        let test = self.test(&field, op, value, &format!("{path}.value"))?;
        Ok(Condition { field, test })
    }

    fn children(&mut self, value: &Value, path: &str, depth: usize) -> Result<Vec<Node>> {
        let Some(items) = value.as_array() else {
            return err(path, "expected an array of conditions or groups");
        };
        if items.is_empty() {
            return err(path, "expected at least one condition or group");
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.node(item, &format!("{path}[{i}]"), depth + 1))
            .collect()
    }

    fn condition(&mut self, object: &Map<String, Value>, path: &str) -> Result<Condition> {
        if let Some(key) = object
            .keys()
            .find(|k| !matches!(k.as_str(), "field" | "op" | "value"))
        {
            return err(
                &format!("{path}.{key}"),
                format!("unknown key `{key}`; a condition has `field`, `op` and `value`"),
            );
        }
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return err(
                path,
                format!("too many conditions: at most {MAX_CONDITIONS}"),
            );
        }
        let field_path = format!("{path}.field");
        let Some(name) = object.get("field").and_then(Value::as_str) else {
            return err(&field_path, "expected the name of a field (a string)");
        };
        let Some(field) = self.registry.get(name) else {
            return err(
                &field_path,
                format!("unknown field `{}`; see `audienceFields`", clip(name)),
            );
        };
        let op_path = format!("{path}.op");
        let Some(op_name) = object.get("op").and_then(Value::as_str) else {
            return err(&op_path, "expected an operator (a string)");
        };
        let valid = field.ty.operators();
        let op = Op::parse(op_name).filter(|op| valid.contains(op));
        let Some(op) = op else {
            let names: Vec<_> = valid.iter().map(|o| o.as_str()).collect();
            return err(
                &op_path,
                format!(
                    "operator `{}` is not valid for `{name}` ({}); expected one of: {}",
                    clip(op_name),
                    field.ty.as_str(),
                    names.join(", ")
                ),
            );
        };
        let value_path = format!("{path}.value");
        let value = object.get("value").unwrap_or(&Value::Null);
        let test = self.test(field, op, value, &value_path)?;
        Ok(Condition {
            field: field.clone(),
            test,
        })
    }

    fn test(&self, field: &Field, op: Op, value: &Value, path: &str) -> Result<Test> {
        Ok(match op {
            Op::Exists | Op::NotExists => {
                if !value.is_null() {
                    return err(path, format!("`{}` takes no value", op.as_str()));
                }
                if op == Op::Exists {
                    Test::Exists
                } else {
                    Test::NotExists
                }
            }
            Op::Eq => Test::Eq(scalar(field, value, path)?),
            Op::Neq => Test::Neq(scalar(field, value, path)?),
            Op::In => Test::In(scalars(field, value, path)?),
            Op::NotIn => Test::NotIn(scalars(field, value, path)?),
            Op::Gt | Op::After => Test::Compare(Cmp::Gt, scalar(field, value, path)?),
            Op::Gte => Test::Compare(Cmp::Gte, scalar(field, value, path)?),
            Op::Lt | Op::Before => Test::Compare(Cmp::Lt, scalar(field, value, path)?),
            Op::Lte => Test::Compare(Cmp::Lte, scalar(field, value, path)?),
            Op::Between => {
                let bounds = match value.as_array() {
                    Some(items) if items.len() == 2 => items,
                    _ => return err(path, "expected an array of two values [low, high]"),
                };
                let low = scalar(field, &bounds[0], &format!("{path}[0]"))?;
                let high = scalar(field, &bounds[1], &format!("{path}[1]"))?;
                if scalar_gt(&low, &high) {
                    return err(path, "expected low <= high");
                }
                Test::Between(low, high)
            }
            Op::StartsWith => Test::StartsWith(string(value, path)?),
            Op::Contains => Test::ContainsAll(vec![string(value, path)?]),
            Op::ContainsAll => Test::ContainsAll(strings(value, path)?),
            Op::ContainsAny => Test::ContainsAny(strings(value, path)?),
            Op::WithinLastDays => {
                let days = value
                    .as_i64()
                    .filter(|d| (0..=MAX_DAYS).contains(d))
                    .map_or_else(
                        || {
                            err(
                                path,
                                format!("expected a whole number of days, 0 to {MAX_DAYS}"),
                            )
                        },
                        Ok,
                    )?;
                let since = self.now - Duration::days(days);
                let bound = if matches!(field.source, Source::Attribute(_)) {
                    Scalar::Day(since.date_naive())
                } else {
                    Scalar::Instant(since)
                };
                Test::Compare(Cmp::Gte, bound)
            }
        })
    }
}

/// One value of the field's type.
fn scalar(field: &Field, value: &Value, path: &str) -> Result<Scalar> {
    match field.ty {
        FieldType::String | FieldType::StringList => {
            let text = string(value, path)?;
            // email_domain is compared lowercased.
            Ok(Scalar::Str(if field.source == Source::EmailDomain {
                text.to_lowercase()
            } else {
                text
            }))
        }
        FieldType::Number => match value.as_f64() {
            Some(n) if n.is_finite() => Ok(Scalar::Num(n)),
            _ => err(path, "expected a number"),
        },
        FieldType::Boolean => match value.as_bool() {
            Some(b) => Ok(Scalar::Bool(b)),
            None => err(path, "expected true or false"),
        },
        FieldType::Date => {
            let text = value.as_str().unwrap_or_default();
            if matches!(field.source, Source::Attribute(_)) {
                day(text)
                    .map(Scalar::Day)
                    .ok_or(())
                    .or_else(|()| err(path, "expected a date `YYYY-MM-DD`"))
            } else {
                instant(text).map(Scalar::Instant).ok_or(()).or_else(|()| {
                    err(
                        path,
                        "expected a date `YYYY-MM-DD` or an RFC 3339 timestamp",
                    )
                })
            }
        }
    }
}

/// A non-empty list of values of the field's type.
fn scalars(field: &Field, value: &Value, path: &str) -> Result<Vec<Scalar>> {
    let items = list(value, path)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| scalar(field, item, &format!("{path}[{i}]")))
        .collect()
}

fn list<'v>(value: &'v Value, path: &str) -> Result<&'v Vec<Value>> {
    match value.as_array() {
        None => err(path, "expected a non-empty array of values"),
        Some(items) if items.is_empty() => err(path, "expected a non-empty array of values"),
        Some(items) if items.len() > MAX_LIST_VALUES => {
            err(path, format!("too many values: at most {MAX_LIST_VALUES}"))
        }
        Some(items) => Ok(items),
    }
}

fn string(value: &Value, path: &str) -> Result<String> {
    match value.as_str() {
        Some(text) if text.chars().count() <= MAX_STRING_CHARS => Ok(text.to_owned()),
        Some(_) => err(
            path,
            format!("the string is longer than {MAX_STRING_CHARS} characters"),
        ),
        None => err(path, "expected a string"),
    }
}

fn strings(value: &Value, path: &str) -> Result<Vec<String>> {
    let items = list(value, path)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| string(item, &format!("{path}[{i}]")))
        .collect()
}

/// A calendar day written `YYYY-MM-DD` (exactly: the shape attribute dates are stored in).
pub fn day(text: &str) -> Option<NaiveDate> {
    if !is_day_shape(text) {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Whether `text` looks like `YYYY-MM-DD` (ten ASCII characters, digits and two dashes). The SQL
/// side checks the same shape with a regular expression before comparing.
pub fn is_day_shape(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    if let Some(d) = day(text) {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn scalar_gt(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Num(a), Scalar::Num(b)) => a > b,
        (Scalar::Instant(a), Scalar::Instant(b)) => a > b,
        (Scalar::Day(a), Scalar::Day(b)) => a > b,
        _ => false,
    }
}

/// At most 60 characters of user text, for messages.
fn clip(text: &str) -> String {
    text.chars().take(60).collect()
}
