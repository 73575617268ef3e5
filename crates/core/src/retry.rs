//! The retry policy: exponential backoff with full jitter, a bounded number of attempts, a cap on
//! each wait, and a deadline no retry may be scheduled past.
//!
//! It decides; it never sleeps. The pipeline asks it for the next delay and sleeps on the injected
//! clock, so tests run it with a fake clock and a seeded RNG and get the same schedule every time.

use std::time::Duration;

use crate::tick::Timestamp;

/// Most attempts any policy may allow (a guard against configuration mistakes).
pub const RETRY_ATTEMPTS_LIMIT: u32 = 20;

/// How often, and how patiently, to retry a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts_max: u32,
    backoff_ms_base: u64,
    backoff_ms_max: u64,
}

/// A retry policy that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    /// Zero attempts, or more than [`RETRY_ATTEMPTS_LIMIT`].
    #[error("attempts must be between 1 and {RETRY_ATTEMPTS_LIMIT}, got {0}")]
    Attempts(u32),
    /// A zero base or a cap below the base.
    #[error(
        "backoff base must be at least 1 ms and the cap at least the base, got base {base_ms} ms and cap {max_ms} ms"
    )]
    Backoff {
        /// The base delay.
        base_ms: u64,
        /// The cap.
        max_ms: u64,
    },
}

impl RetryPolicy {
    /// A policy making at most `attempts_max` attempts (the first call included), waiting a random
    /// time in `[0, min(backoff_ms_max, backoff_ms_base * 2^n)]` before retry `n + 1`.
    pub fn new(
        attempts_max: u32,
        backoff_ms_base: u64,
        backoff_ms_max: u64,
    ) -> Result<Self, RetryPolicyError> {
        if attempts_max == 0 || attempts_max > RETRY_ATTEMPTS_LIMIT {
            return Err(RetryPolicyError::Attempts(attempts_max));
        }
        if backoff_ms_base == 0 || backoff_ms_max < backoff_ms_base {
            return Err(RetryPolicyError::Backoff {
                base_ms: backoff_ms_base,
                max_ms: backoff_ms_max,
            });
        }
        Ok(RetryPolicy {
            attempts_max,
            backoff_ms_base,
            backoff_ms_max,
        })
    }

    /// A policy that never retries.
    pub fn no_retry() -> RetryPolicy {
        RetryPolicy {
            attempts_max: 1,
            backoff_ms_base: 1,
            backoff_ms_max: 1,
        }
    }

    /// Most attempts, the first included.
    pub fn attempts_max(&self) -> u32 {
        self.attempts_max
    }

    /// The upper bound of the wait before retry `retry` (1-based): `min(cap, base * 2^(retry-1))`.
    pub fn backoff_ms_ceiling(&self, retry: u32) -> u64 {
        let exponent = retry.saturating_sub(1).min(63);
        self.backoff_ms_base
            .saturating_mul(1u64 << exponent)
            .min(self.backoff_ms_max)
    }

    /// Decides whether to retry after `attempts_done` attempts have failed transiently.
    ///
    /// Returns the wait before the next attempt, or `None` when attempts are exhausted or the wait
    /// would end at or past `deadline` (retrying then could not finish in time).
    pub fn next_delay(
        &self,
        attempts_done: u32,
        now: Timestamp,
        deadline: Option<Timestamp>,
        rng: &mut Rng,
    ) -> Option<Duration> {
        if attempts_done >= self.attempts_max {
            return None;
        }
        let ceiling = self.backoff_ms_ceiling(attempts_done);
        // Full jitter: uniform over [0, ceiling]; spreads retrying clients apart.
        let delay_ms = rng.below(ceiling + 1);
        if let Some(deadline) = deadline
            && now.epoch_ms().saturating_add(delay_ms as i64) >= deadline.epoch_ms()
        {
            return None;
        }
        Some(Duration::from_millis(delay_ms))
    }
}

/// A small, fast, seedable random number generator (SplitMix64). Not for cryptography: only
/// jitter and test data, where reproducibility matters more than unpredictability.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`; equal seeds give equal sequences.
    pub fn seeded(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `[0, bound)`; `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below needs a positive bound");
        // Lemire's multiply-shift; the tiny bias is irrelevant for jitter and test data.
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit(); // in (0, 1], so ln is finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_epoch_ms(ms).expect("valid")
    }

    #[test]
    fn construction_rejects_unusable_policies() {
        let cases = [
            ((0, 10, 100), false),
            ((RETRY_ATTEMPTS_LIMIT + 1, 10, 100), false),
            ((3, 0, 100), false),
            ((3, 100, 10), false),
            ((1, 1, 1), true),
            ((3, 25, 1_000), true),
        ];
        for ((attempts, base, max), ok) in cases {
            assert_eq!(
                RetryPolicy::new(attempts, base, max).is_ok(),
                ok,
                "{attempts} {base} {max}"
            );
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let policy = RetryPolicy::new(10, 25, 1_000).expect("valid");
        let ceilings: Vec<u64> = (1..=8).map(|n| policy.backoff_ms_ceiling(n)).collect();
        assert_eq!(ceilings, [25, 50, 100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(
            policy.backoff_ms_ceiling(500),
            1_000,
            "no overflow for huge retry counts"
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = RetryPolicy::new(3, 10, 100).expect("valid");
        let mut rng = Rng::seeded(1);
        let delays: Vec<Option<Duration>> = (1..=4)
            .map(|n| policy.next_delay(n, at(0), None, &mut rng))
            .collect();
        assert!(delays[0].is_some() && delays[1].is_some());
        assert_eq!(delays[2], None, "three attempts made: no fourth");
        assert_eq!(delays[3], None);
        assert_eq!(
            RetryPolicy::no_retry().next_delay(1, at(0), None, &mut rng),
            None
        );
    }

    #[test]
    fn delays_stay_within_full_jitter_bounds() {
        let policy = RetryPolicy::new(RETRY_ATTEMPTS_LIMIT, 10, 500).expect("valid");
        let mut rng = Rng::seeded(42);
        for retry in 1..RETRY_ATTEMPTS_LIMIT {
            for _ in 0..200 {
                let delay = policy
                    .next_delay(retry, at(0), None, &mut rng)
                    .expect("attempts left");
                assert!(delay.as_millis() as u64 <= policy.backoff_ms_ceiling(retry));
            }
        }
    }

    #[test]
    fn jitter_uses_the_whole_range() {
        let policy = RetryPolicy::new(5, 1_000, 1_000).expect("valid");
        let mut rng = Rng::seeded(7);
        let samples: Vec<u64> = (0..1_000)
            .map(|_| {
                policy
                    .next_delay(1, at(0), None, &mut rng)
                    .expect("retry")
                    .as_millis() as u64
            })
            .collect();
        assert!(samples.iter().any(|&d| d < 100), "low end reached");
        assert!(samples.iter().any(|&d| d > 900), "high end reached");
    }

    #[test]
    fn same_seed_same_schedule() {
        let policy = RetryPolicy::new(6, 20, 2_000).expect("valid");
        let schedule = |seed| {
            let mut rng = Rng::seeded(seed);
            (1..6)
                .map(|n| policy.next_delay(n, at(0), None, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(schedule(99), schedule(99));
        assert_ne!(schedule(99), schedule(100));
    }

    #[test]
    fn never_schedules_past_the_deadline() {
        // Table: (now, deadline, ceiling of the first retry) -> may it retry at all?
        let policy = RetryPolicy::new(5, 100, 100).expect("valid");
        let cases = [
            (0, None, true),
            (0, Some(10_000), true),
            (9_950, Some(10_000), false), // some draws fit, but any returned delay must fit
            (10_000, Some(10_000), false),
            (20_000, Some(10_000), false),
        ];
        for (now, deadline, always) in cases {
            let mut rng = Rng::seeded(3);
            for _ in 0..100 {
                let delay = policy.next_delay(1, at(now), deadline.map(at), &mut rng);
                if let (Some(delay), Some(deadline)) = (delay, deadline) {
                    assert!(
                        now + (delay.as_millis() as i64) < deadline,
                        "now {now} delay {delay:?}"
                    );
                }
                if always {
                    assert!(delay.is_some(), "now {now} deadline {deadline:?}");
                }
                if now >= deadline.unwrap_or(i64::MAX) {
                    assert_eq!(delay, None);
                }
            }
        }
    }

    #[test]
    fn rng_helpers_stay_in_range() {
        let mut rng = Rng::seeded(11);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(rng.normal().is_finite());
        }
    }
}
