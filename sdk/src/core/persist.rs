//! Stored formats: the identity/session state and the unsent queue.
//!
//! Both are versioned text so a future SDK can read (or knowingly discard) what an older one
//! wrote. Parsers are total: anything corrupt or foreign (another script using our key, a
//! truncated write, a hand-edited cookie) yields `None`/skipped lines, never a panic — the
//! caller then starts from defaults. Values are kept small: the state is ~130 bytes so it fits
//! a cookie that never grows.
//!
//! State: `ff1|<anonymousId>|<sessionId>|<sessionStart>|<lastActivity>|<campaign>|<flags>|<userId>`
//! (userId last, so it may itself contain `|`; flags bit 0 = opted out).
//!
//! Queue: first line `ffq1 <updatedMs> <closed 0|1>`, then one message per line. Messages are
//! JSON produced by `JSON.stringify` or by us, which never contain a raw newline.

use super::ids;
use super::json;
use super::session::State;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest user id we persist (bytes). Longer ids are used for the page's lifetime but not
/// stored: a cookie must not grow without bound.
pub const MAX_STORED_USER_ID: usize = 256;

/// Longest message line accepted back from storage (matches the queue's per-message cap).
pub const MAX_LINE: usize = super::queue::MAX_MESSAGE_BYTES;

const STATE_TAG: &str = "ff1";
const QUEUE_TAG: &str = "ffq1";

/// Serializes `s` for storage.
pub fn write_state(s: &State) -> String {
    let mut out = String::with_capacity(140 + s.user_id.len().min(MAX_STORED_USER_ID));
    out.push_str(STATE_TAG);
    out.push('|');
    out.push_str(&s.anonymous_id);
    out.push('|');
    out.push_str(&s.session_id);
    out.push('|');
    json::push_u64(&mut out, s.session_start);
    out.push('|');
    json::push_u64(&mut out, s.last_activity);
    out.push('|');
    json::push_u64(&mut out, s.campaign as u64);
    out.push('|');
    out.push(if s.opt_out { '1' } else { '0' });
    out.push('|');
    if s.user_id.len() <= MAX_STORED_USER_ID {
        out.push_str(&s.user_id);
    }
    out
}

/// Parses a stored state; `None` for anything we did not write.
pub fn read_state(raw: &str) -> Option<State> {
    let mut it = json::split(raw, b'|', 8);
    if it.next()? != STATE_TAG {
        return None;
    }
    let anonymous_id = it.next()?;
    let session_id = it.next()?;
    let session_start = json::parse_u64(it.next()?)?;
    let last_activity = json::parse_u64(it.next()?)?;
    let campaign = u32::try_from(json::parse_u64(it.next()?)?).ok()?;
    let opt_out = match it.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let user_id = it.next()?;
    if !ids::is_uuid(anonymous_id)
        || !(session_id.is_empty() || ids::is_uuid(session_id))
        || user_id.len() > MAX_STORED_USER_ID
    {
        return None;
    }
    Some(State {
        anonymous_id: anonymous_id.into(),
        user_id: user_id.into(),
        session_id: session_id.into(),
        session_start,
        last_activity,
        campaign,
        opt_out,
    })
}

/// Header of a stored queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueHeader {
    /// When the owning tab last wrote it.
    pub updated: u64,
    /// The owning tab was hidden/closed when it wrote it: another tab may adopt it at once.
    pub closed: bool,
}

/// Serializes a queue: header then one message per line.
pub fn write_queue<'a>(
    header: QueueHeader,
    messages: impl Iterator<Item = &'a str>,
    size_hint: usize,
) -> String {
    let mut out = String::with_capacity(size_hint + 32);
    out.push_str(QUEUE_TAG);
    out.push(' ');
    json::push_u64(&mut out, header.updated);
    out.push_str(if header.closed { " 1" } else { " 0" });
    for m in messages {
        out.push('\n');
        out.push_str(m);
    }
    out
}

/// Reads only the header (cheap: used to decide whether to adopt another tab's queue).
pub fn read_queue_header(raw: &str) -> Option<QueueHeader> {
    let line = json::split(raw, b'\n', 2).next()?;
    let mut it = json::split(line, b' ', usize::MAX);
    if it.next()? != QUEUE_TAG {
        return None;
    }
    let updated = json::parse_u64(it.next()?)?;
    let closed = match it.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    if it.next().is_some() {
        return None;
    }
    Some(QueueHeader { updated, closed })
}

/// The messages of a stored queue (whose header [`read_queue_header`] read) that look intact:
/// lines that are not one JSON object, or are over the size cap, are skipped. What a tab
/// adopting the queue takes (its own queue's cap then keeps the newest: [`read_queue`]'s `max`).
pub fn queue_lines(raw: &str) -> impl Iterator<Item = &str> {
    json::split(raw, b'\n', usize::MAX)
        .skip(1)
        .filter(|l| l.len() <= MAX_LINE && json::looks_like_object(l))
}

/// Parses a stored queue: the header and the messages that look intact (lines that are not one
/// JSON object, or are over the size cap, are skipped). Keeps at most the newest `max` messages.
pub fn read_queue(raw: &str, max: usize) -> Option<(QueueHeader, Vec<String>)> {
    let header = read_queue_header(raw)?;
    let mut msgs: Vec<String> = queue_lines(raw).map(String::from).collect();
    let excess = msgs.len().saturating_sub(max);
    if excess > 0 {
        msgs = msgs.split_off(excess);
    }
    Some((header, msgs))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use proptest::prelude::*;

    const A: &str = "0a1b2c3d-0000-4000-8000-000000000001";
    const S: &str = "018bcfe5-6800-7000-8000-000000000002";

    fn sample() -> State {
        State {
            anonymous_id: A.into(),
            user_id: "user|with|pipes and ☃".into(),
            session_id: S.into(),
            session_start: 1_700_000_000_000,
            last_activity: 1_700_000_000_500,
            campaign: u32::MAX,
            opt_out: true,
        }
    }

    #[test]
    fn state_round_trips() {
        let s = sample();
        let w = write_state(&s);
        assert!(w.len() < 140 + s.user_id.len());
        assert_eq!(read_state(&w), Some(s));
        let fresh = State {
            anonymous_id: A.into(),
            ..State::default()
        };
        assert_eq!(read_state(&write_state(&fresh)), Some(fresh));
    }

    #[test]
    fn long_user_id_is_not_stored() {
        let s = State {
            user_id: "u".repeat(MAX_STORED_USER_ID + 1),
            ..sample()
        };
        let back = read_state(&write_state(&s)).unwrap();
        assert_eq!(back.user_id, "");
        assert!(write_state(&s).len() < 160);
    }

    #[test]
    fn corrupt_or_foreign_state_is_rejected() {
        let good = write_state(&sample());
        let bad = [
            "".to_string(),
            "null".into(),
            "{\"anonymousId\":\"x\"}".into(),
            good.replacen("ff1", "ff2", 1),
            good.replacen(A, "not-a-uuid", 1),
            good.replacen(S, "ZZ", 1),
            good.replacen("1700000000000", "-1", 1),
            good.replacen("1700000000000", "99999999999999999999999", 1),
            good.replacen("|4294967295|", "|4294967296|", 1),
            good.replacen("|1|", "|2|", 1),
            good[..good.find("|1|").unwrap()].to_string(),
            "ff1|||||||".into(),
        ];
        for b in &bad {
            assert_eq!(read_state(b), None, "{b:?}");
        }
    }

    #[test]
    fn queue_round_trips_and_skips_damage() {
        let msgs = ["{\"a\":1}", "{\"b\":\"x\\ny\"}"];
        let h = QueueHeader {
            updated: 42,
            closed: true,
        };
        let w = write_queue(h, msgs.iter().copied(), 0);
        assert_eq!(w, "ffq1 42 1\n{\"a\":1}\n{\"b\":\"x\\ny\"}");
        assert_eq!(
            read_queue(&w, 10),
            Some((h, msgs.iter().map(|s| s.to_string()).collect()))
        );
        // A truncated write loses only the torn last line.
        let torn = &w[..w.len() - 3];
        assert_eq!(
            read_queue(torn, 10).unwrap().1,
            vec!["{\"a\":1}".to_string()]
        );
        // Garbage lines are skipped, the cap keeps the newest.
        let mixed = "ffq1 1 0\n{\"a\":1}\n\ngarbage\n{\"b\":2}\n{\"c\":3}";
        assert_eq!(
            read_queue(mixed, 2).unwrap().1,
            vec!["{\"b\":2}".to_string(), "{\"c\":3}".into()]
        );
        let huge = format!("ffq1 1 0\n{{\"x\":\"{}\"}}", "x".repeat(MAX_LINE));
        assert!(read_queue(&huge, 10).unwrap().1.is_empty());
    }

    #[test]
    fn foreign_queue_is_rejected() {
        for b in [
            "",
            "[]",
            "ffq1",
            "ffq1 x 0",
            "ffq1 1 2",
            "ffq1 1 0 extra",
            "ffq2 1 0\n{}",
            "{\"a\":1}",
        ] {
            assert_eq!(read_queue(b, 10), None, "{b:?}");
        }
        assert_eq!(
            read_queue("ffq1 7 0", 10),
            Some((
                QueueHeader {
                    updated: 7,
                    closed: false
                },
                vec![]
            ))
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}|(ff1|ffq1)[ |0-9a-f\\-\n{}]{0,200}") {
            let _ = read_state(&s);
            let _ = read_queue(&s, 5);
        }

        #[test]
        fn state_round_trip_any(user in "\\PC{0,300}", start: u64, last: u64, campaign: u32, opt_out: bool) {
            let s = State { user_id: user, session_start: start, last_activity: last, campaign, opt_out, ..sample() };
            let back = read_state(&write_state(&s)).unwrap();
            if s.user_id.len() <= MAX_STORED_USER_ID {
                prop_assert_eq!(back, s);
            } else {
                prop_assert_eq!(back.user_id, "");
            }
        }
    }
}
