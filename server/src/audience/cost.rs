//! What an audience filter costs, and the bound on what one request may spend.
//!
//! PostgreSQL's work grows with the values a filter holds (one filter of 20,000 values takes
//! seconds), so the values are what is bounded: every condition counts its values, at least
//! one (`in`: its list, `between`: 2, `exists`: 1). All the audience filters of one request —
//! every audience field, alias and batched operation, and the saved presets they use —
//! share one [`Budget`] of `AUDIENCE_MAX_VALUES`. Filters written into the document are
//! counted when the document is parsed, before anything runs; presets when they are read.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::MAX_DEPTH;
use crate::error::{AppError, AppResult};

/// How many values a filter document holds; anything that is not a filter's shape counts
/// nothing (validation refuses it before it runs).
pub fn values(doc: &Value) -> usize {
    let Some(object) = doc.as_object() else {
        return 0;
    };
    ["include", "exclude"]
        .iter()
        .filter_map(|key| object.get(*key))
        .map(|node| node_values(node, 1))
        .sum()
}

fn node_values(node: &Value, depth: usize) -> usize {
    // Deeper documents are refused by validation; counting stops where it would.
    if depth > MAX_DEPTH + 1 {
        return 0;
    }
    let Some(object) = node.as_object() else {
        return 0;
    };
    match object.get("all").or_else(|| object.get("any")) {
        Some(children) => children.as_array().map_or(0, |items| {
            items
                .iter()
                .map(|child| node_values(child, depth + 1))
                .sum()
        }),
        None => match object.get("value") {
            Some(Value::Array(items)) => items.len().max(1),
            _ => 1,
        },
    }
}

/// `BAD_USER_INPUT` at `path` when a filter alone holds more than `max` values.
pub fn check_filter(doc: &Value, max: usize, path: &str) -> AppResult<()> {
    let values = values(doc);
    if values > max {
        return Err(AppError::bad_input(
            path,
            format!(
                "the filter holds {values} values, over the limit of {max} (AUDIENCE_MAX_VALUES)"
            ),
        ));
    }
    Ok(())
}

/// The audience values one request may still evaluate.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    spent: AtomicUsize,
}

impl Budget {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            spent: AtomicUsize::new(0),
        }
    }

    /// Spends `values` for the filter at `path`: `BAD_USER_INPUT` (nothing spent) when the
    /// request would hold more than its bound.
    pub fn spend(&self, values: usize, path: &str) -> AppResult<()> {
        let before = self.spent.fetch_add(values, Ordering::SeqCst);
        let total = before.saturating_add(values);
        if total > self.max {
            self.spent.fetch_sub(values, Ordering::SeqCst);
            return Err(AppError::bad_input(
                path,
                format!(
                    "the audience filters of this request hold {total} values, over the limit of \
                     {} (AUDIENCE_MAX_VALUES); ask for fewer values or fewer audiences at once",
                    self.max
                ),
            ));
        }
        Ok(())
    }

    /// Gives back `values` spent for something that did not run.
    pub fn refund(&self, values: usize) {
        self.spent.fetch_sub(values, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_every_value_and_every_condition() {
        let doc = json!({
            "include": {"all": [
                {"field": "plan", "op": "in", "value": ["a", "b", "c"]},
                {"any": [
                    {"field": "country", "op": "eq", "value": "DE"},
                    {"field": "score", "op": "between", "value": [1, 5]},
                ]},
                {"field": "plan", "op": "exists"},
            ]},
            "exclude": {"field": "tags", "op": "contains_any", "value": ["x", "y"]},
        });
        assert_eq!(values(&doc), 3 + 1 + 2 + 1 + 2);
        assert_eq!(values(&json!({})), 0);
        assert_eq!(values(&json!("nonsense")), 0);
    }

    #[test]
    fn a_budget_refuses_what_goes_over_and_keeps_the_rest() {
        let budget = Budget::new(10);
        assert!(budget.spend(6, "a.filter").is_ok());
        match budget.spend(5, "b.filter") {
            Err(AppError::BadUserInput { path, message }) => {
                assert_eq!(path, "b.filter");
                assert!(message.contains("AUDIENCE_MAX_VALUES"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(budget.spend(4, "c.filter").is_ok());
        assert!(budget.spend(1, "d.filter").is_err());
    }
}
