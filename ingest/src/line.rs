//! The request path's message pipeline: validate, enrich and encode each message into its NDJSON
//! line straight from the body's bytes, without building a `serde_json::Value` tree.
//!
//! `validate::validate_message` + `enrich::enrich` + re-serialising the `Value` is the reference
//! (unit-tested rule by rule, and what the fuzz targets drive); this module gives byte-identical
//! lines and the same rejections at a fraction of the cost (issue 5: the JSON round trip was
//! ~70 % of a batch's CPU). It parses only the top level of each message (and of its `context`)
//! into a map of raw JSON slices borrowed from the body, and copies every other value through
//! verbatim when its text is already what serde_json would write for it — compact, object keys
//! sorted and unique, no escapes serde_json would not produce, integers that fit 64 bits. Other
//! values (whitespace, unsorted or duplicate keys, floats, `\u` escapes…) take the reference path
//! for that value alone: parsed into a `Value` and written back. So a line is still exactly one
//! compact JSON object with every object's keys sorted, duplicates resolved last-wins, and sizes
//! (`max_size`) are still those of the compact encoding. `differential` checks the two paths
//! against each other, for `tests` and the `line_pipeline` fuzz target.
//!
//! serde_json's recursion limit does not apply to raw values, so the scanner counts depth itself;
//! anything unusual (too deep, a number out of range, a lone surrogate) sends the caller back to
//! the reference parser of the whole body for its exact error (`BodyError`).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::net::IpAddr;

use serde::de::{Deserialize, Deserializer, Visitor};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::bots::is_bot;
use crate::enrich::{anonymise_ip, format_rfc3339_ms, rfc3339_ms_ascii, write_rfc3339_ms};
use crate::sink::Lines;
use crate::validate::{parse_timestamp, MessageType, RuleViolation, MAX_MESSAGE_ID_CHARS};

/// Depth a raw value may reach below its position before the body is re-checked by the reference
/// parser (serde_json's limit is 128 for the whole body; messages sit at most 5 levels down).
const DEPTH_BUDGET: usize = 100;

/// The body cannot be handled here: re-parse it with `decode::parse_json` for the exact error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyError;

/// A JSON string or object key, borrowed from the body when it has no escapes.
///
/// Borrowed text never needs escaping to be written as JSON: it is a string the body wrote
/// without a backslash (so, being valid JSON, without `"` or control characters either), or a
/// literal of this crate. Keys are written and measured on that ground (`is_plain`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    /// Written as JSON, the text between the quotes is the text itself (see the type's doc).
    fn is_plain(&self) -> bool {
        let plain = matches!(self.0, Cow::Borrowed(_));
        debug_assert!(!plain || string_stop(self.0.as_bytes(), 0) == self.0.len());
        plain
    }

    /// `escaped_len` of the text.
    fn escaped_len(&self) -> usize {
        if self.is_plain() {
            self.0.len() + 2
        } else {
            escaped_len(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// One value's text, as split from the body, and whether it is already canonical.
#[derive(Debug, Clone, Copy)]
pub struct RawVal<'a> {
    text: &'a str,
    scan: Scan,
}

impl<'a> RawVal<'a> {
    pub fn get(&self) -> &'a str {
        self.text
    }
}

/// Byte order of two (short) keys, as `str`'s `Ord` — inline: a libc `memcmp` call per
/// comparison was ~9 % of a batch's instructions.
#[inline]
fn key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Whether the key at `key` (a span of `s`) keeps its object in serde_json's canonical form:
/// after the previous key `prev` in byte order (sorted and unique, as a BTreeMap writes them),
/// and unescaped (an escaped key is ordered by its decoded text: left to serde_json).
// Inline: `Checker::value` calls it for every key of a judged object (~25 instructions of
// call a key, callgrind).
#[inline]
fn key_in_order(
    s: &[u8],
    prev: Option<(usize, usize)>,
    key: (usize, usize),
    escaped: bool,
) -> bool {
    !escaped && prev.is_none_or(|(ps, pe)| key_cmp(&s[ps..pe], &s[key.0..key.1]).is_lt())
}

/// One object level, sorted by key; of duplicate keys the last wins (as in serde_json).
#[derive(Debug, Clone)]
pub struct Obj<'a, V>(Vec<(Str<'a>, V)>);

impl<V> Default for Obj<'_, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'a, V> Obj<'a, V> {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Sorts pairs in input order by key, keeping the last of equal keys.
    /// The sorted, deduplicated object, and whether a duplicate key shadowed a value. A
    /// shadowed value is never looked at again, so the caller must have it checked another way:
    /// the reference parser refuses the whole body for a number out of range or a lone
    /// surrogate even in a value a later duplicate key replaces (found by the line_pipeline
    /// fuzzer).
    fn from_pairs(mut pairs: Vec<(Str<'a>, V)>) -> (Self, bool) {
        // Stable: equal keys stay in input order.
        pairs.sort_by(|a, b| key_cmp(a.0 .0.as_bytes(), b.0 .0.as_bytes()));
        // In place (no second vector): `dedup_by` hands the later of two equal keys first and
        // drops it, so its value moves into the one kept.
        let mut shadowed = false;
        pairs.dedup_by(|later, kept| {
            let equal = key_cmp(later.0 .0.as_bytes(), kept.0 .0.as_bytes()).is_eq();
            if equal {
                std::mem::swap(&mut later.1, &mut kept.1);
                shadowed = true;
            }
            equal
        });
        (Self(pairs), shadowed)
    }

    fn find(&self, k: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|(key, _)| key_cmp(key.0.as_bytes(), k.as_bytes()))
    }

    pub fn get(&self, k: &Str<'_>) -> Option<&V> {
        self.get_str(&k.0)
    }

    fn get_str(&self, k: &str) -> Option<&V> {
        self.find(k).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, k: &Str<'_>) -> bool {
        self.find(&k.0).is_ok()
    }

    pub fn remove(&mut self, k: &Str<'_>) -> Option<V> {
        self.find(&k.0).ok().map(|i| self.0.remove(i).1)
    }

    pub fn insert(&mut self, k: Str<'a>, v: V) {
        match self.find(&k.0) {
            Ok(i) => self.0[i].1 = v,
            Err(i) => self.0.insert(i, (k, v)),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Str<'a>, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    fn iter_pairs(&self) -> std::slice::Iter<'_, (Str<'a>, V)> {
        self.0.iter()
    }
}

/// Where `keys` (sorted, unique) are in `obj`: one merge of the two sorted lists, where a
/// binary search per key cost ~150 instructions each (~20 per message).
fn positions<V, const N: usize>(obj: &Obj<'_, V>, keys: &[&str; N]) -> [Option<usize>; N] {
    debug_assert!(keys
        .windows(2)
        .all(|w| key_cmp(w[0].as_bytes(), w[1].as_bytes()).is_lt()));
    let mut out = [None; N];
    let (mut i, mut j) = (0, 0);
    while let (Some((k, _)), Some(wanted)) = (obj.0.get(i), keys.get(j)) {
        match key_cmp(k.0.as_bytes(), wanted.as_bytes()) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out[j] = Some(i);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

impl<'a, V> IntoIterator for Obj<'a, V> {
    type Item = (Str<'a>, V);
    type IntoIter = std::vec::IntoIter<(Str<'a>, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'o, 'a, V> IntoIterator for &'o Obj<'a, V> {
    type Item = (&'o Str<'a>, &'o V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'o, (Str<'a>, V)>,
        fn(&'o (Str<'a>, V)) -> (&'o Str<'a>, &'o V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// One object level of the body: keys to raw values.
pub type RawObject<'a> = Obj<'a, RawVal<'a>>;

/// Canonical (serde_json-compact) JSON text of one value.
#[derive(Debug, Clone)]
pub enum Json<'a> {
    Raw(&'a str),
    /// A string without a backslash, as the body wrote it: the text between its quotes is the
    /// string (`string_of` takes it without looking; the one-pass check judged it so).
    Plain(&'a str),
    Owned(String),
}

impl Json<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Json::Raw(s) | Json::Plain(s) => s,
            Json::Owned(s) => s,
        }
    }
}

/// An object level in canonical form, keys sorted.
type Fields<'a> = Obj<'a, Json<'a>>;

/// The body's top level: its fields, and the elements of its `batch` array when
/// `top_level::split_body` split them on the way.
pub struct TopLevel<'a> {
    pub fields: RawObject<'a>,
    batch: Option<Batch<'a>>,
    /// The `context` field's members, when it is an object `split_body` split on the way.
    context: Option<RawObject<'a>>,
}

impl<'a> TopLevel<'a> {
    /// Removes the `batch` field and splits it into its raw elements. `None` = no `batch`, or
    /// not an array.
    pub fn take_batch(&mut self, body: &Body<'_>) -> Result<Option<Batch<'a>>, BodyError> {
        match self.fields.remove(&key("batch")) {
            None => Ok(None),
            Some(raw) => match self.batch.take() {
                Some(elements) => Ok(Some(elements)),
                None => Ok(parse_array(raw, body)?.map(|b| Batch(Elements::Raw(b)))),
            },
        }
    }

    /// Removes the `context` field: `Ok` with its fields when it is an object (as
    /// `split_object` with `Mode::Scan` splits it), `Err` with its text when it is not.
    pub fn take_context(
        &mut self,
        body: &Body<'_>,
    ) -> Result<Option<Result<RawObject<'a>, RawVal<'a>>>, BodyError> {
        match self.fields.remove(&key("context")) {
            None => Ok(None),
            Some(raw) if raw.get().starts_with('{') => match self.context.take() {
                Some(split) => Ok(Some(Ok(split))),
                None => Ok(Some(Ok(split_object(raw, body, Mode::Scan)?))),
            },
            Some(raw) => Ok(Some(Err(raw))),
        }
    }

    /// The top level as one message (a single-message endpoint's body), with its `context`
    /// when that was split on the way.
    pub fn into_message(self) -> Message<'a> {
        Message {
            fields: self.fields,
            context: self.context,
            layout: None,
            context_layout: None,
        }
    }
}

/// A `batch` array's elements: split by the one-pass check (`top_level`), or raw, as
/// `parse_array` finds them, for `message_object` to split.
pub struct Batch<'a>(Elements<'a>);

enum Elements<'a> {
    Split(top_level::SplitBatch<'a>),
    Raw(Vec<RawVal<'a>>),
}

impl<'a> Batch<'a> {
    pub fn len(&self) -> usize {
        match &self.0 {
            Elements::Split(b) => b.len(),
            Elements::Raw(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`, as `message_object` makes it of its text (in `scratch`'s vectors when it
    /// has them).
    pub fn message(
        &self,
        i: usize,
        body: &Body<'_>,
        scratch: &mut Scratch<'a>,
    ) -> Result<Result<Message<'a>, RuleViolation>, BodyError> {
        match &self.0 {
            Elements::Split(b) => b.message(i, body, scratch),
            Elements::Raw(b) => message_object(b[i], body),
        }
    }
}

/// Parses the body's top level. `Err` = not an object, or not JSON at all.
///
/// One validating pass (`top_level`) when the body is plain; otherwise serde_json checks the
/// whole text is JSON (without building anything), then it is split here.
pub fn parse_body<'a>(text: &'a str, body: &Body<'_>) -> Result<TopLevel<'a>, BodyError> {
    match top_level::split_body(text) {
        Some(top) => Ok(top),
        None => parse_body_in_passes(text, body),
    }
}

/// `parse_body` without the one-pass split: what it falls back to (public for `differential`,
/// which holds the two ways to the same result).
#[doc(hidden)]
pub fn parse_body_in_passes<'a>(text: &'a str, body: &Body<'_>) -> Result<TopLevel<'a>, BodyError> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|_| BodyError)?;
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if !trimmed.starts_with('{') {
        return Err(BodyError);
    }
    let fields = split_object(
        RawVal {
            text: trimmed,
            scan: Scan::Unknown,
        },
        body,
        Mode::Skip,
    )?;
    Ok(TopLevel {
        fields,
        batch: None,
        context: None,
    })
}

/// Splits an object value (already known to be valid JSON) into its sorted, deduplicated
/// fields, judging each value's canonical form on the way (one pass).
pub fn split_object<'a>(
    raw: RawVal<'a>,
    body: &Body<'_>,
    mode: Mode,
) -> Result<RawObject<'a>, BodyError> {
    let text = raw.text;
    let mut sc = Scanner {
        s: text.as_bytes(),
        i: 1,
        canonical: true,
    };
    split_fields(&mut sc, text, body, mode, None)
}

/// The fields of the object whose `{` is just behind `sc`; leaves `sc` on its `}`. With
/// `context`, a `context` field that is an object is split too, on the way, into `*context`
/// (else `*context` is `None`): the one the sorted fields keep, as the last of equal keys wins.
fn split_fields<'a>(
    sc: &mut Scanner<'_>,
    text: &'a str,
    body: &Body<'_>,
    mode: Mode,
    mut context: Option<&mut Option<RawObject<'a>>>,
) -> Result<RawObject<'a>, BodyError> {
    let mut pairs = Vec::with_capacity(16);
    sc.ws();
    if sc.peek() == b'}' {
        return Ok(Obj::new());
    }
    loop {
        let (start, end, _, escaped) = sc.string();
        let key = if escaped {
            serde_json::from_str::<Str<'a>>(&text[start - 1..end + 1]).map_err(|_| BodyError)?
        } else {
            Str(Cow::Borrowed(&text[start..end]))
        };
        sc.ws();
        sc.i += 1; // ':'
        sc.ws();
        let value = if key.0 != "context" {
            sc.next_value(text, body, mode)?
        } else {
            match context.as_deref_mut() {
                Some(slot) if sc.peek() == b'{' => {
                    let at = sc.i;
                    sc.i += 1;
                    *slot = Some(split_fields(sc, text, body, Mode::Scan, None)?);
                    sc.i += 1; // '}'
                    RawVal {
                        text: &text[at..sc.i],
                        scan: Scan::Unknown,
                    }
                }
                slot => {
                    if let Some(slot) = slot {
                        *slot = None;
                    }
                    // Otherwise a context is split again by `process`: judging it here would
                    // be wasted.
                    sc.next_value(text, body, Mode::Skip)?
                }
            }
        };
        pairs.push((key, value));
        sc.ws();
        if sc.peek() != b',' {
            break;
        }
        sc.i += 1;
        sc.ws();
    }
    let (obj, shadowed) = Obj::from_pairs(pairs);
    if shadowed {
        // Rare (duplicate keys): the reference parse of the whole body judges what was dropped.
        body.check()?;
    }
    Ok(obj)
}

/// Splits a raw `batch` array into its raw elements. `None` = not an array.
pub fn parse_array<'a>(
    raw: RawVal<'a>,
    body: &Body<'_>,
) -> Result<Option<Vec<RawVal<'a>>>, BodyError> {
    let text = raw.text;
    if !text.starts_with('[') {
        return Ok(None);
    }
    let mut sc = Scanner {
        s: text.as_bytes(),
        i: 1,
        canonical: true,
    };
    let mut out = Vec::new();
    sc.ws();
    if sc.peek() == b']' {
        return Ok(Some(out));
    }
    loop {
        out.push(sc.next_value(text, body, Mode::Skip)?);
        sc.ws();
        if sc.peek() != b',' {
            break;
        }
        sc.i += 1;
        sc.ws();
    }
    Ok(Some(out))
}

/// Decodes a raw value that is a JSON string. `None` = another type.
/// `raw` is one complete JSON value, as split from a validated body or written by serde_json.
// Inlined: ~6 calls per message, most of them on short strings (−100 instructions per message).
#[inline]
pub fn as_string<'a>(raw: &'a str) -> Result<Option<Cow<'a, str>>, BodyError> {
    if !raw.starts_with('"') {
        return Ok(None);
    }
    debug_assert!(raw.len() >= 2 && raw.ends_with('"'), "{raw}");
    // The closing quote first (no escapes in between), found without a call; else a backslash
    // anywhere (`memchr`, as it always was), so the outcome is the same for any text.
    if raw.len() >= 2
        && (string_stop(raw.as_bytes(), 1) == raw.len() - 1
            || memchr::memchr(b'\\', raw.as_bytes()).is_none())
    {
        // No escapes: the text between the quotes is the string.
        return Ok(Some(Cow::Borrowed(&raw[1..raw.len() - 1])));
    }
    serde_json::from_str::<Str<'a>>(raw)
        .map(|s| Some(s.0))
        .map_err(|_| BodyError)
}

/// Canonical text of one raw value: the raw slice itself when it already is, else re-encoded.
/// `checked_body` is the caller's "the reference parser accepted the whole body" flag (see
/// `Body::check`).
fn canon<'a>(raw: RawVal<'a>, body: &Body<'_>) -> Result<Json<'a>, BodyError> {
    let judged = match raw.scan {
        Scan::Unknown => scan(raw.text.as_bytes()),
        s => s,
    };
    match judged {
        Scan::Canonical => return Ok(Json::Raw(raw.text)),
        Scan::PlainString => return Ok(Json::Plain(raw.text)),
        Scan::NotCanonical => {}
        Scan::TooDeep | Scan::Unknown => body.check()?,
    }
    crate::plain_json::canonical(raw.text)
        .map(Json::Owned)
        .map_err(|_| BodyError)
}

/// The whole body, for a reference-parser check when a raw value is too deep to judge here.
pub struct Body<'b> {
    bytes: &'b [u8],
    checked: std::cell::Cell<bool>,
}

impl<'b> Body<'b> {
    pub fn new(bytes: &'b [u8]) -> Self {
        Self {
            bytes,
            checked: std::cell::Cell::new(false),
        }
    }

    /// Whether serde_json (with its recursion limit) accepts the whole body.
    pub fn is_ok(&self) -> bool {
        self.check().is_ok()
    }

    /// Ok when serde_json (with its recursion limit) accepts the whole body.
    fn check(&self) -> Result<(), BodyError> {
        if !self.checked.get() {
            serde_json::from_slice::<serde::de::IgnoredAny>(self.bytes).map_err(|_| BodyError)?;
            // IgnoredAny skips nested values without a depth limit; the Value parse has one.
            crate::decode::parse_json(self.bytes).map_err(|_| BodyError)?;
            self.checked.set(true);
        }
        Ok(())
    }
}

/// For a raw value that is not otherwise looked at (ignored body fields, non-object batch
/// elements): the body is refused where the reference parser refuses it (too deep, a number out
/// of range, a lone surrogate — serde_json's skipping parse checks none of these).
pub fn deep_check(raw: RawVal<'_>, body: &Body<'_>) -> Result<(), BodyError> {
    canon(raw, body).map(drop)
}

/// Parses one object level into canonical fields, with the compact size of the whole object.
fn fields<'a>(obj: RawObject<'a>, body: &Body<'_>) -> Result<(Fields<'a>, usize), BodyError> {
    let mut size = 2 + obj.len().saturating_sub(1);
    // `obj` is sorted and deduplicated already; converted in place (see the assertion below).
    let out = obj
        .0
        .into_iter()
        .map(|(k, v)| {
            let v = canon(v, body)?;
            size += k.escaped_len() + 1 + v.as_str().len();
            Ok((k, v))
        })
        .collect::<Result<Vec<_>, BodyError>>()?;
    Ok((Obj(out), size))
}

/// The vectors a message's object levels are split into, and the key orders found for the last
/// message's (`top_level::KeyOrder`), handed on from each message of a request to the next: a
/// batch message allocated two vectors (and freed them) and sorted both levels.
#[derive(Default)]
pub struct Scratch<'a> {
    raw: Vec<(Str<'a>, RawVal<'a>)>,
    raw_context: Vec<(Str<'a>, RawVal<'a>)>,
    /// The key orders of the last message's top level and context.
    order: top_level::KeyOrder<'a>,
    context_order: top_level::KeyOrder<'a>,
    /// Where `VALIDATED` and `CONTEXT_READ` were in the last message of a layout (`cached`).
    validated: Option<(u64, [Option<usize>; 15])>,
    context_read: Option<(u64, [Option<usize>; 3])>,
    plans: Plans,
}

/// Empties a canonical level and hands its vector back as a raw one (in place, as `fields`
/// converts the other way).
fn recycle<'a>(slot: &mut Vec<(Str<'a>, RawVal<'a>)>, level: Fields<'a>) {
    *slot = level.0.into_iter().filter_map(|_| None).collect();
}

// A raw and a canonical member have the same size and alignment, so `collect`ing one object
// level's raw members into canonical ones (`fields`, `process`) reuses their vector (std's
// in-place collection): one allocation per object level, not two (~100 instructions each).
// `recycle` turns an emptied one back the same way.
const _: () = assert!(
    std::mem::size_of::<(Str<'static>, RawVal<'static>)>()
        == std::mem::size_of::<(Str<'static>, Json<'static>)>()
        && std::mem::align_of::<(Str<'static>, RawVal<'static>)>()
            == std::mem::align_of::<(Str<'static>, Json<'static>)>()
);

// === the canonical-form scanner ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Canonical,
    /// Canonical, and a string without a backslash (`Json::Plain`).
    PlainString,
    NotCanonical,
    TooDeep,
    /// Skipped over without judging (see `Mode::Skip`); `canon` scans it when asked.
    Unknown,
}

/// How `split_object`/`parse_array` walk their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Judge each value's canonical form on the way (the values will be written).
    Scan,
    /// Only find where each value ends (containers whose parts are split again).
    Skip,
}

/// Whether `s` (one syntactically valid JSON value) is byte for byte what serde_json writes for
/// the `Value` it parses to.
fn scan(s: &[u8]) -> Scan {
    let mut sc = Scanner {
        s,
        i: 0,
        canonical: true,
    };
    match sc.value(DEPTH_BUDGET) {
        Err(()) => Scan::TooDeep,
        Ok(()) if sc.canonical && sc.i == s.len() => Scan::Canonical,
        Ok(()) => Scan::NotCanonical,
    }
}

struct Scanner<'s> {
    s: &'s [u8],
    i: usize,
    canonical: bool,
}

impl Scanner<'_> {
    /// The value starting at `i` (known-valid JSON): its text and whether serde_json would write
    /// it byte for byte the same (compact, keys sorted and unique, no escapes or numbers it would
    /// rewrite). Too deep to judge: its end is found by serde_json instead.
    fn next_value<'a>(
        &mut self,
        text: &'a str,
        body: &Body<'_>,
        mode: Mode,
    ) -> Result<RawVal<'a>, BodyError> {
        let start = self.i;
        if mode == Mode::Skip {
            self.skip();
            return Ok(RawVal {
                text: &text[start..self.i],
                scan: Scan::Unknown,
            });
        }
        self.canonical = true;
        let scan = match self.value(DEPTH_BUDGET) {
            Ok(()) if self.canonical => Scan::Canonical,
            Ok(()) => Scan::NotCanonical,
            Err(()) => {
                body.check()?;
                let mut de = serde_json::Deserializer::from_str(&text[start..]);
                let raw = <&RawValue>::deserialize(&mut de).map_err(|_| BodyError)?;
                self.i = start + raw.get().len();
                Scan::TooDeep
            }
        };
        Ok(RawVal {
            text: &text[start..self.i],
            scan,
        })
    }

    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    /// Moves past the value at `i` (known-valid JSON) without judging it: strings by SIMD
    /// search, containers by counting brackets.
    fn skip(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                b'"' => {
                    self.string();
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                    continue;
                }
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    self.i += 1;
                }
                0 => return,
                _ if depth > 0 => {
                    self.i += 1;
                    continue;
                }
                _ => {
                    // A scalar at the top: up to the next delimiter.
                    while !matches!(
                        self.peek(),
                        0 | b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'
                    ) {
                        self.i += 1;
                    }
                }
            }
            if depth == 0 {
                return;
            }
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\n' | b'\r' | b'\t') {
            self.canonical = false;
            self.i += 1;
        }
    }

    /// `Err` only when deeper than `depth`.
    fn value(&mut self, depth: usize) -> Result<(), ()> {
        if depth == 0 {
            return Err(());
        }
        match self.peek() {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek() == b'}' {
                    self.i += 1;
                    return Ok(());
                }
                let mut prev: Option<(usize, usize)> = None;
                loop {
                    let (start, end, _, escaped) = self.string();
                    if !key_in_order(self.s, prev, (start, end), escaped) {
                        self.canonical = false;
                    }
                    prev = Some((start, end));
                    self.ws();
                    self.i += 1; // ':'
                    self.ws();
                    self.value(depth - 1)?;
                    self.ws();
                    match self.peek() {
                        b',' => {
                            self.i += 1;
                            self.ws();
                        }
                        _ => {
                            self.i += 1; // '}'
                            return Ok(());
                        }
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek() == b']' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.value(depth - 1)?;
                    self.ws();
                    match self.peek() {
                        b',' => {
                            self.i += 1;
                            self.ws();
                        }
                        _ => {
                            self.i += 1; // ']'
                            return Ok(());
                        }
                    }
                }
            }
            b'"' => {
                if self.string().2 {
                    self.canonical = false;
                }
                Ok(())
            }
            b't' => {
                self.i += 4;
                Ok(())
            }
            b'f' => {
                self.i += 5;
                Ok(())
            }
            b'n' => {
                self.i += 4;
                Ok(())
            }
            _ => {
                self.number();
                Ok(())
            }
        }
    }

    /// Skips a string at `i` (on its opening quote). Returns the content's span, whether it holds
    /// an escape serde_json would write differently (`\u…`, `\/`), and whether it holds any.
    fn string(&mut self) -> (usize, usize, bool, bool) {
        self.i += 1;
        let start = self.i;
        let (mut odd, mut any) = (false, false);
        loop {
            self.i = string_stop(self.s, self.i);
            let Some(&c) = self.s.get(self.i) else {
                // Cannot happen for valid JSON; judge it non-canonical.
                self.i = self.s.len();
                return (start, self.i, true, true);
            };
            if c == b'"' {
                let end = self.i;
                self.i += 1;
                return (start, end, odd, any);
            }
            if c != b'\\' {
                // A raw control character: not in text that is valid JSON; step over it.
                self.i += 1;
                continue;
            }
            any = true;
            match self.s.get(self.i + 1).copied().unwrap_or(0) {
                // serde_json writes these short forms itself.
                b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                b'u' => {
                    odd = true;
                    self.i += 6;
                }
                _ => {
                    odd = true;
                    self.i += 2;
                }
            }
        }
    }

    fn number(&mut self) {
        let start = self.i;
        while matches!(self.peek(), b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
            self.i += 1;
        }
        let text = &self.s[start..self.i];
        // Only integers that serde_json keeps as u64/i64 are written back as sent; "-0" becomes
        // the float -0.0.
        let ok = if text.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(text).is_ok_and(|t| t.parse::<u64>().is_ok())
        } else if text.first() == Some(&b'-') && text[1..].iter().all(u8::is_ascii_digit) {
            text != b"-0" && std::str::from_utf8(text).is_ok_and(|t| t.parse::<i64>().is_ok())
        } else {
            false
        };
        if !ok {
            self.canonical = false;
        }
    }
}

/// Index of the first byte at or after `i` that ends a run of plain string text — `"`, `\\` or
/// a control character (< 0x20) — or `s.len()`. Eight bytes per step without a call: most strings
/// here are 3 to 40 bytes long, where `memchr2`'s call and vector set-up cost more than the
/// search (issue 5: it was ~10 % of a batch's instructions). The last bytes are one more word,
/// the last eight of `s` shifted past those before `i`, rather than a byte loop.
#[inline]
fn string_stop(s: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, the high bit is set for one below 0x21 once bit 1 is flipped (`low`: the control
    // characters, and `"`, which becomes 0x20) or for a zero byte (`slash`); `!x` has the high
    // bit of both flipped values (0x02 and `\\` are below 0x80). Two tests rather than three:
    // a few instructions a word of every string. Borrows only run upwards, so the lowest set bit
    // is exact: the first match.
    let hits = |x: u64| {
        let low = x ^ (ONES * 0x02);
        let slash = x ^ (ONES * u64::from(b'\\'));
        (low.wrapping_sub(ONES * 0x21) | slash.wrapping_sub(ONES)) & !x & HIGH
    };
    let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    while let Some(chunk) = s.get(i..i + 8) {
        let h = hits(word(chunk));
        if h != 0 {
            return i + (h.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i >= s.len() {
        return i;
    }
    if let Some(base) = s.len().checked_sub(8) {
        // Here base < i < base + 8. Shifted down by `i - base` bytes (not masked: a masked byte
        // could still borrow from those above it), the word's top bytes are zeros, which match as
        // control characters: past the end, so no match.
        let h = hits(word(&s[base..]) >> (8 * (i - base)));
        return (i + (h.trailing_zeros() / 8) as usize).min(s.len());
    }
    while let Some(&c) = s.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

// === encoding helpers ===

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Length of `s` as a JSON string, quotes included (serde_json's escaping).
fn escaped_len(s: &str) -> usize {
    let mut n = s.len() + 2;
    if string_stop(s.as_bytes(), 0) == s.len() {
        return n;
    }
    for &b in s.as_bytes() {
        if needs_escape(b) {
            n += match b {
                b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 1,
                _ => 5,
            };
        }
    }
    n
}

/// Appends `s` as a JSON string.
fn push_string(out: &mut Vec<u8>, s: &str) {
    // `string_stop` stops exactly at the bytes `needs_escape` names.
    if string_stop(s.as_bytes(), 0) != s.len() {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// An address as a JSON string, as `json_string(&ip.to_string())` writes it: IPv4 by hand
/// (`Display` through the formatting machinery was ~1,350 instructions per request).
fn ip_json(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return json_string(&ip.to_string());
    };
    let mut out = String::with_capacity(17);
    out.push('"');
    for (i, o) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
    out.push('"');
    out
}

/// `json_string(&format_rfc3339_ms(t)?)`, on the stack when the year has four digits (a
/// corrected timestamp per batch message: no allocation). The text is ASCII digits, signs and
/// separators, which JSON writes as they are.
fn time_json(t: OffsetDateTime) -> Option<TimeJson> {
    let json = match rfc3339_ms_ascii(t) {
        Some(text) => {
            let mut b = [b'"'; 26];
            b[1..25].copy_from_slice(&text);
            TimeJson::Short(b)
        }
        None => {
            let mut out = String::with_capacity(26);
            out.push('"');
            write_rfc3339_ms(t, &mut out)?;
            out.push('"');
            TimeJson::Long(out)
        }
    };
    debug_assert_eq!(
        json.as_bytes(),
        json_string(&format_rfc3339_ms(t)?).as_bytes()
    );
    Some(json)
}

/// `time_json`'s text.
enum TimeJson {
    Short([u8; 26]),
    Long(String),
}

impl TimeJson {
    fn as_bytes(&self) -> &[u8] {
        match self {
            TimeJson::Short(b) => b,
            TimeJson::Long(s) => s.as_bytes(),
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_string(&mut out, s);
    // Built from a str and ASCII quotes/escapes.
    String::from_utf8(out).unwrap_or_default()
}

fn key(s: &'static str) -> Str<'static> {
    Str(Cow::Borrowed(s))
}

// === per request ===

/// What the request contributes to each message, computed once per request.
pub struct Request<'a> {
    pub received_at: OffsetDateTime,
    /// `receivedAt` as a JSON string.
    received: String,
    /// Batch-level `sentAt`: canonical text and parsed time.
    sent_at: Option<(Json<'a>, OffsetDateTime)>,
    batch_context: Fields<'a>,
    /// Upper bound of the bytes enrichment adds to a message (the batch context, the header's
    /// agent, the address, the clocks, the source), so the lines' buffer grows
    /// at most once a line (`lines_room`: not at all).
    enrich_room: usize,
    /// The client address as written (`context.ip`), unless a trusted client sends its own.
    client_ip: Option<IpAddr>,
    client_ip_json: Option<String>,
    /// The `User-Agent` header as a JSON string.
    user_agent_json: Option<String>,
    source_json: String,
    keep_ip: bool,
    trust_client_ip: bool,
    body: &'a Body<'a>,
    /// `is_bot` of the `User-Agent` header and of the batch context's `userAgent`, once judged
    /// (a batch's messages mostly share one of them).
    header_agent_bot: Cell<Option<bool>>,
    batch_agent_bot: Cell<Option<bool>>,
    /// Whether the batch context's `userAgent` is a non-empty string, once looked at.
    batch_has_agent: Cell<Option<bool>>,
    /// Where `CONTEXT_READ` are in `batch_context`.
    batch_read: [Option<usize>; 3],
}

/// What `enrich` reserves for a line beyond its message, its enrichment and its id.
const LINE_SLACK: usize = 96;
/// Length of a generated message id (a hyphenated UUID).
const GENERATED_ID_LEN: usize = 36;

/// The context fields `enrich` reads, in key order (`positions`).
const CONTEXT_READ: [&str; 3] = ["bot", "ip", "userAgent"];

/// Inputs of `Request::new`, as the router has them.
pub struct RequestInputs<'a> {
    pub received_at: OffsetDateTime,
    pub sent_at: Option<RawVal<'a>>,
    pub batch_context: Option<RawObject<'a>>,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub source: &'a str,
    pub keep_ip: bool,
    pub trust_client_ip: bool,
    pub body: &'a Body<'a>,
}

impl<'a> Request<'a> {
    /// `sent_at`, when given, must already be known to be a valid timestamp string.
    pub fn new(i: RequestInputs<'a>) -> Result<Self, BodyError> {
        let body = i.body;
        let sent_at = match i.sent_at {
            Some(raw) => {
                let text = as_string(raw.get())?.ok_or(BodyError)?;
                let t = parse_timestamp(&text).ok_or(BodyError)?;
                Some((canon(raw, body)?, t))
            }
            None => None,
        };
        let (batch_context, batch_size) = match i.batch_context {
            Some(obj) => fields(obj, body)?,
            None => (Fields::new(), 0),
        };
        let shown = |ip: IpAddr| {
            if i.keep_ip {
                normalise(ip)
            } else {
                anonymise_ip(ip)
            }
        };
        let received = json_string(&format_rfc3339_ms(i.received_at).unwrap_or_default());
        let client_ip_json = i.client_ip.map(|ip| ip_json(shown(ip)));
        let user_agent_json = i.user_agent.map(json_string);
        let source_json = json_string(i.source);
        // Each added field: its key (< 24 bytes), quotes, ':' and ','; an address a trusted
        // client supplies is at most a 41-byte IPv6 text; a corrected timestamp is as long as
        // `received`.
        let enrich_room = batch_size
            + user_agent_json.as_ref().map_or(0, String::len)
            + client_ip_json.as_ref().map_or(0, String::len).max(48)
            + 3 * received.len()
            + sent_at.as_ref().map_or(0, |(j, _)| j.as_str().len())
            + source_json.len()
            + 8 * 28;
        Ok(Self {
            received_at: i.received_at,
            received,
            sent_at,
            enrich_room,
            client_ip: i.client_ip,
            client_ip_json,
            user_agent_json,
            source_json,
            keep_ip: i.keep_ip,
            trust_client_ip: i.trust_client_ip,
            body,
            header_agent_bot: Cell::new(None),
            batch_agent_bot: Cell::new(None),
            batch_has_agent: Cell::new(None),
            batch_read: positions(&batch_context, &CONTEXT_READ),
            batch_context,
        })
    }

    /// `bots::is_bot`, remembering the last agent judged on this thread and its verdict: a
    /// batch's messages share one agent, and so do a client's consecutive requests (a
    /// single-message `/v1/track` judged its agent afresh each time: ~3,300 instructions).
    /// Room for the lines of `messages` messages of a `body_len`-byte body: what `enrich`
    /// reserves for each (a generated id included), summed, taking a message's compact size to
    /// be at most its text's.
    pub fn lines_room(&self, messages: usize, body_len: usize) -> usize {
        body_len.saturating_add(
            messages.saturating_mul(self.enrich_room + LINE_SLACK + GENERATED_ID_LEN),
        )
    }

    fn is_bot(&self, ua: &str) -> bool {
        thread_local! {
            static LAST: RefCell<Option<(String, bool)>> = const { RefCell::new(None) };
        }
        LAST.with(|last| {
            if let Some((agent, verdict)) = &*last.borrow() {
                if agent == ua {
                    return *verdict;
                }
            }
            let verdict = is_bot(ua);
            *last.borrow_mut() = Some((ua.to_owned(), verdict));
            verdict
        })
    }
}

fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One accepted message, its line and id written to the caller's `Lines` (not ended there).
#[derive(Debug)]
pub struct Written {
    /// `context.bot` is `true` in the line.
    pub bot: bool,
}

/// One message's top level, and its `context` when that was split on the way (`message_object`,
/// or the one-pass check of the body in `top_level`, splits a batch element's context while it
/// splits the element: reading it once, not skipping it there and splitting it again in
/// `process`).
#[derive(Debug, Default)]
pub struct Message<'a> {
    pub fields: RawObject<'a>,
    context: Option<RawObject<'a>>,
    /// The `top_level::KeyOrder` layouts of `fields` and `context`, when split with one.
    layout: Option<u64>,
    context_layout: Option<u64>,
}

impl<'a> From<RawObject<'a>> for Message<'a> {
    fn from(fields: RawObject<'a>) -> Self {
        Self {
            fields,
            ..Self::default()
        }
    }
}

/// A raw batch element: an object's top level, or a rejection when it is not an object.
pub fn message_object<'a>(
    raw: RawVal<'a>,
    body: &Body<'_>,
) -> Result<Result<Message<'a>, RuleViolation>, BodyError> {
    if !raw.get().starts_with('{') {
        deep_check(raw, body)?;
        return Ok(Err(RuleViolation::new(
            "",
            "type",
            "message must be a JSON object",
        )));
    }
    let text = raw.text;
    let mut sc = Scanner {
        s: text.as_bytes(),
        i: 1,
        canonical: true,
    };
    let mut context = None;
    let fields = split_fields(&mut sc, text, body, Mode::Scan, Some(&mut context))?;
    Ok(Ok(Message {
        fields,
        context,
        ..Message::default()
    }))
}

/// Validates, enriches and encodes one message; the same rules, in the same order, as
/// `validate::validate_message` followed by `enrich::enrich`. An accepted message's line is
/// written to `out` and its id set there (the caller ends the line, `Lines::push`); a rejected
/// one writes nothing. Its vectors are left in `scratch` for the next message.
pub fn process<'a>(
    message: Message<'a>,
    implied: Option<MessageType>,
    max_message_bytes: usize,
    req: &Request<'a>,
    scratch: &mut Scratch<'a>,
    out: &mut Lines,
) -> Result<Result<Written, RuleViolation>, BodyError> {
    let Message {
        fields: obj,
        context: mut split_context,
        layout,
        context_layout: split_layout,
    } = message;
    // The layout of the context written, when it is the one split with the message.
    let mut context_layout = None;
    let mut size = 2 + obj.len().saturating_sub(1);
    let mut context = None;
    // `obj` is sorted and deduplicated already; converted in place (see `fields`).
    let members = obj
        .0
        .into_iter()
        .map(|(k, v)| {
            let text = if k.0 == "context" && v.get().starts_with('{') {
                // Expanded one level: enrichment adds to it, and its values are copied through.
                let split = match split_context.take() {
                    Some(c) => {
                        context_layout = split_layout;
                        c
                    }
                    None => split_object(v, req.body, Mode::Scan)?,
                };
                let (c, c_size) = fields(split, req.body)?;
                size += k.escaped_len() + 1 + c_size;
                context = Some(c);
                Json::Raw("{}") // stands for it during validation
            } else {
                let text = canon(v, req.body)?;
                size += k.escaped_len() + 1 + text.as_str().len();
                text
            };
            Ok((k, text))
        })
        .collect::<Result<Vec<_>, BodyError>>()?;
    let mut msg: Fields<'a> = Obj(members);
    let verdict = if size > max_message_bytes {
        Err(RuleViolation::new(
            "",
            "max_size",
            format!("message is {size} bytes, more than the {max_message_bytes} allowed"),
        ))
    } else {
        let at = cached(&mut scratch.validated, layout, || {
            positions(&msg, &VALIDATED)
        });
        match validate(&msg, &at, implied)? {
            Ok((times, implied_type)) => {
                let mut read = ENRICHED.map(|i| at[i]);
                let mut layout = layout;
                if let Some(t) = implied_type {
                    msg.insert(key("type"), Json::Owned(json_string(t.as_str())));
                    read = positions(&msg, &ENRICHED.map(|i| VALIDATED[i]));
                    layout = None;
                }
                let none = Fields::new();
                let context = context.as_ref().unwrap_or(&none);
                let context_read = cached(&mut scratch.context_read, context_layout, || {
                    positions(context, &CONTEXT_READ)
                });
                let fields = Found {
                    msg: &msg,
                    read,
                    context,
                    context_read,
                    layouts: layout.zip(context_layout),
                };
                Ok(enrich(fields, times, size, req, &mut scratch.plans, out)?)
            }
            Err(v) => Err(v),
        }
    };
    recycle(&mut scratch.raw, msg);
    if let Some(c) = context {
        recycle(&mut scratch.raw_context, c);
    }
    Ok(verdict)
}

/// Where `find` finds some fields in an object of `layout` (`Message::layout`): as for the last
/// one of that layout, when `slot` has it (a batch's messages mostly share one: the merges of
/// `positions` were ~600 instructions a message).
fn cached<const N: usize>(
    slot: &mut Option<(u64, [Option<usize>; N])>,
    layout: Option<u64>,
    find: impl FnOnce() -> [Option<usize>; N],
) -> [Option<usize>; N] {
    match (layout, *slot) {
        (Some(l), Some((known, at))) if known == l => at,
        _ => {
            let at = find();
            if let Some(l) = layout {
                *slot = Some((l, at));
            }
            at
        }
    }
}

/// A message's fields and context, and where the fields `enrich` reads are in them.
struct Found<'f, 'a> {
    msg: &'f Fields<'a>,
    /// `ENRICHED`'s.
    read: [Option<usize>; 4],
    context: &'f Fields<'a>,
    /// `CONTEXT_READ`'s.
    context_read: [Option<usize>; 3],
    /// The layouts of `msg` and `context`, when both have one (`Message::layout`).
    layouts: Option<(u64, u64)>,
}

/// Parsed client clocks, kept from validation for enrichment.
#[derive(Default)]
struct Times {
    timestamp: Option<OffsetDateTime>,
    original: Option<OffsetDateTime>,
    sent_at: Option<OffsetDateTime>,
}

/// First byte of a canonical value: its JSON type.
fn kind(v: Option<&Json<'_>>) -> Option<u8> {
    v.map(|j| j.as_str().as_bytes().first().copied().unwrap_or(0))
}

fn is_null(v: Option<&Json<'_>>) -> bool {
    matches!(kind(v), None | Some(b'n'))
}

fn string_of<'j>(v: Option<&'j Json<'_>>) -> Result<Option<Cow<'j, str>>, BodyError> {
    match v {
        Some(Json::Plain(s)) => {
            debug_assert_eq!(as_string(s), Ok(Some(Cow::Borrowed(&s[1..s.len() - 1]))));
            Ok(Some(Cow::Borrowed(&s[1..s.len() - 1])))
        }
        Some(j) => as_string(j.as_str()),
        None => Ok(None),
    }
}

/// The fields `validate` reads, in key order (`positions`).
const VALIDATED: [&str; 15] = [
    "anonymousId",
    "context",
    "event",
    "groupId",
    "integrations",
    "messageId",
    "name",
    "originalTimestamp",
    "previousId",
    "properties",
    "sentAt",
    "timestamp",
    "traits",
    "type",
    "userId",
];

/// The fields of `VALIDATED` `enrich` reads too: messageId, originalTimestamp, sentAt and
/// timestamp.
const ENRICHED: [usize; 4] = [5, 7, 10, 11];

/// `validate_message`'s rules. Ok: the parsed clocks, and the endpoint's type when the message
/// has none (the caller inserts it: a rejected message is not edited).
/// `at`: where `VALIDATED` are in `msg`.
fn validate(
    msg: &Fields<'_>,
    at: &[Option<usize>; 15],
    implied: Option<MessageType>,
) -> Result<Result<(Times, Option<MessageType>), RuleViolation>, BodyError> {
    let [anonymous_id, context, event, group_id, integrations, message_id, name, original_timestamp, previous_id, properties, sent_at, timestamp, traits, type_field, user_id] =
        at.map(|i| i.map(|i| &msg.0[i].1));
    let mut implied_type = None;
    let kind_ = match (is_null(type_field), implied) {
        (true, Some(t)) => {
            implied_type = Some(t);
            t
        }
        (true, None) => {
            return Ok(Err(RuleViolation::new(
                "type",
                "required",
                "type is required",
            )))
        }
        (false, _) => match string_of(type_field)? {
            Some(s) => {
                let Some(t) = MessageType::parse(&s) else {
                    return Ok(Err(RuleViolation::new(
                        "type",
                        "enum",
                        format!("type must be one of track, identify, page, screen, group, alias; got {s:?}"),
                    )));
                };
                if let Some(expected) = implied.filter(|e| *e != t) {
                    return Ok(Err(RuleViolation::new(
                        "type",
                        "enum",
                        format!("type {s:?} sent to /v1/{}", expected.as_str()),
                    )));
                }
                t
            }
            None => {
                return Ok(Err(RuleViolation::new(
                    "type",
                    "type",
                    "type must be a string",
                )))
            }
        },
    };

    let mut has_id = false;
    for (field, v) in [("userId", user_id), ("anonymousId", anonymous_id)] {
        if is_null(v) {
            continue;
        }
        match string_of(v)? {
            Some(s) => has_id |= !s.is_empty(),
            None => {
                return Ok(Err(RuleViolation::new(
                    field,
                    "type",
                    format!("{field} must be a string"),
                )))
            }
        }
    }
    if !has_id {
        return Ok(Err(RuleViolation::new(
            "userId",
            "required",
            "userId or anonymousId is required",
        )));
    }

    let id = message_id;
    if !is_null(id) {
        match string_of(id)? {
            // A text no longer in bytes than the limit is no longer in characters.
            Some(s)
                if s.len() > MAX_MESSAGE_ID_CHARS && s.chars().count() > MAX_MESSAGE_ID_CHARS =>
            {
                return Ok(Err(RuleViolation::new(
                    "messageId",
                    "max_length",
                    format!("messageId is longer than {MAX_MESSAGE_ID_CHARS} characters"),
                )))
            }
            Some(_) => {}
            None => {
                return Ok(Err(RuleViolation::new(
                    "messageId",
                    "type",
                    "messageId must be a string",
                )))
            }
        }
    }

    let (field, required, v) = match kind_ {
        MessageType::Track => ("event", true, event),
        MessageType::Alias => ("previousId", true, previous_id),
        MessageType::Group => ("groupId", true, group_id),
        MessageType::Page | MessageType::Screen => ("name", false, name),
        MessageType::Identify => ("", false, None),
    };
    if !field.is_empty() {
        match string_of(v)? {
            Some(s) if !s.is_empty() || !required => {}
            Some(_) => {
                return Ok(Err(RuleViolation::new(
                    field,
                    "required",
                    format!("{field} is required"),
                )))
            }
            None if is_null(v) && required => {
                return Ok(Err(RuleViolation::new(
                    field,
                    "required",
                    format!("{field} is required"),
                )))
            }
            None if is_null(v) => {}
            None => {
                return Ok(Err(RuleViolation::new(
                    field,
                    "type",
                    format!("{field} must be a string"),
                )))
            }
        }
    }

    let mut times = Times::default();
    for (field, v) in [
        ("timestamp", timestamp),
        ("originalTimestamp", original_timestamp),
        ("sentAt", sent_at),
    ] {
        if is_null(v) {
            continue;
        }
        let Some(s) = string_of(v)? else {
            return Ok(Err(RuleViolation::new(
                field,
                "type",
                format!("{field} must be an ISO-8601 string"),
            )));
        };
        let Some(t) = parse_timestamp(&s) else {
            return Ok(Err(RuleViolation::new(
                field,
                "format",
                format!("{field} must be an ISO-8601 date-time with an offset, got {s:?}"),
            )));
        };
        match field {
            "timestamp" => times.timestamp = Some(t),
            "originalTimestamp" => times.original = Some(t),
            _ => times.sent_at = Some(t),
        }
    }
    for (field, v) in [
        ("context", context),
        ("properties", properties),
        ("traits", traits),
        ("integrations", integrations),
    ] {
        if !matches!(kind(v), None | Some(b'n') | Some(b'{')) {
            return Ok(Err(RuleViolation::new(
                field,
                "type",
                format!("{field} must be an object"),
            )));
        }
    }
    Ok(Ok((times, implied_type)))
}

/// What `write_edited` does with one key of the object it writes.
#[derive(Debug, Clone, Copy)]
enum Edit<'e> {
    /// This canonical text, in place of the field's value or, when absent, where the key sorts.
    Set(&'e [u8]),
    /// Left out, whatever the field held.
    Remove,
    /// The field as it is, when present.
    Keep,
    /// The object `write_edited`'s `nested` writes (the enriched `context`).
    Nested,
}

/// `plain`: `k` needs no escaping (`Str::is_plain`, or a key literal of this module).
fn put_key(out: &mut Vec<u8>, first: &mut bool, k: &str, plain: bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    if plain {
        debug_assert_eq!(string_stop(k.as_bytes(), 0), k.len());
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    } else {
        push_string(out, k);
        out.push(b':');
    }
}

/// Writes edit `edit` of a key whose current value is `kept`: `key` writes the key (and the
/// comma before it) only when the edit writes a member. `write_edited` puts the key itself,
/// `write_planned` copies it from its plan.
fn put_edit(
    out: &mut Vec<u8>,
    edit: Edit<'_>,
    kept: Option<&str>,
    key: impl FnOnce(&mut Vec<u8>),
    nested: &mut impl FnMut(&mut Vec<u8>),
) {
    match (edit, kept) {
        (Edit::Set(v), _) => {
            key(out);
            out.extend_from_slice(v);
        }
        (Edit::Keep, Some(v)) => {
            key(out);
            out.extend_from_slice(v.as_bytes());
        }
        (Edit::Nested, _) => {
            key(out);
            nested(out);
        }
        (Edit::Remove, _) | (Edit::Keep, None) => {}
    }
}

/// One step of the merge of an object level's sorted, unique fields with its edits (sorted by
/// key): a field as it is, or edit `.0` (an index into the edits) with the field of its key,
/// if any. `write_edited` writes the steps as they come; `Plan::get` records them.
enum Merged<F> {
    Field(F),
    Edit(usize, Option<F>),
}

/// The merge both of them walk: one walk, so the two cannot drift apart.
struct Merge<'e, I: Iterator, K> {
    fields: std::iter::Peekable<I>,
    edits: &'e [(&'e str, Edit<'e>)],
    e: usize,
    /// A field's key (a generic, not a `fn` pointer: called per comparison, it is inlined).
    key: K,
}

impl<'e, I: Iterator, K: Fn(&I::Item) -> &[u8]> Merge<'e, I, K> {
    fn new(fields: I, edits: &'e [(&'e str, Edit<'e>)], key: K) -> Self {
        debug_assert!(edits
            .windows(2)
            .all(|w| key_cmp(w[0].0.as_bytes(), w[1].0.as_bytes()).is_lt()));
        Self {
            fields: fields.peekable(),
            edits,
            e: 0,
            key,
        }
    }
}

impl<I: Iterator, K: Fn(&I::Item) -> &[u8]> Iterator for Merge<'_, I, K> {
    type Item = Merged<I::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let e = self.e;
        let order = match (self.fields.peek(), self.edits.get(e)) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(f), Some((ek, _))) => key_cmp(ek.as_bytes(), (self.key)(f)),
        };
        Some(match order {
            std::cmp::Ordering::Less => {
                self.e += 1;
                Merged::Edit(e, None)
            }
            std::cmp::Ordering::Equal => {
                self.e += 1;
                Merged::Edit(e, self.fields.next())
            }
            std::cmp::Ordering::Greater => Merged::Field(self.fields.next()?),
        })
    }
}

/// Writes the sorted, unique `fields` as one object with `edits` (sorted by key) applied: the
/// same bytes as inserting and removing them in an `Obj` and writing that, without the inserts'
/// shifting or an intermediate copy of the nested context (issue 5: the inserts, the context's
/// own buffer and the copies were ~20 % of a batch message's instructions).
fn write_edited<'x, 'a: 'x>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = &'x (Str<'a>, Json<'a>)>,
    edits: &[(&str, Edit<'_>)],
    mut nested: impl FnMut(&mut Vec<u8>),
) {
    out.push(b'{');
    let mut first = true;
    for step in Merge::new(fields, edits, |f| f.0 .0.as_bytes()) {
        match step {
            Merged::Field((k, v)) => {
                put_key(out, &mut first, &k.0, k.is_plain());
                out.extend_from_slice(v.as_str().as_bytes());
            }
            Merged::Edit(e, kept) => {
                // `ek` is one of `enrich`'s key literals (plain).
                let (ek, edit) = edits[e];
                let key = |out: &mut Vec<u8>| put_key(out, &mut first, ek, true);
                put_edit(out, edit, kept.map(|f| f.1.as_str()), key, &mut nested);
            }
        }
    }
    out.push(b'}');
}

/// A `Merged` step as a plan records it: a field as it is (`sources[.0][.1]`), or edit `.0`
/// with the field of its key, if any.
#[derive(Debug, Clone, Copy)]
enum Step {
    Field(u8, u32),
    Edit(u8, Option<(u8, u32)>),
}

/// `write_edited`'s merges, planned once per layout of the fields (`Message::layout`): the
/// edits' keys are fixed, and so is the batch context a message's context merges with, so a
/// batch's messages of one layout merge the same way (the key comparisons were ~400
/// instructions a message).
#[derive(Debug, Default)]
struct Plans {
    top: Plan,
    context: Plan,
}

#[derive(Debug, Default)]
struct Plan {
    layout: Option<u64>,
    steps: Vec<Planned>,
    /// Each step's key as `write_planned` writes it after a member: `,"key":` (issue 5:
    /// `put_key`'s four pushes were ~70 instructions a key); then `KEY_COPY` zeros.
    keys: Vec<u8>,
}

/// A step and the span of its key's text in `Plan::keys`.
#[derive(Debug, Clone, Copy)]
struct Planned {
    step: Step,
    key: u32,
    key_end: u32,
}

impl Plan {
    /// The steps of `layout` and their keys' text: planned now, from `fields` (source, index,
    /// key; sorted, unique) and `edits` (sorted), unless they are the last layout's.
    fn get<'k, 'a: 'k>(
        &mut self,
        layout: u64,
        fields: impl Iterator<Item = (u8, usize, &'k Str<'a>)>,
        edits: &[(&str, Edit<'_>)],
    ) -> (&[Planned], &[u8]) {
        if self.layout != Some(layout) {
            self.layout = Some(layout);
            let Self { steps, keys, .. } = self;
            steps.clear();
            keys.clear();
            let mut push = |step: Step, k: &str, plain: bool| {
                let key = index(keys.len());
                keys.push(b',');
                let mut first = true;
                put_key(keys, &mut first, k, plain);
                steps.push(Planned {
                    step,
                    key,
                    key_end: index(keys.len()),
                });
            };
            for step in Merge::new(fields, edits, |f| f.2 .0.as_bytes()) {
                match step {
                    Merged::Field((src, i, k)) => {
                        push(Step::Field(src, index(i)), &k.0, k.is_plain());
                    }
                    Merged::Edit(e, kept) => push(
                        Step::Edit(e as u8, kept.map(|(src, i, _)| (src, index(i)))),
                        edits[e].0,
                        true,
                    ),
                }
            }
            // So that every key is followed by a whole `KEY_COPY` (see `write_planned`).
            keys.extend_from_slice(&[0; KEY_COPY]);
        }
        (&self.steps, &self.keys)
    }
}

/// `write_planned` copies a key of up to this many bytes as a fixed-size block (inlined moves)
/// and cuts the line back, instead of calling memcpy for its length (~15 instructions a key).
/// The excess is within `LINE_SLACK`, so the line never grows for it.
const KEY_COPY: usize = 32;

/// A position in a plan (a message's fields, a plan's keys), which fits.
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// `write_edited` by a plan (`Plan::get`): the same bytes, without the key comparisons.
fn write_planned(
    out: &mut Vec<u8>,
    (steps, keys): (&[Planned], &[u8]),
    sources: [&[(Str<'_>, Json<'_>)]; 2],
    edits: &[(&str, Edit<'_>)],
    mut nested: impl FnMut(&mut Vec<u8>),
) {
    out.push(b'{');
    let mut first = true;
    // The key of `p`, and no longer the first.
    let mut key = |out: &mut Vec<u8>, p: &Planned| {
        let from = p.key as usize + usize::from(std::mem::take(&mut first));
        let to = p.key_end as usize;
        let block = keys
            .get(from..from + KEY_COPY)
            .and_then(|b| <&[u8; KEY_COPY]>::try_from(b).ok());
        match block {
            Some(block) if to - from <= KEY_COPY => {
                let end = out.len() + (to - from);
                out.extend_from_slice(block);
                out.truncate(end);
            }
            _ => out.extend_from_slice(keys.get(from..to).unwrap_or_default()),
        }
    };
    for p in steps {
        match p.step {
            Step::Field(src, i) => {
                let (_, v) = &sources[usize::from(src)][i as usize];
                key(out, p);
                out.extend_from_slice(v.as_str().as_bytes());
            }
            Step::Edit(e, kept) => {
                let kept = kept.map(|(src, i)| sources[usize::from(src)][i as usize].1.as_str());
                let edit = edits[usize::from(e)].1;
                put_edit(out, edit, kept, |out| key(out, p), &mut nested);
            }
        }
    }
    out.push(b'}');
}

/// `Union`'s fields with where each is: source 0 (`a`) or 1 (`b`), and its index there.
struct UnionAt<'x, 'a> {
    a: &'x [(Str<'a>, Json<'a>)],
    b: &'x [(Str<'a>, Json<'a>)],
    i: usize,
    j: usize,
}

impl<'x, 'a> Iterator for UnionAt<'x, 'a> {
    type Item = (u8, usize, &'x Str<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let (i, j) = (self.i, self.j);
        match (self.a.get(i), self.b.get(j)) {
            (Some(x), Some(y)) => match key_cmp(x.0 .0.as_bytes(), y.0 .0.as_bytes()) {
                std::cmp::Ordering::Less => {
                    self.i += 1;
                    Some((0, i, &x.0))
                }
                std::cmp::Ordering::Greater => {
                    self.j += 1;
                    Some((1, j, &y.0))
                }
                std::cmp::Ordering::Equal => {
                    self.i += 1;
                    self.j += 1;
                    Some((0, i, &x.0))
                }
            },
            (Some(x), None) => {
                self.i += 1;
                Some((0, i, &x.0))
            }
            (None, Some(y)) => {
                self.j += 1;
                Some((1, j, &y.0))
            }
            (None, None) => None,
        }
    }
}

/// The fields of two sorted, unique levels in key order; of a key in both, `a`'s (a message's
/// context over the batch's).
struct Union<'x, 'a> {
    a: &'x [(Str<'a>, Json<'a>)],
    b: &'x [(Str<'a>, Json<'a>)],
}

impl<'x, 'a> Iterator for Union<'x, 'a> {
    type Item = &'x (Str<'a>, Json<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let (a, b) = (self.a, self.b);
        match (a.split_first(), b.split_first()) {
            (Some((x, a_rest)), Some((y, b_rest))) => {
                match key_cmp(x.0 .0.as_bytes(), y.0 .0.as_bytes()) {
                    std::cmp::Ordering::Less => self.a = a_rest,
                    std::cmp::Ordering::Greater => {
                        self.b = b_rest;
                        return Some(y);
                    }
                    std::cmp::Ordering::Equal => {
                        self.a = a_rest;
                        self.b = b_rest;
                    }
                }
                Some(x)
            }
            (Some((x, a_rest)), None) => {
                self.a = a_rest;
                Some(x)
            }
            (None, Some((y, b_rest))) => {
                self.b = b_rest;
                Some(y)
            }
            (None, None) => None,
        }
    }
}

/// Enrichment (`enrich::enrich`'s rules) written straight into the line: every field the
/// reference adds, replaces or removes becomes an `Edit`, applied while the message is written.
fn enrich<'a>(
    found: Found<'_, 'a>,
    times: Times,
    size: usize,
    req: &Request<'a>,
    plans: &mut Plans,
    lines: &mut Lines,
) -> Result<Written, BodyError> {
    // --- context: batch merge, ip, userAgent, bot ---
    let batch = &req.batch_context;
    let Found {
        msg,
        read,
        context,
        context_read,
        layouts,
    } = found;
    let [own_bot, own_ip, own_ua] = context_read.map(|at| at.map(|i| &context.0[i].1));
    let [batch_bot, batch_ip, batch_ua] = req.batch_read.map(|at| at.map(|i| &batch.0[i].1));
    let supplied_ip = if req.trust_client_ip {
        string_of(own_ip.or(batch_ip))?.and_then(|s| s.parse::<IpAddr>().ok())
    } else {
        None
    };
    let supplied_ip_json = supplied_ip.map(|ip| {
        let ip = if req.keep_ip {
            normalise(ip)
        } else {
            anonymise_ip(ip)
        };
        ip_json(ip)
    });
    let ip_edit = match (&supplied_ip_json, &req.client_ip_json) {
        (Some(text), _) | (None, Some(text)) => Edit::Set(text.as_bytes()),
        (None, None) => {
            debug_assert!(req.client_ip.is_none());
            Edit::Remove
        }
    };
    let sent_ua = own_ua.or(batch_ua);
    let has_agent = |ua| Ok::<_, BodyError>(matches!(string_of(ua)?, Some(s) if !s.is_empty()));
    let has_ua = match (own_ua, req.batch_has_agent.get()) {
        (None, Some(known)) => known,
        (None, None) => {
            let has = has_agent(sent_ua)?;
            req.batch_has_agent.set(Some(has));
            has
        }
        (Some(_), _) => has_agent(sent_ua)?,
    };
    // An agent the request holds (the header's, the batch context's) is judged once per request.
    let (ua_edit, ua, verdict) = match (has_ua, &req.user_agent_json) {
        (false, Some(header)) => (
            Edit::Set(header.as_bytes()),
            Some(header.as_str()),
            Some(&req.header_agent_bot),
        ),
        _ => (
            Edit::Keep,
            sent_ua.map(Json::as_str),
            own_ua.is_none().then_some(&req.batch_agent_bot),
        ),
    };
    let is_bot = match (ua, verdict.and_then(Cell::get)) {
        (Some(_), Some(known)) => known,
        (Some(text), None) => {
            let judged = as_string(text)?.is_some_and(|ua| req.is_bot(&ua));
            if let Some(cell) = verdict {
                cell.set(Some(judged));
            }
            judged
        }
        (None, _) => false,
    };
    let bot = is_bot || own_bot.or(batch_bot).is_some_and(|b| b.as_str() == "true");
    let bot_edit = if is_bot {
        Edit::Set(b"true")
    } else {
        Edit::Keep
    };
    let context_edits = [("bot", bot_edit), ("ip", ip_edit), ("userAgent", ua_edit)];

    // --- clocks ---
    let [own_id, original, own_sent_at, timestamp] = read.map(|at| at.map(|i| &msg.0[i].1));
    let msg_sent_at = own_sent_at.map(Json::as_str).filter(|j| j.starts_with('"'));
    let sent_at: Option<(&str, Option<OffsetDateTime>)> = match msg_sent_at {
        Some(j) => Some((j, times.sent_at)),
        None => req.sent_at.as_ref().map(|(j, t)| (j.as_str(), Some(*t))),
    };
    // The client's own time: `timestamp`, else `originalTimestamp` (first that is a string).
    let client_ts = [(timestamp, times.timestamp), (original, times.original)]
        .into_iter()
        .find_map(|(v, t)| {
            v.map(Json::as_str)
                .filter(|j| j.starts_with('"'))
                .map(|j| (j, t))
        });
    let corrected: Option<TimeJson>;
    let (original_edit, timestamp_edit) = match (client_ts, sent_at.as_ref().and_then(|(_, t)| *t))
    {
        (Some((raw, Some(ts))), Some(sent)) => {
            corrected = (sent - ts)
                .checked_neg()
                .and_then(|skewed| req.received_at.checked_add(skewed))
                .and_then(time_json);
            (
                Edit::Set(raw.as_bytes()),
                Edit::Set(
                    corrected
                        .as_ref()
                        .map_or(raw.as_bytes(), TimeJson::as_bytes),
                ),
            )
        }
        (Some((raw, _)), _) => (Edit::Keep, Edit::Set(raw.as_bytes())),
        (None, _) => (Edit::Keep, Edit::Set(req.received.as_bytes())),
    };
    let sent_edit = match sent_at {
        Some((j, _)) => Edit::Set(j.as_bytes()),
        None => Edit::Keep,
    };

    // --- identity ---
    let generated_id: Option<String>;
    let (message_id, id_edit) = match string_of(own_id)? {
        Some(s) if !s.is_empty() => (s, Edit::Keep),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            debug_assert_eq!(id.len(), GENERATED_ID_LEN);
            generated_id = Some(json_string(&id));
            (
                Cow::Owned(id),
                Edit::Set(generated_id.as_deref().unwrap_or_default().as_bytes()),
            )
        }
    };

    let edits = [
        ("context", Edit::Nested),
        ("messageId", id_edit),
        ("originalTimestamp", original_edit),
        ("receivedAt", Edit::Set(req.received.as_bytes())),
        ("sentAt", sent_edit),
        ("source", Edit::Set(req.source_json.as_bytes())),
        ("timestamp", timestamp_edit),
        ("writeKey", Edit::Remove),
    ];
    // The message's compact size plus all that enrichment can add: the buffer grows at most
    // once for the line (not at all when the caller reserved `Request::lines_room`).
    let line = lines.buffer();
    line.reserve(size + req.enrich_room + message_id.len() + LINE_SLACK);
    match layouts {
        Some((top, inner)) => {
            let keys = msg.0.iter().enumerate().map(|(i, (k, _))| (0, i, k));
            let top = plans.top.get(top, keys, &edits);
            let union = UnionAt {
                a: &context.0,
                b: &batch.0,
                i: 0,
                j: 0,
            };
            let inner = plans.context.get(inner, union, &context_edits);
            write_planned(line, top, [&msg.0, &[]], &edits, |out| {
                let sources = [&context.0[..], &batch.0[..]];
                write_planned(out, inner, sources, &context_edits, |_| {});
            });
        }
        None => write_edited(line, msg.iter_pairs(), &edits, |out| {
            let union = Union {
                a: &context.0,
                b: &batch.0,
            };
            write_edited(out, union, &context_edits, |_| {});
        }),
    }
    line.push(b'\n');
    lines.set_id(&message_id);
    Ok(Written { bot })
}

#[doc(hidden)]
pub mod differential;
mod top_level;

#[cfg(test)]
mod tests {
    //! The line pipeline against the reference (`validate_message` + `enrich` + serde_json), by
    //! way of the shared harness in `differential`.
    use super::differential::{same, DEFAULT};
    use super::*;
    use proptest::prelude::*;

    fn wrap(messages: &[&str]) -> String {
        format!(
            r#"{{"batch":[{}],"sentAt":"2024-05-01T10:00:10.000Z","writeKey":"dev","context":{{"library":{{"name":"footfall","version":"0.1.0"}},"userAgent":"Mozilla/5.0 Chrome/156","screen":{{"width":1920,"height":1080,"density":1}}}}}}"#,
            messages.join(",")
        )
    }

    /// A value shadowed by a later duplicate key is still judged by the reference (it refuses
    /// the whole body for a number out of range or a lone surrogate there): the line_pipeline
    /// fuzzer found bodies the pipeline accepted and the reference refused.
    #[test]
    fn a_value_shadowed_by_a_duplicate_key_is_still_checked() {
        for body in [
            r#"{"batch":[{"height":7e920,"height":5},7],"n":{"l":{"ne":1}}}"#.to_string(),
            wrap(&[r#"{"type":"track","event":"e","userId":"u","p":1e999,"p":1}"#]),
            wrap(&[r#"{"type":"track","event":"e","userId":"u","properties":{"a":"\ud800","a":"ok"}}"#]),
            wrap(&[r#"{"type":"track","event":"e","userId":"u","properties":{"a":[1e400],"a":2}}"#]),
            r#"{"writeKey":"dev","x":1e999,"x":2,"batch":[]}"#.to_string(),
            r#"{"batch":[],"batch":[{"type":"track","event":"e","userId":"u"}],"q":"\udfff","q":1}"#.to_string(),
            wrap(&[r#"{"type":"track","event":"e","userId":"u","properties":{"a":1,"a":2}}"#]),
        ] {
            same(&body, &DEFAULT);
            super::differential::check(&body, &DEFAULT);
        }
    }

    /// A batch's messages reuse the key order found for the one before (`top_level::KeyOrder`),
    /// and where the fields read were found in it (`cached`),
    /// only when they have the same keys in the same order.
    #[test]
    fn messages_with_other_keys_or_orders_than_the_last_are_read_afresh() {
        let body = wrap(&[
            r#"{"type":"track","event":"e","userId":"u","messageId":"k1","context":{"b":1,"a":2}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k2","context":{"b":3,"a":4}}"#,
            r#"{"userId":"u","type":"track","event":"e","messageId":"k3","context":{"a":5,"b":6}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"x","messageId":"k4","context":{"b":1,"b":2}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k5","context":{"b":1,"a":2}}"#,
            r#"{"type":"track","event":"e","userIe":"u","messageId":"k6","context":{"b":1,"c":2}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k7","context":{"b":1,"a":2}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k8"}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k9","context":{}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k10","context":{"b":1,"a":2}}"#,
            // Where the fields read are found is reused only for the same layout.
            r#"{"type":"track","event":"e","userId":"u","messageId":"k11","context":{"ip":"1.2.3.4","userAgent":"Googlebot/2.1"}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k12","context":{"ip":"1.2.3.5","userAgent":"Googlebot/2.1"}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k13","context":{"bot":true,"userAgent":"curl/8"}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"k14","context":{"ip":"1.2.3.6","zzz":"Googlebot/2.1"}}"#,
            r#"{"type":"track","event":"e","anonymousId":"u","messageId":"k15","timestamp":"2024-05-01T10:00:00.000Z"}"#,
            r#"{"type":"track","event":"e","anonymousId":"u","messageId":"k16","timestamp":"2024-05-01T10:00:01.000Z"}"#,
            r#"{"type":"track","event":"e","anonymousId":"u","messageIe":"k17","timestamp":"2024-05-01T10:00:01.000Z"}"#,
            r#"{"type":"track","event":"e","anonymousId":"u","messageId":"k18","timestamq":"2024-05-01T10:00:01.000Z"}"#,
            r#"{"type":"identify","userId":"u","messageId":"k19","sentAt":"2024-05-01T10:00:02.000Z"}"#,
            r#"{"type":"identify","userId":"u","messageId":"k20","sentAt":"2024-05-01T10:00:03.000Z"}"#,
        ]);
        same(&body, &DEFAULT);
        super::differential::check(&body, &DEFAULT);
    }

    #[test]
    fn planned_keys_of_every_length_match_the_reference() {
        // Around `KEY_COPY` (a key's text is its length plus four), planned from the first
        // message and replayed for the second.
        for n in 24..36 {
            let k = "k".repeat(n);
            let msg = |id: &str| {
                format!(
                    r#"{{"type":"track","event":"e","userId":"u","messageId":"{id}","{k}":1,"context":{{"{k}":2}}}}"#
                )
            };
            same(&wrap(&[&msg("a"), &msg("b")]), &DEFAULT);
        }
    }

    #[test]
    fn same_key_is_equality() {
        let text: Vec<u8> = (0..64u8).map(|i| b'a' + i % 26).collect();
        for n in 0..40 {
            for m in 0..40 {
                let (a, b) = (&text[..n], &text[..m]);
                assert_eq!(top_level::same_key(a, b), a == b);
                let mut c = a.to_vec();
                for i in 0..n {
                    c[i] ^= 1;
                    assert!(!top_level::same_key(a, &c), "{n} {i}");
                    c[i] ^= 1;
                }
            }
        }
    }

    #[test]
    fn ip_json_is_display_as_a_json_string() {
        let mut ips: Vec<IpAddr> = ["::1", "2001:db8::", "::ffff:1.2.3.4"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        for o in [0u8, 1, 9, 10, 99, 100, 199, 200, 255] {
            ips.push(IpAddr::from([o, 255 - o, o / 2, 7]));
        }
        for ip in ips {
            assert_eq!(ip_json(ip), json_string(&ip.to_string()), "{ip}");
        }
    }

    #[test]
    fn hand_picked_messages_match_the_reference() {
        let cases = [
            r#"{"type":"track","event":"evt","properties":{"i":1},"anonymousId":"a","messageId":"m1","timestamp":"2024-05-01T10:00:00.000Z","context":{"page":{"path":"/","referrer":"","search":"","title":"T","url":"http://x/"},"sessionId":"s"}}"#,
            r#"{ "type" : "track", "event":"e\n\"q\"\\", "userId":"u", "messageId":"m2",
                "properties": { "b": 1, "a": [1, 2.5, -0, 1e2, 18446744073709551616123, -9223372036854775808], "c": "\u00e9\/" } }"#,
            r#"{"type":"alias","type":"track","event":"Dup","userId":"u","messageId":"x","messageId":"m3"}"#,
            r#"{"type":"identify","userId":"u","messageId":"m4","traits":{"k":{"z":1,"z":2}},"context":{"ip":"198.51.100.20","userAgent":"Googlebot/2.1"}}"#,
            r#"{"type":"page","anonymousId":"a","messageId":"m5","name":null,"sentAt":"2024-05-01T10:00:11Z","originalTimestamp":"2024-05-01T11:00:00+01:00"}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"m6","context":null,"bot":true}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"m7","context":{"bot":true,"userAgent":""}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"m8","context":"x"}"#,
            // Duplicate contexts: the kept (last) one, whether or not an earlier one was split.
            r#"{"type":"track","event":"e","userId":"u","messageId":"c1","context":{"a":1},"context":"x"}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"c2","context":"x","context":{"b":[2, 1],"a":1}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"c3","context":{"a":1},"context":{ "z" : {"context":{"y":1,"x":2}}, "ip":"1.2.3.4" }}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"c4","con\u0074ext":{"a":1},"context":{}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"c5","context":{"con\u0074ext":1,"userAgent":"Googlebot/2.1"}}"#,
            r#"{"type":"track","event":"e","userId":"u","GENERATED":1}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":""}"#,
            r#"{"type":"track","event":"","userId":"u"}"#,
            r#"{"type":"track","event":7,"userId":"u"}"#,
            r#"{"type":"track","event":"e","userId":7}"#,
            r#"{"type":"track","event":"e","userId":"","anonymousId":null}"#,
            r#"{"type":"nope","userId":"u"}"#,
            r#"{"type":5,"userId":"u"}"#,
            r#"{"userId":"u"}"#,
            r#"{"type":"group","userId":"u"}"#,
            r#"{"type":"screen","userId":"u","name":5}"#,
            r#"{"type":"track","event":"e","userId":"u","timestamp":"yesterday"}"#,
            r#"{"type":"track","event":"e","userId":"u","timestamp":5}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":5}"#,
            r#"{"type":"track","event":"e","userId":"u","properties":[]}"#,
            r#"{"type":"track","event":"e","userId":"u","writeKey":"secret","messageId":"m9"}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"m10","timestamp":"9999-12-31T23:59:59Z"}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"m11","timestamp":"0001-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59Z"}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"m12","context":{"userAgent":"x","library":{"name":"mine"}}}"#,
            r#"{"type":"track","event":"e","userId":"u","messageId":"m13","key\u0041":1,"a\nb":2}"#,
            // A client id with escapes: its line is the client's (compared byte for byte).
            r#"{"type":"track","event":"e","userId":"u","messageId":"m\u0031\n4"}"#,
            r#"[1]"#,
            r#""str""#,
        ];
        for c in cases {
            same(&wrap(&[c]), &DEFAULT);
            let mut o = DEFAULT;
            o.trust = true;
            o.keep_ip = true;
            o.ua = None;
            same(&wrap(&[c]), &o);
            if c.starts_with('{') {
                for t in MessageType::ALL {
                    let mut o = DEFAULT;
                    o.implied = Some(t);
                    same(c, &o);
                }
            }
        }
        let mut o = DEFAULT;
        o.max = 120;
        for c in cases {
            same(&wrap(&[c]), &o);
        }
        // Deep nesting: within serde_json's limit, and past it (no line either way).
        let deep = |n: usize| {
            format!(
                r#"{{"type":"track","event":"e","userId":"u","messageId":"d","properties":{{"p":{}1{}}}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        same(&wrap(&[&deep(50)]), &DEFAULT);
        same(&wrap(&[&deep(110)]), &DEFAULT);
        same(&wrap(&[&deep(200)]), &DEFAULT);
        same(&wrap(&[&deep(5000)]), &DEFAULT);
        // Too deep where no message field is: an ignored body field, a non-object element.
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        same(&format!(r#"{{"x":{},"batch":[]}}"#, nest(300)), &DEFAULT);
        same(&format!(r#"{{"batch":[{}]}}"#, nest(300)), &DEFAULT);
        same(&format!(r#"{{"batch":[{}]}}"#, nest(60)), &DEFAULT);
        // What serde_json's skipping parse lets through in a field nothing else reads.
        same(r#"{"x":"\ud800","batch":[]}"#, &DEFAULT);
        same(r#"{"x":[1e999],"batch":[]}"#, &DEFAULT);
        same(r#"{"batch":["\udc00"]}"#, &DEFAULT);
        same(r#"{"batch":[1e999]}"#, &DEFAULT);
        // Whitespace around the body, an empty batch, odd spacing everywhere.
        same(" \n{ \"batch\" : [ ] } \n", &DEFAULT);
        same(
            &wrap(&[
                r#" { "type" : "track" , "event" : "e" , "userId" : "u" , "messageId" : "s1" , "context" : { } } "#,
            ]),
            &DEFAULT,
        );
        // Out-of-range number and a lone surrogate inside a message.
        same(
            &wrap(&[r#"{"type":"track","event":"e","userId":"u","properties":{"n":1e999}}"#]),
            &DEFAULT,
        );
        same(
            &wrap(&[r#"{"type":"track","event":"e","userId":"u","properties":{"s":"\ud800"}}"#]),
            &DEFAULT,
        );
    }

    /// Edges of the JSON grammar and of the canonical form at the top level, where the one-pass
    /// split (`top_level`) judges them: refused where serde_json refuses them, the same lines
    /// where it accepts them (`same` also runs the split-in-passes fallback).
    #[test]
    fn one_pass_split_matches_serde_json_at_the_edges() {
        let msg = r#"{"type":"track","event":"e","userId":"u","messageId":"m"}"#;
        let values = [
            "01",
            "1.",
            "-",
            "-0",
            "-01",
            "1.5",
            "1e5",
            "1E+2",
            "1e",
            "1e+",
            ".5",
            "+1",
            "0",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678",
            "-12345678901234567",
            "tru",
            "true",
            "nul",
            "null",
            "falsey",
            "false",
            r#""\u12G4""#,
            r#""\u12""#,
            r#""\q""#,
            r#""\/""#,
            "\"a\u{1}b\"",
            "\"a\u{0}b\"",
            "\"é\"",
            r#""\ud800""#,
            "[1,]",
            "[,1]",
            "[1 2]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "{\"b\":1,\"a\":2}",
            "{\"a\":1,\"a\":2}",
            "[ 1 ]",
            "{ }",
            "[]",
            "{}",
            "\"x",
            "1 2",
            "1e999",
        ];
        for v in values {
            same(&format!(r#"{{"batch":[{msg}],"x":{v}}}"#), &DEFAULT);
            same(&format!(r#"{{"x":{v},"batch":[{msg}]}}"#), &DEFAULT);
            same(&format!(r#"{{"batch":[{msg},{v}]}}"#), &DEFAULT);
            let mut o = DEFAULT;
            o.implied = Some(MessageType::Track);
            same(
                &format!(r#"{{"type":"track","event":"e","userId":"u","x":{v}}}"#),
                &o,
            );
            same(
                &format!(r#"{{"type":"track","event":"e","userId":"u","context":{{"x":{v}}}}}"#),
                &o,
            );
        }
        for body in [
            format!(r#"{{"batch":[{msg}],"batch":5}}"#),
            format!(r#"{{"batch":5,"batch":[{msg}]}}"#),
            format!(r#"{{"batch":[{msg}],"b\u0061tch":[]}}"#),
            format!(r#"{{"batch":[{msg}]}} x"#),
            format!(r#"{{"batch":[{msg}]}},"#),
            format!(" \t\r\n{{\"batch\":[{msg}]}} \n"),
            format!(r#"{{"batch":[{msg}],}}"#),
            format!(r#"{{"batch":[{msg}]"#),
            format!(r#"{{"batch":[{msg}],"x":"\u0000"}}"#),
            format!("{{\"batch\":[{msg}],\"x\":\"\u{7}\"}}"),
            format!(r#"[{msg}]"#),
            String::from("{}"),
            String::new(),
        ] {
            same(&body, &DEFAULT);
        }
    }

    /// Batch elements the one-pass check splits, and those it leaves to `message_object` (an
    /// escaped key at either level, a key too long for a span, a non-object): the same lines
    /// either way (`same` also runs the split-in-passes fallback, where none is split early).
    #[test]
    fn batch_elements_split_in_one_pass_or_later_match_the_reference() {
        let long = "k".repeat(usize::from(u16::MAX) + 1);
        let msg = |extra: &str| {
            format!(r#"{{"type":"track","event":"e","userId":"u","messageId":"m"{extra}}}"#)
        };
        let elements = [
            msg(""),
            msg(r#","context":{"ip":"1.2.3.4","a":[1, 2]}"#),
            msg(r#","context":{"a":1},"context":{"b":2}"#),
            msg(r#","context":{"a":1},"context":null"#),
            msg(r#","context":"x","context":{"z":1,"a":{"y":1,"x":2}}"#),
            msg(r#","context":{"a":1,"a":2}"#),
            msg(r#","context":{"context":{"b":1,"a":2},"userAgent":"Googlebot/2.1"}"#),
            msg(r#","con\u0074ext":{"a":1}"#),
            msg(r#","context":{"\u0061":1}"#),
            msg(&format!(r#","{long}":1"#)),
            msg(&format!(r#","context":{{"{long}":1}}"#)),
            msg(r#","p":1,"p":{"b":1,"a":2}"#),
            msg(r#", "q" : [ 1 ] , "r":-0,"s":1.5,"t":"\/""#),
            "{}".to_string(),
            "{ }".to_string(),
            "[1]".to_string(),
            "7".to_string(),
        ];
        for e in &elements {
            same(&wrap(&[e]), &DEFAULT);
        }
        let all: Vec<&str> = elements.iter().map(String::as_str).collect();
        same(&wrap(&all), &DEFAULT);
        let mut o = DEFAULT;
        o.max = usize::MAX;
        same(&wrap(&all), &o);
    }

    /// A top-level `context` (a single message's, a batch's shared one) the one-pass check
    /// splits, and those it leaves to be split later (not an object, an escaped or too long
    /// key, a duplicate key inside it): the same lines either way.
    #[test]
    fn top_level_context_split_in_one_pass_or_later_matches_the_reference() {
        let long = "k".repeat(usize::from(u16::MAX) + 1);
        let contexts = [
            r#"{"ip":"1.2.3.4","a":[1, 2],"userAgent":"Googlebot/2.1"}"#.to_string(),
            r#"{"b":{"y":1,"x":2},"a":-0,"c":1.5,"d":"\/"}"#.to_string(),
            r#"{"a":1,"a":2}"#.to_string(),
            r#"{"a":7e920,"a":2}"#.to_string(),
            r#"{"\u0061":1}"#.to_string(),
            format!(r#"{{"{long}":1}}"#),
            r#"{ }"#.to_string(),
            r#"{"context":{"b":1,"a":2}}"#.to_string(),
            "null".to_string(),
            "[1]".to_string(),
            "\"x\"".to_string(),
        ];
        let mut track = DEFAULT;
        track.implied = Some(MessageType::Track);
        for c in &contexts {
            let one = format!(r#"{{"type":"track","event":"e","userId":"u","context":{c}}}"#);
            same(&one, &track);
            let msg = r#"{"type":"track","event":"e","userId":"u","messageId":"m"}"#;
            same(&format!(r#"{{"batch":[{msg}],"context":{c}}}"#), &DEFAULT);
            same(&format!(r#"{{"context":{c},"batch":[{msg}]}}"#), &DEFAULT);
        }
        // The first is split in the one pass; the one with an escaped key is not.
        let split = |c: &str| {
            top_level::split_body(&format!(r#"{{"type":"track","context":{c}}}"#))
                .is_some_and(|top| top.context.is_some())
        };
        assert!(split(&contexts[0]));
        assert!(!split(&contexts[4]));
    }

    /// Strings `validate` and `enrich` read, with and without escapes (`Json::Plain` is a
    /// string without a backslash, taken as it is), in a batch element and as a single message.
    #[test]
    fn strings_read_with_and_without_escapes_match_the_reference() {
        let cases = [
            ("type", r#""tr\u0061ck""#),
            ("event", r#""\u0065""#),
            ("event", r#""e\/f""#),
            ("userId", r#""u\n""#),
            ("userId", r#""""#),
            ("messageId", r#""m\"""#),
            ("messageId", r#""""#),
            ("messageId", r#""é""#),
            ("timestamp", r#""2024-05-01T10:00:00.000\u005a""#),
            ("timestamp", r#""2024-05-01T10:00:00.000Z""#),
            ("sentAt", r#""2024-05-01T10:00:05.000\u005A""#),
            ("anonymousId", r#""\\""#),
        ];
        let mut track = DEFAULT;
        track.implied = Some(MessageType::Track);
        for (k, v) in cases {
            let base = [
                ("type", r#""track""#),
                ("event", r#""e""#),
                ("userId", r#""u""#),
                ("messageId", r#""m""#),
            ];
            let mut fields: Vec<String> = base
                .iter()
                .filter(|(b, _)| *b != k)
                .map(|(b, bv)| format!(r#""{b}":{bv}"#))
                .collect();
            fields.push(format!(r#""{k}":{v}"#));
            let msg = format!("{{{}}}", fields.join(","));
            same(&wrap(&[&msg]), &DEFAULT);
            same(&msg, &track);
        }
    }

    /// serde_json's private RawValue marker is an ordinary key here (found by the line_pipeline
    /// fuzzer, kept in ingest/fuzz/regressions/line_pipeline/): written as sent, whatever the
    /// spacing, never replaced by the JSON its string holds, never a refused body.
    #[test]
    fn serde_private_marker_key_is_data_like_any_key() {
        let marker = "$serde_json::private::RawValue";
        for props in [
            format!(r#"{{"a": {{"{marker}": "5"}}}}"#),
            format!(r#"{{"a":{{"{marker}":"5"}}}}"#),
            format!(r#"{{"a": {{"{marker}": "x y"}}}}"#),
        ] {
            let body = wrap(&[&format!(
                r#"{{"type":"track","event":"e","userId":"u","messageId":"m","properties":{props}}}"#
            )]);
            same(&body, &DEFAULT);
            let lines = super::differential::run(&body, &DEFAULT).expect("body accepted");
            let line = match &lines[0].1 {
                Ok(e) => String::from_utf8(e.line.clone()).unwrap(),
                Err(r) => panic!("{props}: rejected {r:?}"),
            };
            assert!(
                line.contains(&format!(r#""properties":{{"a":{{"{marker}":""#)),
                "{line}"
            );
        }
        same(
            &format!(
                r#"{{"batch":[{{"{marker}":"9999-12-31T23"}},{{"type":"screen","userId":"u1","name":5}},7]}}"#
            ),
            &DEFAULT,
        );
    }

    /// JSON text with random key order, duplicates, whitespace and escapes.
    fn arb_json(depth: u32) -> BoxedStrategy<String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            prop::sample::select(vec!["-0", "1e2", "0.5", "99999999999999999999", "1E-3"])
                .prop_map(str::to_owned),
            "[a-z\"\\\\/\n\té€😀]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            prop::sample::select(vec![r#""\u00e9""#, r#""\/""#, r#""\u001f""#, r#""a\tb""#])
                .prop_map(str::to_owned),
        ];
        leaf.prop_recursive(depth, 24, 5, |inner| {
            let ws = prop::sample::select(vec!["", "", "", " ", "\n  "]);
            prop_oneof![
                (prop::collection::vec(inner.clone(), 0..4), ws.clone())
                    .prop_map(|(v, w)| format!("[{w}{}]", v.join(&format!(",{w}")))),
                (
                    prop::collection::vec(
                        (
                            prop::sample::select(vec!["a", "b", "c", "z", "é", "a\\u0062"]),
                            inner
                        ),
                        0..4
                    ),
                    ws
                )
                    .prop_map(|(v, w)| {
                        let parts: Vec<String> = v
                            .iter()
                            .map(|(k, x)| format!("\"{k}\"{w}:{w}{x}"))
                            .collect();
                        format!("{{{}}}", parts.join(","))
                    }),
            ]
        })
        .boxed()
    }

    proptest! {
        /// The word-at-a-time search finds what a byte-by-byte one finds, at every offset.
        #[test]
        fn string_stop_finds_the_first_quote_backslash_or_control(
            bytes in prop::collection::vec(prop::sample::select(vec![b'a', b'"', b'\\', 0x1f, 0x20, 0x00, 0x7f, 0x80, 0xa2, 0xdc, 0xff]), 0..40),
            from in 0usize..48,
        ) {
            let naive = (from..bytes.len())
                .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..=0x1f))
                .unwrap_or(bytes.len().max(from));
            prop_assert_eq!(string_stop(&bytes, from), naive);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn random_messages_match_the_reference(
            props in arb_json(3),
            ctx in arb_json(2),
            ty in prop::sample::select(vec!["track", "identify", "page", "group", "alias"]),
            ts in prop::sample::select(vec!["", r#","timestamp":"2024-05-01T10:00:00.000Z""#, r#","originalTimestamp":"2024-05-01T10:00:00Z""#, r#","timestamp":null"#]),
            extra in arb_json(1),
            max in prop::sample::select(vec![32 * 1024, 200, 400]),
        ) {
            let msg = format!(
                r#"{{"type":"{ty}","event":"e","userId":"u","groupId":"g","previousId":"p","messageId":"r"{ts},"properties":{props},"context":{ctx},"x":{extra}}}"#
            );
            let mut o = DEFAULT;
            o.max = max;
            same(&wrap(&[&msg]), &o);
            let msg2 = format!(r#"{{"type":"{ty}","event":"e","userId":"u","messageId":"r2","x":{extra},"context":{{"page":{props},"screen":{ctx}}}}}"#);
            same(&wrap(&[&msg2]), &o);
        }
    }
}
