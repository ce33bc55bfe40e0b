//! Cassandra's φ failure detector (`src/java/org/apache/cassandra/gms/FailureDetector.java`,
//! classes `FailureDetector`, `ArrivalWindow` and `ArrayBackedBoundedStats`; the
//! exponential model dates from CASSANDRA-2597).
//!
//! Cassandra models inter-arrival times as exponential with the mean of a sliding window of
//! recent intervals, so `P(next heartbeat later than Δ) = exp(-Δ / mean)` and
//! `φ = -log10(exp(-Δ / mean)) = (Δ / mean) / ln 10`. Cassandra's `ArrivalWindow.phi`
//! returns only `Δ / mean`; `FailureDetector.interpret` multiplies it by
//! `PHI_FACTOR = 1 / ln 10` and convicts when `PHI_FACTOR * phi > phi_convict_threshold`
//! (strictly greater). Intervals longer than `fd_max_interval_ms` are not recorded (the
//! arrival still resets the clock), and the first arrival records the initial value
//! `fd_initial_value_ms` as an interval.
//!
//! Not modelled: Cassandra evaluates `interpret` only from its gossip task (once a second),
//! so a real node convicts up to a gossip round after the instant computed here; and it
//! convicts nobody for 5 s after its own clock jumps by more than `max_local_pause_in_ms`
//! (a pause of the monitor itself).

use super::window::IntervalWindow;
use super::{ConfigError, Detector, SAMPLE_SIZE_MAX, first_true, guess_nanos, suspect_instant};
use crate::time::{Span, Time};

/// Cassandra's `PHI_FACTOR`, `1 / ln 10 ≈ 0.434`: turns `Δ / mean` into φ (a base-10
/// logarithm of a probability), so that thresholds are on the same scale as Akka's.
pub const PHI_FACTOR: f64 = 1.0 / std::f64::consts::LN_10;

/// Configuration of a [`CassandraPhi`] detector, with Cassandra's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CassandraPhiConfig {
    /// Convict when `PHI_FACTOR · Δ / mean` is greater than this. Cassandra's
    /// `phi_convict_threshold` (cassandra.yaml), default 8. Must be finite and positive.
    pub threshold: f64,
    /// The number of most recent intervals averaged. Cassandra's `SAMPLE_SIZE`, 1000. At
    /// least 1, at most [`SAMPLE_SIZE_MAX`].
    pub sample_size: usize,
    /// The interval recorded at the first arrival, deliberately large: "it's better to err
    /// high (false negatives, which will be corrected by waiting a bit longer) than low
    /// (false positives, which cause flapping)". Cassandra's `fd_initial_value_ms`, default
    /// twice the gossip interval, 2 s. Must be positive.
    pub initial_interval: Span,
    /// Intervals longer than this are not recorded, so that a long partition does not
    /// teach the detector to wait longer. Cassandra's `fd_max_interval_ms`, default equal to
    /// the initial value, 2 s.
    pub max_interval: Span,
}

impl Default for CassandraPhiConfig {
    fn default() -> Self {
        CassandraPhiConfig {
            threshold: 8.0,
            sample_size: 1000,
            initial_interval: Span::from_secs(2),
            max_interval: Span::from_secs(2),
        }
    }
}

impl CassandraPhiConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, problem| Err(ConfigError::new("cassandra-phi", field, problem));
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return fail("threshold", "must be finite and greater than 0");
        }
        if !(1..=SAMPLE_SIZE_MAX).contains(&self.sample_size) {
            return fail("sample_size", "must be between 1 and 2^20");
        }
        if self.initial_interval == Span::ZERO {
            return fail("initial_interval", "must be greater than 0");
        }
        Ok(())
    }
}

/// Cassandra's exponential φ detector. See the module documentation.
///
/// [`level`](Detector::level) is `PHI_FACTOR · Δ / mean`, the value Cassandra compares with
/// its threshold and reports through JMX (`getPhiValues`); the detector suspects exactly
/// when the level is *greater than* the threshold. [`CassandraPhi::phi`] is the unscaled
/// `Δ / mean` of `ArrivalWindow.phi`.
#[derive(Clone, Debug)]
pub struct CassandraPhi {
    config: CassandraPhiConfig,
    intervals: IntervalWindow,
    last: Option<Time>,
    mean_nanos: f64,
    suspect_at: Option<Time>,
}

impl CassandraPhi {
    /// # Panics
    /// If the configuration is invalid; see [`CassandraPhi::try_new`].
    pub fn new(config: CassandraPhiConfig) -> Self {
        Self::try_new(config).unwrap_or_else(|err| panic!("{err}"))
    }

    pub fn try_new(config: CassandraPhiConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(CassandraPhi {
            config,
            intervals: IntervalWindow::new(config.sample_size),
            last: None,
            mean_nanos: f64::NAN,
            suspect_at: None,
        })
    }

    pub fn config(&self) -> &CassandraPhiConfig {
        &self.config
    }

    /// Cassandra's unscaled `ArrivalWindow.phi`: time since the last arrival over the mean
    /// recorded interval. 0 before the first heartbeat.
    pub fn phi(&self, now: Time) -> f64 {
        self.last.map_or(0.0, |last| self.phi_after((now - last).as_nanos()))
    }

    /// The mean recorded interval in milliseconds. `None` before the first heartbeat.
    pub fn mean_ms(&self) -> Option<f64> {
        self.last.map(|_| self.mean_nanos / 1e6)
    }

    /// The number of intervals in the window (1 after the first heartbeat: the initial value).
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    fn phi_after(&self, elapsed_nanos: u64) -> f64 {
        // Zero elapsed time is φ = 0 even when every recorded interval was 0 (Cassandra
        // asserts a positive mean and would divide 0 by 0 here).
        if elapsed_nanos == 0 { 0.0 } else { elapsed_nanos as f64 / self.mean_nanos }
    }

    /// Cassandra's conviction test, in Cassandra's order of operations.
    fn convicts_after(&self, elapsed_nanos: u64) -> bool {
        PHI_FACTOR * self.phi_after(elapsed_nanos) > self.config.threshold
    }
}

impl Detector for CassandraPhi {
    fn heartbeat(&mut self, at: Time) {
        match self.last {
            None => self.intervals.push(self.config.initial_interval.as_nanos()),
            Some(last) => {
                assert!(at >= last, "heartbeat at {at:?} before the previous one at {last:?}");
                let interval = at - last;
                if interval <= self.config.max_interval {
                    self.intervals.push(interval.as_nanos());
                }
            }
        }
        self.last = Some(at);
        self.mean_nanos = self.intervals.mean();
        let guess = guess_nanos(self.config.threshold / PHI_FACTOR * self.mean_nanos);
        let elapsed = first_true(guess, |nanos| self.convicts_after(nanos));
        self.suspect_at = Some(suspect_instant(at, elapsed));
    }

    fn suspect_at(&self) -> Option<Time> {
        self.suspect_at
    }

    fn level(&self, now: Time) -> f64 {
        PHI_FACTOR * self.phi(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Time {
        Time::ZERO + Span::from_millis(millis)
    }

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn phi_is_elapsed_over_mean_and_level_scales_it_by_one_over_ln_10() {
        let mut d = CassandraPhi::new(CassandraPhiConfig::default());
        assert_eq!((d.phi(ms(5000)), d.level(ms(5000)), d.suspect_at()), (0.0, 0.0, None));
        d.heartbeat(ms(0));
        assert_eq!(d.samples(), 1);
        assert_eq!(d.mean_ms(), Some(2000.0), "the first arrival records the initial value");
        assert_eq!(d.phi(ms(1000)), 0.5);
        d.heartbeat(ms(1000));
        d.heartbeat(ms(2000));
        assert_eq!(d.mean_ms(), Some(4000.0 / 3.0));
        assert!(close(d.phi(ms(2500)), 500.0 / (4000.0 / 3.0), 1e-12));
        assert!(close(d.level(ms(2500)), 0.375 / std::f64::consts::LN_10, 1e-12));
        assert!(close(PHI_FACTOR, std::f64::consts::LOG10_E, 1e-16), "1 / ln 10 = log10(e)");
    }

    #[test]
    fn intervals_longer_than_the_maximum_are_not_recorded() {
        let mut d = CassandraPhi::new(CassandraPhiConfig::default());
        d.heartbeat(ms(0));
        d.heartbeat(ms(1000));
        d.heartbeat(ms(6000)); // 5 s > 2 s: ignored, but the clock restarts at 6 s.
        assert_eq!(d.samples(), 2);
        assert_eq!(d.mean_ms(), Some(1500.0));
        assert_eq!(d.phi(ms(6750)), 0.5);
        d.heartbeat(ms(8000)); // Exactly the maximum: recorded.
        assert_eq!(d.samples(), 3);
    }

    #[test]
    fn window_keeps_the_most_recent_intervals() {
        let mut d = CassandraPhi::new(CassandraPhiConfig { sample_size: 3, ..CassandraPhiConfig::default() });
        for (i, at) in [0, 100, 200, 300, 800, 1300, 1800].into_iter().enumerate() {
            d.heartbeat(ms(at));
            assert_eq!(d.samples(), (i + 1).min(3));
        }
        assert_eq!(d.mean_ms(), Some(500.0));
    }

    /// Steady 1 s heartbeats with the defaults: once the initial value has left the window,
    /// the mean is 1 s and Cassandra convicts after Δ > 8 · ln 10 s ≈ 18.42 s.
    #[test]
    fn default_conviction_after_regular_heartbeats_is_8_ln_10_seconds() {
        let mut d = CassandraPhi::new(CassandraPhiConfig::default());
        for second in 0..=1000 {
            d.heartbeat(ms(second * 1000));
        }
        assert_eq!(d.mean_ms(), Some(1000.0));
        let last = ms(1_000_000);
        let after = d.suspect_at().unwrap() - last;
        let expected_nanos = 8.0 * std::f64::consts::LN_10 * 1e9;
        assert!((after.as_nanos() as f64 - expected_nanos).abs() <= 1.0, "{after:?}");
    }

    /// `suspect_at` is the first nanosecond at which the level is greater than the threshold.
    #[test]
    fn suspect_at_agrees_with_level() {
        for threshold in [0.1, 1.0, 5.0, 8.0, 16.0] {
            let mut d = CassandraPhi::new(CassandraPhiConfig { threshold, ..CassandraPhiConfig::default() });
            let mut t = ms(0);
            for interval in [0, 900, 1100, 1000, 1, 3000, 999, 1000, 1000, 7] {
                t = t + Span::from_millis(interval);
                d.heartbeat(t);
                let at = d.suspect_at().unwrap();
                assert!(at > t, "zero elapsed time never convicts");
                assert!(d.level(at) > threshold);
                assert!(d.level(Time::from_nanos(at.as_nanos() - 1)) <= threshold);
                for step in 0..40_000u64 {
                    let now = t + Span::from_millis(step);
                    assert_eq!(d.suspects(now), d.level(now) > threshold, "threshold {threshold} at {now:?}");
                }
            }
        }
    }

    #[test]
    fn zero_intervals_convict_one_nanosecond_after_the_last_arrival() {
        let mut d = CassandraPhi::new(CassandraPhiConfig { sample_size: 2, ..CassandraPhiConfig::default() });
        for _ in 0..3 {
            d.heartbeat(ms(10));
        }
        assert_eq!(d.mean_ms(), Some(0.0));
        assert_eq!(d.level(ms(10)), 0.0);
        assert_eq!(d.suspect_at(), Some(ms(10) + Span::from_nanos(1)));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let default = CassandraPhiConfig::default();
        for config in [
            CassandraPhiConfig { threshold: -8.0, ..default },
            CassandraPhiConfig { sample_size: 0, ..default },
            CassandraPhiConfig { initial_interval: Span::ZERO, ..default },
        ] {
            assert!(CassandraPhi::try_new(config).is_err(), "{config:?}");
        }
    }
}
