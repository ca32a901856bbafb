//! Unit tests of the filter language: every operator, every error kind with its path, the
//! in-memory semantics, and that bitmap counts bind every term (the compiled SQL's test is in
//! `services::audience::compile`).

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::{
    ActivityKind, FieldType, Filter, MetricType, Registry,
    eval::{Activity, Subject, matches},
    parse,
    parse::FilterError,
};

fn registry() -> Registry {
    Registry::with_attributes([
        ("plan".to_owned(), FieldType::String, String::new()),
        ("country".to_owned(), FieldType::String, String::new()),
        ("score".to_owned(), FieldType::Number, String::new()),
        ("vip".to_owned(), FieldType::Boolean, String::new()),
        ("renewal".to_owned(), FieldType::Date, String::new()),
        ("tags".to_owned(), FieldType::StringList, String::new()),
    ])
    .with_activity_kinds([
        ActivityKind {
            id: uuid::Uuid::from_u128(1),
            name: "Sleep".to_owned(),
            metrics: [
                ("score".to_owned(), MetricType::Number),
                ("mood".to_owned(), MetricType::Other("string".to_owned())),
            ]
            .into(),
        },
        ActivityKind {
            id: uuid::Uuid::from_u128(2),
            name: "run".to_owned(),
            metrics: [("km".to_owned(), MetricType::Number)].into(),
        },
    ])
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn ok(doc: Value) -> Filter {
    match parse(&doc, &registry(), now()) {
        Ok(filter) => filter,
        Err(e) => panic!("{doc} should parse: {e:?}"),
    }
}

fn fails(doc: Value) -> FilterError {
    match parse(&doc, &registry(), now()) {
        Ok(_) => panic!("{doc} should fail"),
        Err(e) => e,
    }
}

fn cond(field: &str, op: &str, value: Value) -> Value {
    json!({"include": {"all": [{"field": field, "op": op, "value": value}]}})
}

fn subject(attributes: Value) -> Subject {
    Subject {
        role: "member".into(),
        email: "Ann@Example.COM".into(),
        created_at: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default(),
        last_active_at: None,
        is_active: true,
        attributes,
        activities: Vec::new(),
    }
}

#[test]
fn every_operator_parses_on_a_field_of_its_type() {
    let cases = [
        ("plan", "eq", json!("pro")),
        ("plan", "neq", json!("pro")),
        ("plan", "in", json!(["pro", "free"])),
        ("plan", "not_in", json!(["pro"])),
        ("plan", "starts_with", json!("pr")),
        ("plan", "exists", Value::Null),
        ("plan", "not_exists", Value::Null),
        ("score", "gt", json!(1)),
        ("score", "gte", json!(1.5)),
        ("score", "lt", json!(1)),
        ("score", "lte", json!(1)),
        ("score", "between", json!([1, 2])),
        ("score", "in", json!([1, 2])),
        ("vip", "eq", json!(true)),
        ("vip", "neq", json!(false)),
        ("renewal", "before", json!("2026-01-01")),
        ("renewal", "after", json!("2026-01-01")),
        ("renewal", "within_last_days", json!(30)),
        ("renewal", "between", json!(["2026-01-01", "2026-02-01"])),
        ("created_at", "after", json!("2026-01-01T10:00:00Z")),
        ("last_active_at", "within_last_days", json!(7)),
        ("tags", "contains", json!("vip")),
        ("tags", "contains_any", json!(["a", "b"])),
        ("tags", "contains_all", json!(["a", "b"])),
        ("role", "eq", json!("admin")),
        ("email_domain", "eq", json!("example.com")),
        ("is_active", "eq", json!(true)),
    ];
    for (field, op, value) in cases {
        ok(cond(field, op, value));
    }
}

#[test]
fn errors_point_into_the_document() {
    let cases = [
        (json!([]), ""),
        (json!({"incl": {}}), "incl"),
        (cond("nope", "eq", json!("x")), "include.all[0].field"),
        (cond("plan", "gt", json!("x")), "include.all[0].op"),
        (cond("plan", "drop", json!("x")), "include.all[0].op"),
        (cond("plan", "eq", json!(1)), "include.all[0].value"),
        (cond("plan", "in", json!([])), "include.all[0].value"),
        (
            cond("plan", "in", json!(["a", 2])),
            "include.all[0].value[1]",
        ),
        (
            cond("score", "between", json!([3, 1])),
            "include.all[0].value",
        ),
        (
            cond("score", "between", json!([1, "x"])),
            "include.all[0].value[1]",
        ),
        (cond("vip", "eq", json!("yes")), "include.all[0].value"),
        (
            cond("renewal", "after", json!("2026-01-01T00:00:00Z")),
            "include.all[0].value",
        ),
        (
            cond("created_at", "after", json!("yesterday")),
            "include.all[0].value",
        ),
        (
            cond("renewal", "within_last_days", json!(-1)),
            "include.all[0].value",
        ),
        (cond("plan", "exists", json!("x")), "include.all[0].value"),
        (
            cond("plan", "starts_with", json!("x".repeat(501))),
            "include.all[0].value",
        ),
        (json!({"include": {"all": []}}), "include.all"),
        (json!({"include": {"all": [], "any": []}}), "include.any"),
        (
            json!({"exclude": {"any": [{"field": "plan", "op": "eq", "value": "a", "x": 1}]}}),
            "exclude.any[0].x",
        ),
        (json!({"include": {"all": [1]}}), "include.all[0]"),
    ];
    for (doc, path) in cases {
        assert_eq!(fails(doc.clone()).path, path, "{doc}");
    }
}

#[test]
fn depth_and_size_limits_are_reported() {
    let mut node = json!({"field": "plan", "op": "eq", "value": "a"});
    for _ in 0..super::MAX_DEPTH {
        node = json!({"all": [node]});
    }
    let error = fails(json!({ "include": node }));
    assert!(error.message.contains("deep"), "{error:?}");
    assert!(error.path.starts_with("include.all[0].all[0]"), "{error:?}");

    let many: Vec<Value> = (0..=super::MAX_CONDITIONS)
        .map(|_| json!({"field": "plan", "op": "eq", "value": "a"}))
        .collect();
    let error = fails(json!({"include": {"any": many}}));
    assert_eq!(
        error.path,
        format!("include.any[{}]", super::MAX_CONDITIONS)
    );

    let values: Vec<Value> = (0..=super::MAX_LIST_VALUES)
        .map(|i| json!(i.to_string()))
        .collect();
    assert_eq!(
        fails(cond("plan", "in", json!(values))).path,
        "include.all[0].value"
    );
}

#[test]
fn messages_say_what_was_expected() {
    assert!(
        fails(cond("nope", "eq", json!(1)))
            .message
            .contains("unknown field `nope`")
    );
    let op = fails(cond("tags", "eq", json!("a"))).message;
    assert!(op.contains("contains_any"), "{op}");
    assert!(
        fails(cond("score", "eq", json!("1")))
            .message
            .contains("number")
    );
}

#[test]
fn missing_attributes_match_only_not_exists_and_exclusion_removes() {
    let has = |doc: Value, attrs: Value| matches(&ok(doc), &subject(attrs));
    assert!(!has(cond("plan", "neq", json!("pro")), json!({})));
    assert!(!has(cond("plan", "not_in", json!(["pro"])), json!({})));
    assert!(has(
        cond("plan", "not_exists", Value::Null),
        json!({"plan": 3})
    ));
    assert!(has(
        cond("plan", "neq", json!("pro")),
        json!({"plan": "free"})
    ));
    assert!(has(
        cond("tags", "contains_all", json!(["a", "b"])),
        json!({"tags": ["b", "a", "c"]})
    ));
    assert!(!has(
        cond("tags", "contains", json!("a")),
        json!({"tags": "a"})
    ));
    assert!(has(
        cond("renewal", "after", json!("2026-01-01")),
        json!({"renewal": "2026-03-01"})
    ));
    assert!(!has(
        cond("renewal", "exists", Value::Null),
        json!({"renewal": "March"})
    ));
    assert!(has(
        cond("email_domain", "eq", json!("EXAMPLE.com")),
        json!({})
    ));
    assert!(!has(
        cond("last_active_at", "within_last_days", json!(30)),
        json!({})
    ));
    let doc = json!({"exclude": {"any": [{"field": "tags", "op": "contains", "value": "churn"}]}});
    assert!(has(doc.clone(), json!({})));
    assert!(!has(doc, json!({"tags": ["churn"]})));
    assert!(has(json!({}), json!({})));
}

#[test]
fn field_names_that_could_escape_are_not_registered() {
    for name in ["plan'--", "a b", "Plan", "role", "x->>'y'", "", "_x", "é"] {
        assert!(!super::valid_field_name(name), "{name}");
    }
    let registry =
        Registry::with_attributes([("a'b".to_owned(), FieldType::String, String::new())]);
    assert!(registry.get("a'b").is_none());
}

#[test]
fn number_terms_sort_as_the_numbers_do_and_zero_is_one_term() {
    let numbers = [
        f64::MIN,
        -1e300,
        -70.5,
        -1.0,
        -1e-300,
        0.0,
        1e-300,
        0.1,
        1.0,
        50.0,
        70.5,
        1e300,
        f64::MAX,
    ];
    let keys: Vec<String> = numbers
        .iter()
        .map(|n| super::bits::number_key(*n))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(keys.iter().all(|k| k.len() == 16));
    assert_eq!(super::bits::number_key(-0.0), super::bits::number_key(0.0));
    // The digits app.audience_number writes (checked against PostgreSQL end to end).
    assert_eq!(super::bits::number_key(1.0), "bff0000000000000");
    assert_eq!(super::bits::number_key(-1.5), "4007ffffffffffff");
}

fn counted_with_bitmaps(doc: Value) -> bool {
    super::bits::count(&ok(doc), uuid::Uuid::nil()).is_some()
}

#[test]
fn equality_type_filters_are_counted_with_bitmaps_and_the_rest_from_rows() {
    for doc in [
        json!({}),
        cond("plan", "eq", json!("pro")),
        cond("plan", "neq", json!("pro")),
        cond("plan", "in", json!(["pro", "free"])),
        cond("plan", "not_in", json!(["pro"])),
        cond("plan", "exists", Value::Null),
        cond("score", "eq", json!(1.5)),
        cond("score", "not_in", json!([1, 2])),
        cond("vip", "neq", json!(false)),
        cond("renewal", "not_exists", Value::Null),
        cond("tags", "contains", json!("vip")),
        cond("tags", "contains_any", json!(["a", "b"])),
        cond("tags", "contains_all", json!(["a", "b"])),
        cond("role", "not_in", json!(["admin"])),
        cond("email_domain", "eq", json!("example.com")),
        cond("is_active", "eq", json!(true)),
        cond("last_active_at", "exists", Value::Null),
        cond("created_at", "not_exists", Value::Null),
        json!({"include": {"field": "plan", "op": "in", "value": ["pro", "enterprise"]},
               "exclude": {"field": "tags", "op": "contains", "value": "churn-risk"}}),
    ] {
        assert!(counted_with_bitmaps(doc.clone()), "{doc}");
    }
    for doc in [
        cond("plan", "starts_with", json!("pr")),
        cond("score", "gt", json!(1)),
        cond("score", "between", json!([1, 2])),
        cond("renewal", "after", json!("2026-01-01")),
        cond("renewal", "within_last_days", json!(30)),
        cond("created_at", "after", json!("2026-01-01")),
        cond("last_active_at", "within_last_days", json!(30)),
        cond("role", "starts_with", json!("m")),
        // One condition that needs the rows is enough, wherever it is.
        json!({"include": {"field": "plan", "op": "eq", "value": "pro"},
               "exclude": {"any": [{"field": "tags", "op": "contains", "value": "x"},
                                   {"field": "score", "op": "lt", "value": 3}]}}),
    ] {
        assert!(!counted_with_bitmaps(doc.clone()), "{doc}");
    }
}

#[test]
fn bitmap_counts_bind_every_term_and_name_only_slots() {
    let evil = "x' OR 1=1; DROP TABLE users; --";
    let filter = ok(json!({
        "include": {"any": [
            {"field": "plan", "op": "eq", "value": evil},
            {"field": "role", "op": "in", "value": [evil, "member"]},
            {"field": "tags", "op": "contains_all", "value": [evil, evil, "b"]},
            {"field": "score", "op": "neq", "value": 2}
        ]},
        "exclude": {"field": "plan", "op": "eq", "value": evil}
    }));
    let company = uuid::Uuid::new_v4();
    let Some(statement) = super::bits::count(&filter, company) else {
        panic!("countable with bitmaps");
    };
    let sql = statement.sql.clone();
    assert!(!sql.contains("DROP"), "{sql}");
    assert!(!sql.contains("plan"), "{sql}");
    assert!(!sql.contains(&company.to_string()), "{sql}");
    // Distinct terms: *, plan:s=<evil>, #role=<evil>, #role=member, tags:a=<evil>, tags:a=b,
    // score:n, score:n=<2>; then the company.
    assert_eq!(statement.terms.len(), 8, "{sql}");
    assert!(sql.contains("b.company_id = $9"), "{sql}");
    assert!(!sql.contains("$10"), "{sql}");
    assert!(sql.contains("audience_bitmaps"), "{sql}");
    assert!(
        sql.contains("CASE WHEN n"),
        "contains_all counts its terms: {sql}"
    );
    assert!(sql.contains("(~"), "exclusion and neq negate: {sql}");
}

fn activity(kind: &str, days_ago: i64, metrics: Value) -> Activity {
    Activity {
        kind: kind.to_owned(),
        occurred_at: now() - chrono::Duration::days(days_ago),
        metrics,
    }
}

fn on_activity(aggregate: &str, metric: Option<&str>, days: i64, op: &str, value: Value) -> Value {
    let mut condition = json!({
        "activity": "sleep", "aggregate": aggregate, "within_last_days": days, "op": op
    });
    if let Some(metric) = metric {
        condition["metric"] = json!(metric);
    }
    if !value.is_null() {
        condition["value"] = value;
    }
    json!({ "include": { "all": [condition] } })
}

#[test]
fn activity_conditions_aggregate_the_window_of_their_kind() {
    let mut ann = subject(json!({}));
    ann.activities = vec![
        activity("Sleep", 1, json!({"score": 60})),
        activity("Sleep", 10, json!({"score": 80})),
        activity("Sleep", 20, json!({"score": "90"})), // not a number: skipped
        activity("Sleep", 40, json!({"score": 10})),   // outside 30 days
        activity("run", 2, json!({"score": 0})),       // another kind
        activity("Sleep", 3, json!({})),               // no score
    ];
    let holds = |doc: Value| matches(&ok(doc), &ann);
    assert!(holds(on_activity(
        "avg",
        Some("score"),
        30,
        "eq",
        json!(70)
    )));
    assert!(holds(on_activity(
        "avg",
        Some("score"),
        30,
        "lt",
        json!(70.5)
    )));
    assert!(!holds(on_activity(
        "avg",
        Some("score"),
        30,
        "lt",
        json!(70)
    )));
    assert!(holds(on_activity(
        "sum",
        Some("score"),
        30,
        "eq",
        json!(140)
    )));
    assert!(holds(on_activity(
        "min",
        Some("score"),
        30,
        "eq",
        json!(60)
    )));
    assert!(holds(on_activity(
        "max",
        Some("score"),
        30,
        "eq",
        json!(80)
    )));
    assert!(holds(on_activity(
        "max",
        Some("score"),
        60,
        "between",
        json!([80, 80])
    )));
    assert!(holds(on_activity(
        "min",
        Some("score"),
        60,
        "eq",
        json!(10)
    )));
    // count: every activity of the kind, or those with the metric.
    assert!(holds(on_activity("count", None, 30, "eq", json!(4))));
    assert!(holds(on_activity(
        "count",
        Some("score"),
        30,
        "eq",
        json!(2)
    )));
    assert!(holds(on_activity("count", None, 0, "eq", json!(0))));
    // No value without an activity of the metric, but a count is always one.
    assert!(!holds(on_activity(
        "avg",
        Some("score"),
        0,
        "exists",
        Value::Null
    )));
    assert!(holds(on_activity(
        "avg",
        Some("score"),
        0,
        "not_exists",
        Value::Null
    )));
    assert!(!holds(on_activity(
        "avg",
        Some("score"),
        0,
        "neq",
        json!(1)
    )));
    assert!(holds(on_activity(
        "count",
        Some("score"),
        0,
        "exists",
        Value::Null
    )));
}

#[test]
fn activity_conditions_say_what_is_wrong_and_where() {
    let path = "include.all[0]";
    let cases = [
        (
            json!({"activity": "swim", "aggregate": "avg", "metric": "km", "within_last_days": 7, "op": "gt", "value": 1}),
            format!("{path}.activity"),
            "unknown activity kind",
        ),
        (
            json!({"activity": "sleep", "aggregate": "avg", "metric": "depth", "within_last_days": 7, "op": "gt", "value": 1}),
            format!("{path}.metric"),
            "unknown metric",
        ),
        (
            json!({"activity": "sleep", "aggregate": "avg", "metric": "mood", "within_last_days": 7, "op": "gt", "value": 1}),
            format!("{path}.metric"),
            "not a number",
        ),
        (
            json!({"activity": "sleep", "aggregate": "median", "metric": "score", "within_last_days": 7, "op": "gt", "value": 1}),
            format!("{path}.aggregate"),
            "unknown aggregate",
        ),
        (
            json!({"activity": "sleep", "aggregate": "avg", "within_last_days": 7, "op": "gt", "value": 1}),
            format!("{path}.metric"),
            "needs a number metric",
        ),
        (
            json!({"activity": "sleep", "aggregate": "avg", "metric": "score", "op": "gt", "value": 1}),
            format!("{path}.within_last_days"),
            "whole number of days",
        ),
        (
            json!({"activity": "sleep", "aggregate": "avg", "metric": "score", "within_last_days": 7, "op": "contains", "value": 1}),
            format!("{path}.op"),
            "not valid for an activity aggregate",
        ),
        (
            json!({"activity": "sleep", "aggregate": "avg", "metric": "score", "within_last_days": 7, "op": "gt", "value": "high"}),
            format!("{path}.value"),
            "expected a number",
        ),
        (
            json!({"activity": "sleep", "aggregate": "avg", "metric": "score", "within_last_days": 7, "op": "gt", "value": 1, "field": "x"}),
            format!("{path}.field"),
            "unknown key",
        ),
    ];
    for (condition, want_path, want) in cases {
        let error = fails(json!({"include": {"all": [condition]}}));
        assert_eq!(error.path, want_path, "{condition}");
        assert!(
            error.message.contains(want),
            "{condition}: {}",
            error.message
        );
    }
}

#[test]
fn activity_conditions_need_the_rows_not_the_bitmaps() {
    let filter = ok(on_activity("avg", Some("score"), 30, "lt", json!(70)));
    assert!(super::bits::count(&filter, uuid::Uuid::nil()).is_none());
}
