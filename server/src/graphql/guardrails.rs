//! Limits on every operation (depth, complexity, aliases), strings PostgreSQL cannot store
//! refused before anything runs ([`super::storable`]), and the final touches on every
//! response: error codes, request ids on internal errors, and ending each operation's database
//! scope ([`super::scope_end`]). `super::run` calls these around async-graphql's execution;
//! depth and complexity are async-graphql's own limits (set on the schema), whose errors are
//! given the codes and messages of the others here.

use std::{any::TypeId, collections::HashMap, sync::Arc};

use async_graphql::{
    Data, Name, Pos, Positioned, Request, Response, SchemaBuilder, ServerError, ServerResult,
    Value, Variables,
    parser::types::{ExecutableDocument, Field, Selection, SelectionSet},
};

use crate::{
    audience::cost::{self, Budget},
    auth::Viewer,
    config::Config,
    db::{RequestBudget, RequestScope},
    error::{AppError, code},
    state::AppState,
};

/// The root fields that evaluate the audience filter given as their `filter` argument.
const AUDIENCE_FIELDS: [&str; 2] = ["audience", "audienceSize"];

/// async-graphql's errors for its own depth and complexity limits (see [`Limits::apply`]).
const TOO_DEEP: &str = "Query is nested too deep.";
const TOO_COMPLEX: &str = "Query is too complex.";

/// Configured limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_depth: config.graphql_max_depth,
            max_complexity: config.graphql_max_complexity,
            max_aliases: config.graphql_max_aliases,
        }
    }

    /// Sets the depth and complexity limits on a schema, and keeps the limits in its data for
    /// the checks of `super::run`.
    pub fn apply<Q, M, S>(self, builder: SchemaBuilder<Q, M, S>) -> SchemaBuilder<Q, M, S> {
        builder
            .limit_depth(self.max_depth)
            .limit_complexity(self.max_complexity)
            .data(self)
    }
}

fn limit_error(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code::BAD_USER_INPUT);
    error.extensions = Some(extensions);
    error
}

/// An [`AppError`] of the request itself, with its code (and path) in the extensions.
fn request_error(error: AppError) -> ServerError {
    let mut error = async_graphql::Error::from(error).into_server_error(Pos::default());
    error.locations.clear();
    error
}

/// Operations over the WebSocket carry the connection's viewer (in `session`); each one gets
/// its own database scope, as the HTTP handler gives HTTP requests theirs, and a budget of
/// audience values when the request brings none.
pub(crate) fn prepare(state: Option<&AppState>, request: &mut Request, session: Option<&Data>) {
    let Some(state) = state else {
        return;
    };
    if !request
        .data
        .contains_key(&TypeId::of::<Arc<RequestScope>>())
        && let Some(viewer) = session
            .and_then(|data| data.get(&TypeId::of::<Viewer>()))
            .and_then(|d| d.downcast_ref::<Viewer>())
    {
        request.data.insert(RequestScope::new(
            state.db.clone(),
            state.shares.clone(),
            RequestBudget::new(state.config.db_max_connections_per_request as usize),
            viewer.clone(),
        ));
    }
    if !request.data.contains_key(&TypeId::of::<Arc<Budget>>()) {
        request.data.insert(Arc::new(Budget::new(
            state.config.audience_max_values as usize,
        )));
    }
}

/// Before the parse: strings PostgreSQL cannot store are refused before anything runs.
pub(crate) fn check_variables(variables: &Variables) -> ServerResult<()> {
    super::storable::check_variables(variables)
}

/// After the parse, before validation: unstorable literals, the alias limit, and the audience
/// filters written into the document, paid for from the budget the whole request (every
/// operation of a batch) shares.
pub(crate) fn check_document(
    limits: Option<&Limits>,
    document: &ExecutableDocument,
    variables: &Variables,
    budget: Option<&Arc<Budget>>,
) -> ServerResult<()> {
    super::storable::check_document(document)?;
    if let Some(limits) = limits {
        let aliases = count_aliases(document);
        if aliases > limits.max_aliases {
            return Err(limit_error(format!(
                "the operation uses {aliases} aliases, over the limit of {} (GRAPHQL_MAX_ALIASES)",
                limits.max_aliases
            )));
        }
    }
    if let Some(budget) = budget {
        spend_audience_values(budget, document, variables).map_err(request_error)?;
    }
    Ok(())
}

/// Before validation: the depth limit, with the depth in its message (async-graphql's own limit
/// stands behind it, see [`Limits::apply`]). Validation errors come after: a query over the
/// limit is refused for its depth whatever else is wrong with it.
pub(crate) fn check_depth(
    limits: Option<&Limits>,
    document: &ExecutableDocument,
) -> ServerResult<()> {
    let Some(limits) = limits else {
        return Ok(());
    };
    let depth = depth_of(document);
    if depth > limits.max_depth {
        return Err(limit_error(format!(
            "the query is {depth} levels deep, over the depth limit of {} (GRAPHQL_MAX_DEPTH)",
            limits.max_depth
        )));
    }
    Ok(())
}

/// async-graphql's depth and complexity errors (its validation checks both before its rules),
/// given the code and message of the others.
pub(crate) fn limit_errors(limits: Option<&Limits>, errors: &mut [ServerError]) {
    let Some(limits) = limits else {
        return;
    };
    for error in errors {
        if error.extensions.is_some() || !error.path.is_empty() {
            continue;
        }
        if error.message == TOO_COMPLEX {
            *error = limit_error(format!(
                "the query's complexity is over the complexity limit of {} \
                 (GRAPHQL_MAX_COMPLEXITY)",
                limits.max_complexity
            ));
        } else if error.message == TOO_DEEP {
            *error = limit_error(format!(
                "the query is nested deeper than the depth limit of {} (GRAPHQL_MAX_DEPTH)",
                limits.max_depth
            ));
        }
    }
}

/// After an operation ran: its database scope ends (an error doing so joins the response's
/// errors), then internal errors are tagged with the request's id.
pub(crate) async fn finish_operation(
    scope: Option<&Arc<RequestScope>>,
    request_id: Option<&str>,
    response: &mut Response,
) {
    super::scope_end::end(scope, response).await;
    if let Some(id) = request_id {
        tag_internal_errors(&mut response.errors, id);
    }
}

/// Every error gets a code: errors without one come from the request itself (syntax,
/// validation, argument coercion) and are `BAD_USER_INPUT`.
pub fn give_codes(errors: &mut [ServerError]) {
    for error in errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if !matches!(extensions.get("code"), Some(Value::String(_))) {
            extensions.set("code", code::BAD_USER_INPUT);
        }
    }
}

/// Internal errors say only which request failed; the detail is in the log under that id.
fn tag_internal_errors(errors: &mut [ServerError], request_id: &str) {
    for error in errors {
        let Some(extensions) = error.extensions.as_mut() else {
            continue;
        };
        if matches!(extensions.get("code"), Some(Value::String(c)) if c == code::INTERNAL) {
            extensions.set("requestId", request_id);
            error.message = format!("internal error (request id {request_id})");
        }
    }
}

/// Spends the values of every audience filter in `document` (all operations and fragments),
/// all or nothing.
fn spend_audience_values(
    budget: &Budget,
    document: &ExecutableDocument,
    variables: &Variables,
) -> Result<(), AppError> {
    // A variable the request leaves out takes its default, which is then the filter.
    let mut defaults: HashMap<&Name, &Value> = HashMap::new();
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            if let Some(default) = &definition.node.default_value {
                defaults.insert(&definition.node.name.node, &default.node);
            }
        }
    }
    let mut filters = Vec::new();
    for set in selection_sets(document) {
        audience_filters_in(set, &mut |field| {
            let Some(filter) = field.get_argument("filter") else {
                return;
            };
            let value = filter.node.clone().into_const_with(|name| {
                variables
                    .get(&name)
                    .or_else(|| defaults.get(&name).copied())
                    .cloned()
                    .ok_or(())
            });
            // A filter that is not JSON fails validation; it costs nothing here.
            if let Ok(json) = value.and_then(|v| v.into_json().map_err(|_| ())) {
                let key = field.response_key().node.as_str();
                filters.push((format!("{key}.filter"), cost::values(&json)));
            }
        });
    }
    let mut spent = Vec::new();
    for (path, values) in filters {
        if let Err(error) = budget.spend(values, &path) {
            for (_, values) in spent {
                budget.refund(values);
            }
            return Err(error);
        }
        spent.push((path, values));
    }
    Ok(())
}

fn audience_filters_in(set: &Positioned<SelectionSet>, found: &mut impl FnMut(&Field)) {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => {
                if AUDIENCE_FIELDS.contains(&field.node.name.node.as_str()) {
                    found(&field.node);
                }
                audience_filters_in(&field.node.selection_set, found);
            }
            Selection::InlineFragment(fragment) => {
                audience_filters_in(&fragment.node.selection_set, found);
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

/// The selection sets of every operation and fragment of `document`.
fn selection_sets(
    document: &ExecutableDocument,
) -> impl Iterator<Item = &Positioned<SelectionSet>> {
    let operations = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set);
    let fragments = document
        .fragments
        .values()
        .map(|fragment| &fragment.node.selection_set);
    operations.chain(fragments)
}

/// How deep the deepest operation of `document` nests its fields (through fragments), as
/// async-graphql's depth limit counts. Documents reaching validation nest at most 64 levels
/// (`limit_recursive_depth`); the count stops there all the same.
fn depth_of(document: &ExecutableDocument) -> usize {
    /// `hops` counts every step, fragment spreads included, so that a cycle of fragments
    /// (which validation refuses later) ends too.
    fn depth(
        document: &ExecutableDocument,
        set: &SelectionSet,
        level: usize,
        hops: usize,
    ) -> usize {
        if hops > 128 {
            return level;
        }
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => depth(
                    document,
                    &field.node.selection_set.node,
                    level + 1,
                    hops + 1,
                )
                .max(level + 1),
                Selection::InlineFragment(fragment) => {
                    depth(document, &fragment.node.selection_set.node, level, hops + 1)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(level, |fragment| {
                        depth(document, &fragment.node.selection_set.node, level, hops + 1)
                    }),
            })
            .max()
            .unwrap_or(level)
    }
    document
        .operations
        .iter()
        .map(|(_, op)| depth(document, &op.node.selection_set.node, 0, 0))
        .max()
        .unwrap_or(0)
}

fn count_aliases(document: &ExecutableDocument) -> usize {
    selection_sets(document).map(aliases_in).sum()
}

fn aliases_in(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + aliases_in(&field.node.selection_set)
            }
            Selection::InlineFragment(fragment) => aliases_in(&fragment.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aliases_in_operations_and_fragments() {
        let doc = async_graphql::parser::parse_query(
            "query { a: me { id } b: me { x: id } ...F } fragment F on Query { c: me { id } }",
        );
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => panic!("parse: {e}"),
        };
        assert_eq!(count_aliases(&doc), 4);
    }

    #[test]
    fn depth_counts_fields_through_fragments() {
        let doc = async_graphql::parser::parse_query(
            "{ me { id ... on User { a { b } } ...F } } fragment F on User { c { d { e } } }",
        );
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => panic!("parse: {e}"),
        };
        // me > c > d > e
        assert_eq!(depth_of(&doc), 4);
    }
}
