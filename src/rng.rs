//! Injected randomness: jitter comes from an [`Rng`] the caller owns, so a seed makes every
//! retry schedule reproducible in tests, natively and in wasm.

/// A source of uniformly distributed 64-bit values.
pub trait Rng {
    fn next_u64(&mut self) -> u64;

    /// A value uniform in `0..bound` (`bound` > 0), by rejection sampling (no modulo bias).
    fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below needs a positive bound");
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % bound;
            }
        }
    }
}

/// SplitMix64: tiny, fast, good enough for jitter; not for secrets.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl Rng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
