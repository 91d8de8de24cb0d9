//! A bounded-memory window of recently written `(source, messageId)` pairs.
//!
//! Ids are stored as 128-bit keyed hashes (one SipHash pass with a random key, read out as two
//! 64-bit halves), so memory per id is fixed (~26 bytes) whatever the id's length, and a client
//! cannot craft collisions. Entries leave the window when it expires (default 24 h; up to a
//! second late, never early) or, when `capacity` is reached, oldest first: past that bound a very
//! old duplicate may be written again — bounded memory wins over exactness.
//!
//! Keys are made on the request's thread (`SourceKeys`, from `Sink::append`); the window is owned
//! by a source's single writer (see `sink`), which checks and inserts in the same place it
//! writes: `insert` is the check, and a group whose write fails takes its ids back out
//! (`forget_newest`) before anything is acknowledged, so two concurrent requests carrying the same
//! id cannot both be written and a failed write does not mark its ids seen. Not thread-safe by
//! design.

use hashbrown::HashTable;
use std::collections::VecDeque;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::time::{Duration, Instant};

/// The hashed identity of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeKey(u128);

impl DedupeKey {
    /// Its table hash: the low half, passed through, since it already is a keyed SipHash
    /// output (hashing it again was ~7 % of a batch's CPU). Safe against crafted ids only because
    /// the key itself is keyed with secrets the client never sees.
    fn table_hash(self) -> u64 {
        self.0 as u64
    }
}

/// Builds `DedupeKey`s. Cheap to clone; keys from clones agree.
#[derive(Debug, Clone, Default)]
pub struct KeyHasher {
    state: RandomState,
}

impl KeyHasher {
    /// One keyed SipHash pass over the id, read out twice: the low half is the hash of the
    /// input, the high half that of the input followed by one more byte (`finish` leaves the
    /// state as it was). Two hashers with two keys ran the whole input twice (~900 instructions
    /// per message). The two inputs never coincide (the id, a `str`, cannot hold a 0xff byte, the
    /// one `str`'s `Hash` ends it with), so the halves are two outputs of the keyed function at
    /// different points and a crafted collision still needs both.
    pub fn key(&self, source: &str, message_id: &str) -> DedupeKey {
        self.source(source).key(message_id)
    }

    /// `key` for many ids of one source: the hash state after the source's part of the input,
    /// taken once (a writer's group of lines shares its source), then carried on per id.
    pub fn source(&self, source: &str) -> SourceKeys {
        let mut h = self.state.build_hasher();
        // Length-prefixed so ("a", "bc") and ("ab", "c") differ.
        source.len().hash(&mut h);
        source.hash(&mut h);
        SourceKeys { after_source: h }
    }
}

/// `KeyHasher::key` of one source (`KeyHasher::source`).
#[derive(Debug, Clone)]
pub struct SourceKeys {
    after_source: DefaultHasher,
}

impl SourceKeys {
    /// The same key as `KeyHasher::key(source, message_id)`: the same input, hashed on from the
    /// state the source left.
    pub fn key(&self, message_id: &str) -> DedupeKey {
        let mut h = self.after_source.clone();
        message_id.hash(&mut h);
        let lo = h.finish();
        h.write_u8(0xff);
        let hi = h.finish();
        DedupeKey((u128::from(hi) << 64) | u128::from(lo))
    }
}

/// Recently written ids, bounded by time and by count.
///
/// Memory per id is ~26 bytes once the table is full: the id's key once, in `order` (16 bytes),
/// and a 4-byte sequence number in `seen` that points back at it (plus hashbrown's control byte
/// and spare slots). A `HashSet` of keys beside a queue of `(key, Instant)` held each key twice
/// and a 16-byte `Instant` per id: ~68 MB at the default capacity instead of ~27.
#[derive(Debug)]
pub struct DedupeWindow {
    window: Duration,
    capacity: usize,
    /// Expiry is tracked per run of ids written within `grain` of each other, not per id.
    grain: Duration,
    /// The sequence numbers of the ids in `order`, hashed by their key's low half.
    seen: HashTable<u32>,
    /// Every remembered key, oldest first; the front one has sequence number `head`.
    order: VecDeque<DedupeKey>,
    head: u32,
    /// Runs of `order`, oldest first: `(end, at)` covers the ids from the previous run's end
    /// (or `head`) up to `end`, exclusive, the newest of them written at `at`.
    runs: VecDeque<(u32, Instant)>,
}

impl DedupeWindow {
    pub fn new(window: Duration, capacity: usize) -> Self {
        // Sized up front (up to 2^20 ids, about the default capacity) so a full window never
        // goes through a rehash or a VecDeque regrowth, which briefly holds the old and the new
        // table at once. The cost is paid early instead: the table's pages are hashed into at
        // random, so its ~10 MB are resident after the first few thousand ids (the order queue
        // fills in sequence and only costs what it holds).
        // Sequence numbers are u32s compared by wrapping distance: at most 2^32 - 1 live ids.
        let capacity = capacity.clamp(1, u32::MAX as usize);
        let reserve = capacity.min(1 << 20);
        Self {
            window,
            capacity,
            // A run expires with its newest id, so an id is forgotten up to `grain` late, never
            // early; at most ~4,096 runs (86,400 for a day's window) are ever held.
            grain: (window / 4096).min(Duration::from_secs(1)),
            seen: HashTable::with_capacity(reserve),
            order: VecDeque::with_capacity(reserve),
            head: 0,
            runs: VecDeque::new(),
        }
    }

    /// Whether `key` was written within the window (as of `now`). The writer does not ask: its
    /// check is `insert` (taken back with `forget_newest`); the tests observe the window by it.
    #[cfg(test)]
    pub fn contains(&mut self, key: DedupeKey, now: Instant) -> bool {
        self.expire(now);
        self.find(key).is_some()
    }

    /// Records `key` as written at `now`. Returns false when it was already present.
    pub fn insert(&mut self, key: DedupeKey, now: Instant) -> bool {
        self.expire(now);
        if self.find(key).is_some() {
            return false;
        }
        while self.order.len() >= self.capacity {
            self.evict_oldest();
        }
        let seq = self.head.wrapping_add(self.order.len() as u32);
        self.order.push_back(key);
        let (order, head) = (&self.order, self.head);
        self.seen.insert_unique(key.table_hash(), seq, |&s| {
            order[s.wrapping_sub(head) as usize].table_hash()
        });
        let end = seq.wrapping_add(1);
        match self.runs.back_mut() {
            // An id written before the run's newest (requests' clocks interleave) joins it: it
            // is then forgotten a little late, never early.
            Some((run_end, at)) if now.saturating_duration_since(*at) < self.grain => {
                *run_end = end;
                *at = (*at).max(now);
            }
            _ => self.runs.push_back((end, now)),
        }
        true
    }

    /// Forgets the `n` newest ids: those of a group whose write failed, inserted before it was
    /// written (`insert` is the writer's check as well). Ids that their insertion evicted for
    /// room stay forgotten; the client's retry would evict them again.
    pub fn forget_newest(&mut self, n: usize) {
        for _ in 0..n {
            let Some(key) = self.order.pop_back() else {
                return;
            };
            let seq = self.head.wrapping_add(self.order.len() as u32);
            if let Ok(entry) = self.seen.find_entry(key.table_hash(), |&s| s == seq) {
                entry.remove();
            }
            let start = match self.runs.len() {
                0 | 1 => self.head,
                k => self.runs[k - 2].0,
            };
            if let Some((end, _)) = self.runs.back_mut() {
                *end = seq;
                if seq == start {
                    self.runs.pop_back();
                }
            }
        }
    }

    /// Refills the window after a restart with ids written before it, oldest first, each with
    /// its age at `now` (see `sink::rebuild`). An age the monotonic clock cannot go back to (the
    /// machine booted more recently than the id was written) counts as zero: such an id is
    /// remembered up to one window longer than it would have been, never shorter. Returns how
    /// many were added.
    pub fn restore(
        &mut self,
        ids: impl IntoIterator<Item = (DedupeKey, Duration)>,
        now: Instant,
    ) -> usize {
        let mut added = 0;
        let mut floor: Option<Instant> = None;
        for (key, age) in ids {
            if age >= self.window {
                continue;
            }
            let at = now.checked_sub(age).unwrap_or(now);
            // Keep the runs sorted by time even when ages are not (clock steps, clamping above).
            let at = floor.map_or(at, |f| at.max(f));
            floor = Some(at);
            if self.insert(key, at) {
                added += 1;
            }
        }
        added
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn find(&self, key: DedupeKey) -> Option<u32> {
        let (order, head) = (&self.order, self.head);
        self.seen
            .find(key.table_hash(), |&s| {
                order[s.wrapping_sub(head) as usize] == key
            })
            .copied()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(end, at)) = self.runs.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            while self.head != end {
                if !self.evict_oldest() {
                    // Unreachable while the runs cover `order` exactly; never spin if not.
                    self.runs.clear();
                    return;
                }
            }
        }
    }

    /// Forgets the oldest id, and the run it ended if it was that run's last.
    fn evict_oldest(&mut self) -> bool {
        let Some(key) = self.order.pop_front() else {
            return false;
        };
        let seq = self.head;
        if let Ok(entry) = self.seen.find_entry(key.table_hash(), |&s| s == seq) {
            entry.remove();
        }
        self.head = seq.wrapping_add(1);
        if self.runs.front().is_some_and(|&(end, _)| end == self.head) {
            self.runs.pop_front();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_and_forgets_after() {
        let h = KeyHasher::default();
        let mut w = DedupeWindow::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let k = h.key("web", "m1");
        assert!(!w.contains(k, t0));
        assert!(w.insert(k, t0));
        assert!(!w.insert(k, t0), "second insert is a duplicate");
        assert!(w.contains(k, t0 + Duration::from_secs(59)));
        assert!(!w.contains(k, t0 + Duration::from_secs(60)));
        assert!(w.is_empty());
        // Once expired it can be written (and remembered) again.
        assert!(w.insert(k, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn keys_are_per_source_and_unambiguous() {
        let h = KeyHasher::default();
        assert_ne!(h.key("web", "m1"), h.key("app", "m1"));
        assert_ne!(h.key("a", "bc"), h.key("ab", "c"));
        assert_eq!(h.key("web", "m1"), h.clone().key("web", "m1"));
        // The two halves are two different outputs, not one repeated.
        let DedupeKey(k) = h.key("web", "m1");
        assert_ne!(k as u64, (k >> 64) as u64);
        assert_ne!(h.key("web", "m1"), KeyHasher::default().key("web", "m1"));
    }

    /// A source's key state carried on per id gives the keys `key` gives (the same input).
    #[test]
    fn per_source_keys_are_the_keys() {
        let h = KeyHasher::default();
        for source in ["", "web", "a-much-longer-source-name"] {
            let keys = h.source(source);
            for id in [
                "",
                "m1",
                "q\"\u{e9}\n",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            ] {
                assert_eq!(keys.key(id), h.key(source, id), "{source:?} {id:?}");
                assert_eq!(keys.clone().key(id), keys.key(id));
            }
        }
    }

    #[test]
    fn restored_ids_expire_by_their_original_age() {
        let h = KeyHasher::default();
        let mut w = DedupeWindow::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let added = w.restore(
            [
                (h.key("web", "gone"), Duration::from_secs(60)),
                (h.key("web", "old"), Duration::from_secs(50)),
                (h.key("web", "new"), Duration::from_secs(5)),
                (h.key("web", "new"), Duration::from_secs(5)),
            ],
            t0,
        );
        assert_eq!(added, 2);
        assert!(!w.contains(h.key("web", "gone"), t0));
        assert!(w.contains(h.key("web", "old"), t0 + Duration::from_secs(9)));
        assert!(!w.contains(h.key("web", "old"), t0 + Duration::from_secs(10)));
        assert!(w.contains(h.key("web", "new"), t0 + Duration::from_secs(54)));
        assert!(!w.contains(h.key("web", "new"), t0 + Duration::from_secs(55)));
    }

    #[test]
    fn memory_is_bounded_by_capacity_oldest_first() {
        let h = KeyHasher::default();
        let mut w = DedupeWindow::new(Duration::from_secs(3600), 1000);
        let t0 = Instant::now();
        for i in 0..10_000 {
            w.insert(h.key("web", &i.to_string()), t0);
        }
        assert_eq!(w.len(), 1000);
        assert_eq!(w.order.len(), 1000);
        assert_eq!(w.seen.len(), 1000);
        assert!(w.contains(h.key("web", "9999"), t0));
        assert!(w.contains(h.key("web", "9000"), t0));
        assert!(!w.contains(h.key("web", "8999"), t0));
        assert!(!w.contains(h.key("web", "0"), t0));
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let h = KeyHasher::default();
        let mut w = DedupeWindow::new(Duration::from_secs(3600), 10);
        w.head = u32::MAX - 5;
        let t0 = Instant::now();
        for i in 0..25 {
            assert!(w.insert(h.key("web", &i.to_string()), t0));
        }
        assert_eq!(w.len(), 10);
        for i in 0..25 {
            assert_eq!(w.contains(h.key("web", &i.to_string()), t0), i >= 15, "{i}");
        }
        assert!(
            !w.insert(h.key("web", "24"), t0),
            "still a duplicate across the wrap"
        );
        assert!(!w.contains(h.key("web", "24"), t0 + Duration::from_secs(3600)));
        assert!(w.is_empty() && w.runs.is_empty() && w.seen.is_empty());
    }

    #[test]
    fn ids_of_one_run_expire_with_its_newest_never_early() {
        let h = KeyHasher::default();
        // A day's window: runs of 1 s.
        let mut w = DedupeWindow::new(Duration::from_secs(86_400), 100);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        w.insert(h.key("web", "a"), t0);
        w.insert(h.key("web", "b"), t0 + ms(600));
        w.insert(h.key("web", "c"), t0 + ms(1_700));
        assert_eq!(w.runs.len(), 2);
        let day = Duration::from_secs(86_400);
        // "a" is kept until "b", the newest of its run, is a window old.
        assert!(w.contains(h.key("web", "a"), t0 + day + ms(599)));
        assert!(!w.contains(h.key("web", "b"), t0 + day + ms(600)));
        assert!(!w.contains(h.key("web", "a"), t0 + day + ms(600)));
        assert!(w.contains(h.key("web", "c"), t0 + day + ms(1_699)));
        assert!(!w.contains(h.key("web", "c"), t0 + day + ms(1_700)));
    }

    #[test]
    fn a_failed_group_is_forgotten_and_its_runs_with_it() {
        let h = KeyHasher::default();
        let mut w = DedupeWindow::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let k = |i: u32| h.key("web", &i.to_string());
        w.insert(k(0), t0);
        w.insert(k(1), t0 + Duration::from_secs(5));
        w.insert(k(2), t0 + Duration::from_secs(5));
        assert_eq!(w.runs.len(), 2);
        w.forget_newest(1);
        assert!(!w.contains(k(2), t0 + Duration::from_secs(5)) && w.contains(k(1), t0));
        assert_eq!(w.runs.len(), 2);
        w.forget_newest(1);
        assert_eq!(w.runs.len(), 1, "an emptied run goes");
        w.forget_newest(5);
        assert!(w.is_empty() && w.runs.is_empty() && w.seen.is_empty());
        // Usable again afterwards, with the sequence numbers reused.
        assert!(w.insert(k(2), t0) && w.contains(k(2), t0 + Duration::from_secs(59)));
        assert!(!w.contains(k(2), t0 + Duration::from_secs(60)));
    }

    proptest::proptest! {
        /// Against the plain model (every id with its own time): with the times on a whole
        /// grain, the window says exactly what the model says, duplicates, expiry and capacity
        /// eviction included.
        #[test]
        fn agrees_with_a_queue_of_timed_ids(
            capacity in 1usize..20,
            ops in proptest::collection::vec((0u8..4, 0u32..40, 0u64..3000), 1..300),
        ) {
            let window = Duration::from_millis(4096); // grain: 1 ms
            let h = KeyHasher::default();
            let mut w = DedupeWindow::new(window, capacity);
            let mut model: VecDeque<(DedupeKey, Instant)> = VecDeque::new();
            let mut now = Instant::now();
            for (op, id, step) in ops {
                if op == 2 {
                    now += Duration::from_millis(step);
                    continue;
                }
                if op == 3 {
                    let n = (id % 4) as usize;
                    w.forget_newest(n);
                    for _ in 0..n {
                        model.pop_back();
                    }
                    proptest::prop_assert_eq!(w.len(), model.len());
                    continue;
                }
                let key = h.key("web", &id.to_string());
                while model.front().is_some_and(|&(_, at)| now - at >= window) {
                    model.pop_front();
                }
                let present = model.iter().any(|&(k, _)| k == key);
                if op == 0 {
                    proptest::prop_assert_eq!(w.contains(key, now), present);
                } else {
                    proptest::prop_assert_eq!(w.insert(key, now), !present);
                    if !present {
                        while model.len() >= capacity {
                            model.pop_front();
                        }
                        model.push_back((key, now));
                    }
                }
                proptest::prop_assert_eq!(w.len(), model.len());
                proptest::prop_assert_eq!(w.seen.len(), model.len());
            }
            // The runs cover the ids exactly: expiring everything empties both.
            w.contains(h.key("web", "x"), now + window);
            proptest::prop_assert!(w.is_empty() && w.runs.is_empty());
        }
    }
}
