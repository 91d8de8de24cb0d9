//! The in-memory queue of serialized messages and the batch rules.
//!
//! Every message gets a sequence number; a batch is a contiguous sequence range of the oldest
//! unsent messages, so an acknowledgement removes exactly the messages it covered even if the
//! queue changed meanwhile (new events, oldest dropped by `maxQueueSize`, a beacon on page hide).
//! A message leaves only when acknowledged (2xx), handed to an accepted beacon, dropped for good
//! (400 and every other status but 2xx, 408, 413, 429 and 5xx; or a lone message answered 413),
//! or pushed out by `maxQueueSize` (counted).

use alloc::string::String;
use alloc::vec::Vec;

/// Largest request body we send (the ingest's limit is 500 KB; 500,000 is under both readings).
pub const MAX_BATCH_BYTES: usize = 500_000;
/// Most messages per batch (the ingest's limit).
pub const MAX_BATCH_COUNT: usize = 2_500;
/// Largest single message we accept from the page. The ingest rejects messages over 32 KB;
/// we stay under it with room for the batch-level context the ingest merges in.
pub const MAX_MESSAGE_BYTES: usize = 30_000;
/// `fetch` keepalive and `sendBeacon` share a ~64 KB in-flight budget per page: bodies above this
/// go without keepalive, and beacons are cut into chunks of at most this size.
pub const KEEPALIVE_BYTES: usize = 60_000;

#[derive(Debug)]
struct Item {
    seq: u64,
    json: String,
}

/// A contiguous run of queued messages, by sequence number (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub first: u64,
    pub last: u64,
    pub count: usize,
    /// Sum of message bytes plus the commas between them.
    pub bytes: usize,
}

/// What happened to a batch, as decided by `backoff::classify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged, or dropped for good: remove it.
    Remove,
    /// 413: send it again in smaller batches (a lone message is dropped).
    Split,
    /// Keep it for a later attempt.
    Keep,
}

#[derive(Debug)]
pub struct Queue {
    /// The messages are `items[head..]`: the front is popped by moving `head` (the slot keeps an
    /// empty string until the next compaction). A Vec and slices instead of a VecDeque: its
    /// ring-buffer machinery was ~900 B of wasm.
    items: Vec<Item>,
    head: usize,
    next_seq: u64,
    max_items: usize,
    bytes: usize,
    /// Messages pushed out by `maxQueueSize` or too large to send, since start.
    pub dropped: u64,
    /// Current cap on messages per batch: halved by a 413, doubled back by each success.
    batch_cap: usize,
    in_flight: Option<Batch>,
    /// Last sequence number of a batch answered 413: until its halves are all sent, they go out
    /// at once rather than waiting for `flushAt` or the interval.
    split_last: u64,
}

impl Queue {
    pub fn new(max_items: usize) -> Queue {
        Queue {
            items: Vec::new(),
            head: 0,
            next_seq: 1,
            max_items: max_items.max(1),
            bytes: 0,
            dropped: 0,
            batch_cap: MAX_BATCH_COUNT,
            in_flight: None,
            split_last: 0,
        }
    }

    /// The queued messages, oldest first.
    fn live(&self) -> &[Item] {
        self.items.get(self.head..).unwrap_or(&[])
    }

    /// Drops the popped slots in front (after which `items` is exactly the queue). `split_off`
    /// rather than `drain`: the same O(n) move, 167 B less wasm than Drain's machinery.
    fn compact(&mut self) {
        self.items = self.items.split_off(self.head.min(self.items.len()));
        self.head = 0;
    }

    pub fn len(&self) -> usize {
        self.live().len()
    }

    pub fn is_empty(&self) -> bool {
        self.live().is_empty()
    }

    /// Total bytes of the queued messages.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The sequence number the next message will get: a flush mark (everything queued before it).
    pub fn mark(&self) -> u64 {
        self.next_seq
    }

    /// True while a message queued before `mark` is still here.
    pub fn holds_before(&self, mark: u64) -> bool {
        self.live().first().is_some_and(|i| i.seq < mark)
    }

    /// Queues one message. Returns false (and counts a drop) when it is over
    /// [`MAX_MESSAGE_BYTES`]; pushes out the oldest message when the queue is full.
    pub fn push(&mut self, json: String) -> bool {
        if json.len() > MAX_MESSAGE_BYTES {
            self.dropped += 1;
            return false;
        }
        // Full: the oldest goes (one is enough: this is the only way in, one message at a time).
        if self.len() >= self.max_items {
            self.pop_front();
            self.dropped += 1;
        }
        self.bytes += json.len();
        self.items.push(Item {
            seq: self.next_seq,
            json,
        });
        self.next_seq += 1;
        true
    }

    fn pop_front(&mut self) {
        if let Some(i) = self.items.get_mut(self.head) {
            self.bytes -= core::mem::take(&mut i.json).len();
            self.head += 1;
            // Amortized O(1): compact once the popped slots are half of the Vec.
            if self.head * 2 >= self.items.len() {
                self.compact();
            }
        }
    }

    pub fn in_flight(&self) -> Option<Batch> {
        self.in_flight
    }

    /// Messages not part of the batch in flight.
    pub fn unsent(&self) -> usize {
        self.len() - self.first_unsent()
    }

    /// Index of the first message after the batch in flight. Sequence numbers ascend through
    /// the queue, so this is a binary search: `track()` asks on every call, and a 2,500-message
    /// batch may be in flight.
    fn first_unsent(&self) -> usize {
        match self.in_flight {
            Some(b) => self.live().partition_point(|i| i.seq <= b.last),
            None => 0,
        }
    }

    /// The next batch of unsent messages: oldest first, at most `max_count` (and the current
    /// 413 cap) messages, and `overhead` + messages + commas ≤ `max_bytes`. Always at least one
    /// message when any is unsent (a message alone always fits: see [`MAX_MESSAGE_BYTES`]).
    pub fn next_batch(&self, overhead: usize, max_bytes: usize, max_count: usize) -> Option<Batch> {
        self.next_batch_after(0, overhead, max_bytes, max_count)
    }

    /// Like [`Queue::next_batch`], skipping messages up to sequence `after` too (walks the queue
    /// without removing what it hands out, e.g. beacons that we do not trust to arrive).
    pub fn next_batch_after(
        &self,
        after: u64,
        overhead: usize,
        max_bytes: usize,
        max_count: usize,
    ) -> Option<Batch> {
        let cap = max_count.min(self.batch_cap).max(1);
        let mut batch: Option<Batch> = None;
        for item in self
            .live()
            .iter()
            .skip(self.first_unsent())
            .filter(|i| i.seq > after)
        {
            let add = item.json.len() + usize::from(batch.is_some());
            match &mut batch {
                None => {
                    batch = Some(Batch {
                        first: item.seq,
                        last: item.seq,
                        count: 1,
                        bytes: item.json.len(),
                    })
                }
                Some(b) => {
                    if b.count >= cap || overhead + b.bytes + add > max_bytes {
                        break;
                    }
                    b.last = item.seq;
                    b.count += 1;
                    b.bytes += add;
                }
            }
        }
        batch
    }

    /// The messages of `batch` still queued, oldest first.
    pub fn messages(&self, batch: Batch) -> impl Iterator<Item = &str> {
        self.live()
            .iter()
            .filter(move |i| i.seq >= batch.first && i.seq <= batch.last)
            .map(|i| i.json.as_str())
    }

    /// All queued messages, oldest first (for persisting).
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.live().iter().map(|i| i.json.as_str())
    }

    /// Part of a split (413) batch is still unsent: send it now.
    pub fn split_pending(&self) -> bool {
        self.live()
            .get(self.first_unsent())
            .is_some_and(|i| i.seq <= self.split_last)
    }

    /// Marks `batch` as the one request in flight.
    pub fn begin(&mut self, batch: Batch) {
        self.in_flight = Some(batch);
    }

    /// Settles the batch in flight.
    pub fn finish(&mut self, outcome: Outcome) {
        let Some(b) = self.in_flight.take() else {
            return;
        };
        match outcome {
            Outcome::Remove => {
                self.remove(b);
                self.batch_cap = (self.batch_cap * 2).min(MAX_BATCH_COUNT);
            }
            Outcome::Split if b.count <= 1 => {
                let before = self.len();
                self.remove(b);
                self.dropped += (before - self.len()) as u64;
            }
            Outcome::Split => {
                self.batch_cap = (b.count / 2).max(1);
                self.split_last = self.split_last.max(b.last);
            }
            Outcome::Keep => {}
        }
    }

    /// Removes the messages of `batch` (e.g. handed to an accepted beacon).
    pub fn remove(&mut self, batch: Batch) {
        self.compact();
        let mut freed = 0;
        self.items.retain(|i| {
            let gone = i.seq >= batch.first && i.seq <= batch.last;
            if gone {
                freed += i.json.len();
            }
            !gone
        });
        self.bytes -= freed;
        // A beacon may have taken what was in flight: nothing left to settle for it.
        if self
            .in_flight
            .is_some_and(|f| f.first >= batch.first && f.last <= batch.last)
        {
            self.in_flight = None;
        }
    }

    /// Drops everything (opt-out). Returns how many messages were removed.
    pub fn clear(&mut self) -> usize {
        let n = self.len();
        self.items.clear();
        self.head = 0;
        self.bytes = 0;
        self.in_flight = None;
        n
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn msg(i: usize, size: usize) -> String {
        let mut s = format!("{{\"i\":{i},\"p\":\"");
        while s.len() + 2 < size {
            s.push('x');
        }
        s.push_str("\"}");
        s
    }

    fn filled(n: usize, size: usize) -> Queue {
        let mut q = Queue::new(10_000);
        for i in 0..n {
            assert!(q.push(msg(i, size)));
        }
        q
    }

    #[test]
    fn max_queue_size_drops_oldest_and_counts() {
        let mut q = Queue::new(3);
        for i in 0..5 {
            q.push(msg(i, 20));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped, 2);
        let first: Vec<&str> = q.all().collect();
        assert!(first[0].starts_with("{\"i\":2"));
        assert_eq!(q.bytes(), 60);
    }

    #[test]
    fn oversize_message_is_refused() {
        let mut q = Queue::new(10);
        assert!(q.push(msg(0, MAX_MESSAGE_BYTES)));
        assert!(!q.push(msg(1, MAX_MESSAGE_BYTES + 1)));
        assert_eq!((q.len(), q.dropped), (1, 1));
    }

    #[test]
    fn batch_count_limit_at_the_boundary() {
        for (n, want) in [(1, 1), (2_499, 2_499), (2_500, 2_500), (2_501, 2_500)] {
            let q = filled(n, 10);
            let b = q.next_batch(100, MAX_BATCH_BYTES, MAX_BATCH_COUNT).unwrap();
            assert_eq!(b.count, want, "{n} queued");
        }
        assert_eq!(
            Queue::new(5).next_batch(0, MAX_BATCH_BYTES, MAX_BATCH_COUNT),
            None
        );
    }

    #[test]
    fn batch_byte_limit_at_the_boundary() {
        // 1,000-byte messages: k messages take 1000k + (k-1) bytes with the commas.
        let overhead = 300;
        let q = filled(1_000, 1_000);
        let exact = 499; // 300 + 499_000 + 498 = 499_798 ≤ 500_000; one more is 500_799
        let b = q
            .next_batch(overhead, MAX_BATCH_BYTES, MAX_BATCH_COUNT)
            .unwrap();
        assert_eq!(b.count, exact);
        assert_eq!(b.bytes, exact * 1_000 + exact - 1);
        assert!(overhead + b.bytes <= MAX_BATCH_BYTES);
        // Exactly at the limit is allowed.
        let q = filled(3, 1_000);
        let b = q.next_batch(0, 2_001, 10).unwrap();
        assert_eq!(b.count, 2);
        let b = q.next_batch(0, 2_000, 10).unwrap();
        assert_eq!(b.count, 1);
    }

    #[test]
    fn one_batch_in_flight_and_acks_remove_exactly_it() {
        let mut q = filled(5, 10);
        let b = q.next_batch(0, MAX_BATCH_BYTES, 2).unwrap();
        q.begin(b);
        assert_eq!(q.unsent(), 3);
        // Next batch skips what is in flight (used by the page-hide beacon).
        let nb = q.next_batch(0, MAX_BATCH_BYTES, 10).unwrap();
        assert_eq!((nb.first, nb.count), (b.last + 1, 3));
        q.push(msg(9, 10));
        q.finish(Outcome::Remove);
        assert_eq!(q.len(), 4);
        assert_eq!(q.in_flight(), None);
        assert!(q.all().next().unwrap().starts_with("{\"i\":2"));
    }

    #[test]
    fn ack_after_oldest_dropped_removes_only_what_is_left() {
        let mut q = Queue::new(3);
        for i in 0..3 {
            q.push(msg(i, 10));
        }
        let b = q.next_batch(0, MAX_BATCH_BYTES, 10).unwrap();
        q.begin(b);
        q.push(msg(3, 10)); // pushes out seq 1 while it is in flight
        q.finish(Outcome::Remove);
        assert_eq!(q.len(), 1);
        assert!(q.all().next().unwrap().starts_with("{\"i\":3"));
    }

    #[test]
    fn split_halves_until_a_lone_message_is_dropped() {
        let mut q = filled(8, 10);
        let mut sizes = Vec::new();
        for _ in 0..4 {
            let b = q.next_batch(0, MAX_BATCH_BYTES, MAX_BATCH_COUNT).unwrap();
            sizes.push(b.count);
            q.begin(b);
            q.finish(Outcome::Split);
        }
        assert_eq!(sizes, [8, 4, 2, 1]);
        assert!(
            q.split_pending(),
            "the rest of the split batch is due at once"
        );
        assert_eq!((q.len(), q.dropped), (7, 1));
        // Successes grow the cap back.
        let b = q.next_batch(0, MAX_BATCH_BYTES, MAX_BATCH_COUNT).unwrap();
        assert_eq!(b.count, 1);
        q.begin(b);
        q.finish(Outcome::Remove);
        assert_eq!(
            q.next_batch(0, MAX_BATCH_BYTES, MAX_BATCH_COUNT)
                .unwrap()
                .count,
            2
        );
        // Once every message of the split batch is gone, new messages wait as usual.
        let mut q = filled(2, 10);
        let b = q.next_batch(0, MAX_BATCH_BYTES, MAX_BATCH_COUNT).unwrap();
        q.begin(b);
        q.finish(Outcome::Split);
        q.push(msg(7, 10));
        assert!(q.split_pending());
        let b = q.next_batch(0, MAX_BATCH_BYTES, MAX_BATCH_COUNT).unwrap();
        assert_eq!(b.count, 1);
        q.begin(b);
        q.finish(Outcome::Remove);
        assert!(q.split_pending(), "the other half is still due");
        let b = q.next_batch(0, MAX_BATCH_BYTES, MAX_BATCH_COUNT).unwrap();
        q.begin(b);
        q.finish(Outcome::Remove);
        assert!(!q.split_pending());
        assert!(q.is_empty());
    }

    #[test]
    fn walking_batches_without_removing_them() {
        let mut q = filled(5, 10);
        let inflight = q.next_batch(0, MAX_BATCH_BYTES, 1).unwrap();
        q.begin(inflight);
        let a = q.next_batch_after(0, 0, MAX_BATCH_BYTES, 2).unwrap();
        assert_eq!((a.first, a.count), (2, 2));
        let b = q.next_batch_after(a.last, 0, MAX_BATCH_BYTES, 2).unwrap();
        assert_eq!((b.first, b.count), (4, 2));
        assert_eq!(q.next_batch_after(b.last, 0, MAX_BATCH_BYTES, 2), None);
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn keep_leaves_everything_for_a_retry() {
        let mut q = filled(3, 10);
        let b = q.next_batch(0, MAX_BATCH_BYTES, 10).unwrap();
        q.begin(b);
        q.finish(Outcome::Keep);
        assert_eq!(q.len(), 3);
        assert_eq!(q.next_batch(0, MAX_BATCH_BYTES, 10), Some(b));
    }

    #[test]
    fn flush_marks() {
        let mut q = filled(2, 10);
        let mark = q.mark();
        q.push(msg(5, 10));
        assert!(q.holds_before(mark));
        let b = q.next_batch(0, MAX_BATCH_BYTES, 2).unwrap();
        q.begin(b);
        q.finish(Outcome::Remove);
        assert!(
            !q.holds_before(mark),
            "only the message queued after the mark is left"
        );
        assert_eq!(q.clear(), 1);
        assert!(!q.holds_before(u64::MAX));
    }

    proptest! {
        /// Draining a queue with batches and beacons: every message is in exactly one batch,
        /// in order, and no batch breaks a limit.
        #[test]
        fn batches_partition_the_queue(
            sizes in proptest::collection::vec(2usize..MAX_MESSAGE_BYTES, 1..300),
            overhead in 0usize..2_000,
            max_count in 1usize..50,
            max_bytes in (MAX_MESSAGE_BYTES + 2_000)..MAX_BATCH_BYTES,
        ) {
            let mut q = Queue::new(10_000);
            for (i, s) in sizes.iter().enumerate() {
                q.push(msg(i, *s));
            }
            let mut seen = Vec::new();
            while let Some(b) = q.next_batch(overhead, max_bytes, max_count) {
                prop_assert!(b.count <= max_count);
                prop_assert!(b.count == 1 || overhead + b.bytes <= max_bytes);
                let msgs: Vec<String> = q.messages(b).map(String::from).collect();
                prop_assert_eq!(msgs.len(), b.count);
                prop_assert_eq!(msgs.iter().map(|m| m.len()).sum::<usize>() + b.count - 1, b.bytes);
                seen.extend(msgs);
                q.begin(b);
                q.finish(Outcome::Remove);
            }
            prop_assert!(q.is_empty());
            prop_assert_eq!(q.bytes(), 0);
            let want: Vec<String> = sizes.iter().enumerate().map(|(i, s)| msg(i, *s)).collect();
            prop_assert_eq!(seen, want);
        }

        /// Any interleaving of pushes past `maxQueueSize`, batches, answers, beacons and clears
        /// keeps the queue equal to a plain VecDeque model: the same messages in the same order,
        /// the same byte count (the popped-front slots of the Vec never show).
        #[test]
        fn matches_a_plain_deque_under_any_interleaving(
            ops in proptest::collection::vec((0u8..6, 1usize..40), 1..400),
            max_items in 1usize..12,
        ) {
            let mut q = Queue::new(max_items);
            let mut model: std::collections::VecDeque<String> = Default::default();
            for (i, (op, n)) in ops.into_iter().enumerate() {
                match op {
                    0 | 1 => {
                        let m = msg(i, n);
                        q.push(m.clone());
                        if model.len() >= max_items {
                            model.pop_front();
                        }
                        model.push_back(m);
                    }
                    2 => {
                        if q.in_flight().is_none() {
                            if let Some(b) = q.next_batch(0, MAX_BATCH_BYTES, n) {
                                q.begin(b);
                            }
                        }
                    }
                    3 => {
                        let outcome = [Outcome::Remove, Outcome::Split, Outcome::Keep][n % 3];
                        if let Some(b) = q.in_flight() {
                            let gone: Vec<String> = q.messages(b).map(String::from).collect();
                            q.finish(outcome);
                            if outcome == Outcome::Remove || (outcome == Outcome::Split && b.count <= 1) {
                                model.retain(|m| !gone.contains(m));
                            }
                        }
                    }
                    4 => {
                        if let Some(b) = q.next_batch_after(0, 0, MAX_BATCH_BYTES, n) {
                            let gone: Vec<String> = q.messages(b).map(String::from).collect();
                            q.remove(b);
                            model.retain(|m| !gone.contains(m));
                        }
                    }
                    _ => {
                        if n == 1 {
                            q.clear();
                            model.clear();
                        }
                    }
                }
                let all: Vec<&str> = q.all().collect();
                prop_assert_eq!(&all, &model.iter().map(String::as_str).collect::<Vec<_>>());
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.bytes(), model.iter().map(String::len).sum::<usize>());
                prop_assert!(q.unsent() <= q.len());
            }
        }
    }
}
