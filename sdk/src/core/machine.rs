//! The tracker's decisions, as one state machine: session step → message → queue → when to
//! send, what an answer means, what to persist and when. Pure: every effect (clock, random
//! bytes, storage, network, timers, warnings) goes through the [`Host`] trait, which the release
//! wasm implements with a handful of plain JS imports (src/wasm.rs, sdk/js/*) and native tests
//! implement in memory.
//!
//! This is the logic that used to sit in the web-sys browser modules (tracker, transport,
//! lifecycle): moving the I/O to small JS edges removed ~80 bindgen imports and their glue, and
//! left the rules here, in Rust, where they are tested natively.

use super::backoff::{self, Backoff, Verdict};
use super::event::{self, Kind, Skip};
use super::persist::{self, QueueHeader};
use super::queue::{Batch, Outcome, Queue, KEEPALIVE_BYTES, MAX_BATCH_BYTES, MAX_BATCH_COUNT};
use super::session::{self, State};
use super::{campaign, ids, json, time};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Timers the machine asks for (one pending per kind; a new one replaces the old).
pub const TIMER_SEND: u32 = 1;
pub const TIMER_QUEUE_WRITE: u32 = 2;

/// Warnings (the JS edge prints them with `debug`).
pub const WARN_TOO_LARGE: u32 = 1;
pub const WARN_STORAGE: u32 = 2;
pub const WARN_QUEUE_QUOTA: u32 = 3;
pub const WARN_REFUSED: u32 = 4;
pub const WARN_DROPPED: u32 = 5;
pub const WARN_RETRY: u32 = 6;
pub const WARN_BEACON: u32 = 7;

/// Where the stored value goes.
pub const SLOT_STATE: u32 = 0;
pub const SLOT_QUEUE: u32 = 1;

/// Queues above this many bytes are written at most every [`LARGE_QUEUE_WRITE_MS`].
const LARGE_QUEUE_BYTES: usize = 64 * 1024;
const LARGE_QUEUE_WRITE_MS: u64 = 1_000;
/// A queue not written for this long belongs to a tab that is gone (crashed): adopt it. Live
/// tabs with queued events rewrite theirs on every send attempt (≤ 60 s apart).
pub const STALE_MS: u64 = 5 * 60_000;

/// The effects the machine needs. Every method degrades quietly (false / None on failure).
pub trait Host {
    /// Milliseconds since the epoch.
    fn now(&mut self) -> u64;
    /// Appends `ms` (≤ [`time::MAX_MS`]) as ISO-8601 UTC, as [`time::push_iso`] writes it.
    fn iso(&mut self, ms: u64, out: &mut String);
    /// Fills `buf` with random bytes.
    fn fill_random(&mut self, buf: &mut [u8]);
    /// The stored state, read fresh (another tab may have written it).
    fn read_state(&mut self) -> Option<String>;
    /// Writes `raw` to `slot` (state or this tab's queue; an empty queue removes the key).
    /// False when the browser refused (the edge has already fallen back where it can).
    fn save(&mut self, slot: u32, raw: &str) -> bool;
    /// Starts the one request in flight; false when it could not start (a network error).
    /// The answer comes back as [`Machine::answer`].
    fn send(&mut self, body: &str, keepalive: bool) -> bool;
    /// `navigator.sendBeacon`; false when the browser refused.
    fn beacon(&mut self, body: &str) -> bool;
    /// Calls [`Machine::tick`] with `which` after `delay_ms`, replacing a pending one.
    fn timer(&mut self, which: u32, delay_ms: u64);
    /// Calls [`Machine::tick`] with 0 at the end of the current task.
    fn microtask(&mut self);
    fn warn(&mut self, what: u32);
    /// flush() promise `id` may resolve.
    fn settled(&mut self, id: u32);
}

/// Options that matter to the rules (the JS adapter checks and converts them).
#[derive(Debug, Clone)]
pub struct Config {
    pub write_key_json: String,
    pub session: session::Config,
    pub flush_at: usize,
    pub flush_interval_ms: u64,
    pub max_queue: usize,
    pub pageviews: bool,
    /// DNT/GPC with respectPrivacySignals: nothing sent, nothing stored.
    pub disabled: bool,
}

/// Random bytes, fetched from the host 4 KB at a time (one JS call per 256 message ids).
struct Pool {
    buf: Vec<u8>,
    pos: usize,
}

impl Pool {
    /// 16 bytes (one size for every caller: a const-generic size made a copy per size).
    fn bytes(&mut self, host: &mut impl Host) -> [u8; 16] {
        if self.pos + 16 > self.buf.len() {
            host.fill_random(&mut self.buf);
            self.pos = 0;
        }
        // SAFETY: pos + 16 <= buf.len(), checked above (a bounds-checked slice brings the panic
        // formatter into the wasm; a zip loop is bigger).
        let out = unsafe {
            self.buf
                .as_ptr()
                .add(self.pos)
                .cast::<[u8; 16]>()
                .read_unaligned()
        };
        self.pos += 16;
        out
    }
}

/// What to do with a stored queue found at start (see [`Machine::adopt`]).
pub const ADOPT_KEEP: u32 = 0;
pub const ADOPT_TAKEN: u32 = 1;
pub const ADOPT_FOREIGN: u32 = 2;

pub struct Machine<H: Host> {
    pub host: H,
    pub cfg: Config,
    pub state: State,
    /// The next event is the first of a session started in this tab.
    start_pending: bool,
    /// Campaign key of a page just opened, consumed by its first event.
    pending_campaign: u32,
    pub queue: Queue,
    pub backoff: Backoff,
    rand: Pool,
    page_json: String,
    campaign_json: String,
    /// `pathname + search`: what decides whether a navigation is a new pageview.
    route: String,
    common_json: String,
    /// Due time of the pending send timer.
    timer_due: Option<u64>,
    task_end_scheduled: bool,
    queue_write_timer: bool,
    state_dirty: bool,
    queue_dirty: bool,
    hidden: bool,
    /// Send with `keepalive` (off after a network error until the next answer).
    keepalive: bool,
    sent_keepalive: bool,
    /// flush() promises: (mark, id) resolve once nothing queued before `mark` is left.
    waiters: Vec<(u64, u32)>,
    /// Queues adopted at start: (updated, stored text), merged oldest first by `start`.
    adopted: Vec<(u64, String)>,
}

impl<H: Host> Machine<H> {
    /// Reads the stored state (unless disabled) and makes an anonymous id if there is none.
    pub fn new(mut host: H, cfg: Config, common_json: String) -> Self {
        let state = if cfg.disabled {
            None
        } else {
            host.read_state().and_then(|r| persist::read_state(&r))
        };
        let mut m = Machine {
            host,
            queue: Queue::new(cfg.max_queue),
            cfg,
            state: state.unwrap_or_default(),
            start_pending: false,
            pending_campaign: 0,
            backoff: Backoff::default(),
            rand: Pool {
                buf: vec![0; 4096],
                pos: 4096,
            },
            page_json: String::new(),
            campaign_json: String::new(),
            route: String::new(),
            common_json,
            timer_due: None,
            task_end_scheduled: false,
            queue_write_timer: false,
            state_dirty: true,
            queue_dirty: true,
            hidden: false,
            keepalive: true,
            sent_keepalive: false,
            waiters: Vec::new(),
            adopted: Vec::new(),
        };
        if m.state.anonymous_id.is_empty() {
            m.state.anonymous_id = ids::v4(m.rand.bytes(&mut m.host));
        }
        m
    }

    /// A stored queue found at start (this tab's own key or another tab's). Taken when its tab
    /// is gone (written `closed` on page hide, or silent for [`STALE_MS`]); a live one is left
    /// alone (for our own key that means a duplicated tab: the caller takes a new key);
    /// anything that is not our format is foreign and removed.
    pub fn adopt(&mut self, raw: &str, now: u64) -> u32 {
        let Some(h) = persist::read_queue_header(raw) else {
            return ADOPT_FOREIGN;
        };
        if h.closed || now.saturating_sub(h.updated) >= STALE_MS {
            self.adopted.push((h.updated, String::from(raw)));
            ADOPT_TAKEN
        } else {
            ADOPT_KEEP
        }
    }

    /// Init's last step: queue the adopted messages (oldest queue first), the load pageview,
    /// and send adopted events at once (they already waited).
    pub fn start(&mut self) {
        let mut found = core::mem::take(&mut self.adopted);
        // A handful of keys: selection, no sort machinery in the wasm.
        while let Some(pos) = found
            .iter()
            .enumerate()
            .min_by_key(|(_, f)| f.0)
            .map(|(i, _)| i)
        {
            if pos >= found.len() {
                break;
            }
            // The queue's cap (maxQueueSize) keeps the newest messages.
            let raw = found.swap_remove(pos).1;
            for m in persist::queue_lines(&raw) {
                self.queue.push(String::from(m));
            }
        }
        if self.cfg.disabled {
            return;
        }
        let adopted = !self.queue.is_empty();
        if self.cfg.pageviews {
            self.enqueue(Kind::Page, "", "{}", None, "", Skip::default(), None);
        }
        self.schedule_task_end();
        self.maybe_send(adopted, false);
    }

    /// The page as it is now, as the JS edge read it: the `context.page` JSON object, the route
    /// (path + query) and the `context.campaign` JSON object ("" when the URL has no utm
    /// parameter). Returns true when the route changed. `opened`: a page was opened (load or
    /// navigation), so its campaign counts for the session rule.
    pub fn set_page(&mut self, f: [&str; 3], opened: bool) -> bool {
        let [page_json, route, campaign_json] = f;
        let changed = route != self.route;
        if opened {
            self.pending_campaign = campaign::key(campaign_json);
        }
        // Into the buffers already there: no new allocation per navigation, and smaller wasm
        // than `String::from` (a loop over the three was bigger again).
        self.page_json.clear();
        self.page_json.push_str(page_json);
        self.campaign_json.clear();
        self.campaign_json.push_str(campaign_json);
        self.route.clear();
        self.route.push_str(route);
        changed
    }

    /// A navigation (history change, popstate, bfcache restore with `force`): a new path or
    /// query is a pageview.
    pub fn navigation(&mut self, f: [&str; 3], force: bool) {
        let before = self.pending_campaign;
        let changed = self.set_page(f, true);
        if !(changed || force) {
            self.pending_campaign = before;
            return;
        }
        if self.cfg.pageviews {
            self.enqueue(Kind::Page, "", "{}", None, "", Skip::default(), None);
        }
    }

    /// Queues one message. `name`: event name (track), page name (page) or user id (identify);
    /// `payload`: serialized properties/traits; `context`: the caller's `options.context` JSON;
    /// `at`: when the page made the call (the adapter hands calls over at the end of the task),
    /// or `None` for now. The session step and the default timestamp use that time.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &mut self,
        kind: Kind,
        name: &str,
        payload: &str,
        timestamp: Option<u64>,
        context: &str,
        skip: Skip,
        at: Option<u64>,
    ) {
        if self.cfg.disabled || self.state.opt_out {
            return;
        }
        let now = match at {
            Some(t) => t,
            None => self.host.now(),
        };
        let campaign = core::mem::take(&mut self.pending_campaign);
        let sid_random = self.rand.bytes(&mut self.host);
        let host = &mut self.host;
        let rotated = session::step(
            &mut self.state,
            now,
            &self.cfg.session,
            campaign,
            || host.read_state().and_then(|r| persist::read_state(&r)),
            || ids::v7(now, sid_random),
        );
        if rotated.is_some() {
            self.start_pending = true;
        }
        // identify: the user id is set after the session step, so adopting another tab's
        // newer state cannot undo it.
        if kind == Kind::Identify {
            self.state.user_id.clear();
            self.state.user_id.push_str(name);
        }
        let payload = if json::looks_like_object(payload) {
            payload
        } else {
            "{}"
        };
        let context = if json::looks_like_object(context) {
            context
        } else {
            ""
        };
        let stamp = self.stamp(timestamp.unwrap_or(now));
        let msg = event::build(&event::Message {
            kind,
            message_random: self.rand.bytes(&mut self.host),
            anonymous_id: &self.state.anonymous_id,
            user_id: &self.state.user_id,
            timestamp: &stamp,
            name,
            payload_json: payload,
            page_json: &self.page_json,
            campaign_json: &self.campaign_json,
            session_id: &self.state.session_id,
            session_start: core::mem::take(&mut self.start_pending),
            user_context_json: context,
            skip,
        });
        if !self.queue.push(msg) {
            self.host.warn(WARN_TOO_LARGE);
        }
        self.state_dirty = true;
        self.queue_dirty = true;
        self.schedule_task_end();
        self.maybe_send(false, false);
    }

    /// `ms` as a wire timestamp (clamped: the ingest takes 4-digit years only).
    fn stamp(&mut self, ms: u64) -> String {
        let mut s = String::new();
        self.host.iso(ms.min(time::MAX_MS), &mut s);
        s
    }

    /// Logout: forget the user, new anonymous id, new session.
    pub fn reset(&mut self) {
        let now = self.host.now();
        let anon = ids::v4(self.rand.bytes(&mut self.host));
        let sid = ids::v7(now, self.rand.bytes(&mut self.host));
        self.state.reset(anon, sid, now);
        self.start_pending = true;
        self.pending_campaign = 0;
        self.state_dirty = true;
        self.schedule_task_end();
    }

    /// flush(): true when nothing queued so far is pending (resolve now); otherwise promise `id`
    /// is settled through [`Host::settled`] later.
    pub fn flush(&mut self, id: u32) -> bool {
        if self.cfg.disabled {
            return true;
        }
        let mark = self.queue.mark();
        if !self.queue.holds_before(mark) {
            return true;
        }
        self.waiters.push((mark, id));
        self.maybe_send(true, true);
        false
    }

    /// Stop (or resume) sending and storing events; persisted at once.
    pub fn set_opt_out(&mut self, out: bool) {
        if self.cfg.disabled {
            return;
        }
        self.state.opt_out = out;
        if out {
            self.queue.clear();
            self.settle_waiters();
        }
        self.state_dirty = true;
        self.queue_dirty = true;
        self.persist(true);
    }

    /// A timer or the end-of-task microtask fired.
    pub fn tick(&mut self, which: u32) {
        match which {
            TIMER_SEND => {
                self.timer_due = None;
                self.maybe_send(true, false);
            }
            TIMER_QUEUE_WRITE => {
                self.queue_write_timer = false;
                self.persist(true);
            }
            _ => self.persist(false),
        }
    }

    /// Back online: try now.
    pub fn online(&mut self) {
        self.maybe_send(true, true);
    }

    /// Page hidden (visibilitychange → hidden, pagehide): beacons, then persist `closed`.
    pub fn hide(&mut self) {
        self.beacon_all();
        self.hidden = true;
        self.state_dirty = true;
        self.queue_dirty = true;
        self.persist(true);
    }

    /// Visible again (or restored from the back-forward cache).
    pub fn show(&mut self) {
        if self.hidden {
            self.hidden = false;
            self.queue_dirty = true;
            self.schedule_task_end();
        }
    }

    fn schedule_task_end(&mut self) {
        if !self.task_end_scheduled {
            self.task_end_scheduled = true;
            self.host.microtask();
        }
    }

    /// Persists what changed (the queue header says `closed` while the page is hidden, so
    /// another tab may adopt it). `force_queue` writes even a large queue now.
    fn persist(&mut self, force_queue: bool) {
        self.task_end_scheduled = false;
        if self.cfg.disabled {
            return;
        }
        if self.state_dirty {
            self.state_dirty = false;
            if !self
                .host
                .save(SLOT_STATE, &persist::write_state(&self.state))
            {
                self.host.warn(WARN_STORAGE);
            }
        }
        // A large queue (a burst, or the ingest down) is rewritten at most once a second, plus
        // always on page hide: a 10,000-event burst must not cost a multi-MB localStorage write
        // per task. A crash loses at most the last second of such a burst.
        if self.queue_dirty
            && !force_queue
            && !self.hidden
            && self.queue.bytes() > LARGE_QUEUE_BYTES
        {
            if !self.queue_write_timer {
                self.queue_write_timer = true;
                self.host.timer(TIMER_QUEUE_WRITE, LARGE_QUEUE_WRITE_MS);
            }
            return;
        }
        if self.queue_dirty {
            self.queue_dirty = false;
            let n = if self.state.opt_out {
                0
            } else {
                self.queue.len()
            };
            if n == 0 {
                self.host.save(SLOT_QUEUE, "");
                return;
            }
            let header = QueueHeader {
                updated: self.host.now(),
                closed: self.hidden,
            };
            let bytes = self.queue.bytes();
            // `skip` in both calls: one iterator type, one copy of write_queue in the wasm.
            #[allow(clippy::iter_skip_zero)]
            let raw = persist::write_queue(header, self.queue.all().skip(0), bytes + n);
            if self.host.save(SLOT_QUEUE, &raw) {
                return;
            }
            // Over quota: keep the newest half, or nothing.
            let kept = n - n / 2;
            let raw = persist::write_queue(header, self.queue.all().skip(n / 2), bytes / 2 + kept);
            if !self.host.save(SLOT_QUEUE, &raw) {
                self.host.save(SLOT_QUEUE, "");
            }
            self.host.warn(WARN_QUEUE_QUOTA);
        }
    }

    /// Resolves the flush() promises whose messages are all settled.
    fn settle_waiters(&mut self) {
        let q = &self.queue;
        let host = &mut self.host;
        self.waiters.retain(|(mark, id)| {
            let pending = q.holds_before(*mark);
            if !pending {
                host.settled(*id);
            }
            pending
        });
    }

    /// Sends the next batch if the rules allow. `due`: the flush interval elapsed or a flush
    /// was asked (ignore `flushAt`); `forced`: flush()/online (skip our own backoff wait, not
    /// the server's `Retry-After`).
    fn maybe_send(&mut self, due: bool, forced: bool) {
        if self.cfg.disabled || self.state.opt_out || self.queue.in_flight().is_some() {
            return;
        }
        let unsent = self.queue.unsent();
        if unsent == 0 {
            return;
        }
        let now = self.host.now();
        if !due && unsent < self.cfg.flush_at && self.waiters.is_empty() {
            self.arm(now, now + self.cfg.flush_interval_ms);
            return;
        }
        if !self.backoff.ready(now, forced) {
            self.arm(now, self.backoff.until);
            return;
        }
        self.send(now);
    }

    fn send(&mut self, now: u64) {
        let overhead = event::batch_overhead(&self.cfg.write_key_json, &self.common_json);
        let Some(batch) = self
            .queue
            .next_batch(overhead, MAX_BATCH_BYTES, MAX_BATCH_COUNT)
        else {
            return;
        };
        let body = self.body(batch, now);
        self.queue.begin(batch);
        // The queue header's time doubles as a liveness signal for other tabs (STALE_MS).
        self.queue_dirty = true;
        self.schedule_task_end();
        // keepalive lets a request outlive the page, but Chrome rejects it outright while the
        // page's ~64 KB keepalive budget is taken (e.g. after a 413 answered before the body
        // was read). So a keepalive request that fails is retried at once without keepalive,
        // and only a failure of that one counts for backoff.
        self.sent_keepalive = body.len() <= KEEPALIVE_BYTES && self.keepalive;
        if !self.host.send(&body, self.sent_keepalive) {
            self.answer(0, None);
        }
    }

    /// The `/v1/batch` body of `batch`, sent at `now` (one copy for send and beacon).
    fn body(&mut self, batch: Batch, now: u64) -> String {
        let sent_at = self.stamp(now);
        event::batch_body(
            self.queue.messages(batch),
            batch.bytes,
            &sent_at,
            &self.cfg.write_key_json,
            &self.common_json,
        )
    }

    /// Arms the send timer for `at` unless one is due sooner.
    fn arm(&mut self, now: u64, at: u64) {
        if self.timer_due.is_some_and(|due| due <= at) {
            return;
        }
        self.timer_due = Some(at);
        self.host.timer(TIMER_SEND, at.saturating_sub(now));
    }

    /// The answer to the request in flight: `status` 0 = network error; `retry_after` the
    /// header's value in ms when there was one.
    pub fn answer(&mut self, status: u16, retry_after: Option<u64>) {
        if self.queue.in_flight().is_none() {
            return;
        }
        let verdict = backoff::classify(status);
        if status == 0 && self.sent_keepalive {
            self.queue.finish(Outcome::Keep);
            self.keepalive = false;
            self.maybe_send(true, true);
            return;
        }
        self.keepalive = true;
        self.queue.finish(verdict.outcome());
        let now = self.host.now();
        let r = self.rand.bytes(&mut self.host);
        let random = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        match verdict {
            Verdict::Drop => self.host.warn(if status == 401 || status == 403 {
                WARN_REFUSED
            } else {
                WARN_DROPPED
            }),
            Verdict::Retry => self.host.warn(WARN_RETRY),
            _ => {}
        }
        self.backoff.record(verdict, now, random, retry_after);
        self.queue_dirty = true;
        self.schedule_task_end();
        self.settle_waiters();
        // A split batch goes out again at once (in halves); after an answer, a full batch or a
        // pending flush() keeps the pipeline going; a failure waits for its backoff.
        let due = match verdict {
            Verdict::Retry => false,
            _ => {
                self.queue.split_pending()
                    || self.queue.unsent() >= self.cfg.flush_at
                    || !self.waiters.is_empty()
            }
        };
        self.maybe_send(due, false);
    }

    /// Page hide: hand every unsent message to `sendBeacon`, ≤ 60 KB per call, until the
    /// browser refuses one; what is refused stays queued.
    ///
    /// A beacon the browser accepts is only handed over, not acknowledged. While the ingest
    /// answers (no failure since the last success) we trust it and drop what was handed over;
    /// while it is failing (backoff running) a beacon would most likely be lost, so the messages
    /// also stay in the persisted queue and the next page load resends them — the ingest dedupes
    /// by messageId.
    fn beacon_all(&mut self) {
        if self.cfg.disabled || self.state.opt_out {
            return;
        }
        let trusted = self.backoff.attempt == 0;
        let overhead = event::batch_overhead(&self.cfg.write_key_json, &self.common_json);
        let mut after = 0;
        while let Some(b) =
            self.queue
                .next_batch_after(after, overhead, KEEPALIVE_BYTES, MAX_BATCH_COUNT)
        {
            let now = self.host.now();
            let body = self.body(b, now);
            if !self.host.beacon(&body) {
                self.host.warn(WARN_BEACON);
                break;
            }
            after = b.last;
            if trusted {
                self.queue.remove(b);
                self.queue_dirty = true;
            }
        }
        self.settle_waiters();
    }

    /// `Retry-After` in ms: seconds here, an HTTP date as the edge parsed it (`date_ms`, the
    /// time until that date, NaN when none).
    pub fn retry_after(header: &str, date_ms: f64) -> Option<u64> {
        if header.is_empty() {
            return None;
        }
        backoff::parse_retry_after_seconds(header)
            .or_else(|| date_ms.is_finite().then_some(date_ms.max(0.0) as u64))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// An in-memory page: a settable clock, storage slots, and a log of what the machine asked.
    #[derive(Default)]
    struct Page {
        now: u64,
        stored_state: Option<String>,
        stored_queue: String,
        /// Writes to the queue slot fail (quota) while true.
        queue_full: bool,
        sent: Vec<(String, bool)>,
        send_fails: bool,
        beacons: Vec<String>,
        beacon_refuses: bool,
        timers: Vec<(u32, u64)>,
        microtasks: usize,
        warnings: Vec<u32>,
        settled: Vec<u32>,
    }

    impl Host for Page {
        fn now(&mut self) -> u64 {
            self.now
        }
        fn iso(&mut self, ms: u64, out: &mut String) {
            time::push_iso(out, ms);
        }
        fn fill_random(&mut self, buf: &mut [u8]) {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (i as u64 ^ self.now) as u8;
            }
        }
        fn read_state(&mut self) -> Option<String> {
            self.stored_state.clone()
        }
        fn save(&mut self, slot: u32, raw: &str) -> bool {
            if slot == SLOT_STATE {
                self.stored_state = Some(raw.to_string());
                return true;
            }
            if self.queue_full && raw.len() > 200 {
                return false;
            }
            self.stored_queue = raw.to_string();
            true
        }
        fn send(&mut self, body: &str, keepalive: bool) -> bool {
            self.sent.push((body.to_string(), keepalive));
            !self.send_fails
        }
        fn beacon(&mut self, body: &str) -> bool {
            if self.beacon_refuses {
                return false;
            }
            self.beacons.push(body.to_string());
            true
        }
        fn timer(&mut self, which: u32, delay_ms: u64) {
            self.timers.push((which, delay_ms));
        }
        fn microtask(&mut self) {
            self.microtasks += 1;
        }
        fn warn(&mut self, what: u32) {
            self.warnings.push(what);
        }
        fn settled(&mut self, id: u32) {
            self.settled.push(id);
        }
    }

    const PAGE: [&str; 3] = [r#"{"path":"/p","title":"T"}"#, "/p", ""];

    /// [context.page JSON, route, context.campaign JSON] as the JS edge hands them over.
    fn page(path: &str, search: &str, campaign: &str) -> [String; 3] {
        [
            format!(r#"{{"path":"{path}","search":"{search}"}}"#),
            format!("{path}{search}"),
            campaign.into(),
        ]
    }

    fn cfg(flush_at: usize) -> Config {
        Config {
            write_key_json: "\"k\"".into(),
            session: session::Config::from_options(30, 24),
            flush_at,
            flush_interval_ms: 5_000,
            max_queue: 1_000,
            pageviews: false,
            disabled: false,
        }
    }

    /// A machine on a page whose clock reads `now`, not yet started (stored queues can still
    /// be adopted).
    fn unstarted(now: u64, c: Config) -> Machine<Page> {
        Machine::new(
            Page {
                now,
                ..Page::default()
            },
            c,
            "{}".into(),
        )
    }

    fn machine(flush_at: usize) -> Machine<Page> {
        let mut m = unstarted(1_700_000_000_000, cfg(flush_at));
        m.set_page(PAGE, true);
        m.start();
        m
    }

    fn track(m: &mut Machine<Page>, name: &str) {
        m.enqueue(
            Kind::Track,
            name,
            "{\"i\":1}",
            None,
            "",
            Skip::default(),
            None,
        );
    }

    #[test]
    fn below_flush_at_the_interval_timer_is_armed_once_then_sends() {
        let mut m = machine(3);
        track(&mut m, "a");
        track(&mut m, "b");
        assert!(m.host.sent.is_empty());
        assert_eq!(
            m.host.timers,
            [(TIMER_SEND, 5_000)],
            "one timer, not one per event"
        );
        m.host.now += 5_000;
        m.tick(TIMER_SEND);
        assert_eq!(m.host.sent.len(), 1);
        let (body, keepalive) = &m.host.sent[0];
        assert!(
            body.starts_with("{\"batch\":[{\"type\":\"track\""),
            "{body}"
        );
        assert!(body.contains("\"writeKey\":\"k\"") && *keepalive);
        // One request in flight: more events wait for its answer.
        track(&mut m, "c");
        track(&mut m, "d");
        track(&mut m, "e");
        assert_eq!(m.host.sent.len(), 1);
        m.answer(200, None);
        assert_eq!(
            m.host.sent.len(),
            2,
            "a full batch goes out after the answer"
        );
        assert_eq!(m.queue.unsent(), 0);
    }

    #[test]
    fn a_call_handed_over_late_counts_at_its_own_time() {
        let mut m = machine(100);
        track(&mut m, "a");
        let sid = m.state.session_id.clone();
        let called = m.host.now + 29 * 60_000;
        // Processed after the idle timeout, but made before it: same session, its own time.
        m.host.now += 31 * 60_000;
        m.enqueue(
            Kind::Track,
            "b",
            "{}",
            None,
            "",
            Skip::default(),
            Some(called),
        );
        assert_eq!(m.state.session_id, sid);
        assert_eq!(m.state.last_activity, called);
        let last = m.queue.all().last().unwrap().to_string();
        let mut iso = String::new();
        super::super::time::push_iso(&mut iso, called);
        assert!(last.contains(&iso), "{last}");
    }

    #[test]
    fn retry_after_is_a_floor_even_for_flush() {
        let mut m = machine(1);
        track(&mut m, "a");
        assert_eq!(m.host.sent.len(), 1);
        let ra = Machine::<Page>::retry_after("4", f64::NAN);
        assert_eq!(ra, Some(4_000));
        m.answer(429, ra);
        assert_eq!(m.backoff.until, m.host.now + 4_000);
        assert!(!m.flush(7), "flush() waits");
        assert_eq!(
            m.host.sent.len(),
            1,
            "flush() does not skip the server's wait"
        );
        assert_eq!(m.host.timers.last(), Some(&(TIMER_SEND, 4_000)));
        m.host.now += 4_000;
        m.tick(TIMER_SEND);
        assert_eq!(m.host.sent.len(), 2, "the same messages again");
        let id = |b: &str| {
            b.split("\"messageId\":\"")
                .nth(1)
                .map(|r| r[..36].to_string())
        };
        assert_eq!(
            id(&m.host.sent[0].0),
            id(&m.host.sent[1].0),
            "the same messageId"
        );
        m.answer(200, None);
        assert_eq!(m.host.settled, [7]);
        // An HTTP date: the edge passes the ms until then; no header: no floor.
        assert_eq!(
            Machine::<Page>::retry_after("Wed, 21 Oct 2015", 2_500.0),
            Some(2_500)
        );
        assert_eq!(Machine::<Page>::retry_after("", 2_500.0), None);
    }

    #[test]
    fn a_failed_keepalive_request_is_retried_at_once_without_keepalive() {
        let mut m = machine(1);
        track(&mut m, "a");
        assert!(m.host.sent[0].1);
        m.answer(0, None);
        assert_eq!(m.host.sent.len(), 2);
        assert!(!m.host.sent[1].1, "retried without keepalive");
        assert_eq!(m.backoff.attempt, 0, "the keepalive failure does not count");
        m.answer(0, None);
        assert_eq!(m.backoff.attempt, 1, "the plain failure does");
        // A fetch that cannot even start is a network error too.
        m.host.send_fails = true;
        m.host.now = m.backoff.until;
        m.tick(TIMER_SEND);
        assert_eq!(m.backoff.attempt, 2);
    }

    #[test]
    fn page_hide_beacons_in_chunks_and_keeps_what_is_refused() {
        let mut m = machine(100);
        for i in 0..5 {
            track(&mut m, &i.to_string());
        }
        m.host.beacon_refuses = true;
        m.hide();
        assert_eq!(m.queue.len(), 5, "refused: still queued");
        assert!(m.host.stored_queue.starts_with("ffq1 ") && m.host.stored_queue.contains(" 1\n"));
        m.show();
        m.host.beacon_refuses = false;
        m.hide();
        assert_eq!(m.host.beacons.len(), 1);
        assert_eq!(
            m.queue.len(),
            0,
            "handed over while the ingest answers: dropped"
        );
    }

    #[test]
    fn stored_queues_gone_tabs_adopted_oldest_first_live_kept_junk_foreign() {
        let now = 1_700_000_000_000;
        let mut m = unstarted(now, cfg(100));
        let q = |updated: u64, closed: bool, msg: &str| {
            persist::write_queue(QueueHeader { updated, closed }, [msg].into_iter(), 32)
        };
        assert_eq!(
            m.adopt(&q(now - 1_000, true, "{\"m\":\"closed\"}"), now),
            ADOPT_TAKEN
        );
        assert_eq!(m.adopt(&q(now, false, "{\"m\":\"live\"}"), now), ADOPT_KEEP);
        assert_eq!(
            m.adopt(&q(now - STALE_MS, false, "{\"m\":\"stale\"}"), now),
            ADOPT_TAKEN
        );
        assert_eq!(m.adopt("not a queue", now), ADOPT_FOREIGN);
        m.set_page(PAGE, true);
        m.start();
        let all: Vec<&str> = m.queue.all().collect();
        assert_eq!(all, ["{\"m\":\"stale\"}", "{\"m\":\"closed\"}"]);
        assert_eq!(m.host.sent.len(), 1, "adopted events go out at once");
    }

    #[test]
    fn adopted_queues_over_max_queue_size_keep_the_newest_messages() {
        let now = 1_700_000_000_000;
        let mut m = unstarted(
            now,
            Config {
                max_queue: 3,
                ..cfg(100)
            },
        );
        let msgs = |from: u32| {
            (from..from + 3)
                .map(|i| format!("{{\"i\":{i}}}"))
                .collect::<Vec<_>>()
        };
        let (old, new) = (msgs(0), msgs(3));
        let q = |updated: u64, msgs: &[String]| {
            let mut lines: Vec<&str> = msgs.iter().map(String::as_str).collect();
            lines.insert(1, "torn {");
            persist::write_queue(
                QueueHeader {
                    updated,
                    closed: true,
                },
                lines.into_iter(),
                0,
            )
        };
        // The newer queue first: adoption order does not matter, the older is queued first.
        assert_eq!(m.adopt(&q(now - 1_000, &new), now), ADOPT_TAKEN);
        assert_eq!(m.adopt(&q(now - 2_000, &old), now), ADOPT_TAKEN);
        m.set_page(PAGE, true);
        m.start();
        let all: Vec<&str> = m.queue.all().collect();
        assert_eq!(all, ["{\"i\":3}", "{\"i\":4}", "{\"i\":5}"]);
    }

    #[test]
    fn a_full_storage_keeps_the_newest_half_of_the_queue() {
        let mut m = machine(1_000);
        m.host.queue_full = true;
        for i in 0..4 {
            track(&mut m, &i.to_string());
        }
        m.tick(0);
        assert_eq!(m.host.warnings, [WARN_QUEUE_QUOTA]);
        assert!(
            m.host.stored_queue.is_empty(),
            "even half did not fit: removed"
        );
        assert!(m.host.stored_state.is_some());
    }

    #[test]
    fn disabled_stores_and_sends_nothing() {
        let mut c = cfg(1);
        c.disabled = true;
        c.pageviews = true;
        let mut m = Machine::new(Page::default(), c, "{}".into());
        m.set_page(PAGE, true);
        m.start();
        track(&mut m, "a");
        m.reset();
        m.tick(0);
        m.hide();
        assert!(m.flush(1));
        assert!(m.host.sent.is_empty() && m.host.beacons.is_empty());
        assert!(m.host.stored_state.is_none() && m.host.stored_queue.is_empty());
        assert!(!m.state.anonymous_id.is_empty(), "ids live in memory");
    }

    #[test]
    fn navigation_is_a_pageview_only_when_path_or_query_changes() {
        let mut c = cfg(100);
        c.pageviews = true;
        let mut m = Machine::new(Page::default(), c, "{}".into());
        m.set_page(PAGE, true);
        m.start();
        assert_eq!(m.queue.len(), 1, "the load pageview");
        let nav = |m: &mut Machine<Page>, f: [String; 3], force: bool| {
            m.navigation(core::array::from_fn(|i| f[i].as_str()), force)
        };
        // Another title or fragment: the same route.
        nav(&mut m, page("/p", "", ""), false);
        assert_eq!(m.queue.len(), 1);
        nav(&mut m, page("/q", "?a=1", ""), false);
        assert_eq!(m.queue.len(), 2);
        nav(&mut m, page("/q", "?a=1", ""), true);
        assert_eq!(m.queue.len(), 3, "a bfcache restore counts");
        // A page opened with utm values: the campaign context and a new session.
        let sid = m.state.session_id.clone();
        nav(
            &mut m,
            page("/r", "?utm_source=x", r#"{"source":"x"}"#),
            false,
        );
        assert_ne!(m.state.session_id, sid);
        let last = m.queue.all().last().unwrap();
        assert!(last.contains("\"campaign\":{\"source\":\"x\"}"), "{last}");
    }
}
