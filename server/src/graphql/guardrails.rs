//! Limits on every operation (depth, complexity, aliases), strings PostgreSQL cannot store
//! refused before anything runs ([`super::storable`]), and the final touches on every
//! response: error codes, request ids on internal errors, and ending each operation's database
//! scope ([`super::scope_end`]).

use std::{any::TypeId, collections::HashMap, sync::Arc};

use async_graphql::{
    Name, Pos, Positioned, Request, Response, ServerError, ServerResult, ValidationResult, Value,
    Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
        NextPrepareRequest, NextRequest, NextValidation,
    },
    parser::types::{ExecutableDocument, Field, Selection, SelectionSet},
};

use crate::{
    audience::cost::{self, Budget},
    auth::Viewer,
    config::Config,
    db::{RequestBudget, RequestScope},
    error::{AppError, RequestId, code},
    state::AppState,
};

/// The root fields that evaluate the audience filter given as their `filter` argument.
const AUDIENCE_FIELDS: [&str; 2] = ["audience", "audienceSize"];

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
}

/// The extension enforcing [`Limits`] and finishing responses.
#[derive(Debug, Clone)]
pub struct Guardrails(Arc<Limits>);

impl Guardrails {
    pub fn new(limits: Limits) -> Self {
        Self(Arc::new(limits))
    }
}

impl ExtensionFactory for Guardrails {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
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

#[async_trait::async_trait]
impl Extension for Guardrails {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        give_codes(&mut response.errors);
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Operations over the WebSocket carry the connection's viewer; give each one its own
        // database scope, as the HTTP handler does for HTTP requests.
        if let Some(state) = ctx.data_opt::<AppState>() {
            if !request
                .data
                .contains_key(&TypeId::of::<Arc<RequestScope>>())
                && let Some(viewer) = ctx.data_opt::<Viewer>()
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
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        // Strings PostgreSQL cannot store are refused before anything runs.
        super::storable::check_variables(variables)?;
        let document = next.run(ctx, query, variables).await?;
        super::storable::check_document(&document)?;
        let aliases = count_aliases(&document);
        if aliases > self.0.max_aliases {
            return Err(limit_error(format!(
                "the operation uses {aliases} aliases, over the limit of {} (GRAPHQL_MAX_ALIASES)",
                self.0.max_aliases
            )));
        }
        // The audience filters written into the document are paid for before anything runs,
        // from the budget the whole request (every operation of a batch) shares.
        if let Some(budget) = ctx.data_opt::<Arc<Budget>>() {
            spend_audience_values(budget, &document, variables).map_err(request_error)?;
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.depth > self.0.max_depth {
            return Err(vec![limit_error(format!(
                "the query is {} levels deep, over the depth limit of {} (GRAPHQL_MAX_DEPTH)",
                result.depth, self.0.max_depth
            ))]);
        }
        if result.complexity > self.0.max_complexity {
            return Err(vec![limit_error(format!(
                "the query's complexity is {}, over the complexity limit of {} \
                 (GRAPHQL_MAX_COMPLEXITY)",
                result.complexity, self.0.max_complexity
            ))]);
        }
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        // Each operation's database scope ends once its fields ran.
        super::scope_end::end(ctx, &mut response).await;
        if let Some(RequestId(id)) = ctx.data_opt::<RequestId>() {
            tag_internal_errors(&mut response.errors, id);
        }
        response
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
}
