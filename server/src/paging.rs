//! Keyset pagination, shared by every list of the API and independent of GraphQL and of the
//! database.
//!
//! A list is ordered by a total sort key (its columns end with a unique id). A client asks for
//! a page with Relay's arguments ([`PageArgs`]: `first`/`after` forwards, `last`/`before`
//! backwards), which [`PageArgs::validate`] checks once, decoding the cursors into sort keys.
//! The services turn the request into SQL (`crate::services::keyset`: a row-value comparison
//! past the cursors, the order, reversed for backward pages, and a limit of one more row than
//! asked for), and [`Page::build`] turns the rows into a page: in list order, each with its
//! cursor, and Relay's `hasNextPage` / `hasPreviousPage`.
//!
//! Cursors are opaque to clients: base64url of `[version, list, key]`, so a cursor of another
//! list (or of another ordering of the same list, which has a list name of its own), of an
//! older version or not made by this API is refused with `BAD_USER_INPUT` naming the argument.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{AppError, AppResult};

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Version of the cursor format; cursors of other versions are refused.
const CURSOR_VERSION: u32 = 1;

/// The page arguments as a client gave them (a schema default already applied, or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageArgs {
    /// The first this many items (after `after`).
    pub first: Option<i32>,
    /// Cursor the page starts after.
    pub after: Option<String>,
    /// The last this many items (before `before`).
    pub last: Option<i32>,
    /// Cursor the page ends before.
    pub before: Option<String>,
}

/// Which end of the window a page is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The first items of the window (`first`).
    Forward,
    /// The last items of the window (`last`).
    Backward,
}

/// A list's page size when the client gives neither `first` nor `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultSize {
    /// As if `first` were given.
    First(u64),
    /// As if `last` were given.
    Last(u64),
}

/// Validated page arguments, cursors decoded into sort keys of type `K`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// Which end of the window the page is taken from.
    pub direction: Direction,
    /// How many items at most.
    pub limit: u64,
    /// Only items past this key (in list order).
    pub after: Option<K>,
    /// Only items before this key (in list order).
    pub before: Option<K>,
}

impl<K> PageRequest<K> {
    /// The first `limit` items of the list.
    pub fn first(limit: u64) -> Self {
        Self {
            direction: Direction::Forward,
            limit,
            after: None,
            before: None,
        }
    }
}

fn size(field: &str, value: i32) -> AppResult<u64> {
    if (1..=MAX_PAGE_SIZE).contains(&value) {
        Ok(value as u64)
    } else {
        Err(AppError::bad_input(
            field,
            format!("`{field}` must be between 1 and {MAX_PAGE_SIZE}, got {value}"),
        ))
    }
}

impl PageArgs {
    /// Checks the arguments for `list` (the name its cursors carry): `first` and `last` are
    /// 1 to [`MAX_PAGE_SIZE`] and not both given; `after` and `before` are cursors of `list`.
    /// Every mistake is `BAD_USER_INPUT` naming the argument.
    pub fn validate<K: DeserializeOwned>(
        self,
        list: &str,
        default: DefaultSize,
    ) -> AppResult<PageRequest<K>> {
        let (direction, limit) = match (self.first, self.last) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_input(
                    "last",
                    "give `first` or `last`, not both",
                ));
            }
            (Some(first), None) => (Direction::Forward, size("first", first)?),
            (None, Some(last)) => (Direction::Backward, size("last", last)?),
            (None, None) => match default {
                DefaultSize::First(n) => (Direction::Forward, n),
                DefaultSize::Last(n) => (Direction::Backward, n),
            },
        };
        let after = self
            .after
            .as_deref()
            .map(|text| decode_cursor(list, text, "after"))
            .transpose()?;
        let before = self
            .before
            .as_deref()
            .map(|text| decode_cursor(list, text, "before"))
            .transpose()?;
        Ok(PageRequest {
            direction,
            limit,
            after,
            before,
        })
    }
}

/// The cursor of the item with sort key `key` in `list`.
pub fn encode_cursor<K: Serialize + ?Sized>(list: &str, key: &K) -> String {
    // Serializing tuples of strings, numbers, times and ids cannot fail.
    let bytes = serde_json::to_vec(&(CURSOR_VERSION, list, key)).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The sort key of a cursor of `list`; `BAD_USER_INPUT` at `field` for anything else.
pub fn decode_cursor<K: DeserializeOwned>(list: &str, text: &str, field: &str) -> AppResult<K> {
    let bad = || {
        AppError::bad_input(
            field,
            format!("`{field}` is not a cursor of this list returned by this API"),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let (version, name, key): (u32, String, serde_json::Value) =
        serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if version != CURSOR_VERSION || name != list {
        return Err(bad());
    }
    serde_json::from_value(key).map_err(|_| bad())
}

/// The cursor of an item, encoded ([`encode_cursor`]) only when it is read: a page's edges
/// all have one, but answers seldom show more than the page's last.
#[derive(Clone)]
pub struct Cursor(std::sync::Arc<dyn Fn() -> String + Send + Sync>);

impl Cursor {
    /// The cursor of the item with sort key `key` in `list`.
    pub fn new<K: Serialize + Send + Sync + 'static>(list: &'static str, key: K) -> Self {
        Self(std::sync::Arc::new(move || encode_cursor(list, &key)))
    }

    /// The cursor as clients get it.
    pub fn encode(&self) -> String {
        (self.0)()
    }
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cursor").field(&self.encode()).finish()
    }
}

impl PartialEq for Cursor {
    fn eq(&self, other: &Self) -> bool {
        self.encode() == other.encode()
    }
}

impl Eq for Cursor {}

/// An item of a page and its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge<T> {
    /// Pass it as `after` or `before` to page on from this item.
    pub cursor: Cursor,
    /// The item.
    pub node: T,
}

/// Where a page stands in its list (Relay's `PageInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// Whether items follow this page.
    pub has_next_page: bool,
    /// Whether items precede this page.
    pub has_previous_page: bool,
    /// Cursor of the first item of the page.
    pub start_cursor: Option<String>,
    /// Cursor of the last item of the page.
    pub end_cursor: Option<String>,
}

/// A page of a list, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, each with its cursor.
    pub edges: Vec<Edge<T>>,
    /// Where the page stands.
    pub info: PageInfo,
}

impl<T> Page<T> {
    /// The page of `rows`, as fetched by `services::keyset` for `request` (at most one row more than
    /// the page, backward pages in reverse), `key` giving each row's sort key in `list`.
    ///
    /// The side the page was read towards is exact: the extra row tells whether more items
    /// follow a forward page (`hasNextPage`) or precede a backward one (`hasPreviousPage`).
    /// The other side is not counted, as Relay allows: a forward page has a previous page
    /// when it starts after a cursor, a backward page a next page when it ends before one.
    /// That is exact unless the items on that side were deleted since the cursor was made.
    pub fn build<K: Serialize + Send + Sync + 'static>(
        mut rows: Vec<T>,
        request: &PageRequest<K>,
        list: &'static str,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let (has_next_page, has_previous_page) = match request.direction {
            Direction::Forward => (more, request.after.is_some()),
            Direction::Backward => {
                rows.reverse();
                (request.before.is_some(), more)
            }
        };
        let edges: Vec<Edge<T>> = rows
            .into_iter()
            .map(|row| Edge {
                cursor: Cursor::new(list, key(&row)),
                node: row,
            })
            .collect();
        let info = PageInfo {
            has_next_page,
            has_previous_page,
            start_cursor: edges.first().map(|e| e.cursor.encode()),
            end_cursor: edges.last().map(|e| e.cursor.encode()),
        };
        Page { edges, info }
    }

    /// The same page of `f(item)`.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            edges: self
                .edges
                .into_iter()
                .map(|e| Edge {
                    cursor: e.cursor,
                    node: f(e.node),
                })
                .collect(),
            info: self.info,
        }
    }

    /// The same page of `f(item)`, or the first error of `f`.
    pub fn try_map<U, E>(self, mut f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        let edges = self
            .edges
            .into_iter()
            .map(|e| {
                Ok(Edge {
                    cursor: e.cursor,
                    node: f(e.node)?,
                })
            })
            .collect::<Result<_, E>>()?;
        Ok(Page {
            edges,
            info: self.info,
        })
    }

    /// The same page of the items `f` keeps, as `f(item)`. The page info is kept, so the
    /// cursors still continue from where the rows read ended.
    pub fn filter_map<U>(self, mut f: impl FnMut(T) -> Option<U>) -> Page<U> {
        Page {
            edges: self
                .edges
                .into_iter()
                .filter_map(|e| {
                    f(e.node).map(|node| Edge {
                        cursor: e.cursor,
                        node,
                    })
                })
                .collect(),
            info: self.info,
        }
    }

    /// The items, in order.
    pub fn nodes(&self) -> impl Iterator<Item = &T> {
        self.edges.iter().map(|e| &e.node)
    }
}

/// A list's `search` argument, trimmed (`None` when empty); longer than 200 characters is
/// `BAD_USER_INPUT` at `search`.
pub fn search_text(search: Option<String>) -> AppResult<Option<String>> {
    let search = search
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(AppError::bad_input(
            "search",
            "`search` is longer than 200 characters",
        ));
    }
    Ok(search)
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
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    fn args(first: Option<i32>, last: Option<i32>) -> PageArgs {
        PageArgs {
            first,
            last,
            ..PageArgs::default()
        }
    }

    fn path_of<T: std::fmt::Debug>(result: AppResult<T>) -> Option<String> {
        match result {
            Err(AppError::BadUserInput { path, .. }) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn cursors_round_trip_in_their_list_only() -> AppResult<()> {
        let key = ("Zoë | \"quoted\"".to_owned(), Uuid::now_v7());
        let cursor = encode_cursor("friends", &key);
        let back: AppResult<(String, Uuid)> = decode_cursor("friends", &cursor, "after");
        assert_eq!(back.ok(), Some(key.clone()));
        // Another list, even with a key of the same shape.
        let other: AppResult<(String, Uuid)> = decode_cursor("presets", &cursor, "after");
        assert_eq!(path_of(other), Some("after".into()));
        // Another shape of key.
        let shape: AppResult<(i64,)> = decode_cursor("friends", &cursor, "before");
        assert_eq!(path_of(shape), Some("before".into()));
        // Not a cursor at all, and another version.
        let garbage: AppResult<(i64,)> = decode_cursor("friends", "garbage!", "after");
        assert_eq!(path_of(garbage), Some("after".into()));
        let old = serde_json::to_vec(&(0, "friends", &key)).map_err(AppError::internal)?;
        let old = URL_SAFE_NO_PAD.encode(old);
        let old: AppResult<(String, Uuid)> = decode_cursor("friends", &old, "after");
        assert!(old.is_err());
        Ok(())
    }

    #[test]
    fn times_round_trip_to_the_microsecond() -> AppResult<()> {
        let at = DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("out of range")))?;
        let cursor = encode_cursor("knowledge", &(at, Uuid::nil()));
        let back: (DateTime<Utc>, Uuid) = decode_cursor("knowledge", &cursor, "after")?;
        assert_eq!(back.0, at);
        Ok(())
    }

    #[test]
    fn arguments_are_checked_with_the_argument_named() -> AppResult<()> {
        let forward = DefaultSize::First(20);
        let ok: PageRequest<(i64,)> = args(None, None).validate("l", forward)?;
        assert_eq!(ok, PageRequest::first(20));
        let back: PageRequest<(i64,)> = args(None, None).validate("l", DefaultSize::Last(50))?;
        assert_eq!((back.direction, back.limit), (Direction::Backward, 50));
        let last: PageRequest<(i64,)> = args(None, Some(7)).validate("l", forward)?;
        assert_eq!((last.direction, last.limit), (Direction::Backward, 7));
        let check = |a: PageArgs| path_of(a.validate::<(i64,)>("l", forward));
        assert_eq!(check(args(Some(1), Some(1))), Some("last".into()));
        assert_eq!(check(args(Some(0), None)), Some("first".into()));
        assert_eq!(check(args(Some(101), None)), Some("first".into()));
        assert_eq!(check(args(None, Some(-1))), Some("last".into()));
        assert_eq!(check(args(Some(100), None)), None);
        let cursor = encode_cursor("l", &(5i64,));
        let both = PageArgs {
            after: Some(cursor.clone()),
            before: Some("nope".into()),
            ..args(Some(3), None)
        };
        assert_eq!(check(both), Some("before".into()));
        let fine: PageRequest<(i64,)> = PageArgs {
            after: Some(cursor.clone()),
            before: Some(cursor),
            ..args(Some(3), None)
        }
        .validate("l", forward)?;
        assert_eq!((fine.after, fine.before), (Some((5,)), Some((5,))));
        Ok(())
    }

    fn request(direction: Direction, limit: u64, cursor: bool) -> PageRequest<(i64,)> {
        PageRequest {
            direction,
            limit,
            after: (cursor && direction == Direction::Forward).then_some((0,)),
            before: (cursor && direction == Direction::Backward).then_some((100,)),
        }
    }

    fn keys(page: &Page<i64>) -> Vec<i64> {
        page.nodes().copied().collect()
    }

    #[test]
    fn forward_pages_know_what_follows() {
        let key = |n: &i64| (*n,);
        let page = Page::build(
            vec![1, 2, 3],
            &request(Direction::Forward, 2, false),
            "l",
            key,
        );
        assert_eq!(keys(&page), [1, 2]);
        assert!(page.info.has_next_page && !page.info.has_previous_page);
        assert_eq!(page.info.start_cursor, Some(encode_cursor("l", &(1i64,))));
        assert_eq!(page.info.end_cursor, Some(encode_cursor("l", &(2i64,))));
        let last = Page::build(vec![3, 4], &request(Direction::Forward, 2, true), "l", key);
        assert_eq!(keys(&last), [3, 4]);
        assert!(!last.info.has_next_page && last.info.has_previous_page);
    }

    #[test]
    fn backward_pages_are_put_back_in_list_order() {
        let key = |n: &i64| (*n,);
        // Fetched newest first: 9, 8, then one more.
        let page = Page::build(
            vec![9, 8, 7],
            &request(Direction::Backward, 2, false),
            "l",
            key,
        );
        assert_eq!(keys(&page), [8, 9]);
        assert!(!page.info.has_next_page && page.info.has_previous_page);
        assert_eq!(page.edges[0].cursor.encode(), encode_cursor("l", &(8i64,)));
        let first = Page::build(vec![2, 1], &request(Direction::Backward, 5, true), "l", key);
        assert_eq!(keys(&first), [1, 2]);
        assert!(first.info.has_next_page && !first.info.has_previous_page);
    }

    #[test]
    fn empty_pages_have_no_cursors() {
        let page = Page::build(
            Vec::<i64>::new(),
            &request(Direction::Forward, 3, false),
            "l",
            |n| (*n,),
        );
        assert!(page.edges.is_empty());
        assert_eq!(page.info, PageInfo::default());
    }

    #[test]
    fn search_text_is_trimmed_and_bounded() {
        assert_eq!(
            search_text(Some("  ann ".into())).ok(),
            Some(Some("ann".into()))
        );
        assert_eq!(search_text(Some("   ".into())).ok(), Some(None));
        assert_eq!(search_text(None).ok(), Some(None));
        assert!(search_text(Some("é".repeat(200))).is_ok());
        assert_eq!(
            path_of(search_text(Some("x".repeat(201)))),
            Some("search".into())
        );
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
