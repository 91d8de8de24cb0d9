//! Write keys: where a request's key comes from, which source it maps to, which origins may use it.
//!
//! Keys are compared in constant time against every configured key, so response timing does not
//! reveal how much of a guessed key matched. Source names become directory names, so they are
//! restricted to `[A-Za-z0-9_-]` (no path traversal) when the configuration is validated.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use base64::Engine;
use subtle::ConstantTimeEq;

/// Which origins may send with a key from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    Any,
    /// Lower-cased `scheme://host[:port]` values.
    List(Vec<String>),
}

/// One configured write key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// Position in the `KeyStore`: a cheap, stable id (per-key rate limits).
    index: usize,
    key: Vec<u8>,
    source: Arc<str>,
    origins: OriginPolicy,
}

impl KeyEntry {
    pub fn new(key: String, source: String, origins: OriginPolicy) -> Self {
        Self {
            index: 0,
            key: key.into_bytes(),
            source: source.into(),
            origins,
        }
    }

    /// A stable id of this key within its `KeyStore`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The source name events sent with this key are written under.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn source_arc(&self) -> Arc<str> {
        self.source.clone()
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        match &self.origins {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// The configured keys.
#[derive(Debug, Clone)]
pub struct KeyStore {
    entries: Vec<KeyEntry>,
}

impl KeyStore {
    pub fn new(mut entries: Vec<KeyEntry>) -> Self {
        for (i, e) in entries.iter_mut().enumerate() {
            e.index = i;
        }
        Self { entries }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Finds the entry for `key`, comparing against every entry in constant time per entry.
    pub fn lookup(&self, key: &str) -> Option<&KeyEntry> {
        let mut found = None;
        for entry in &self.entries {
            // No early return: every configured key costs the same whether or not it matches.
            if bool::from(entry.key.as_slice().ct_eq(key.as_bytes())) {
                found = Some(entry);
            }
        }
        found
    }

    /// Distinct source names, in configuration order (one writer stream each).
    pub fn sources(&self) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for e in &self.entries {
            if !out.contains(&e.source) {
                out.push(e.source.clone());
            }
        }
        out
    }

    /// Whether any key accepts `origin`: used when the key is not (yet) known, e.g. preflights.
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.entries.iter().any(|e| e.allows_origin(origin))
    }
}

/// A source name is safe as a single path component.
pub fn is_valid_source_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Where a key was found, for the response message when it is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFrom {
    /// `Authorization: Basic base64(key:)`.
    BasicAuth(String),
    /// `?writeKey=`.
    Query(String),
}

impl KeyFrom {
    pub fn key(&self) -> &str {
        match self {
            KeyFrom::BasicAuth(k) | KeyFrom::Query(k) => k,
        }
    }
}

/// An `Authorization` header that is not Basic auth with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Authorization must be Basic with the write key as user name")]
pub struct MalformedAuthorization;

/// The key carried outside the body: Basic auth user name first, then `?writeKey=`.
pub fn key_from_request(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<KeyFrom>, MalformedAuthorization> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| MalformedAuthorization)?;
        let (scheme, encoded) = value.trim().split_once(' ').ok_or(MalformedAuthorization)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(MalformedAuthorization);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| MalformedAuthorization)?;
        let decoded = String::from_utf8(decoded).map_err(|_| MalformedAuthorization)?;
        // Segment: key as user name, empty password. Tolerate a missing colon.
        let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
        if !user.is_empty() {
            return Ok(Some(KeyFrom::BasicAuth(user.to_owned())));
        }
    }
    Ok(query.and_then(query_write_key).map(KeyFrom::Query))
}

/// `writeKey` from a query string (percent-decoded).
fn query_write_key(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "writeKey" && !value.is_empty()).then(|| percent_decode(value))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn store() -> KeyStore {
        KeyStore::new(vec![
            KeyEntry::new("k1".into(), "web".into(), OriginPolicy::Any),
            KeyEntry::new(
                "k2".into(),
                "app".into(),
                OriginPolicy::List(vec!["https://a.example".into()]),
            ),
        ])
    }

    #[test]
    fn lookup_matches_whole_keys_only() {
        let s = store();
        assert_eq!(s.lookup("k1").unwrap().source(), "web");
        assert_eq!(s.lookup("k2").unwrap().source(), "app");
        assert!(s.lookup("k").is_none());
        assert!(s.lookup("k12").is_none());
        assert!(s.lookup("").is_none());
    }

    #[test]
    fn origins() {
        let s = store();
        assert!(s.lookup("k2").unwrap().allows_origin("https://A.example"));
        assert!(!s.lookup("k2").unwrap().allows_origin("https://b.example"));
        assert!(s.any_allows_origin("https://b.example"));
    }

    #[test]
    fn source_names() {
        assert!(is_valid_source_name("web_1-a"));
        for bad in ["", "..", "a/b", "a.b", "a b", &"x".repeat(65)] {
            assert!(!is_valid_source_name(bad), "{bad}");
        }
    }

    #[test]
    fn key_sources() {
        let mut h = HeaderMap::new();
        // base64("k1:") = "azE6"
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic azE6"),
        );
        assert_eq!(
            key_from_request(&h, Some("writeKey=zz")).unwrap(),
            Some(KeyFrom::BasicAuth("k1".into()))
        );
        let empty = HeaderMap::new();
        assert_eq!(
            key_from_request(&empty, Some("a=1&writeKey=a%2Bb")).unwrap(),
            Some(KeyFrom::Query("a+b".into()))
        );
        assert_eq!(key_from_request(&empty, Some("writeKey=")).unwrap(), None);
        assert_eq!(key_from_request(&empty, None).unwrap(), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(key_from_request(&h, None).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(key_from_request(&h, None).is_err());
    }
}
