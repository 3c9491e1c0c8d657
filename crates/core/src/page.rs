//! Lists paged by an opaque cursor (keyset paging): a page holds the items whose key sorts
//! after the cursor's, so rows added while a client pages through are never returned twice
//! and no row that existed when paging began is skipped.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The most items a page may hold, and the size of a page when none is asked for.
pub const MAX_LIMIT: usize = 500;
pub const DEFAULT_LIMIT: usize = 50;

/// Which page: after `cursor` (the previous page's [`Page::next`]), at most `limit` items.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// One page of a list, and the cursor of the next page if there is more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next }
    }
}

const CURSOR_PREFIX: &str = "k1:";

fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{key}"))
}

fn decode(cursor: &str) -> Result<String> {
    let bad = || Error::invalid_request("the cursor is not one this server made").at("cursor");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix(CURSOR_PREFIX).map(str::to_owned).ok_or_else(bad)
}

/// The page `req` asks for of `items`, each known by a unique `key` (sorted here by it).
pub fn page<T>(mut items: Vec<T>, key: impl Fn(&T) -> &str, req: &PageRequest) -> Result<Page<T>> {
    let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid_request(format!("limit must be 1-{MAX_LIMIT}")).at("limit"));
    }
    let after = req.cursor.as_deref().filter(|c| !c.is_empty()).map(decode).transpose()?;
    items.sort_by(|a, b| key(a).cmp(key(b)));
    let mut rest: Vec<T> = match &after {
        Some(a) => items.into_iter().filter(|i| key(i) > a.as_str()).collect(),
        None => items,
    };
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = if more { rest.last().map(|l| encode(key(l))) } else { None };
    Ok(Page { items: rest, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_keys() -> Result<()> {
        let words = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let req = PageRequest { cursor: None, limit: Some(2) };
        let p = page(words(&["c", "a", "b"]), |s| s, &req)?;
        assert_eq!(p.items, words(&["a", "b"]));
        // A row added before the cursor is not seen; one after it is.
        let req = PageRequest { cursor: p.next, limit: Some(2) };
        let p = page(words(&["c", "a", "b", "aa", "d"]), |s| s, &req)?;
        assert_eq!(p.items, words(&["c", "d"]));
        assert_eq!(p.next, None);
        assert!(page(words(&["a"]), |s| s, &PageRequest { cursor: Some("!!".into()), limit: None }).is_err());
        assert!(page(words(&["a"]), |s| s, &PageRequest { cursor: None, limit: Some(0) }).is_err());
        Ok(())
    }
}
