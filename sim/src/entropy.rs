//! The simulator's randomness seam: this binary defines glibc's `getrandom(2)` wrapper
//! itself, so every draw of "OS randomness" in the process — std's `HashMap` keys (and so
//! tokio's scheduler seed), `rand::rng()` (chitchat's peer choice, ULIDs), the `getrandom`
//! crate — comes from one stream seeded by `--seed` instead of the kernel.
//!
//! The executable's definition wins over glibc's at link time for direct calls, and
//! `build.rs` exports it so that `dlsym(RTLD_DEFAULT, "getrandom")` finds it too.
//!
//! Not cryptographic, by design: nothing in the simulator needs secrecy. The stream is
//! deterministic in the order of calls; calls from other threads (the blocking pool) would
//! interleave by the OS scheduler, so [`draws`] is reported per run as a check.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// The stream's state before `--seed` is installed (draws before `main` are repeatable too).
const DEFAULT_SEED: u64 = 0x6d78_6d65_7368_5349;
/// splitmix64's increment.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The process's stream.
static STREAM: Stream = Stream::new(DEFAULT_SEED);
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// A splitmix64 stream; advancing it is one atomic step, so concurrent callers never see
/// the same value (but their order is the OS scheduler's).
struct Stream {
    state: AtomicU64,
}

impl Stream {
    const fn new(seed: u64) -> Stream {
        Stream {
            state: AtomicU64::new(seed),
        }
    }

    fn reseed(&self, seed: u64) {
        self.state.store(
            DEFAULT_SEED ^ seed.wrapping_mul(GOLDEN_GAMMA),
            Ordering::SeqCst,
        );
    }

    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Ordering::SeqCst)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// Restarts the process's stream from `seed`. Call first thing in `main`.
pub fn install_seed(seed: u64) {
    STREAM.reseed(seed);
}

/// How many times the process asked for randomness so far.
pub fn draws() -> u64 {
    DRAWS.load(Ordering::SeqCst)
}

/// `ssize_t getrandom(void *buf, size_t buflen, unsigned int flags)`, as glibc declares
/// it: fills the whole buffer and returns its length; flags (`GRND_NONBLOCK`,
/// `GRND_RANDOM`, `GRND_INSECURE`) change nothing here.
///
/// # Safety
/// `buf` must be valid for writes of `buflen` bytes (the contract of getrandom(2)).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getrandom(buf: *mut u8, buflen: usize, _flags: u32) -> isize {
    if buflen == 0 {
        return 0;
    }
    if buf.is_null() {
        return -1;
    }
    // SAFETY: the caller promises `buf` is valid for `buflen` bytes (getrandom(2)).
    let out = unsafe { std::slice::from_raw_parts_mut(buf, buflen) };
    DRAWS.fetch_add(1, Ordering::SeqCst);
    STREAM.fill(out);
    buflen.min(isize::MAX as usize) as isize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(seed: u64) -> [u8; 20] {
        let s = Stream::new(0);
        s.reseed(seed);
        let mut b = [0u8; 20];
        s.fill(&mut b);
        b
    }

    #[test]
    fn the_stream_repeats_for_a_seed_and_differs_between_seeds() {
        assert_eq!(take(7), take(7));
        assert_ne!(take(7), take(8));
        assert_ne!(take(7)[..8], take(7)[8..16], "successive words differ");
    }
}
