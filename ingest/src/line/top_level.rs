//! The body's top level in one validating pass over its bytes: what serde_json's skipping parse
//! (`IgnoredAny`), `split_object` of the top level and `parse_array` of `batch` did in three
//! passes (issue 5: together ~25 % of a batch's instructions).
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
//! `deep_check` and `canon` need not scan them again — except `batch`, whose array elements are
//! split instead (as `parse_array` splits them), and `context`, which is split again anyway.

use std::borrow::Cow;

use super::{key_in_order, string_stop, Obj, RawVal, Scan, Str, TopLevel, DEPTH_BUDGET};

/// `None`: not sure (see the module doc); the caller takes the old way.
pub(super) fn split_body(text: &str) -> Option<TopLevel<'_>> {
    let mut c = Checker {
        s: text.as_bytes(),
        i: 0,
        canonical: true,
    };
    c.ws();
    c.eat(b'{')?;
    c.ws();
    let mut pairs = Vec::with_capacity(8);
    let mut batch = None;
    if c.eat(b'}').is_none() {
        loop {
            if c.peek() != b'"' {
                return None;
            }
            let (start, end, _, escaped) = c.string()?;
            if escaped {
                return None;
            }
            let key = &text[start..end];
            c.ws();
            c.eat(b':')?;
            c.ws();
            let at = c.i;
            let scan = match key {
                // Of duplicate keys the last wins, here as in `Obj::from_pairs`.
                "batch" if c.peek() == b'[' => {
                    batch = Some(c.elements(text)?);
                    Scan::Unknown
                }
                "batch" | "context" => {
                    if key == "batch" {
                        batch = None;
                    }
                    c.value(DEPTH_BUDGET, false)?;
                    Scan::Unknown
                }
                _ => {
                    c.canonical = true;
                    c.value(DEPTH_BUDGET, true)?;
                    if c.canonical {
                        Scan::Canonical
                    } else {
                        Scan::NotCanonical
                    }
                }
            };
            pairs.push((
                Str(Cow::Borrowed(key)),
                RawVal {
                    text: &text[at..c.i],
                    scan,
                },
            ));
            if !c.more(b'}')? {
                break;
            }
        }
    }
    c.ws();
    if c.i != c.s.len() {
        return None;
    }
    let (fields, shadowed) = Obj::from_pairs(pairs);
    if shadowed {
        // A duplicate top-level key: the old way checks the value it drops (see `from_pairs`).
        return None;
    }
    Some(TopLevel { fields, batch })
}

/// A strict JSON reader that also tracks, while `judge` is on, whether the text is what
/// serde_json writes for it (the rules of `Scanner::value`).
struct Checker<'s> {
    s: &'s [u8],
    i: usize,
    canonical: bool,
}

impl Checker<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    /// Steps over `b` when it is next.
    fn eat(&mut self, b: u8) -> Option<()> {
        if self.peek() == b {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\n' | b'\r' | b'\t') {
            self.canonical = false;
            self.i += 1;
        }
    }

    /// After a member or element: `Some(true)` past a `,` (another one follows), `Some(false)`
    /// past `close` (the container ended), `None` on anything else.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.ws();
        if self.eat(b',').is_some() {
            self.ws();
            return Some(true);
        }
        self.eat(close).map(|()| false)
    }

    /// The elements of the array at `i`, each checked but not judged (as `parse_array` leaves
    /// them).
    fn elements<'a>(&mut self, text: &'a str) -> Option<Vec<RawVal<'a>>> {
        self.i += 1;
        self.ws();
        let mut out = Vec::new();
        if self.eat(b']').is_some() {
            return Some(out);
        }
        loop {
            let at = self.i;
            self.value(DEPTH_BUDGET, false)?;
            out.push(RawVal {
                text: &text[at..self.i],
                scan: Scan::Unknown,
            });
            if !self.more(b']')? {
                return Some(out);
            }
        }
    }

    /// One value at `i`; `None` when it is not valid JSON or nests `depth` levels or more.
    fn value(&mut self, depth: usize, judge: bool) -> Option<()> {
        if depth == 0 {
            return None;
        }
        match self.peek() {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                let mut prev: Option<(usize, usize)> = None;
                loop {
                    if self.peek() != b'"' {
                        return None;
                    }
                    let (start, end, _, escaped) = self.string()?;
                    if judge {
                        if !key_in_order(self.s, prev, (start, end), escaped) {
                            self.canonical = false;
                        }
                        prev = Some((start, end));
                    }
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                    self.value(depth - 1, judge)?;
                    if !self.more(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.value(depth - 1, judge)?;
                    if !self.more(b']')? {
                        return Some(());
                    }
                }
            }
            b'"' => {
                if self.string()?.2 {
                    self.canonical = false;
                }
                Some(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(judge),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.s.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Some(())
        } else {
            None
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    /// serde_json's number grammar: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    fn number(&mut self, judge: bool) -> Option<()> {
        let start = self.i;
        let negative = self.eat(b'-').is_some();
        match self.peek() {
            b'0' => {
                self.i += 1;
                if self.peek().is_ascii_digit() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut integer = true;
        if self.eat(b'.').is_some() {
            integer = false;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), b'e' | b'E') {
            integer = false;
            self.i += 1;
            if matches!(self.peek(), b'+' | b'-') {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        if judge {
            // As `Scanner::number`: only integers serde_json keeps as u64/i64 are written back as
            // sent; "-0" becomes the float -0.0.
            let text = &self.s[start..self.i];
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
        Some(())
    }

    /// The string at `i` (on its opening quote), checked: its content's span, whether it holds
    /// an escape serde_json would write differently (`\u…`, `\/`), and whether it holds any.
    fn string(&mut self) -> Option<(usize, usize, bool, bool)> {
        self.i += 1;
        let start = self.i;
        let (mut odd, mut any) = (false, false);
        loop {
            self.i = string_stop(self.s, self.i);
            match self.s.get(self.i).copied()? {
                b'"' => {
                    let end = self.i;
                    self.i += 1;
                    return Some((start, end, odd, any));
                }
                b'\\' => {
                    any = true;
                    match self.s.get(self.i + 1).copied()? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'/' => {
                            odd = true;
                            self.i += 2;
                        }
                        b'u' => {
                            let hex = self.s.get(self.i + 2..self.i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            odd = true;
                            self.i += 6;
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
