//! Input PostgreSQL cannot store is refused before anything runs: a NUL character (U+0000) in
//! any string — an argument, a variable, or a key or value inside a JSON scalar — is
//! `BAD_USER_INPUT` with the path of the offending argument or variable, instead of a database
//! error half-way through a resolver. (Rust strings are always valid UTF-8 and JSON cannot
//! carry lone surrogates, so NUL is the one character PostgreSQL's `text` and `jsonb` reject.)

//!
//! Checked by `super::run` (through [`super::guardrails`]) around the parse, before validation.

use async_graphql::{
    Positioned, ServerError, ServerResult, Value, Variables,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use crate::error::code;

/// Before the parse: the first variable holding a NUL, refused.
pub(super) fn check_variables(variables: &Variables) -> ServerResult<()> {
    for (name, value) in variables.iter() {
        if let Some(path) = nul_in(value, name.as_str()) {
            return Err(refusal(&path));
        }
    }
    Ok(())
}

/// After the parse: the first literal argument holding a NUL, refused.
pub(super) fn check_document(document: &ExecutableDocument) -> ServerResult<()> {
    let sets = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set)
        .chain(document.fragments.values().map(|f| &f.node.selection_set));
    for set in sets {
        if let Some(path) = nul_in_arguments(set) {
            return Err(refusal(&path));
        }
    }
    Ok(())
}

fn refusal(path: &str) -> ServerError {
    let mut error = ServerError::new(
        format!("`{path}` contains a NUL character (U+0000), which cannot be stored"),
        None,
    );
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code::BAD_USER_INPUT);
    extensions.set("path", path);
    error.extensions = Some(extensions);
    error
}

/// The path of the first string holding a NUL in `value`, which sits at `path`.
fn nul_in(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(|| path.to_owned()),
        Value::Enum(name) => name.contains('\0').then(|| path.to_owned()),
        Value::List(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item, &format!("{path}.{i}"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let here = format!("{path}.{}", key.replace('\0', "\\u0000"));
            if key.contains('\0') {
                Some(here)
            } else {
                nul_in(item, &here)
            }
        }),
        _ => None,
    }
}

/// Literal arguments of the fields in `set` (variables are checked as values).
fn nul_in_arguments(set: &Positioned<SelectionSet>) -> Option<String> {
    set.node.items.iter().find_map(|item| match &item.node {
        Selection::Field(field) => field
            .node
            .arguments
            .iter()
            .find_map(|(name, value)| {
                let constant = value.node.clone().into_const_with(|_| {
                    // Variables are checked on their own; stand in for them here.
                    Ok::<_, std::convert::Infallible>(Value::Null)
                });
                constant.ok().and_then(|v| nul_in(&v, name.node.as_str()))
            })
            .or_else(|| nul_in_arguments(&field.node.selection_set)),
        Selection::InlineFragment(fragment) => nul_in_arguments(&fragment.node.selection_set),
        Selection::FragmentSpread(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_characters_in_nested_values_and_keys() {
        let value = Value::from_json(serde_json::json!({
            "name": "fine",
            "attributes": { "plan": ["a", "b\u{0}c"] },
        }))
        .unwrap_or(Value::Null);
        assert_eq!(
            nul_in(&value, "input").as_deref(),
            Some("input.attributes.plan.1")
        );
        let key = Value::from_json(serde_json::json!({ "k\u{0}": 1 })).unwrap_or(Value::Null);
        assert_eq!(nul_in(&key, "x").as_deref(), Some("x.k\\u0000"));
        assert_eq!(nul_in(&Value::from("clean"), "x"), None);
    }

    #[test]
    fn finds_nul_characters_in_literal_arguments() {
        let doc = async_graphql::parser::parse_query(
            "mutation { updateProfile(input: {displayName: \"a\\u0000b\"}) { id } }",
        );
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => panic!("parse: {e}"),
        };
        let found = doc
            .operations
            .iter()
            .find_map(|(_, op)| nul_in_arguments(&op.node.selection_set));
        assert_eq!(found.as_deref(), Some("input.displayName"));
    }
}
