//! Activities: the kinds a company defines with typed metrics, the check of an activity's
//! metrics against its kind, who may read an activity, how comparisons aggregate a metric, and
//! the events announcing a new activity to the owner's friends. Pure decisions; the reads and
//! writes are `crate::services::activities`.
//!
//! The metric rules here are the ones PostgreSQL applies to every row
//! (`app.activity_metric_definitions_valid` and `app.activity_metrics_problem` in
//! `migration/sql/current/activities.sql`): the server checks first to name the offending
//! field, the database refuses a bad row whoever writes it.

pub mod events;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use events::{ActivityEventPayload, ActivityNotice};

use crate::error::{AppError, AppResult};

/// Most metrics a kind defines.
pub const MAX_METRICS: usize = 50;
/// Most activities one import carries.
pub const MAX_IMPORT: usize = 1000;
/// Longest note of an activity, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;
/// Longest name of a kind, in characters.
pub const MAX_KIND_NAME_CHARS: usize = 100;
/// Longest unit of a metric, in characters.
pub const MAX_UNIT_CHARS: usize = 20;
/// Longest string value of a metric, in characters.
pub const MAX_STRING_CHARS: usize = 1000;
/// Numbers must be smaller than this in magnitude.
pub const MAX_MAGNITUDE: f64 = 1e15;
/// Most users one activity is shared with.
pub const MAX_SHARES: usize = 100;

/// The type of a metric's values, stored by its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// Any number (of magnitude under 10^15).
    Number,
    /// A whole number (of magnitude under 10^15).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// Text of at most 1,000 characters.
    String,
}

impl MetricType {
    /// Whether values of this type can be averaged, summed, and so on.
    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Number | Self::Integer)
    }

    /// What a value of this type is, for messages (the database's wording).
    fn expected(self) -> &'static str {
        match self {
            Self::Number => "a number of magnitude under 10^15",
            Self::Integer => "an integer of magnitude under 10^15",
            Self::Boolean => "a boolean",
            Self::String => "a string of at most 1000 characters",
        }
    }

    /// Whether `value` is one of this type.
    fn admits(self, value: &Value) -> bool {
        match (self, value) {
            (Self::Number, Value::Number(n)) => n.as_f64().is_some_and(|x| x.abs() < MAX_MAGNITUDE),
            (Self::Integer, Value::Number(n)) => n
                .as_f64()
                .is_some_and(|x| x.fract() == 0.0 && x.abs() < MAX_MAGNITUDE),
            (Self::Boolean, Value::Bool(_)) => true,
            (Self::String, Value::String(s)) => s.chars().count() <= MAX_STRING_CHARS,
            _ => false,
        }
    }
}

/// One metric a kind defines, as stored in `activity_kinds.metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: MetricType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A kind of activity of a company.
#[derive(Debug, Clone, PartialEq)]
pub struct Kind {
    pub id: Uuid,
    pub company_id: Uuid,
    pub name: String,
    pub metrics: Vec<MetricDef>,
    pub created_at: DateTime<Utc>,
}

impl Kind {
    /// The metric `name` of this kind.
    pub fn metric(&self, name: &str) -> Option<&MetricDef> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// Who besides its owner reads an activity (and those it is shared with, unless a block
/// stands between them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Friends,
    Company,
}

/// An activity as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub id: Uuid,
    pub company_id: Uuid,
    pub user_id: Uuid,
    pub kind_id: Uuid,
    /// The kind's name.
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub metrics: Value,
    pub note: Option<String>,
    pub visibility: Visibility,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a comparison folds a metric of each participant's activities into one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Avg,
    Sum,
    Min,
    Max,
    /// The activities that carry the metric.
    Count,
}

/// Whose activities a leaderboard ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The caller and their friends, as the caller may read them.
    Friends,
    /// Everyone of the company, over activities visible to the whole company (the caller's
    /// own included when so visible).
    Company,
}

/// One participant of a comparison: their value (none without a value to fold), how many
/// activities of the kind they have in the window, and their rank (1 is the highest value;
/// equal values share a rank; those without a value come last).
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub user_id: Uuid,
    pub value: Option<f64>,
    pub activity_count: i64,
    pub rank: i64,
}

/// A kind to define, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKind {
    pub name: String,
    pub metrics: Vec<MetricDef>,
}

/// Whether `name` may name a metric: 1 to 63 lowercase letters, digits and `_`, starting with
/// a letter (it is a JSON key in SQL and in clients' code).
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks a kind to define (`input.name`, `input.metrics.<i>.name` / `.unit` name what is
/// wrong): a name of 1 to 100 characters (trimmed), 1 to 50 metrics with distinct valid names
/// and units of at most 20 characters (trimmed; empty is none).
pub fn check_kind(name: &str, metrics: Vec<MetricDef>) -> AppResult<NewKind> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_KIND_NAME_CHARS {
        return Err(AppError::bad_input(
            "input.name",
            format!("a kind's name has 1 to {MAX_KIND_NAME_CHARS} characters"),
        ));
    }
    if metrics.is_empty() || metrics.len() > MAX_METRICS {
        return Err(AppError::bad_input(
            "input.metrics",
            format!("a kind defines 1 to {MAX_METRICS} metrics"),
        ));
    }
    let mut checked: Vec<MetricDef> = Vec::with_capacity(metrics.len());
    for (i, metric) in metrics.into_iter().enumerate() {
        let metric_name = metric.name.trim().to_owned();
        if !valid_metric_name(&metric_name) {
            return Err(AppError::bad_input(
                format!("input.metrics.{i}.name"),
                "a metric's name has 1 to 63 characters: lowercase letters, digits and `_`, \
                 starting with a letter",
            ));
        }
        if checked.iter().any(|m| m.name == metric_name) {
            return Err(AppError::bad_input(
                format!("input.metrics.{i}.name"),
                format!("the metric `{metric_name}` is defined twice"),
            ));
        }
        let unit = metric
            .unit
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        if unit
            .as_ref()
            .is_some_and(|u| u.chars().count() > MAX_UNIT_CHARS)
        {
            return Err(AppError::bad_input(
                format!("input.metrics.{i}.unit"),
                format!("a unit has at most {MAX_UNIT_CHARS} characters"),
            ));
        }
        checked.push(MetricDef {
            name: metric_name,
            ty: metric.ty,
            unit,
        });
    }
    Ok(NewKind {
        name,
        metrics: checked,
    })
}

/// Checks the metrics of an activity of `kind`: a JSON object whose every key is a metric of
/// the kind with a value of its type (metrics may be left out, not set to null). The error's
/// path is `<prefix>.<metric>` (e.g. `metrics.score`), or `<prefix>` when it is no object;
/// the first offending metric by name, as the database reports it.
pub fn check_metrics(kind: &Kind, metrics: &Value, prefix: &str) -> AppResult<()> {
    let Value::Object(values) = metrics else {
        return Err(AppError::bad_input(
            prefix,
            "the metrics are a JSON object of values by metric name",
        ));
    };
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort();
    for key in keys {
        let value = &values[key];
        match kind.metric(key) {
            None => {
                return Err(AppError::bad_input(
                    format!("{prefix}.{key}"),
                    format!("`{key}` is not a metric of the kind `{}`", kind.name),
                ));
            }
            Some(def) if !def.ty.admits(value) => {
                return Err(AppError::bad_input(
                    format!("{prefix}.{key}"),
                    format!("`{key}` is {}", def.ty.expected()),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A note, trimmed (`None` when empty); `BAD_USER_INPUT` at `path` past [`MAX_NOTE_CHARS`].
pub fn check_note(note: Option<String>, path: &str) -> AppResult<Option<String>> {
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(AppError::bad_input(
            path,
            format!("a note has at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    Ok(note)
}

/// The metric a comparison folds, checked against its kind: `COUNT` takes any metric, the
/// others a numeric one.
pub fn check_compared_metric<'k>(
    kind: &'k Kind,
    metric: &str,
    aggregate: Aggregate,
) -> AppResult<&'k MetricDef> {
    let def = kind.metric(metric).ok_or_else(|| {
        AppError::bad_input(
            "metric",
            format!("`{metric}` is not a metric of the kind `{}`", kind.name),
        )
    })?;
    if aggregate != Aggregate::Count && !def.ty.is_numeric() {
        return Err(AppError::bad_input(
            "metric",
            format!("`{metric}` is not a number: only COUNT applies to it"),
        ));
    }
    Ok(def)
}

/// A time window `[from, to)`; `BAD_USER_INPUT` at `to` when it ends before it starts.
pub fn check_window(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> AppResult<()> {
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(AppError::bad_input("to", "`to` is before `from`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kind() -> Kind {
        Kind {
            id: Uuid::nil(),
            company_id: Uuid::nil(),
            name: "sleep".into(),
            metrics: vec![
                MetricDef {
                    name: "score".into(),
                    ty: MetricType::Number,
                    unit: None,
                },
                MetricDef {
                    name: "minutes".into(),
                    ty: MetricType::Integer,
                    unit: Some("min".into()),
                },
                MetricDef {
                    name: "napped".into(),
                    ty: MetricType::Boolean,
                    unit: None,
                },
                MetricDef {
                    name: "mood".into(),
                    ty: MetricType::String,
                    unit: None,
                },
            ],
            created_at: Utc::now(),
        }
    }

    fn path(result: AppResult<()>) -> Option<String> {
        match result {
            Err(AppError::BadUserInput { path, .. }) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn metrics_of_their_type_pass_and_the_first_offending_one_is_named() {
        let kind = kind();
        let good = json!({"score": 81.5, "minutes": 412, "napped": false, "mood": "ok"});
        assert_eq!(path(check_metrics(&kind, &good, "metrics")), None);
        assert_eq!(path(check_metrics(&kind, &json!({}), "metrics")), None);
        assert_eq!(
            path(check_metrics(&kind, &json!({"minutes": 3.0}), "metrics")),
            None
        );
        for (bad, at) in [
            (json!({"score": "high"}), "metrics.score"),
            (json!({"score": null}), "metrics.score"),
            (json!({"score": 1e16}), "metrics.score"),
            (json!({"minutes": 2.5}), "metrics.minutes"),
            (json!({"napped": 1}), "metrics.napped"),
            (json!({"mood": "x".repeat(1001)}), "metrics.mood"),
            (json!({"steps": 3}), "metrics.steps"),
            (json!({"score": 1, "a_unknown": 1}), "metrics.a_unknown"),
            (json!([1, 2]), "metrics"),
        ] {
            assert_eq!(
                path(check_metrics(&kind, &bad, "metrics")).as_deref(),
                Some(at),
                "{bad}"
            );
        }
        assert_eq!(
            path(check_metrics(
                &kind,
                &json!({"score": "x"}),
                "activities.7.metrics"
            ))
            .as_deref(),
            Some("activities.7.metrics.score")
        );
    }

    #[test]
    fn kinds_are_checked_with_the_offending_field_named() {
        let metric = |name: &str| MetricDef {
            name: name.into(),
            ty: MetricType::Number,
            unit: Some("  ".into()),
        };
        let ok = check_kind("  Sleep ", vec![metric("score")]);
        let ok = ok.ok();
        assert_eq!(ok.as_ref().map(|k| k.name.as_str()), Some("Sleep"));
        assert_eq!(ok.map(|k| k.metrics[0].unit.clone()), Some(None));
        let err = |r: AppResult<NewKind>| match r {
            Err(AppError::BadUserInput { path, .. }) => Some(path),
            _ => None,
        };
        assert_eq!(
            err(check_kind(" ", vec![metric("a")])).as_deref(),
            Some("input.name")
        );
        assert_eq!(
            err(check_kind("k", vec![])).as_deref(),
            Some("input.metrics")
        );
        assert_eq!(
            err(check_kind("k", vec![metric("a"), metric("Bad")])).as_deref(),
            Some("input.metrics.1.name")
        );
        assert_eq!(
            err(check_kind("k", vec![metric("a"), metric("a")])).as_deref(),
            Some("input.metrics.1.name")
        );
        let long_unit = MetricDef {
            unit: Some("u".repeat(21)),
            ..metric("a")
        };
        assert_eq!(
            err(check_kind("k", vec![long_unit])).as_deref(),
            Some("input.metrics.0.unit")
        );
        assert!(valid_metric_name("duration_min2"));
        for bad in ["", "2x", "_x", "x-y", "Xy", &"x".repeat(64)] {
            assert!(!valid_metric_name(bad), "{bad}");
        }
    }

    #[test]
    fn only_count_folds_a_metric_that_is_no_number() -> AppResult<()> {
        let kind = kind();
        check_compared_metric(&kind, "score", Aggregate::Avg)?;
        check_compared_metric(&kind, "mood", Aggregate::Count)?;
        assert!(check_compared_metric(&kind, "mood", Aggregate::Sum).is_err());
        assert!(check_compared_metric(&kind, "steps", Aggregate::Count).is_err());
        Ok(())
    }

    #[test]
    fn definitions_are_stored_as_the_database_checks_them() {
        let stored = serde_json::to_value(&kind().metrics[..2]).unwrap_or_default();
        assert_eq!(
            stored,
            json!([{"name": "score", "type": "number"},
                   {"name": "minutes", "type": "integer", "unit": "min"}])
        );
    }
}
