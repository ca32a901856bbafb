//! Relay-style pagination (`PageInfo`, page sizes) and argument helpers. Cursors are made by
//! each connection, since they carry its sort key.

use async_graphql::SimpleObject;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Where a page ends.
#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Cursor of the last item of this page; pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// Checks `first` and returns it as a row limit.
pub fn page_size(first: i32) -> AppResult<u64> {
    if (1..=MAX_PAGE_SIZE).contains(&first) {
        Ok(first as u64)
    } else {
        Err(AppError::bad_input(
            "first",
            format!("`first` must be between 1 and {MAX_PAGE_SIZE}, got {first}"),
        ))
    }
}

/// Parses a GraphQL `ID` argument holding a UUID.
pub fn parse_id(path: &str, id: &async_graphql::ID) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::bad_input(path, format!("`{path}` is not a valid id")))
}

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE` patterns.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn page_size_bounds() {
        assert!(page_size(0).is_err());
        assert!(page_size(101).is_err());
        assert_eq!(page_size(20).ok(), Some(20));
    }
}
