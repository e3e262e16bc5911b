//! Seed-stable random numbers and the few transcendental functions the generator needs.
//!
//! The stream is ChaCha8 (value-stable by specification, unlike `StdRng`) keyed by the seed, with
//! one ChaCha stream per patient. All sampling below uses only IEEE-exact arithmetic (`+ - * /`
//! and `sqrt`), never the platform's `libm`, so the same seed gives the same numbers on every
//! machine.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SplitMix64 step: a good 64-bit mixer used to expand seeds.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A resource id: a UUID v4 string drawn from the generator's stream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Id([u8; 36]);

impl Id {
    /// The id as text (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The generator's random source: a ChaCha8 stream plus sampling helpers.
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream `stream` of the generator keyed by `seed` (patients use their index).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut key = [0u8; 32];
        let mut s = seed;
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut s).to_le_bytes());
        }
        let mut r = ChaCha8Rng::from_seed(key);
        r.set_stream(stream);
        Rng(r)
    }

    /// 64 random bits.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in `[0, n)` (`n > 0`; multiply-shift, bias below 2^-40 for our sizes).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Approximately normal (sum of six uniforms, exact arithmetic; tails end at ±4.2 sd).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let mut s = 0.0;
        for _ in 0..6 {
            s += self.f64();
        }
        mean + sd * (s - 3.0) * std::f64::consts::SQRT_2
    }

    /// Normal, clamped to `[lo, hi]`.
    pub fn normal_in(&mut self, mean: f64, sd: f64, lo: f64, hi: f64) -> f64 {
        self.normal(mean, sd).clamp(lo, hi)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// An index drawn with the given (non-negative, not all zero) weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// One element of a non-empty slice, drawn with the weights `weight` gives the elements
    /// (as [`Rng::weighted`] does).
    pub fn pick_weighted<'a, T>(&mut self, xs: &'a [T], weight: impl Fn(&T) -> f64) -> &'a T {
        let weights: Vec<f64> = xs.iter().map(weight).collect();
        &xs[self.weighted(&weights)]
    }

    /// A fresh UUID v4 from the stream.
    pub fn uuid(&mut self) -> Id {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.u64().to_le_bytes());
        b[8..].copy_from_slice(&self.u64().to_le_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 36];
        let mut j = 0;
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out[j] = b'-';
                j += 1;
            }
            out[j] = HEX[(byte >> 4) as usize];
            out[j + 1] = HEX[(byte & 15) as usize];
            j += 2;
        }
        Id(out)
    }
}

/// `e^x` from exact arithmetic (range reduction by ln 2 and a Taylor series; ~1e-15 relative).
pub fn exp(x: f64) -> f64 {
    if x > 700.0 {
        return f64::INFINITY;
    }
    if x < -700.0 {
        return 0.0;
    }
    let ln2 = std::f64::consts::LN_2;
    let k = (x / ln2).round();
    let r = x - k * ln2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=18 {
        term *= r / n as f64;
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// Natural logarithm of a positive finite `x` from exact arithmetic (atanh series).
pub fn ln(x: f64) -> f64 {
    if x <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut n = 1.0;
    while n < 60.0 {
        sum += term / n;
        term *= s2;
        n += 2.0;
    }
    2.0 * sum + e as f64 * std::f64::consts::LN_2
}

/// `x^y` for positive `x`.
pub fn pow(x: f64, y: f64) -> f64 {
    exp(y * ln(x))
}

/// Standard normal cumulative distribution (logistic approximation, max error ~0.01).
pub fn phi(z: f64) -> f64 {
    1.0 / (1.0 + exp(-1.702 * z))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_matches_std() {
        for x in [-5.0, -1.0, -0.3, 0.0, 0.5, 1.0, 2.5, 10.0] {
            assert!(
                (exp(x) - x.exp()).abs() <= 1e-12 * x.exp().max(1.0),
                "exp {x}"
            );
        }
        for x in [0.01, 0.5, 1.0, 1.5, 2.0, 10.0, 1234.5] {
            assert!((ln(x) - x.ln()).abs() < 1e-12, "ln {x}");
        }
        assert!((pow(0.9938, 50.0) - 0.9938f64.powf(50.0)).abs() < 1e-12);
    }

    #[test]
    fn streams_are_stable_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(1, 7).u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(1, 7).u64(), Rng::new(1, 8).u64());
        assert_ne!(Rng::new(1, 7).u64(), Rng::new(2, 7).u64());
        let id = Rng::new(1, 1).uuid();
        let s = id.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
    }
}
