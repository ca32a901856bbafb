//! Counting an audience with bitmaps instead of reading users.
//!
//! Every user of a company has a member number, and for every *term* (an equality-type fact,
//! `plan:s=pro`, `tags:a=vip`, `#role=manager`, see `app.audience_terms` in
//! `migration/sql/current/audience_bits.sql`) the table `audience_bits` holds one bitmap of
//! [`SEGMENT_BITS`] members per segment, kept in step with `users` by triggers in the same
//! transaction. Requests read them through the view `audience_bitmaps`, which masks every bitmap
//! to the people the caller may segment (the same people as `audience_users(_admin)`).
//!
//! A filter whose every condition is such a fact (equality, lists, presence: everything but
//! `starts_with`, ordered comparisons, dates in time and activity aggregates) is counted as one aggregate over the
//! bitmaps of its terms, segment by segment: `all` is `&`, `any` is `|`, what is excluded or
//! negated is `~`, and the result is masked to the visible people (`*`) and popcounted.
//! [`count`] writes that statement (its SQL and its parameters, plain data the audience service
//! runs), or `None` for a filter that needs the rows; the property test holds the two ways of
//! counting to the in-memory evaluation.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Condition, FieldType, Filter, Node, Scalar, Source, Test};

/// Members per bitmap row (`bit(1024)` in the migration).
pub const SEGMENT_BITS: usize = 1024;

/// `B'0'::bit(1024)`: a segment with nobody.
const NOBODY: &str = "B'0'::bit(1024)";

/// A term standing for a number: the 16 hex digits of its `float8` bits, reordered so that the
/// digits sort as the numbers do (the sign bit set for positives, all bits flipped for
/// negatives), as `app.audience_number` writes them. `-0` and `0` are one term.
pub fn number_key(value: f64) -> String {
    let bits = value.to_bits();
    let ordered = if value < 0.0 { !bits } else { bits | (1 << 63) };
    format!("{ordered:016x}")
}

/// A boolean expression over the slots of the statement.
#[derive(Debug, Clone, PartialEq)]
enum Bits {
    /// Everyone visible.
    Everyone,
    /// Nobody.
    Nobody,
    /// The members a slot selects.
    Slot(usize),
    And(Vec<Bits>),
    Or(Vec<Bits>),
    Not(Box<Bits>),
}

/// The terms of a slot, and whether a member needs all of them (else any).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    all: bool,
    terms: Vec<String>,
}

/// The slots of one statement; slot 0 is `*`, everyone.
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Slot>,
    index: BTreeMap<Slot, usize>,
}

impl Slots {
    fn new() -> Self {
        let mut slots = Self::default();
        slots.add(false, vec!["*".to_owned()]);
        slots
    }

    fn add(&mut self, all: bool, mut terms: Vec<String>) -> Bits {
        terms.sort();
        terms.dedup();
        let slot = Slot { all, terms };
        let next = self.slots.len();
        let index = *self.index.entry(slot.clone()).or_insert(next);
        if index == next {
            self.slots.push(slot);
        }
        Bits::Slot(index)
    }

    fn any(&mut self, terms: Vec<String>) -> Bits {
        self.add(false, terms)
    }

    fn all(&mut self, terms: Vec<String>) -> Bits {
        self.add(true, terms)
    }
}

/// A statement counting an audience with bitmaps: one `bigint` column `n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitmapCount {
    /// PostgreSQL's SQL, with parameters `$1` to `$n` for the terms, then `$n+1` for the
    /// company.
    pub sql: String,
    /// The terms, in the order of their parameters.
    pub terms: Vec<String>,
    /// The company counted in.
    pub company: Uuid,
}

/// The statement counting `filter` in `company` with bitmaps, or `None` when a condition of
/// the filter needs the users' rows.
pub fn count(filter: &Filter, company: Uuid) -> Option<BitmapCount> {
    let mut slots = Slots::new();
    let include = match &filter.include {
        Some(node) => self::node(node, &mut slots)?,
        None => Bits::Everyone,
    };
    let selected = match &filter.exclude {
        Some(node) => Bits::And(vec![
            include,
            Bits::Not(Box::new(self::node(node, &mut slots)?)),
        ]),
        None => include,
    };
    Some(statement(&selected, &slots, company))
}

fn node(node: &Node, slots: &mut Slots) -> Option<Bits> {
    match node {
        Node::All(children) => children
            .iter()
            .map(|c| self::node(c, slots))
            .collect::<Option<_>>()
            .map(Bits::And),
        Node::Any(children) => children
            .iter()
            .map(|c| self::node(c, slots))
            .collect::<Option<_>>()
            .map(Bits::Or),
        Node::Cond(condition) => cond(condition, slots),
    }
}

fn not(bits: Bits) -> Bits {
    Bits::Not(Box::new(bits))
}

fn cond(condition: &Condition, slots: &mut Slots) -> Option<Bits> {
    let test = &condition.test;
    match &condition.field.source {
        Source::Attribute(key) => attribute(key, condition.field.ty, test, slots),
        Source::Role => built_in("#role=", test, slots),
        Source::EmailDomain => built_in("#email_domain=", test, slots),
        Source::IsActive => built_in("#is_active=", test, slots),
        Source::LastActiveAt => match test {
            Test::Exists => Some(slots.any(vec!["#last_active_at".to_owned()])),
            Test::NotExists => Some(not(slots.any(vec!["#last_active_at".to_owned()]))),
            _ => None,
        },
        Source::CreatedAt => match test {
            Test::Exists => Some(Bits::Everyone),
            Test::NotExists => Some(Bits::Nobody),
            _ => None,
        },
        // An aggregate of activities is no fact of the user's row: the rows count it.
        Source::Activity(_) => None,
    }
}

/// The text of a value in a term: strings as they are, booleans `true` / `false`, numbers as
/// [`number_key`]; `None` for values no term holds (instants).
fn value_text(scalar: &Scalar) -> Option<String> {
    match scalar {
        Scalar::Str(s) => Some(s.clone()),
        Scalar::Bool(b) => Some(b.to_string()),
        Scalar::Num(n) => Some(number_key(*n)),
        Scalar::Instant(_) | Scalar::Day(_) => None,
    }
}

/// A built-in field every user has a value of (`role`, `email_domain`, `is_active`).
fn built_in(prefix: &str, test: &Test, slots: &mut Slots) -> Option<Bits> {
    let terms = |values: &[Scalar]| -> Option<Vec<String>> {
        values
            .iter()
            .map(|v| value_text(v).map(|text| format!("{prefix}{text}")))
            .collect()
    };
    Some(match test {
        Test::Exists => Bits::Everyone,
        Test::NotExists => Bits::Nobody,
        Test::Eq(v) => slots.any(terms(std::slice::from_ref(v))?),
        Test::Neq(v) => not(slots.any(terms(std::slice::from_ref(v))?)),
        Test::In(vs) => slots.any(terms(vs)?),
        Test::NotIn(vs) => not(slots.any(terms(vs)?)),
        _ => return None,
    })
}

/// A company field: `<key>:<kind>` says it has a value of its type, `<key>:<kind>=<value>` which.
fn attribute(key: &str, ty: FieldType, test: &Test, slots: &mut Slots) -> Option<Bits> {
    let kind = match ty {
        FieldType::String => "s",
        FieldType::Number => "n",
        FieldType::Boolean => "b",
        FieldType::Date => "d",
        FieldType::StringList => "a",
    };
    let present = format!("{key}:{kind}");
    let terms = |values: &[Scalar]| -> Option<Vec<String>> {
        values
            .iter()
            .map(|v| value_text(v).map(|text| format!("{present}={text}")))
            .collect()
    };
    let items = |items: &[String]| -> Vec<String> {
        items.iter().map(|i| format!("{present}={i}")).collect()
    };
    // Dates are compared, never equated: only their presence is a term.
    if ty == FieldType::Date && !matches!(test, Test::Exists | Test::NotExists) {
        return None;
    }
    Some(match test {
        Test::Exists => slots.any(vec![present]),
        Test::NotExists => not(slots.any(vec![present])),
        Test::Eq(v) => slots.any(terms(std::slice::from_ref(v))?),
        Test::In(vs) => slots.any(terms(vs)?),
        Test::Neq(v) => {
            let equal = slots.any(terms(std::slice::from_ref(v))?);
            Bits::And(vec![slots.any(vec![present]), not(equal)])
        }
        Test::NotIn(vs) => {
            let equal = slots.any(terms(vs)?);
            Bits::And(vec![slots.any(vec![present]), not(equal)])
        }
        Test::ContainsAll(list) => slots.all(items(list)),
        Test::ContainsAny(list) => slots.any(items(list)),
        Test::Compare(..) | Test::Between(..) | Test::StartsWith(_) => return None,
    })
}

/// The SQL of `bits` over the slot columns of one segment.
fn expression(bits: &Bits, slots: &Slots) -> String {
    let join = |parts: &[Bits], op: &str| {
        let parts: Vec<String> = parts.iter().map(|p| expression(p, slots)).collect();
        format!("({})", parts.join(op))
    };
    match bits {
        Bits::Everyone => "COALESCE(s0, B'0'::bit(1024))".to_owned(),
        Bits::Nobody => NOBODY.to_owned(),
        Bits::Slot(i) => match slots.slots.get(*i) {
            Some(slot) if slot.all => format!(
                "CASE WHEN n{i} = {} THEN s{i} ELSE {NOBODY} END",
                slot.terms.len()
            ),
            _ => format!("COALESCE(s{i}, {NOBODY})"),
        },
        Bits::And(parts) => join(parts, " & "),
        Bits::Or(parts) => join(parts, " | "),
        Bits::Not(inner) => format!("(~{})", expression(inner, slots)),
    }
}

/// One statement: the visible bitmaps of every term of the filter, aggregated per segment into
/// one column per slot, combined, masked to everyone visible and counted. Terms and the company
/// are bound parameters; the SQL holds only slot numbers.
fn statement(bits: &Bits, slots: &Slots, company: Uuid) -> BitmapCount {
    let mut terms: Vec<&str> = slots
        .slots
        .iter()
        .flat_map(|s| s.terms.iter().map(String::as_str))
        .collect();
    terms.sort_unstable();
    terms.dedup();
    let param = |term: &str| terms.binary_search(&term).map_or(0, |i| i + 1);
    let columns: Vec<String> = slots
        .slots
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            if slot.all {
                format!(
                    "bit_and(b.bits) FILTER (WHERE q.slot = {i}) AS s{i}, \
                     count(*) FILTER (WHERE q.slot = {i}) AS n{i}"
                )
            } else {
                format!("bit_or(b.bits) FILTER (WHERE q.slot = {i}) AS s{i}")
            }
        })
        .collect();
    let pairs: Vec<String> = slots
        .slots
        .iter()
        .enumerate()
        .flat_map(|(i, slot)| slot.terms.iter().map(move |t| (i, t)).collect::<Vec<_>>())
        .map(|(i, term)| format!("(${}, {i})", param(term)))
        .collect();
    let listed: Vec<String> = (1..=terms.len()).map(|i| format!("${i}")).collect();
    let company_param = terms.len() + 1;
    let sql = format!(
        "SELECT COALESCE(SUM(bit_count({expr} & COALESCE(s0, {NOBODY}))), 0)::bigint AS n \
         FROM (SELECT b.seg, {columns} \
               FROM audience_bitmaps AS b \
               JOIN (VALUES {pairs}) AS q (term, slot) ON b.term = q.term \
               WHERE b.company_id = ${company_param} AND b.term IN ({listed}) \
               GROUP BY b.seg) AS s",
        expr = expression(bits, slots),
        columns = columns.join(", "),
        pairs = pairs.join(", "),
        listed = listed.join(", "),
    );
    BitmapCount {
        sql,
        terms: terms.into_iter().map(str::to_owned).collect(),
        company,
    }
}
