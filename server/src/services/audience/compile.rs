//! Compilation of a validated audience [`Filter`] into a sea-query boolean expression over
//! `users`: the SQL side of the filter language of [`crate::audience`], which stays pure.
//!
//! Every value is a bound parameter; the only names written into the SQL are column names and
//! attribute keys from the registry (checked by [`crate::audience::valid_field_name`] and a
//! CHECK constraint). Every fragment is two-valued (never NULL), so `NOT (exclude)` removes
//! exactly who matches `exclude`. Equality and list membership on string, boolean and list
//! attributes use `attributes @> $1`, which the GIN index (`jsonb_path_ops`) serves; numbers
//! compare as `float8` (as [`crate::audience::bits`] and the evaluator do), guarded so that no
//! cast can fail; built-in fields use btree indexes. This is how audiences are listed, and how
//! those are counted that [`crate::audience::bits`] cannot count.

use sea_orm::sea_query::{Expr, ExprTrait as _, SimpleExpr, Value};
use serde_json::json;

use crate::audience::{
    ActivityTerm, Aggregate, Cmp, Condition, FieldType, Filter, Node, Scalar, Source, Test,
};

/// The SQL of "is in the audience" for one user row; `TRUE` for an empty filter.
pub fn compile(filter: &Filter) -> SimpleExpr {
    let include = filter.include.as_ref().map(node);
    let exclude = filter.exclude.as_ref().map(|n| node(n).not());
    match (include, exclude) {
        (Some(i), Some(e)) => i.and(e),
        (Some(i), None) => i,
        (None, Some(e)) => e,
        (None, None) => Expr::cust("TRUE"),
    }
}

fn node(node: &Node) -> SimpleExpr {
    match node {
        Node::All(children) => fold(children, |a, b| a.and(b)),
        Node::Any(children) => fold(children, |a, b| a.or(b)),
        Node::Cond(condition) => cond(condition),
    }
}

fn fold(children: &[Node], join: fn(SimpleExpr, SimpleExpr) -> SimpleExpr) -> SimpleExpr {
    let mut parts = children.iter().map(node);
    match parts.next() {
        Some(first) => parts.fold(first, join),
        // Groups are never empty once validated; an empty one would mean "no condition".
        None => Expr::cust("TRUE"),
    }
}

/// A custom fragment with its own `$1..$n` parameters, parenthesized.
fn sql(text: String, values: Vec<Value>) -> SimpleExpr {
    Expr::cust_with_values(format!("({text})"), values)
}

fn constant(value: bool) -> SimpleExpr {
    Expr::cust(if value { "TRUE" } else { "FALSE" })
}

fn cond(condition: &Condition) -> SimpleExpr {
    match &condition.field.source {
        Source::Attribute(key) => match condition.test {
            Test::Exists => attribute_exists(key, condition.field.ty, true),
            Test::NotExists => attribute_exists(key, condition.field.ty, false),
            ref test => attribute(key, test),
        },
        Source::Role => column("role", false, &condition.test),
        Source::EmailDomain => column("lower(split_part(email, '@', 2))", false, &condition.test),
        Source::CreatedAt => column("created_at", false, &condition.test),
        Source::LastActiveAt => column("last_active_at", true, &condition.test),
        Source::IsActive => column("is_active", false, &condition.test),
        Source::Activity(term) => activity(term, &condition.test),
    }
}

/// An activity condition: the aggregate of the user's activities the caller may aggregate
/// (the view `audience_activities`, which shows only those shared with the whole company, of
/// the caller's company), as a correlated subquery, NULL when there is no value; then the test,
/// FALSE for NULL. The kind, the metric, the window and the values are bound parameters.
fn activity(term: &ActivityTerm, test: &Test) -> SimpleExpr {
    let mut values: Vec<Value> = vec![term.kind_id.into(), term.since.into()];
    let number = |values: &mut Vec<Value>, metric: &str| {
        values.push(metric.to_owned().into());
        let i = values.len();
        let at = format!("a.metrics -> ${i}");
        let text = format!("a.metrics ->> ${i}");
        format!(
            "CASE WHEN jsonb_typeof({at}) = 'number' THEN CASE WHEN {} THEN ({text})::float8 END END",
            number_holds(&text)
        )
    };
    let aggregate = match (&term.metric, term.aggregate) {
        (None, _) => "count(*)::float8".to_owned(),
        (Some(metric), Aggregate::Count) => {
            format!("count({})::float8", number(&mut values, metric))
        }
        (Some(metric), aggregate) => {
            let name = match aggregate {
                Aggregate::Avg => "avg",
                Aggregate::Sum => "sum",
                Aggregate::Min => "min",
                _ => "max",
            };
            format!("{name}({})", number(&mut values, metric))
        }
    };
    let subject = format!(
        "(SELECT {aggregate} FROM audience_activities a \
          WHERE a.company_id = audience_users.company_id AND a.user_id = audience_users.id \
            AND a.kind_id = $1 AND a.occurred_at >= $2)"
    );
    let next = values.len() + 1;
    let (text, mut bound): (String, Vec<Value>) = match test {
        Test::Exists => (format!("{subject} IS NOT NULL"), vec![]),
        Test::NotExists => (format!("{subject} IS NULL"), vec![]),
        Test::Eq(v) => (
            format!("COALESCE({subject} = ${next}, false)"),
            vec![value(v)],
        ),
        Test::Neq(v) => (
            format!("COALESCE({subject} <> ${next}, false)"),
            vec![value(v)],
        ),
        Test::In(vs) | Test::NotIn(vs) => {
            let not = if matches!(test, Test::NotIn(_)) {
                "NOT "
            } else {
                ""
            };
            let list: Vec<String> = (next..next + vs.len()).map(|i| format!("${i}")).collect();
            (
                format!("COALESCE({subject} {not}IN ({}), false)", list.join(", ")),
                vs.iter().map(value).collect(),
            )
        }
        Test::Compare(cmp, v) => (
            format!("COALESCE({subject} {} ${next}, false)", op(*cmp)),
            vec![value(v)],
        ),
        Test::Between(low, high) => (
            format!(
                "COALESCE({subject} BETWEEN ${next} AND ${}, false)",
                next + 1
            ),
            vec![value(low), value(high)],
        ),
        // Not number tests: validation never gives them to an aggregate.
        Test::StartsWith(_) | Test::ContainsAll(_) | Test::ContainsAny(_) => {
            return constant(false);
        }
    };
    values.append(&mut bound);
    sql(text, values)
}

fn value(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Str(s) => s.clone().into(),
        Scalar::Num(n) => (*n).into(),
        Scalar::Bool(b) => (*b).into(),
        Scalar::Instant(t) => (*t).into(),
        Scalar::Day(d) => d.format("%Y-%m-%d").to_string().into(),
    }
}

fn op(cmp: Cmp) -> &'static str {
    match cmp {
        Cmp::Gt => ">",
        Cmp::Gte => ">=",
        Cmp::Lt => "<",
        Cmp::Lte => "<=",
    }
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A built-in column (or expression of one). `nullable`: NULL means "no value".
fn column(col: &str, nullable: bool, test: &Test) -> SimpleExpr {
    // `x <op> $1 AND x IS NOT NULL` is FALSE, not NULL, for a NULL x, and stays indexable.
    let guard = if nullable {
        format!(" AND {col} IS NOT NULL")
    } else {
        String::new()
    };
    match test {
        Test::Exists if nullable => sql(format!("{col} IS NOT NULL"), vec![]),
        Test::NotExists if nullable => sql(format!("{col} IS NULL"), vec![]),
        Test::Exists => constant(true),
        Test::NotExists => constant(false),
        Test::Eq(v) => sql(format!("{col} = $1{guard}"), vec![value(v)]),
        Test::Neq(v) => sql(format!("{col} <> $1{guard}"), vec![value(v)]),
        Test::In(vs) | Test::NotIn(vs) => {
            let not = if matches!(test, Test::NotIn(_)) {
                "NOT "
            } else {
                ""
            };
            sql(
                format!("{col} {not}IN ({}){guard}", placeholders(vs.len())),
                vs.iter().map(value).collect(),
            )
        }
        Test::Compare(cmp, v) => sql(format!("{col} {} $1{guard}", op(*cmp)), vec![value(v)]),
        Test::Between(low, high) => sql(
            format!("{col} >= $1 AND {col} <= $2{guard}"),
            vec![value(low), value(high)],
        ),
        Test::StartsWith(prefix) => sql(
            format!("starts_with({col}, $1){guard}"),
            vec![prefix.clone().into()],
        ),
        // No built-in field is a list.
        Test::ContainsAll(_) | Test::ContainsAny(_) => constant(false),
    }
}

/// `attributes @> {"key": value}` as a bound jsonb parameter.
fn contains(key: &str, value: serde_json::Value) -> SimpleExpr {
    let mut doc = serde_json::Map::new();
    doc.insert(key.to_owned(), value);
    sql(
        "attributes @> $1".to_owned(),
        vec![serde_json::Value::Object(doc).into()],
    )
}

fn json_scalar(scalar: &Scalar) -> serde_json::Value {
    match scalar {
        Scalar::Str(s) => json!(s),
        Scalar::Num(n) => json!(n),
        Scalar::Bool(b) => json!(b),
        Scalar::Instant(t) => json!(t.to_rfc3339()),
        Scalar::Day(d) => json!(d.format("%Y-%m-%d").to_string()),
    }
}

fn any_of(parts: impl Iterator<Item = SimpleExpr>) -> SimpleExpr {
    parts
        .reduce(|a, b| a.or(b))
        .unwrap_or_else(|| constant(false))
}

/// A company-declared attribute; `key` comes from the registry (a checked identifier).
fn attribute(key: &str, test: &Test) -> SimpleExpr {
    let at = format!("attributes -> '{key}'");
    let text = format!("attributes ->> '{key}'");
    let typed = |ty: &str| {
        sql(
            format!("COALESCE(jsonb_typeof({at}) = '{ty}', false)"),
            vec![],
        )
    };
    if let Some(sql) = number(&at, &text, test) {
        return sql;
    }
    match test {
        // Handled by `attribute_exists`, which knows the field's type.
        Test::Exists | Test::NotExists => constant(false),
        Test::Eq(v) => contains(key, json_scalar(v)),
        Test::In(vs) => any_of(vs.iter().map(|v| contains(key, json_scalar(v)))),
        Test::Neq(v) => typed(json_kind(v)).and(contains(key, json_scalar(v)).not()),
        Test::NotIn(vs) => match vs.first() {
            Some(first) => typed(json_kind(first))
                .and(any_of(vs.iter().map(|v| contains(key, json_scalar(v)))).not()),
            None => constant(false),
        },
        Test::StartsWith(prefix) => sql(
            format!("COALESCE(jsonb_typeof({at}) = 'string' AND starts_with({text}, $1), false)"),
            vec![prefix.clone().into()],
        ),
        Test::ContainsAll(items) => contains(key, json!(items)),
        Test::ContainsAny(items) => any_of(items.iter().map(|i| contains(key, json!([i])))),
        Test::Compare(cmp, v) => ordered(&at, &text, &[(op(*cmp), v)]),
        Test::Between(low, high) => ordered(&at, &text, &[(">=", low), ("<=", high)]),
    }
}

/// Whether the JSON number `text` has a value: one `float8` holds (0, or a magnitude from
/// 1e-307 to 1e308), as `app.audience_terms` and [`super::eval`] decide it. Only for a number.
fn number_holds(text: &str) -> String {
    format!("(({text})::numeric = 0 OR abs(({text})::numeric) BETWEEN 1e-307 AND 1e308)")
}

/// `test` on a number attribute, compared as `float8` once its JSON type and range are checked
/// (nested `CASE`s fix that order); `None` for a test of something else.
fn number(at: &str, text: &str, test: &Test) -> Option<SimpleExpr> {
    let (cmp, values): (String, Vec<&Scalar>) = match test {
        Test::Eq(v @ Scalar::Num(_)) => ("= $1".into(), vec![v]),
        Test::Neq(v @ Scalar::Num(_)) => ("<> $1".into(), vec![v]),
        Test::In(vs) | Test::NotIn(vs) if matches!(vs.first(), Some(Scalar::Num(_))) => {
            let not = if matches!(test, Test::NotIn(_)) {
                "NOT "
            } else {
                ""
            };
            (
                format!("{not}IN ({})", placeholders(vs.len())),
                vs.iter().collect(),
            )
        }
        Test::Compare(c, v @ Scalar::Num(_)) => (format!("{} $1", op(*c)), vec![v]),
        Test::Between(low @ Scalar::Num(_), high) => ("BETWEEN $1 AND $2".into(), vec![low, high]),
        _ => return None,
    };
    Some(sql(
        format!(
            "CASE WHEN jsonb_typeof({at}) = 'number' THEN CASE WHEN {} THEN ({text})::float8 {cmp} \
             ELSE false END ELSE false END",
            number_holds(text)
        ),
        values.into_iter().map(value).collect(),
    ))
}

/// The JSON type a value of this scalar is stored as.
fn json_kind(scalar: &Scalar) -> &'static str {
    match scalar {
        Scalar::Num(_) => "number",
        Scalar::Bool(_) => "boolean",
        _ => "string",
    }
}

/// Ordered comparisons of days, as `YYYY-MM-DD` text (byte order), guarded by the JSON type and
/// the shape (numbers are compared by [`number`]).
fn ordered(at: &str, text: &str, bounds: &[(&str, &Scalar)]) -> SimpleExpr {
    let tests: Vec<String> = bounds
        .iter()
        .enumerate()
        .map(|(i, (op, _))| format!("({text}) COLLATE \"C\" {op} ${}", i + 1))
        .collect();
    sql(
        format!(
            "CASE WHEN jsonb_typeof({at}) = 'string' AND {} THEN {} ELSE false END",
            day_shape(text),
            tests.join(" AND ")
        ),
        bounds.iter().map(|(_, v)| value(v)).collect(),
    )
}

/// `exists` / `not_exists` on an attribute: present with the JSON type of the field (and, for
/// dates, the `YYYY-MM-DD` shape).
fn attribute_exists(key: &str, ty: FieldType, exists: bool) -> SimpleExpr {
    let at = format!("attributes -> '{key}'");
    let text = match ty {
        FieldType::String => format!("COALESCE(jsonb_typeof({at}) = 'string', false)"),
        FieldType::Number => format!(
            "CASE WHEN jsonb_typeof({at}) = 'number' THEN {} ELSE false END",
            number_holds(&format!("attributes ->> '{key}'"))
        ),
        FieldType::Boolean => format!("COALESCE(jsonb_typeof({at}) = 'boolean', false)"),
        FieldType::StringList => format!("COALESCE(jsonb_typeof({at}) = 'array', false)"),
        FieldType::Date => format!(
            "COALESCE(jsonb_typeof({at}) = 'string' AND {}, false)",
            day_shape(&format!("attributes ->> '{key}'"))
        ),
    };
    let expr = sql(text, vec![]);
    if exists { expr } else { expr.not() }
}

/// Whether `text` has the `YYYY-MM-DD` shape (as [`super::parse::is_day_shape`] checks it).
/// A length test stands in for a `$` anchor, which custom sea-query SQL cannot hold.
fn day_shape(text: &str) -> String {
    format!("({text}) ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}' AND length({text}) = 10")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use sea_orm::sea_query::{PostgresQueryBuilder, Query};

    use super::*;
    use crate::audience::{Registry, parse};

    #[test]
    fn compiled_sql_binds_every_value() {
        let registry = Registry::with_attributes([
            ("plan".to_owned(), FieldType::String, String::new()),
            ("score".to_owned(), FieldType::Number, String::new()),
            ("renewal".to_owned(), FieldType::Date, String::new()),
            ("tags".to_owned(), FieldType::StringList, String::new()),
        ]);
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let evil = "x' OR 1=1; DROP TABLE users; --";
        let doc = json!({
            "include": {"any": [
                {"field": "plan", "op": "eq", "value": evil},
                {"field": "plan", "op": "starts_with", "value": evil},
                {"field": "role", "op": "in", "value": [evil]},
                {"field": "score", "op": "between", "value": [1, 2]},
                {"field": "renewal", "op": "after", "value": "2026-01-01"}
            ]},
            "exclude": {"field": "tags", "op": "contains_any", "value": [evil]}
        });
        let filter = match parse(&doc, &registry, now) {
            Ok(filter) => filter,
            Err(e) => panic!("{doc} should parse: {e:?}"),
        };
        let (sql, values) = Query::select()
            .expr(compile(&filter))
            .build(PostgresQueryBuilder);
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(!sql.contains(evil), "{sql}");
        assert!(sql.contains("attributes @> $1"), "{sql}");
        assert!(sql.contains("'^[0-9]{4}-[0-9]{2}-[0-9]{2}'"), "{sql}");
        assert_eq!(values.0.len(), 7, "{sql}");
    }
}
