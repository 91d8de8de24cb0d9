//! The body's top level in one validating pass over its bytes: what serde_json's skipping parse
//! (`IgnoredAny`), `split_object` of the top level, `parse_array` of `batch` and
//! `message_object` of each batch element did in four passes (issue 5: the first three were
//! ~25 % of a batch's instructions, the last re-read every message byte the check had read).
//!
//! It answers only when it is sure, and otherwise leaves the body to the old way (serde_json's
//! check, then the splits), so that every refusal and every error text stays the reference
//! parser's. Sure means: the text is JSON that serde_json's skipping parse accepts — the same
//! grammar, strictly RFC 8259 (no leading zeros, no trailing commas, no control characters in
//! strings, `\u` followed by four hex digits, only whitespace after the value) — it is an object,
//! no top-level key has an escape (its decoded text would be needed), and no value nests
//! `DEPTH_BUDGET` levels or more. What serde_json's skipping parse lets through and its `Value`
//! parse does not (numbers out of range, lone surrogates, nesting past 128) is still found where
//! it was: those values are never canonical, so `canon` re-encodes them and refuses the body.
//!
//! On the way it judges each top-level value's canonical form exactly as `scan` would, so
//! `deep_check` and `canon` need not scan them again — except `batch` and `context`. A
//! `context` object is split as `split_object` with `Mode::Scan` splits it (`TopLevel::context`),
//! so neither the router (a batch's shared context) nor `process` (a single message's) splits it
//! again; one with a key that is not plain, or a duplicate key, is only checked, and split later
//! as before (a duplicate key: the whole body the old way). Each `batch` element that is an
//! object is split as `message_object`
//! splits it (`split_fields` with `Mode::Scan` and its `context`): its members' key and value
//! spans, each value judged, and those of its `context` object, recorded as offsets into the
//! body (`SplitBatch`: 16 bytes per member, 20 per element; a batch's `Obj`s are still built one
//! message at a time). An element whose split needs more than spans (an escaped key, whose
//! decoded text would be needed; a key longer than `u16::MAX` bytes) is only checked, and
//! `message_object` splits it later as before; so is an element that is not an object.

use std::borrow::Cow;

use super::{
    key_cmp, key_in_order, message_object, string_stop, Batch, Body, BodyError, Elements, Message,
    Obj, RawObject, RawVal, Scan, Scratch, Str, TopLevel, DEPTH_BUDGET,
};
use crate::validate::RuleViolation;

/// `None`: not sure (see the module doc); the caller takes the old way.
pub(super) fn split_body(text: &str) -> Option<TopLevel<'_>> {
    // Offsets are u32 (see `SplitBatch`).
    if u32::try_from(text.len()).is_err() {
        return None;
    }
    let mut c = Checker {
        s: text.as_bytes(),
        canonical: true,
    };
    let mut i = c.ws(0);
    i = c.eat(i, b'{')?;
    i = c.ws(i);
    let mut pairs = Vec::with_capacity(8);
    let mut batch = None;
    // The `context` object's members (a single message's context; a batch's shared one), and
    // whether the last `context` was split (of equal keys the last wins).
    let mut context = Vec::new();
    let mut context_split = false;
    if let Some(past) = c.eat(i, b'}') {
        i = past;
    } else {
        loop {
            if c.at(i) != b'"' {
                return None;
            }
            let (start, end, _, escaped) = c.string(i)?;
            if escaped {
                return None;
            }
            let key = &text[start..end];
            i = c.colon(end + 1)?;
            let at = i;
            let scan = match key {
                // Of duplicate keys the last wins, here as in `Obj::from_pairs`.
                "batch" if c.at(i) == b'[' => {
                    let split;
                    (i, split) = c.elements(i, text)?;
                    batch = Some(Batch(Elements::Split(split)));
                    Scan::Unknown
                }
                "context" => {
                    context.clear();
                    // Not an object, or (`Some(false)`) a key that is not plain: split later,
                    // as before.
                    (i, context_split) = if c.at(i) == b'{' {
                        c.members(i, DEPTH_BUDGET, &mut context, None)?
                    } else {
                        (c.value::<false>(i, DEPTH_BUDGET)?, false)
                    };
                    Scan::Unknown
                }
                "batch" => {
                    batch = None;
                    i = c.value::<false>(i, DEPTH_BUDGET)?;
                    Scan::Unknown
                }
                _ => {
                    let scan;
                    (i, scan) = c.judged(i, DEPTH_BUDGET)?;
                    scan
                }
            };
            pairs.push((
                Str(Cow::Borrowed(key)),
                RawVal {
                    text: &text[at..i],
                    scan,
                },
            ));
            let more;
            (i, more) = c.more(i, b'}')?;
            if !more {
                break;
            }
        }
    }
    if c.ws(i) != c.s.len() {
        return None;
    }
    let (fields, shadowed) = Obj::from_pairs(pairs);
    if shadowed {
        // A duplicate top-level key: the old way checks the value it drops (see `from_pairs`).
        return None;
    }
    let context = if context_split {
        // A duplicate key in it: the old way has the value it drops checked.
        Some(object(text, &context, Vec::new(), None).ok()?.0)
    } else {
        None
    };
    Some(TopLevel {
        fields,
        batch,
        context,
    })
}

/// The sorted, deduplicated object of split `members` (offsets into `text`); `Err` when a
/// duplicate key shadowed a value, which the caller must have checked another way (see
/// `Obj::from_pairs`).
/// Built in `pairs` (emptied first), a vector an earlier message left behind (see `Scratch`),
/// in the key order `order` found for the last object when this one has the same keys in the
/// same order (see `KeyOrder`). Ok: the object, and the `KeyOrder::layout` it has, if any.
/// Without `order` (one object, nothing to share its order with) it is sorted as it is.
fn object<'a>(
    text: &'a str,
    members: &[Member],
    mut pairs: Vec<(Str<'a>, RawVal<'a>)>,
    order: Option<&mut KeyOrder<'a>>,
) -> Result<(RawObject<'a>, Option<u64>), RawObject<'a>> {
    pairs.clear();
    let key = |m: &Member| m.key_text(text);
    if let Some(order) = order {
        let bytes = text.as_bytes();
        let key_bytes = |m: &Member| {
            let key = m.key as usize;
            &bytes[key..key + usize::from(m.key_len)]
        };
        if order.holds(members.iter().map(key_bytes)) || order.learn(members.iter().map(key)) {
            // The keys are the learnt ones: their text is taken from there, without slicing
            // (and checking char boundaries in) this object's again.
            pairs.extend(
                order
                    .order
                    .iter()
                    .map(|&(i, key)| members[i as usize].pair_with(key, text)),
            );
            return Ok((Obj(pairs), Some(order.layout)));
        }
    }
    // No order to share, or a duplicate key.
    pairs.extend(members.iter().map(|m| m.pair(text)));
    match Obj::from_pairs(pairs) {
        (obj, false) => Ok((obj, None)),
        (obj, true) => Err(obj),
    }
}

/// The keys of the last object `object` split, in input order, and their key order. A batch's
/// messages mostly have the same keys in the same order (and so do their contexts): for them
/// the sort and the duplicate check of `Obj::from_pairs` (~700 instructions a message) become
/// a comparison of the keys.
#[derive(Debug, Default)]
pub(super) struct KeyOrder<'a> {
    keys: Vec<&'a str>,
    /// Indices into `keys` in key order (they are unique), with their keys.
    order: Vec<(u32, &'a str)>,
    /// Tells the key lists learnt apart: objects split with the same layout have the same keys
    /// at the same positions (so `process` reuses where it found the fields it reads).
    layout: u64,
}

impl<'a> KeyOrder<'a> {
    /// Whether `keys` are the ones learnt, in the same order.
    fn holds<'k>(&self, keys: impl ExactSizeIterator<Item = &'k [u8]>) -> bool {
        keys.len() == self.keys.len()
            && keys.zip(&self.keys).all(|(a, b)| same_key(a, b.as_bytes()))
    }

    /// Learns the key order of `keys`, as `Obj::from_pairs` sorts them (stable); `false`, and
    /// nothing learnt, when two keys are equal (then `from_pairs` must resolve them).
    fn learn(&mut self, keys: impl ExactSizeIterator<Item = &'a str>) -> bool {
        let Self {
            keys: known,
            order,
            layout,
        } = self;
        known.clear();
        known.extend(keys);
        order.clear();
        order.extend(known.iter().enumerate().map(|(i, &k)| (offset(i), k)));
        order.sort_by(|a, b| key_cmp(a.1.as_bytes(), b.1.as_bytes()));
        if order
            .windows(2)
            .all(|w| key_cmp(w[0].1.as_bytes(), w[1].1.as_bytes()).is_lt())
        {
            *layout += 1;
            return true;
        }
        known.clear();
        order.clear();
        false
    }
}

/// `a == b` for short keys, a word at a time.
#[inline]
pub(super) fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
    };
    if n < 8 {
        // Four bytes at a time as well (overlapping when shorter than 8).
        let half = |s: &[u8], i: usize| {
            s.get(i..i + 4)
                .map(|w| u32::from_le_bytes(w.try_into().unwrap_or([0; 4])))
        };
        if n < 4 {
            return a.iter().zip(b).all(|(x, y)| x == y);
        }
        return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
    }
    // The first and the last eight bytes (overlapping when shorter than 16), then the rest.
    word(a, 0) == word(b, 0)
        && word(a, n - 8) == word(b, n - 8)
        && (n <= 16 || a[8..n - 8] == b[8..n - 8])
}

/// A strict JSON reader that also tracks, while `JUDGE` is on, whether the text is what
/// serde_json writes for it (the rules of `Scanner::value`).
///
/// The position is not kept here: every method takes it and hands back where it got to, so
/// that it lives in a register through a function's loop instead of being stored and reloaded
/// around every token (callgrind: ~200 instructions a batch message).
struct Checker<'s> {
    s: &'s [u8],
    canonical: bool,
}

impl Checker<'_> {
    #[inline(always)]
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    /// `i` past `b`, when `b` is there.
    #[inline(always)]
    fn eat(&self, i: usize, b: u8) -> Option<usize> {
        (self.at(i) == b).then_some(i + 1)
    }

    /// `i` past any whitespace.
    #[inline(always)]
    fn ws(&mut self, mut i: usize) -> usize {
        while matches!(self.at(i), b' ' | b'\n' | b'\r' | b'\t') {
            self.canonical = false;
            i += 1;
        }
        i
    }

    /// Whether `pair` is at `i`.
    // Not `get(i..i + 2)`, which tests `i + 2` for overflow as well.
    #[inline(always)]
    fn pair(&self, i: usize, pair: &[u8; 2]) -> bool {
        self.s.get(i..).is_some_and(|rest| rest.starts_with(pair))
    }

    /// After a key (`i` past its closing quote): past the `:` and the whitespace around it.
    // The usual `:"` (no whitespace, a string value) is one test of two bytes, rather than the
    // whitespace and colon tests one byte at a time (with `more`'s `,"`, callgrind: ~100
    // instructions a batch message).
    #[inline(always)]
    fn colon(&mut self, i: usize) -> Option<usize> {
        if self.pair(i, b":\"") {
            return Some(i + 1);
        }
        let i = self.ws(i);
        let i = self.eat(i, b':')?;
        Some(self.ws(i))
    }

    /// After a member or element: `Some((_, true))` past a `,` (another one follows),
    /// `Some((_, false))` past `close` (the container ended), `None` on anything else.
    #[inline(always)]
    fn more(&mut self, i: usize, close: u8) -> Option<(usize, bool)> {
        // The usual `,"` between members, as one test (see `colon`).
        if self.pair(i, b",\"") {
            return Some((i + 1, true));
        }
        let i = self.ws(i);
        if let Some(i) = self.eat(i, b',') {
            return Some((self.ws(i), true));
        }
        self.eat(i, close).map(|i| (i, false))
    }

    /// The elements of the array at `i`, each checked, and split when it is an object (see the
    /// module doc); and the position past it.
    fn elements<'a>(&mut self, i: usize, text: &'a str) -> Option<(usize, SplitBatch<'a>)> {
        let mut i = self.ws(i + 1);
        // Room for what the body's size suggests (the SDK's messages are ~370 bytes with ~9
        // split members, its own and its context's), so that a batch's vectors do not grow ~15
        // times from empty (issue 5: the reallocations were ~130 instructions a message);
        // bounded, for a body that is mostly one long string.
        let mut out = SplitBatch {
            text,
            elements: Vec::with_capacity((text.len() / 256).min(1 << 14)),
            fields: Vec::with_capacity((text.len() / 32).min(1 << 16)),
        };
        if let Some(i) = self.eat(i, b']') {
            return Some((i, out));
        }
        // The current element's context members, appended after its own when it is done.
        let mut context = Vec::new();
        loop {
            let mut element = Element {
                start: offset(i),
                end: 0,
                first: NOT_SPLIT,
                members: 0,
                context: NO_CONTEXT,
            };
            if self.at(i) == b'{' {
                let first = out.fields.len();
                context.clear();
                let mut context_split = false;
                let plain;
                (i, plain) = self.members(
                    i,
                    DEPTH_BUDGET,
                    &mut out.fields,
                    Some((&mut context, &mut context_split)),
                )?;
                if plain {
                    element.first = offset(first);
                    element.members = offset(out.fields.len() - first);
                    if context_split {
                        element.context = offset(context.len());
                        out.fields.extend_from_slice(&context);
                    }
                } else {
                    out.fields.truncate(first);
                }
            } else {
                i = self.value::<false>(i, DEPTH_BUDGET)?;
            }
            element.end = offset(i);
            out.elements.push(element);
            let more;
            (i, more) = self.more(i, b']')?;
            if !more {
                return Some((i, out));
            }
        }
    }

    /// The object at `i` (on its `{`, `depth` levels of budget as `value` counts them), checked
    /// as `value` checks it and split as `split_fields` with `Mode::Scan` splits it: each
    /// member's spans into `out`, its value judged. With `context`, a `context` member that is
    /// an object is split the same way into `context.0` instead (emptied first: of equal keys
    /// the last wins), and `context.1` tells whether the last `context` was one. `Some((_,
    /// false))`: valid, but a key is not plain (escaped, or too long for a `Member`), so the
    /// spans are of no use. With the position past the object.
    fn members(
        &mut self,
        i: usize,
        depth: usize,
        out: &mut Vec<Member>,
        mut context: Option<(&mut Vec<Member>, &mut bool)>,
    ) -> Option<(usize, bool)> {
        let mut i = self.ws(i + 1);
        if let Some(i) = self.eat(i, b'}') {
            return Some((i, true));
        }
        let mut plain = true;
        loop {
            if self.at(i) != b'"' {
                return None;
            }
            let (start, end, _, escaped) = self.string(i)?;
            // A branch, seldom taken, rather than folding both tests into `plain` every member.
            let key_len = end - start;
            if escaped || key_len > usize::from(u16::MAX) {
                plain = false;
            }
            i = self.colon(end + 1)?;
            let at = i;
            let scan = match context.as_mut() {
                Some((inner, split)) if &self.s[start..end] == b"context" => {
                    inner.clear();
                    **split = self.at(i) == b'{';
                    if **split {
                        let inner_plain;
                        (i, inner_plain) = self.members(i, depth - 1, inner, None)?;
                        plain &= inner_plain;
                    } else {
                        // `process` judges it when it writes it (as `split_fields` leaves it).
                        i = self.value::<false>(i, depth - 1)?;
                    }
                    Scan::Unknown
                }
                _ => {
                    let scan;
                    (i, scan) = self.judged(i, depth - 1)?;
                    scan
                }
            };
            out.push(Member {
                key: offset(start),
                value: offset(at),
                value_end: offset(i),
                // Cut short only when not plain: then the spans are of no use.
                key_len: key_len as u16,
                scan,
            });
            let more;
            (i, more) = self.more(i, b'}')?;
            if !more {
                return Some((i, plain));
            }
        }
    }

    /// A member's value at `i`, checked as `value` checks it and judged; a string is read here,
    /// so that one without a backslash is told apart (`Scan::PlainString`).
    #[inline(always)]
    fn judged(&mut self, i: usize, depth: usize) -> Option<(usize, Scan)> {
        if depth > 0 && self.at(i) == b'"' {
            let (_, end, odd, any) = self.string(i)?;
            let scan = match (any, odd) {
                (false, _) => Scan::PlainString,
                (true, false) => Scan::Canonical,
                (true, true) => Scan::NotCanonical,
            };
            return Some((end + 1, scan));
        }
        self.canonical = true;
        let i = self.value::<true>(i, depth)?;
        Some((
            i,
            if self.canonical {
                Scan::Canonical
            } else {
                Scan::NotCanonical
            },
        ))
    }

    /// `value` inside a container: a string (most members and elements) is read here, without
    /// the call.
    #[inline(always)]
    fn element<const JUDGE: bool>(&mut self, i: usize, depth: usize) -> Option<usize> {
        if depth > 0 && self.at(i) == b'"' {
            let (_, end, odd, _) = self.string(i)?;
            if odd {
                self.canonical = false;
            }
            return Some(end + 1);
        }
        self.value::<JUDGE>(i, depth)
    }

    /// One value at `i`, and the position past it; `None` when it is not valid JSON or nests
    /// `depth` levels or more.
    // `JUDGE` a constant, not an argument: the judged copy (most values) does not test it for
    // every key.
    fn value<const JUDGE: bool>(&mut self, i: usize, depth: usize) -> Option<usize> {
        if depth == 0 {
            return None;
        }
        match self.at(i) {
            b'{' => {
                let mut i = self.ws(i + 1);
                if let Some(i) = self.eat(i, b'}') {
                    return Some(i);
                }
                let mut prev: Option<(usize, usize)> = None;
                loop {
                    if self.at(i) != b'"' {
                        return None;
                    }
                    let (start, end, _, escaped) = self.string(i)?;
                    if JUDGE {
                        if !key_in_order(self.s, prev, (start, end), escaped) {
                            self.canonical = false;
                        }
                        prev = Some((start, end));
                    }
                    i = self.colon(end + 1)?;
                    i = self.element::<JUDGE>(i, depth - 1)?;
                    let more;
                    (i, more) = self.more(i, b'}')?;
                    if !more {
                        return Some(i);
                    }
                }
            }
            b'[' => {
                let mut i = self.ws(i + 1);
                if let Some(i) = self.eat(i, b']') {
                    return Some(i);
                }
                loop {
                    i = self.element::<JUDGE>(i, depth - 1)?;
                    let more;
                    (i, more) = self.more(i, b']')?;
                    if !more {
                        return Some(i);
                    }
                }
            }
            b'"' => {
                let (_, end, odd, _) = self.string(i)?;
                if odd {
                    self.canonical = false;
                }
                Some(end + 1)
            }
            b't' => self.literal(i, b"true"),
            b'f' => self.literal(i, b"false"),
            b'n' => self.literal(i, b"null"),
            b'-' | b'0'..=b'9' => self.number::<JUDGE>(i),
            _ => None,
        }
    }

    fn literal(&self, i: usize, word: &[u8]) -> Option<usize> {
        (self.s.get(i..i + word.len()) == Some(word)).then_some(i + word.len())
    }

    /// Past the digits at `i`.
    fn digits(&self, mut i: usize) -> usize {
        while self.at(i).is_ascii_digit() {
            i += 1;
        }
        i
    }

    /// serde_json's number grammar: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    fn number<const JUDGE: bool>(&mut self, start: usize) -> Option<usize> {
        let negative = self.at(start) == b'-';
        let mut i = start + usize::from(negative);
        match self.at(i) {
            b'0' => {
                i += 1;
                if self.at(i).is_ascii_digit() {
                    return None;
                }
            }
            b'1'..=b'9' => i = self.digits(i),
            _ => return None,
        }
        let mut integer = true;
        if self.at(i) == b'.' {
            integer = false;
            let from = i + 1;
            i = self.digits(from);
            if i == from {
                return None;
            }
        }
        if matches!(self.at(i), b'e' | b'E') {
            integer = false;
            i += 1;
            if matches!(self.at(i), b'+' | b'-') {
                i += 1;
            }
            let from = i;
            i = self.digits(from);
            if i == from {
                return None;
            }
        }
        if JUDGE {
            // As `Scanner::number`: only integers serde_json keeps as u64/i64 are written back as
            // sent; "-0" becomes the float -0.0.
            let text = &self.s[start..i];
            let fits = |t: &[u8]| {
                // Up to 18 digits always fit; longer ones are rare enough to parse.
                t.len() <= 18
                    || std::str::from_utf8(t).is_ok_and(|t| {
                        if negative {
                            t.parse::<i64>().is_ok()
                        } else {
                            t.parse::<u64>().is_ok()
                        }
                    })
            };
            if !integer || text == b"-0" || !fits(text) {
                self.canonical = false;
            }
        }
        Some(i)
    }

    /// The string at `i` (on its opening quote), checked: its content's span (the end is its
    /// closing quote), whether it holds an escape serde_json would write differently (`\u…`,
    /// `\/`), and whether it holds any.
    // Inlined into its callers: it runs for every key and string of the body, and as a call
    // its set-up and register saves were ~900 instructions per batch message (callgrind).
    #[inline(always)]
    fn string(&self, i: usize) -> Option<(usize, usize, bool, bool)> {
        let start = i + 1;
        let mut i = start;
        let (mut odd, mut any) = (false, false);
        loop {
            i = string_stop(self.s, i);
            match self.s.get(i).copied()? {
                b'"' => return Some((start, i, odd, any)),
                b'\\' => {
                    any = true;
                    match self.s.get(i + 1).copied()? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'/' => {
                            odd = true;
                            i += 2;
                        }
                        b'u' => {
                            let hex = self.s.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            odd = true;
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                // A control character: serde_json refuses it unescaped.
                _ => return None,
            }
        }
    }
}

/// An offset into the body, which `split_body` made sure fits (a plain cast: the checked
/// conversions were three branches a member).
#[inline(always)]
fn offset(i: usize) -> u32 {
    debug_assert!(u32::try_from(i).is_ok());
    i as u32
}

/// `Element::first` of an element `message_object` splits.
const NOT_SPLIT: u32 = u32::MAX;
/// `Element::context` of an element without a split `context`.
const NO_CONTEXT: u32 = u32::MAX;

/// A `batch` array as `Checker::elements` split it (offsets into `text`, the whole body).
pub(super) struct SplitBatch<'a> {
    text: &'a str,
    elements: Vec<Element>,
    /// Every split element's members, then its context's, one element after the other.
    fields: Vec<Member>,
}

/// One `batch` element: its span, and where its members are in `SplitBatch::fields`.
#[derive(Debug, Clone, Copy)]
struct Element {
    start: u32,
    end: u32,
    /// Index of its first member, or `NOT_SPLIT`.
    first: u32,
    /// How many members it has; its context's follow them.
    members: u32,
    /// How many members its context has, or `NO_CONTEXT` (no `context`, or not an object).
    context: u32,
}

/// One object member: its key's and its value's spans, and the value's verdict.
#[derive(Debug, Clone, Copy)]
struct Member {
    key: u32,
    value: u32,
    value_end: u32,
    key_len: u16,
    scan: Scan,
}

impl Member {
    // Inlined into `object`'s loops, which otherwise call it for every member.
    #[inline(always)]
    fn key_text(self, text: &str) -> &str {
        let key = self.key as usize;
        &text[key..key + usize::from(self.key_len)]
    }

    #[inline(always)]
    fn pair(self, text: &str) -> (Str<'_>, RawVal<'_>) {
        self.pair_with(self.key_text(text), text)
    }

    /// `pair`, with `key` (equal to its key) for its key.
    #[inline(always)]
    fn pair_with<'a>(self, key: &'a str, text: &'a str) -> (Str<'a>, RawVal<'a>) {
        (
            Str(Cow::Borrowed(key)),
            RawVal {
                text: &text[self.value as usize..self.value_end as usize],
                scan: self.scan,
            },
        )
    }
}

impl<'a> SplitBatch<'a> {
    pub(super) fn len(&self) -> usize {
        self.elements.len()
    }

    /// Element `i` as `message_object` makes it of its text.
    pub(super) fn message(
        &self,
        i: usize,
        body: &Body<'_>,
        scratch: &mut Scratch<'a>,
    ) -> Result<Result<Message<'a>, RuleViolation>, BodyError> {
        let e = self.elements[i];
        let text = self.text;
        if e.first == NOT_SPLIT {
            let raw = RawVal {
                text: &text[e.start as usize..e.end as usize],
                scan: Scan::Unknown,
            };
            return message_object(raw, body);
        }
        let object = |members: &[Member], pairs, order: &mut KeyOrder<'a>| {
            object(text, members, pairs, Some(order)).or_else(|obj| {
                // As in `split_fields`: the reference parse of the whole body judges what was
                // dropped.
                body.check()?;
                Ok((obj, None))
            })
        };
        let first = e.first as usize;
        let own = first + e.members as usize;
        let (context, context_layout) = match e.context {
            NO_CONTEXT => (None, None),
            n => {
                let (c, layout) = object(
                    &self.fields[own..own + n as usize],
                    std::mem::take(&mut scratch.raw_context),
                    &mut scratch.context_order,
                )?;
                (Some(c), layout)
            }
        };
        let (fields, layout) = object(
            &self.fields[first..own],
            std::mem::take(&mut scratch.raw),
            &mut scratch.order,
        )?;
        Ok(Ok(Message {
            fields,
            context,
            layout,
            context_layout,
        }))
    }
}
