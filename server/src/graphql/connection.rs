//! The GraphQL side of pagination: `PageInfo`, the [`connection!`] macro every list's
//! `…Connection` / `…Edge` types are declared with, the page arguments as clients gave them
//! ([`page_args`]), what a page costs in the complexity limit ([`page_cost`]), and argument
//! helpers. Keyset logic and cursors are in [`crate::paging`], which knows nothing of GraphQL.
//!
//! async-graphql's own `connection` module is not used: its types fix the descriptions of
//! `edges`, `cursor`, `node` and `pageInfo`, bring a `PageInfo` of their own (the messages of a
//! conversation keep their `MessagePageInfo`), and validate arguments their own way, without
//! the argument's name in the error.

use async_graphql::{Context, SimpleObject, Value};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    paging::{self, PageArgs},
};

/// Where a page ends.
#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Whether items precede this page. Exact for a backward page (`last`); for a forward one,
    /// whether it starts after a cursor.
    pub has_previous_page: bool,
    /// Cursor of the first item of this page; pass it as `before` for the previous page.
    pub start_cursor: Option<String>,
    /// Cursor of the last item of this page; pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

impl From<paging::PageInfo> for PageInfo {
    fn from(info: paging::PageInfo) -> Self {
        Self {
            has_next_page: info.has_next_page,
            has_previous_page: info.has_previous_page,
            start_cursor: info.start_cursor,
            end_cursor: info.end_cursor,
        }
    }
}

/// Declares a connection type and its edge type, with their descriptions, the page-info type
/// and any further fields of the connection, and `from_page` to build it from a
/// [`paging::Page`] of its nodes (further fields as arguments, in order).
macro_rules! connection {
    (
        $(#[$conn_meta:meta])*
        $conn_vis:vis struct $conn:ident {
            $(#[$edges_meta:meta])* edges,
            $(#[$info_meta:meta])* page_info: $info:ty,
            $( $(#[$extra_meta:meta])* $extra_vis:vis $extra:ident : $extra_ty:ty, )*
        }
        $(#[$edge_meta:meta])*
        $edge_vis:vis struct $edge:ident {
            $(#[$cursor_meta:meta])* cursor,
            $(#[$node_meta:meta])* node: $node:ty $(,)?
        }
    ) => {
        #[derive(Debug, Clone, async_graphql::SimpleObject)]
        $(#[$conn_meta])*
        $conn_vis struct $conn {
            $(#[$edges_meta])*
            pub edges: Vec<$edge>,
            $(#[$info_meta])*
            pub page_info: $info,
            $( $(#[$extra_meta])* $extra_vis $extra: $extra_ty, )*
        }

        #[derive(Debug, Clone, async_graphql::SimpleObject)]
        $(#[$edge_meta])*
        $edge_vis struct $edge {
            $(#[$cursor_meta])*
            pub cursor: $crate::paging::Cursor,
            $(#[$node_meta])*
            pub node: $node,
        }

        impl $conn {
            /// The connection of `page`.
            #[allow(dead_code)]
            pub(crate) fn from_page(
                page: $crate::paging::Page<$node>,
                $($extra: $extra_ty),*
            ) -> Self {
                Self {
                    edges: page
                        .edges
                        .into_iter()
                        .map(|e| $edge {
                            cursor: e.cursor,
                            node: e.node,
                        })
                        .collect(),
                    page_info: <$info>::from(page.info),
                    $($extra,)*
                }
            }
        }
    };
}
pub(crate) use connection;

/// A cursor is a `String` in the schema, encoded when an answer shows it.
impl async_graphql::OutputType for paging::Cursor {
    fn type_name() -> std::borrow::Cow<'static, str> {
        <String as async_graphql::OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <String as async_graphql::OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        <String as async_graphql::OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _ctx: &async_graphql::ContextSelectionSet<'_>,
        _field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> async_graphql::ServerResult<Value> {
        Ok(Value::String(self.encode()))
    }
}

/// Which page argument carries the schema's default size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaulted {
    /// `first` (e.g. `first: Int = 20`): a `last` given without `first` replaces it.
    First,
    /// `last` (e.g. `last: Int = 50`): a `first` given without `last` replaces it.
    Last,
}

/// Whether the operation itself gives the current field's argument `name` a non-null value,
/// as opposed to the schema's default filling it in.
fn given(ctx: &Context<'_>, name: &str) -> bool {
    let Some(value) = ctx.item.node.get_argument(name) else {
        return false;
    };
    let env = ctx.query_env;
    let resolved = value.node.clone().into_const_with(|var| {
        let value = env.variables.get(&var).cloned().or_else(|| {
            env.operation
                .node
                .variable_definitions
                .iter()
                .find(|def| def.node.name.node == var)
                .and_then(|def| def.node.default_value().cloned())
        });
        Ok::<_, ()>(value.unwrap_or(Value::Null))
    });
    matches!(resolved, Ok(value) if value != Value::Null)
}

/// The page arguments of the current field as the client gave them: the argument with the
/// schema's default (`defaulted`) is dropped when only the other one is given, so `last: 5`
/// alone means the last five, not `first: 20, last: 5`.
pub fn page_args(
    ctx: &Context<'_>,
    defaulted: Defaulted,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> PageArgs {
    let (mut first, mut last) = (first, last);
    match defaulted {
        Defaulted::First if !given(ctx, "first") && given(ctx, "last") => first = None,
        Defaulted::Last if !given(ctx, "last") && given(ctx, "first") => last = None,
        _ => {}
    }
    PageArgs {
        first,
        after,
        last,
        before,
    }
}

/// What a page costs in the complexity limit: its size times its selection, plus one. `given`
/// is the page argument without a schema default, `defaulted` the one with it (see
/// [`Defaulted`]); the given one decides when present (with both, the page is refused), and
/// `default` applies when both are null. `last` so costs what `first` does.
pub fn page_cost(
    given: Option<i32>,
    defaulted: Option<i32>,
    default: i32,
    child_complexity: usize,
) -> usize {
    let size = given.or(defaulted).unwrap_or(default).max(0) as usize;
    size.saturating_mul(child_complexity).saturating_add(1)
}

/// Parses a GraphQL `ID` argument holding a UUID.
pub fn parse_id(path: &str, id: &async_graphql::ID) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::bad_input(path, format!("`{path}` is not a valid id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_costs_like_first() {
        assert_eq!(page_cost(None, Some(20), 20, 3), 61);
        assert_eq!(page_cost(Some(5), Some(20), 20, 3), 16);
        assert_eq!(page_cost(None, None, 50, 2), 101);
        assert_eq!(page_cost(Some(-4), None, 20, 2), 1);
    }
}
