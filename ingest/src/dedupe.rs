//! A bounded-memory window of recently written `(source, messageId)` pairs.
//!
//! Ids are stored as 128-bit keyed hashes (one SipHash pass with a random key, read out as two
//! 64-bit halves), so memory per id is fixed (~60 bytes) whatever the id's length, and a client
//! cannot craft collisions. Entries
//! leave the window when it expires (default 24 h) or, when `capacity` is reached, oldest first:
//! past that bound a very old duplicate may be written again — bounded memory wins over exactness.
//!
//! The window is owned by a source's single writer (see `sink`), which checks and inserts in the
//! same place it writes: an id is marked seen only once its line is written, and two concurrent
//! requests carrying the same id cannot both be written. Not thread-safe by design.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash, Hasher, RandomState};
use std::time::{Duration, Instant};

/// The hashed identity of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupeKey(u128);

impl Hash for DedupeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed SipHash: its low half is as good a table hash as hashing it again.
        state.write_u64(self.0 as u64);
    }
}

/// Table hasher for `DedupeKey`s: passes their (keyed, uniformly random) low 64 bits through,
/// instead of running SipHash a second time on every lookup (issue 5: SipHash was ~7 % of a
/// batch's CPU, most of it on these tables). Safe against crafted ids only because the key
/// itself is keyed with secrets the client never sees.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyPassthrough(u64);

impl Hasher for KeyPassthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `DedupeKey`; fold anything else in rather than ignore it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of `DedupeKey`s with the pass-through table hash.
pub type KeySet = HashSet<DedupeKey, BuildHasherDefault<KeyPassthrough>>;

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
#[derive(Debug)]
pub struct DedupeWindow {
    window: Duration,
    capacity: usize,
    seen: KeySet,
    /// Insertion order; every key in `seen` has exactly one entry here.
    order: VecDeque<(DedupeKey, Instant)>,
}

impl DedupeWindow {
    pub fn new(window: Duration, capacity: usize) -> Self {
        // Sized up front (up to 2^20 ids, the default capacity) so a full window never goes
        // through a rehash or a VecDeque regrowth, which briefly holds the old and the new table
        // at once. The cost is paid early instead: the set's pages are hashed into at random, so
        // its ~34 MB are resident after the first few thousand ids (the order queue fills
        // in sequence and only costs what it holds).
        let reserve = capacity.clamp(1, 1 << 20);
        let mut seen = KeySet::default();
        seen.reserve(reserve);
        Self {
            window,
            capacity: capacity.max(1),
            seen,
            order: VecDeque::with_capacity(reserve),
        }
    }

    /// Whether `key` was written within the window (as of `now`).
    pub fn contains(&mut self, key: DedupeKey, now: Instant) -> bool {
        self.expire(now);
        self.seen.contains(&key)
    }

    /// Records `key` as written at `now`. Returns false when it was already present.
    pub fn insert(&mut self, key: DedupeKey, now: Instant) -> bool {
        self.expire(now);
        if self.seen.contains(&key) {
            return false;
        }
        while self.seen.len() >= self.capacity {
            self.evict_oldest();
        }
        self.seen.insert(key);
        self.order.push_back((key, now));
        true
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
            // Keep `order` sorted by time even when ages are not (clock steps, clamping above).
            let at = floor.map_or(at, |f| at.max(f));
            floor = Some(at);
            if self.insert(key, at) {
                added += 1;
            }
        }
        added
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.window {
                break;
            }
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((key, _)) = self.order.pop_front() {
            self.seen.remove(&key);
        }
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
        assert!(w.contains(h.key("web", "9999"), t0));
        assert!(w.contains(h.key("web", "9000"), t0));
        assert!(!w.contains(h.key("web", "8999"), t0));
        assert!(!w.contains(h.key("web", "0"), t0));
    }
}
