//! Identity and session state machine: anonymous id, user id, session id (UUIDv7), session start,
//! last activity, campaign key, opt-out flag.
//!
//! Pure: time, the stored state and fresh ids are passed in. The rule that makes tabs share one
//! session: an in-memory state can only make a session *expire*; before rotating, the caller reads
//! the stored state (another tab may have been active since) and adopts it when it is newer. So
//! storage is read once per would-be rotation, not on every event — the peers' per-call
//! `document.cookie` reads are what makes them slow (ANCHORS.md).

use alloc::string::String;

/// Idle timeout and maximum session length, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub idle_ms: u64,
    pub max_ms: u64,
}

impl Config {
    /// From the public options (`sessionTimeoutMinutes`, `maxSessionHours`).
    pub fn from_options(timeout_minutes: u64, max_hours: u64) -> Config {
        Config {
            idle_ms: timeout_minutes.saturating_mul(60_000).max(1),
            max_ms: max_hours.saturating_mul(3_600_000).max(1),
        }
    }
}

/// Everything we remember about the visitor between page loads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// UUIDv4; empty only before the first `ensure_identity`.
    pub anonymous_id: String,
    /// Empty when not identified.
    pub user_id: String,
    /// UUIDv7; empty when no session was ever started.
    pub session_id: String,
    pub session_start: u64,
    pub last_activity: u64,
    /// Campaign key of the session (see `campaign.rs`); 0 = none.
    pub campaign: u32,
    pub opt_out: bool,
}

/// Why a new session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// There was no session.
    New,
    /// `sessionTimeoutMinutes` passed without activity.
    Idle,
    /// The session reached `maxSessionHours`.
    MaxLength,
    /// The page was opened with a different `utm_*` campaign.
    Campaign,
    /// `reset()` (logout).
    Reset,
}

impl State {
    /// Why the session cannot take an event at `now`, if it cannot. `campaign` is the campaign
    /// key of a page just opened (0 when the page has none, or for events after the first of a
    /// page: only *opening* a page with a different campaign rotates, so tabs with different
    /// campaigns do not ping-pong).
    pub fn rotation(&self, now: u64, cfg: &Config, campaign: u32) -> Option<Rotation> {
        if self.session_id.is_empty() {
            Some(Rotation::New)
        } else if now.saturating_sub(self.last_activity) >= cfg.idle_ms {
            Some(Rotation::Idle)
        } else if now.saturating_sub(self.session_start) >= cfg.max_ms {
            Some(Rotation::MaxLength)
        } else if campaign != 0 && campaign != self.campaign {
            Some(Rotation::Campaign)
        } else {
            None
        }
    }

    /// Takes `stored` (another tab's write) when its activity is newer than ours: newest writer
    /// wins for the whole state, so another tab's `reset`, `identify` or `optOut` arrives too.
    /// Not on a tie: then `stored` is most likely our own earlier write, and our unsaved changes
    /// (say, an `identify` in this task) must survive. Returns true when something changed.
    pub fn adopt(&mut self, stored: State) -> bool {
        if stored.anonymous_id.is_empty()
            || stored.last_activity <= self.last_activity
            || stored == *self
        {
            return false;
        }
        *self = stored;
        true
    }

    /// Starts session `id` at `now`.
    pub fn start_session(&mut self, id: String, now: u64, campaign: u32) {
        self.session_id = id;
        self.session_start = now;
        self.last_activity = now;
        if campaign != 0 {
            self.campaign = campaign;
        } else if self.campaign != 0 {
            // A new session opened without utm parameters is not part of the old campaign.
            self.campaign = 0;
        }
    }

    /// Logout: forget the user, new anonymous id, new session.
    pub fn reset(&mut self, anonymous_id: String, session_id: String, now: u64) {
        self.anonymous_id = anonymous_id;
        self.user_id.clear();
        self.campaign = 0;
        self.start_session(session_id, now, 0);
    }
}

/// One event's session step at `now`.
///
/// `fresh` reads the stored state; it is called only when the in-memory state would rotate.
/// `new_id` makes a session id; it is called only when a session starts. Returns the rotation
/// when this event starts a session (its message then carries `sessionStart: true`).
pub fn step(
    state: &mut State,
    now: u64,
    cfg: &Config,
    campaign: u32,
    fresh: impl FnOnce() -> Option<State>,
    new_id: impl FnOnce() -> String,
) -> Option<Rotation> {
    let mut why = state.rotation(now, cfg, campaign);
    if why.is_some() {
        if let Some(stored) = fresh() {
            if state.adopt(stored) {
                why = state.rotation(now, cfg, campaign);
            }
        }
    }
    if why.is_some() {
        state.start_session(new_id(), now, campaign);
    } else {
        state.last_activity = state.last_activity.max(now);
    }
    why
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const MIN: u64 = 60_000;
    const T0: u64 = 1_700_000_000_000;

    fn cfg() -> Config {
        Config::from_options(30, 24)
    }

    fn live(session: &str, start: u64, last: u64) -> State {
        State {
            anonymous_id: "anon".into(),
            session_id: session.into(),
            session_start: start,
            last_activity: last,
            ..State::default()
        }
    }

    /// Runs one step with a fixed stored state; returns (rotation, session id after, stored read?).
    fn run(
        mut s: State,
        now: u64,
        campaign: u32,
        stored: Option<State>,
    ) -> (Option<Rotation>, State, bool) {
        let mut read = false;
        let r = step(
            &mut s,
            now,
            &cfg(),
            campaign,
            || {
                read = true;
                stored
            },
            || "new".to_string(),
        );
        (r, s, read)
    }

    #[test]
    fn boundaries_table() {
        let idle = 30 * MIN;
        let max = 24 * 60 * MIN;
        // (name, state, now, campaign, expected rotation)
        let table: &[(&str, State, u64, u32, Option<Rotation>)] = &[
            (
                "no session yet",
                State::default(),
                T0,
                0,
                Some(Rotation::New),
            ),
            ("active", live("s", T0, T0), T0 + 1, 0, None),
            (
                "idle one ms short of timeout",
                live("s", T0, T0),
                T0 + idle - 1,
                0,
                None,
            ),
            (
                "idle exactly timeout",
                live("s", T0, T0),
                T0 + idle,
                0,
                Some(Rotation::Idle),
            ),
            (
                "idle past timeout",
                live("s", T0, T0),
                T0 + idle + 1,
                0,
                Some(Rotation::Idle),
            ),
            (
                "max length one ms short",
                live("s", T0, T0 + max - 2),
                T0 + max - 1,
                0,
                None,
            ),
            (
                "max length exactly",
                live("s", T0, T0 + max - 2),
                T0 + max,
                0,
                Some(Rotation::MaxLength),
            ),
            (
                "clock went backwards",
                live("s", T0, T0),
                T0 - 5 * MIN,
                0,
                None,
            ),
            (
                "same campaign",
                State {
                    campaign: 7,
                    ..live("s", T0, T0)
                },
                T0 + 1,
                7,
                None,
            ),
            (
                "new campaign",
                State {
                    campaign: 7,
                    ..live("s", T0, T0)
                },
                T0 + 1,
                8,
                Some(Rotation::Campaign),
            ),
            (
                "campaign on a session without",
                live("s", T0, T0),
                T0 + 1,
                8,
                Some(Rotation::Campaign),
            ),
            (
                "page without utm keeps campaign session",
                State {
                    campaign: 7,
                    ..live("s", T0, T0)
                },
                T0 + 1,
                0,
                None,
            ),
        ];
        for (name, s, now, campaign, want) in table {
            let (got, after, read) = run(s.clone(), *now, *campaign, None);
            assert_eq!(got, *want, "{name}");
            assert_eq!(
                read,
                want.is_some(),
                "{name}: stored state read only before rotating"
            );
            if want.is_some() {
                assert_eq!(after.session_id, "new", "{name}");
                assert_eq!(after.session_start, *now, "{name}");
            } else {
                assert_eq!(after.session_id, "s", "{name}");
                assert_eq!(after.last_activity, s.last_activity.max(*now), "{name}");
            }
        }
    }

    #[test]
    fn another_tabs_activity_keeps_the_session_alive() {
        // Our memory says idle for 31 minutes, but another tab was active 1 minute ago.
        let mine = live("s", T0, T0);
        let stored = live("s", T0, T0 + 30 * MIN);
        let (r, after, read) = run(mine, T0 + 31 * MIN, 0, Some(stored));
        assert!(read);
        assert_eq!(r, None);
        assert_eq!(after.session_id, "s");
        assert_eq!(after.last_activity, T0 + 31 * MIN);
    }

    #[test]
    fn another_tabs_new_session_is_adopted_not_duplicated() {
        let mine = live("old", T0, T0);
        let stored = live("theirs", T0 + 40 * MIN, T0 + 40 * MIN);
        let (r, after, _) = run(mine, T0 + 41 * MIN, 0, Some(stored));
        assert_eq!(r, None);
        assert_eq!(after.session_id, "theirs");
    }

    #[test]
    fn stale_stored_state_does_not_revive_an_expired_session() {
        let mine = live("s", T0, T0 + 10 * MIN);
        let stored = live("s", T0, T0); // older than ours: ignored
        let (r, after, _) = run(mine, T0 + 50 * MIN, 0, Some(stored));
        assert_eq!(r, Some(Rotation::Idle));
        assert_eq!(after.session_id, "new");
    }

    #[test]
    fn another_tab_with_the_same_campaign_is_joined() {
        let mine = live("s", T0, T0);
        let stored = State {
            campaign: 9,
            ..live("c", T0 + MIN, T0 + MIN)
        };
        let (r, after, _) = run(mine, T0 + 2 * MIN, 9, Some(stored));
        assert_eq!(r, None);
        assert_eq!(after.session_id, "c");
    }

    #[test]
    fn adopt_takes_identity_changes_from_newer_writes() {
        let mut mine = State {
            user_id: "u1".into(),
            ..live("s", T0, T0)
        };
        let reset_elsewhere = State {
            anonymous_id: "anon2".into(),
            ..live("s2", T0 + 1, T0 + 1)
        };
        assert!(mine.adopt(reset_elsewhere));
        assert_eq!(mine.anonymous_id, "anon2");
        assert_eq!(mine.user_id, "");
        assert!(
            !mine.adopt(State::default()),
            "empty stored state is never adopted"
        );
        assert!(!mine.adopt(mine.clone()));
        // A tie is our own earlier write: unsaved changes win.
        let mut fresh = State {
            user_id: "u2".into(),
            ..live("s", T0, T0)
        };
        assert!(!fresh.adopt(live("s", T0, T0)));
        assert_eq!(fresh.user_id, "u2");
    }

    #[test]
    fn identify_before_the_first_session_survives_the_rotation_read() {
        // Start of page: stored state has no session yet and the same (zero) activity time.
        let stored = State {
            anonymous_id: "anon".into(),
            ..State::default()
        };
        let mine = State {
            user_id: "user-42".into(),
            ..stored.clone()
        };
        let (r, after, read) = run(mine, T0, 0, Some(stored));
        assert!(read);
        assert_eq!(r, Some(Rotation::New));
        assert_eq!(after.user_id, "user-42");
    }

    #[test]
    fn reset_forgets_the_user_and_starts_a_session() {
        let mut s = State {
            user_id: "u".into(),
            campaign: 3,
            ..live("s", T0, T0)
        };
        s.reset("anon2".into(), "s2".into(), T0 + 5);
        assert_eq!(
            s,
            State {
                anonymous_id: "anon2".into(),
                session_id: "s2".into(),
                session_start: T0 + 5,
                last_activity: T0 + 5,
                ..State::default()
            }
        );
    }

    #[test]
    fn options_convert_and_never_zero() {
        assert_eq!(
            cfg(),
            Config {
                idle_ms: 30 * MIN,
                max_ms: 24 * 60 * MIN
            }
        );
        assert_eq!(
            Config::from_options(0, 0),
            Config {
                idle_ms: 1,
                max_ms: 1
            }
        );
        assert_eq!(Config::from_options(u64::MAX, u64::MAX).idle_ms, u64::MAX);
    }
}
