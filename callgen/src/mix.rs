//! Counter-based pseudo-random numbers.
//!
//! Every random-looking value callgen makes (jitter, tags, branches, default SSRCs) is a pure
//! function of a few integers run through SplitMix64's finaliser. Nothing keeps generator state,
//! so an event can be produced lazily, in any order, and always comes out the same; and the
//! output does not change when a dependency bumps its random-number algorithm.

/// SplitMix64 finaliser: a bijective, well-mixing map from `u64` to `u64`.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mixes a sequence of integers into one well-distributed `u64`.
pub(crate) fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6a09_e667_f3bc_c908, |acc, &p| splitmix64(acc ^ p))
}

/// A uniform `f64` in `[0, 1)` from a hash value (53 random bits).
pub(crate) fn unit_f64(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_order_sensitive() {
        assert_eq!(hash(&[1, 2]), hash(&[1, 2]));
        assert_ne!(hash(&[1, 2]), hash(&[2, 1]));
        assert_ne!(hash(&[0]), hash(&[0, 0]));
    }

    #[test]
    fn unit_f64_stays_in_range() {
        for i in 0..10_000 {
            let u = unit_f64(splitmix64(i));
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(unit_f64(0), 0.0);
        assert!(unit_f64(u64::MAX) < 1.0);
    }
}
