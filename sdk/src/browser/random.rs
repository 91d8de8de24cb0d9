//! Random bytes for ids: `crypto.getRandomValues` into a 4 KB pool, refilled when used up.
//!
//! One JS call per 256 message ids instead of one per id. Should `crypto` be missing or throw
//! (a hostile page can replace it), `Math.random` fills the pool instead: ids stay unique enough
//! for deduplication, which is all they are used for.

use alloc::vec;
use alloc::vec::Vec;
use web_sys::Crypto;

const POOL: usize = 4096;

pub struct Pool {
    buf: Vec<u8>,
    pos: usize,
    crypto: Option<Crypto>,
}

impl Pool {
    pub fn new(crypto: Option<Crypto>) -> Pool {
        Pool {
            buf: vec![0; POOL],
            pos: POOL,
            crypto,
        }
    }

    fn refill(&mut self) {
        let ok = self
            .crypto
            .as_ref()
            .is_some_and(|c| c.get_random_values_with_u8_array(&mut self.buf).is_ok());
        if !ok {
            for chunk in self.buf.chunks_mut(4) {
                let r = (js_sys::Math::random() * 4_294_967_296.0) as u32;
                for (d, s) in chunk.iter_mut().zip(r.to_le_bytes()) {
                    *d = s;
                }
            }
        }
        self.pos = 0;
    }

    /// `N` fresh random bytes (N ≤ 4096).
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        if self.pos + N > self.buf.len() {
            self.refill();
        }
        let mut out = [0u8; N];
        for (d, s) in out.iter_mut().zip(self.buf.iter().skip(self.pos)) {
            *d = *s;
        }
        self.pos += N;
        out
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes::<4>())
    }
}
