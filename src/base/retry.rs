//! Retrying transient failures, on the backon crate: the one backoff policy behind the retries of the
//! primitives (`rewind.http`, the Azure and S3 stores). A [`Policy`] says how many retries follow a
//! failed first attempt and how long to wait before each; the caller says which failures are transient
//! (backon's `when`), logs each retry (`notify`) and may stretch a wait (`adjust`, for Retry-After).
//!
//! ```ignore
//! let policy = Policy::doubling(Duration::from_millis(200), 4);
//! let out = (|| attempt()).retry(policy).when(is_transient).await;
//! ```

use std::time::Duration;

use backon::{
    BackoffBuilder, ConstantBackoff, ConstantBuilder, ExponentialBackoff, ExponentialBuilder,
};

pub use backon::{Retryable, RetryableWithContext};

/// How many retries follow a failed first attempt, and the wait before each.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    growth: Growth,
    retries: usize,
    /// Up to this fraction of each wait is added at random.
    jitter: f64,
    /// No wait, jitter included, is longer.
    max_delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
enum Growth {
    /// `first`, 2·`first`, 4·`first`, ...
    Doubling(Duration),
    /// `step`, 2·`step`, 3·`step`, ...
    Linear(Duration),
}

impl Policy {
    /// `retries` waits of `first`, 2·`first`, 4·`first`, ...
    pub const fn doubling(first: Duration, retries: usize) -> Policy {
        Policy {
            growth: Growth::Doubling(first),
            retries,
            jitter: 0.0,
            max_delay: None,
        }
    }

    /// `retries` waits of `step`, 2·`step`, 3·`step`, ...
    pub const fn linear(step: Duration, retries: usize) -> Policy {
        Policy {
            growth: Growth::Linear(step),
            retries,
            jitter: 0.0,
            max_delay: None,
        }
    }

    /// Adds up to `fraction` of each wait at random, so that clients that failed together do not
    /// retry together.
    pub const fn with_jitter(mut self, fraction: f64) -> Policy {
        self.jitter = fraction;
        self
    }

    /// Caps every wait, jitter included.
    pub const fn with_max_delay(mut self, max: Duration) -> Policy {
        self.max_delay = Some(max);
        self
    }
}

impl BackoffBuilder for Policy {
    type Backoff = Delays;

    fn build(self) -> Delays {
        let waits = match self.growth {
            Growth::Doubling(first) => {
                let mut b = ExponentialBuilder::new()
                    .with_min_delay(first)
                    .with_factor(2.0)
                    .with_max_times(self.retries)
                    .without_max_delay();
                if let Some(max) = self.max_delay {
                    b = b.with_max_delay(max);
                }
                Waits::Doubling(b.build())
            }
            Growth::Linear(step) => Waits::Linear {
                steps: ConstantBuilder::new()
                    .with_delay(step)
                    .with_max_times(self.retries)
                    .build(),
                retry: 0,
            },
        };
        Delays {
            waits,
            jitter: self.jitter,
            max_delay: self.max_delay,
        }
    }
}

/// The waits of one retried operation (backon's `Backoff`: an iterator that ends when retries do).
pub struct Delays {
    waits: Waits,
    jitter: f64,
    max_delay: Option<Duration>,
}

enum Waits {
    Doubling(ExponentialBackoff),
    /// backon's constant backoff counts the retries; the wait grows with the retry's number.
    Linear {
        steps: ConstantBackoff,
        retry: u32,
    },
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let mut wait = match &mut self.waits {
            Waits::Doubling(b) => b.next()?,
            Waits::Linear { steps, retry } => {
                let step = steps.next()?;
                *retry += 1;
                step * *retry
            }
        };
        if self.jitter > 0.0 {
            wait += wait.mul_f64(rand::random::<f64>() * self.jitter);
        }
        if let Some(max) = self.max_delay {
            wait = wait.min(max);
        }
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(p: Policy) -> Vec<Duration> {
        p.build().collect()
    }

    /// backon multiplies in f32 seconds: equal to within a microsecond.
    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(1)
    }

    #[test]
    fn doubling_waits_double_and_stop_after_the_retries() {
        let w = waits(Policy::doubling(Duration::from_millis(200), 4));
        let want = [200, 400, 800, 1600].map(Duration::from_millis);
        assert_eq!(w.len(), 4);
        assert!(w.iter().zip(want).all(|(a, b)| close(*a, b)), "{w:?}");
        assert!(waits(Policy::doubling(Duration::from_secs(1), 0)).is_empty());
    }

    #[test]
    fn linear_waits_grow_by_one_step() {
        let w = waits(Policy::linear(Duration::from_millis(100), 5));
        assert_eq!(w, [100, 200, 300, 400, 500].map(Duration::from_millis));
    }

    #[test]
    fn jitter_adds_up_to_its_fraction_and_the_cap_holds() {
        for _ in 0..50 {
            let p = Policy::doubling(Duration::from_secs(4), 5)
                .with_jitter(0.25)
                .with_max_delay(Duration::from_secs(30));
            let w = waits(p);
            assert_eq!(w.len(), 5);
            for (i, base) in [4.0, 8.0, 16.0, 32.0, 64.0].into_iter().enumerate() {
                let s = w[i].as_secs_f64();
                let hi = f64::min(base * 1.25, 30.0);
                assert!(s >= f64::min(base, 30.0) - 1e-6 && s <= hi + 1e-6, "{w:?}");
            }
        }
    }
}
