//! Key choice: uniform or Zipf over `0..n`.
//!
//! The Zipf sampler is rejection-inversion (Hörmann & Derflinger 1996, in the
//! simplified form rand_distr uses): exact for any exponent `s >= 0`
//! (including `s = 1`), O(1) set-up and an expected O(1) per sample, so it
//! works for 10 M keys without a table. Ranks are spread over the key space by
//! a multiplicative bijection, so the hot keys are not neighbours in key
//! order (as YCSB's "scrambled zipfian").

use crate::rng::Rng;

/// Zipf distribution over ranks `1..=n`: P(k) proportional to `k^-s`.
#[derive(Clone, Debug)]
pub struct Zipf {
    s: f64,
    /// Integral of the envelope over [0, n].
    t: f64,
    /// 1 / (1 - s), unused when s == 1.
    q: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Result<Zipf, String> {
        if n < 1 {
            return Err("zipf: the key count must be at least 1".into());
        }
        if !(s >= 0.0 && s.is_finite()) {
            return Err(format!("zipf: exponent must be >= 0 (got {s})"));
        }
        let nf = n as f64;
        let (q, t) = if s != 1.0 {
            let q = 1.0 / (1.0 - s);
            (q, (nf.powf(1.0 - s) - s) * q)
        } else {
            (0.0, 1.0 + nf.ln())
        };
        Ok(Zipf { s, t, q })
    }

    /// Inverse of the envelope's cumulative distribution (envelope: 1 on
    /// [0, 1], x^-s beyond).
    fn inv_cdf(&self, p: f64) -> f64 {
        let pt = p * self.t;
        if pt <= 1.0 {
            pt
        } else if self.s != 1.0 {
            (pt * (1.0 - self.s) + self.s).powf(self.q)
        } else {
            (pt - 1.0).exp()
        }
    }

    /// A rank in `1..=n` (1 is the most frequent).
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let inv_b = self.inv_cdf(rng.next_f64());
            let x = (inv_b + 1.0).floor();
            let mut ratio = x.powf(-self.s);
            if x > 1.0 {
                ratio *= inv_b.powf(self.s);
            }
            if rng.next_f64() < ratio {
                return x as u64;
            }
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// How keys are picked from `0..n`.
#[derive(Clone, Debug)]
pub enum KeyDist {
    Uniform { n: u64 },
    Zipf { n: u64, zipf: Zipf, mult: u64 },
}

impl KeyDist {
    pub fn uniform(n: u64) -> KeyDist {
        KeyDist::Uniform { n: n.max(1) }
    }

    pub fn zipf(n: u64, s: f64) -> Result<KeyDist, String> {
        let zipf = Zipf::new(n, s)?;
        // A multiplier coprime with n makes rank -> (rank * mult) mod n a
        // bijection that scatters the hot ranks.
        let mut mult = 0x9E37_79B9_7F4A_7C15 % n;
        while n > 1 && (mult == 0 || gcd(mult, n) != 1) {
            mult = (mult + 1) % n;
        }
        Ok(KeyDist::Zipf { n, zipf, mult })
    }

    pub fn n(&self) -> u64 {
        match self {
            KeyDist::Uniform { n } | KeyDist::Zipf { n, .. } => *n,
        }
    }

    /// A key index in `0..n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyDist::Uniform { n } => rng.below(*n),
            KeyDist::Zipf { n, zipf, mult } => scramble(zipf.sample(rng) - 1, *mult, *n),
        }
    }
}

fn scramble(rank0: u64, mult: u64, n: u64) -> u64 {
    ((rank0 as u128 * mult as u128) % n as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(n: u64, s: f64) -> Vec<f64> {
        let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let h: f64 = w.iter().sum();
        w.into_iter().map(|x| x / h).collect()
    }

    /// Empirical frequencies of every rank are within 4 standard errors of
    /// k^-s / H(n, s).
    fn check(n: u64, s: f64) {
        let z = Zipf::new(n, s).unwrap();
        let mut rng = Rng::new(42);
        let draws = 400_000u64;
        let mut counts = vec![0u64; n as usize];
        for _ in 0..draws {
            let k = z.sample(&mut rng);
            assert!((1..=n).contains(&k), "rank {k} out of 1..={n}");
            counts[(k - 1) as usize] += 1;
        }
        for (i, p) in expected(n, s).into_iter().enumerate() {
            let got = counts[i] as f64 / draws as f64;
            let se = (p * (1.0 - p) / draws as f64).sqrt();
            assert!(
                (got - p).abs() <= 4.0 * se + 1e-9,
                "n={n} s={s} rank {}: got {got:.5}, expected {p:.5}",
                i + 1
            );
        }
    }

    #[test]
    fn zipf_matches_the_pmf() {
        check(10, 0.99);
        check(10, 1.0);
        check(50, 1.2);
        check(20, 0.5);
        check(5, 0.0); // s = 0 is uniform
    }

    #[test]
    fn zipf_single_key_and_large_n() {
        let mut rng = Rng::new(3);
        let one = Zipf::new(1, 0.99).unwrap();
        for _ in 0..100 {
            assert_eq!(one.sample(&mut rng), 1);
        }
        let n = 10_000_000;
        let big = Zipf::new(n, 0.99).unwrap();
        let mut top = 0;
        for _ in 0..100_000 {
            let k = big.sample(&mut rng);
            assert!((1..=n).contains(&k));
            top += u64::from(k == 1);
        }
        // P(1) = 1 / H(1e7, 0.99) ~ 0.058
        assert!((5_000..6_700).contains(&top), "rank 1 drawn {top} times");
    }

    #[test]
    fn zipf_rejects_bad_parameters() {
        assert!(Zipf::new(0, 1.0).is_err());
        assert!(Zipf::new(10, -0.5).is_err());
        assert!(Zipf::new(10, f64::NAN).is_err());
    }

    #[test]
    fn scramble_is_a_bijection() {
        for n in [1u64, 2, 7, 10, 64, 1000, 1024, 4096] {
            let KeyDist::Zipf { mult, .. } = KeyDist::zipf(n, 0.99).unwrap() else {
                unreachable!()
            };
            let mut seen = vec![false; n as usize];
            for r in 0..n {
                let i = scramble(r, mult, n);
                assert!(!seen[i as usize], "n={n}: {i} hit twice");
                seen[i as usize] = true;
            }
        }
    }

    #[test]
    fn key_dists_stay_in_range() {
        let mut rng = Rng::new(9);
        for d in [KeyDist::uniform(1000), KeyDist::zipf(1000, 0.99).unwrap()] {
            for _ in 0..10_000 {
                assert!(d.sample(&mut rng) < 1000);
            }
        }
    }
}
