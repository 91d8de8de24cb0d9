//! Fuzz target: the stored unsent queue (`ff_q.<tab>` in localStorage),
//! `core::persist::read_queue`, `read_queue_header` and `write_queue`.
//!
//! At start a tab reads its own queue key and every other tab's: foreign data, torn writes (a
//! crash mid-`setItem` cannot tear, but a quota-limited half write or another script can leave
//! anything) and huge values must never panic and must never yield a message the ingest would
//! choke on. The first byte is `max` (the caller's `maxQueueSize`, small so the cap is hit
//! often) and a selector; the rest is used twice:
//! 1. as the raw stored value: never a panic; `read_queue` and `read_queue_header` agree; every
//!    message returned is one line of the input, `{…}`-shaped, within the size cap; they are the
//!    newest `max` such lines in order; and writing them back then reading gives the same queue;
//! 2. as messages the SDK could hold (any `{…}` line without a raw newline, up to the cap):
//!    `read_queue(write_queue(h, ms), max)` is exactly `h` and the newest `max` of `ms`.
#![no_main]

use footfall_sdk::core::persist::{
    read_queue, read_queue_header, write_queue, QueueHeader, MAX_LINE,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let max = (sel & 0x1f) as usize; // 0..=31 (0: the SDK clamps to 1, the parser must cope)
    raw_value(rest, max);
    structured(rest, max, sel);
});

fn raw_value(data: &[u8], max: usize) {
    let raw = String::from_utf8_lossy(data);
    let header = read_queue_header(&raw);
    let parsed = read_queue(&raw, max);
    assert_eq!(parsed.as_ref().map(|p| p.0), header);
    let Some((h, msgs)) = parsed else { return };
    assert!(msgs.len() <= max);
    // Reference model, written independently: the lines after the first, kept when they are a
    // `{…}` of at most MAX_LINE bytes; the newest `max` of them.
    let mut lines = raw.lines_any_newline();
    lines.next();
    let kept: Vec<&str> = lines
        .filter(|l| l.len() >= 2 && l.len() <= MAX_LINE && l.starts_with('{') && l.ends_with('}'))
        .collect();
    let newest = &kept[kept.len().saturating_sub(max)..];
    assert_eq!(msgs, newest);
    // What we read back, written again, reads back the same (a tab adopting it re-persists it).
    let again = write_queue(h, msgs.iter().map(String::as_str), 0);
    assert_eq!(read_queue(&again, usize::MAX), Some((h, msgs)));
}

/// `str::split('\n')`, spelled out so the model does not share code with the parser.
trait Lines {
    fn lines_any_newline(&self) -> std::vec::IntoIter<&str>;
}
impl Lines for str {
    fn lines_any_newline(&self) -> std::vec::IntoIter<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in self.char_indices() {
            if c == '\n' {
                out.push(&self[start..i]);
                start = i + 1;
            }
        }
        out.push(&self[start..]);
        out.into_iter()
    }
}

fn structured(data: &[u8], max: usize, sel: u8) {
    if data.len() < 9 {
        return;
    }
    let header = QueueHeader {
        updated: u64::from_le_bytes(data[..8].try_into().unwrap()),
        closed: data[8] & 1 == 1,
    };
    // Messages: the rest split at 0xff, each wrapped in braces with raw newlines escaped (the SDK
    // only ever stores JSON.stringify output or its own, which never holds a raw newline).
    let text = &data[9..];
    let mut msgs: Vec<String> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(|&b| b == 0xff)
            .map(|c| format!("{{{}}}", String::from_utf8_lossy(c).replace('\n', "\\n")))
            .collect()
    };
    // The size cap's edge: a message of exactly MAX_LINE bytes is kept, one byte more is not.
    let edge = match sel >> 5 {
        1 => Some(MAX_LINE),
        2 => Some(MAX_LINE + 1),
        _ => None,
    };
    if let Some(len) = edge {
        msgs.push(edge_message(len).to_owned());
    }
    let written = write_queue(header, msgs.iter().map(String::as_str), 0);
    let (h, back) = read_queue(&written, max).expect("own write unreadable");
    assert_eq!(h, header);
    let fitting: Vec<&String> = msgs.iter().filter(|m| m.len() <= MAX_LINE).collect();
    let newest = &fitting[fitting.len().saturating_sub(max)..];
    assert_eq!(back.len(), newest.len());
    for (a, b) in back.iter().zip(newest) {
        assert_eq!(a, *b);
    }
}

/// `{"x":"yyy…"}` of exactly `len` bytes, built once (a 30 KB string per input would make this
/// the slowest part of the target).
fn edge_message(len: usize) -> &'static str {
    static AT: OnceLock<String> = OnceLock::new();
    static OVER: OnceLock<String> = OnceLock::new();
    let cell = if len == MAX_LINE { &AT } else { &OVER };
    let m = cell.get_or_init(|| format!("{{\"x\":\"{}\"}}", "y".repeat(len - 8)));
    assert_eq!(m.len(), len);
    m
}
