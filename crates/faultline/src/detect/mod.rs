//! Failure detectors: what one monitor believes about one monitored peer, given only the
//! times at which the peer's heartbeats arrived.
//!
//! A detector here is *passive* (it never sends anything) and *unreliable* in the sense of
//! Chandra and Toueg: it may suspect a peer that is up (a mistake) and it needs time to
//! suspect a peer that crashed. Three detectors are provided, each following a production
//! system as closely as virtual time allows:
//!
//! - [`FixedTimeout`]: suspect once a fixed time has passed since the last heartbeat
//!   (Akka's `DeadlineFailureDetector`);
//! - [`PhiAccrual`]: the φ accrual detector of Hayashibara et al. (2004) with a normal model
//!   of inter-arrival times, as Akka implements it (`akka.remote.PhiAccrualFailureDetector`);
//! - [`CassandraPhi`]: Cassandra's variant with an exponential model (`FailureDetector` and
//!   `ArrivalWindow` in `org.apache.cassandra.gms`).
//!
//! Every detector's suspicion level grows with the time elapsed since the last heartbeat
//! and with nothing else, so its output is piecewise: trusted from each heartbeat until
//! [`Detector::suspect_at`], suspected from then until the next heartbeat. [`qos`] uses this
//! to compute the quality-of-service metrics of Chen, Toueg and Aguilera (2002) exactly, in
//! one pass over the arrivals, without sampling.
//!
//! The code is pure: times are virtual ([`Time`], [`Span`]), nothing is random, and nothing
//! is hashed. The formulas, defaults and the sources they were checked against are in
//! `docs/detectors.md`.

mod cassandra;
pub mod eval;
mod fixed;
mod phi;
pub mod qos;
mod window;

pub use cassandra::{CassandraPhi, CassandraPhiConfig, PHI_FACTOR};
pub use fixed::{FixedTimeout, FixedTimeoutConfig};
pub use phi::{PhiAccrual, PhiAccrualConfig};

use crate::time::{Span, Time};

/// A failure detector that one monitor keeps for one monitored peer.
///
/// Before the first heartbeat a detector is *not monitoring*: [`suspect_at`] is `None` and
/// the peer is trusted, which is Akka's convention ("treat unmanaged connections, e.g. with
/// zero heartbeats, as healthy connections") and Cassandra's (it never convicts a peer it
/// has no arrival window for). A peer that crashes before its first heartbeat arrives is
/// therefore never suspected.
///
/// [`suspect_at`]: Detector::suspect_at
pub trait Detector {
    /// A heartbeat arrived at `at`. Arrival times must not decrease.
    fn heartbeat(&mut self, at: Time);

    /// The instant from which the detector suspects the peer if no further heartbeat
    /// arrives: it trusts the peer on `[last heartbeat, suspect_at)` and suspects it from
    /// `suspect_at` on. Never earlier than the last heartbeat. `None` before the first
    /// heartbeat. `Some(Time::MAX)` means never.
    fn suspect_at(&self) -> Option<Time>;

    /// The suspicion level at `now` (not earlier than the last heartbeat), for reporting:
    /// φ for the accrual detectors, elapsed time over the timeout for [`FixedTimeout`].
    /// Each detector documents how the level relates to its threshold; `suspects` and
    /// `suspect_at` agree with that relation to the nanosecond.
    fn level(&self, now: Time) -> f64;

    /// Whether the detector suspects the peer at `now` (not earlier than the last heartbeat).
    fn suspects(&self, now: Time) -> bool {
        self.suspect_at().is_some_and(|at| now >= at)
    }
}

/// A detector configuration that cannot work: which detector, which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detector} detector: {field} {problem}")]
pub struct ConfigError {
    pub detector: &'static str,
    pub field: &'static str,
    pub problem: &'static str,
}

impl ConfigError {
    fn new(detector: &'static str, field: &'static str, problem: &'static str) -> Self {
        ConfigError { detector, field, problem }
    }
}

/// The largest sliding window a detector accepts. It bounds memory per monitored pair
/// (8 bytes a sample) and keeps the window's running sums far from overflow.
pub const SAMPLE_SIZE_MAX: usize = 1 << 20;

/// The instant `elapsed_nanos` after `last`, where `elapsed_nanos` is the first elapsed time
/// at which a detector suspects, or never (`Time::MAX`).
fn suspect_instant(last: Time, elapsed_nanos: Option<u64>) -> Time {
    elapsed_nanos.map_or(Time::MAX, |nanos| last + Span::from_nanos(nanos))
}

/// The smallest `d` with `pred(d)`, for a predicate that is false up to some point and true
/// from there on, searching outward from `guess` (galloping, then bisecting). Costs a few
/// evaluations when the guess is within a few nanoseconds, at most about 130 otherwise.
/// `None` if `pred(u64::MAX)` is false.
fn first_true(guess: u64, pred: impl Fn(u64) -> bool) -> Option<u64> {
    // Find `lo < hi` with !pred(lo) and pred(hi), then bisect between them.
    let (mut lo, mut hi);
    let mut step: u64 = 1;
    if pred(guess) {
        hi = guess;
        loop {
            if hi == 0 {
                return Some(0);
            }
            let below = hi.saturating_sub(step);
            if !pred(below) {
                lo = below;
                break;
            }
            hi = below;
            step = step.saturating_mul(2);
        }
    } else {
        lo = guess;
        loop {
            if lo == u64::MAX {
                return None;
            }
            let above = lo.saturating_add(step);
            if pred(above) {
                hi = above;
                break;
            }
            lo = above;
            step = step.saturating_mul(2);
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// A real number of nanoseconds as a search guess: rounded up, clamped to `u64`, NaN as 0.
fn guess_nanos(nanos: f64) -> u64 {
    // `as` saturates at the bounds of u64 and maps NaN to 0.
    nanos.ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_true_finds_the_boundary_from_any_guess() {
        for boundary in [0u64, 1, 2, 7, 1_000, 4_522_612_345, u64::MAX - 1, u64::MAX] {
            for guess in [0u64, 1, 5, 999, 1_000, 1_001, 4_522_612_344, u64::MAX / 2, u64::MAX] {
                assert_eq!(first_true(guess, |d| d >= boundary), Some(boundary), "boundary {boundary} guess {guess}");
            }
        }
        assert_eq!(first_true(12, |_| false), None);
        assert_eq!(first_true(12, |_| true), Some(0));
    }

    #[test]
    fn first_true_is_cheap_near_the_guess() {
        let calls = std::cell::Cell::new(0);
        let found = first_true(1_000_000, |d| {
            calls.set(calls.get() + 1);
            d >= 1_000_002
        });
        assert_eq!(found, Some(1_000_002));
        assert!(calls.get() <= 6, "{} evaluations", calls.get());
    }

    #[test]
    fn detectors_are_object_safe() {
        let mut detectors: Vec<Box<dyn Detector>> = vec![
            Box::new(FixedTimeout::new(FixedTimeoutConfig::default())),
            Box::new(PhiAccrual::new(PhiAccrualConfig::default())),
            Box::new(CassandraPhi::new(CassandraPhiConfig::default())),
        ];
        for d in &mut detectors {
            assert_eq!(d.suspect_at(), None);
            d.heartbeat(Time::from_nanos(5));
            assert!(d.suspect_at().unwrap() > Time::from_nanos(5));
            assert!(!d.suspects(Time::from_nanos(5)));
        }
    }

    #[test]
    fn config_errors_name_detector_and_field() {
        let err = PhiAccrual::try_new(PhiAccrualConfig { threshold: -1.0, ..PhiAccrualConfig::default() }).unwrap_err();
        assert_eq!(err.to_string(), "phi-accrual detector: threshold must be finite and greater than 0");
    }
}
