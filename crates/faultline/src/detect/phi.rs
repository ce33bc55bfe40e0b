//! The φ accrual failure detector of Hayashibara, Défago, Yared and Katayama (2004), as
//! Akka implements it in `akka-remote/src/main/scala/akka/remote/PhiAccrualFailureDetector.scala`
//! (classes `PhiAccrualFailureDetector` and `HeartbeatHistory`).
//!
//! Inter-arrival intervals are modelled as normal with the mean and standard deviation of a
//! sliding window of recent intervals. The suspicion level is
//! `φ(Δ) = -log10(1 - F(Δ))`, where `Δ` is the time since the last heartbeat and `F` is the
//! normal CDF with mean `mean + acceptable_heartbeat_pause` and standard deviation
//! `max(std, min_std_deviation)`, approximated with the logistic function of the β
//! Mathematics Handbook exactly as Akka does. Akka's behaviour is kept in three details:
//! the first heartbeat seeds the window with two guessed intervals, a heartbeat that arrives
//! while the peer is suspected does not add its interval to the window, and the peer is
//! suspected when `φ >= threshold` (Akka: available iff `φ < threshold`).
//!
//! Akka measures time in whole milliseconds; this detector measures it in nanoseconds, so
//! its φ is Akka's φ without the truncation to milliseconds.

use super::window::IntervalWindow;
use super::{ConfigError, Detector, SAMPLE_SIZE_MAX, first_true, guess_nanos, suspect_instant};
use crate::time::{Span, Time};

/// Configuration of a [`PhiAccrual`] detector. Field names follow Akka's settings
/// (`akka.cluster.failure-detector.*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiAccrualConfig {
    /// Suspect when φ reaches this value. Akka's `threshold`, default 8.0. Must be finite
    /// and positive. φ = 8 means the model gives the next heartbeat a 10⁻⁸ chance of being
    /// this late.
    pub threshold: f64,
    /// The number of most recent intervals the mean and standard deviation are computed
    /// over. Akka's `max-sample-size`, default 1000. At least 1, at most
    /// [`SAMPLE_SIZE_MAX`].
    pub max_sample_size: usize,
    /// A floor under the standard deviation, so that very regular heartbeats do not make the
    /// detector suspect at the first small delay. Akka's `min-std-deviation`, default 100 ms.
    /// Must be positive.
    pub min_std_deviation: Span,
    /// Added to the mean interval: a pause in heartbeats this long is not an anomaly. Akka's
    /// `acceptable-heartbeat-pause`. Default 0 here, so that the threshold alone decides;
    /// Akka's cluster default is 3 s ([`PhiAccrualConfig::akka_cluster`]).
    pub acceptable_heartbeat_pause: Span,
    /// The interval guessed before any has been measured. The first heartbeat seeds the
    /// window with `estimate - estimate/4` and `estimate + estimate/4` (mean `estimate`,
    /// standard deviation `estimate/4`). Akka's `heartbeat-interval`, default 1 s. Must be
    /// positive.
    pub first_heartbeat_estimate: Span,
}

impl Default for PhiAccrualConfig {
    fn default() -> Self {
        PhiAccrualConfig {
            threshold: 8.0,
            max_sample_size: 1000,
            min_std_deviation: Span::from_millis(100),
            acceptable_heartbeat_pause: Span::ZERO,
            first_heartbeat_estimate: Span::from_secs(1),
        }
    }
}

impl PhiAccrualConfig {
    /// Akka cluster's defaults (`akka-cluster/src/main/resources/reference.conf`):
    /// threshold 8.0, max-sample-size 1000, min-std-deviation 100 ms,
    /// acceptable-heartbeat-pause 3 s, heartbeat-interval 1 s.
    pub fn akka_cluster() -> Self {
        PhiAccrualConfig { acceptable_heartbeat_pause: Span::from_secs(3), ..PhiAccrualConfig::default() }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, problem| Err(ConfigError::new("phi-accrual", field, problem));
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return fail("threshold", "must be finite and greater than 0");
        }
        if !(1..=SAMPLE_SIZE_MAX).contains(&self.max_sample_size) {
            return fail("max_sample_size", "must be between 1 and 2^20");
        }
        if self.min_std_deviation == Span::ZERO {
            return fail("min_std_deviation", "must be greater than 0");
        }
        // Below 4 ns the seeds' spread (estimate / 4) rounds to zero.
        if self.first_heartbeat_estimate.as_nanos() < 4 {
            return fail("first_heartbeat_estimate", "must be at least 4 ns");
        }
        Ok(())
    }
}

/// Akka's φ accrual failure detector. See the module documentation.
///
/// [`level`](Detector::level) is φ (0 before the first heartbeat); the detector suspects
/// exactly when φ is at least the threshold.
#[derive(Clone, Debug)]
pub struct PhiAccrual {
    config: PhiAccrualConfig,
    intervals: IntervalWindow,
    last: Option<Time>,
    /// The mean interval plus the acceptable pause, in nanoseconds.
    mean_with_pause_nanos: f64,
    /// The standard deviation, at least the configured minimum, in nanoseconds.
    std_deviation_nanos: f64,
    suspect_at: Option<Time>,
    /// The standardised delay `y` at which φ reaches the threshold, a starting point for
    /// the exact search in nanoseconds.
    threshold_y: f64,
}

impl PhiAccrual {
    /// # Panics
    /// If the configuration is invalid; see [`PhiAccrual::try_new`].
    pub fn new(config: PhiAccrualConfig) -> Self {
        Self::try_new(config).unwrap_or_else(|err| panic!("{err}"))
    }

    pub fn try_new(config: PhiAccrualConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(PhiAccrual {
            config,
            intervals: IntervalWindow::new(config.max_sample_size),
            last: None,
            mean_with_pause_nanos: f64::NAN,
            std_deviation_nanos: f64::NAN,
            suspect_at: None,
            threshold_y: threshold_y(config.threshold),
        })
    }

    pub fn config(&self) -> &PhiAccrualConfig {
        &self.config
    }

    /// Akka's `phi(timeDiff, mean, stdDeviation)`: φ for a delay `elapsed` under a normal
    /// model with the given mean and standard deviation (any one unit for all three),
    /// through the logistic approximation of the normal CDF
    /// `1 / (1 + exp(-y (1.5976 + 0.070566 y²)))`, `y = (elapsed - mean) / std_deviation`
    /// (error 0.00014 at y = ±3.16, per Akka). Two algebraically equal forms are used on
    /// either side of the mean, as in Akka, to avoid cancellation.
    pub fn phi(elapsed: f64, mean: f64, std_deviation: f64) -> f64 {
        let y = (elapsed - mean) / std_deviation;
        let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
        if elapsed > mean { -(e / (1.0 + e)).log10() } else { -(1.0 - 1.0 / (1.0 + e)).log10() }
    }

    /// The mean of the intervals in the window, in milliseconds, without the acceptable
    /// pause. `None` before the first heartbeat.
    pub fn mean_ms(&self) -> Option<f64> {
        self.last.map(|_| (self.mean_with_pause_nanos - self.config.acceptable_heartbeat_pause.as_nanos() as f64) / 1e6)
    }

    /// The standard deviation φ uses (at least `min_std_deviation`), in milliseconds.
    /// `None` before the first heartbeat.
    pub fn std_deviation_ms(&self) -> Option<f64> {
        self.last.map(|_| self.std_deviation_nanos / 1e6)
    }

    /// The number of intervals in the window (2 after the first heartbeat: the seeds).
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    fn phi_after(&self, elapsed_nanos: u64) -> f64 {
        Self::phi(elapsed_nanos as f64, self.mean_with_pause_nanos, self.std_deviation_nanos)
    }
}

impl Detector for PhiAccrual {
    fn heartbeat(&mut self, at: Time) {
        match self.last {
            None => {
                // Akka's `firstHeartbeat`: two guessed intervals with a rather high spread.
                let mean = self.config.first_heartbeat_estimate.as_nanos();
                let std_deviation = mean / 4;
                self.intervals.clear();
                self.intervals.push(mean - std_deviation);
                self.intervals.push(mean + std_deviation);
            }
            Some(last) => {
                assert!(at >= last, "heartbeat at {at:?} before the previous one at {last:?}");
                // Akka: "don't use the first heartbeat after failure for the history, since
                // a long pause will skew the stats". Akka tests `phi(at) < threshold`, which
                // is exactly `at < suspect_at`.
                if self.suspect_at.is_none_or(|suspect_at| at < suspect_at) {
                    self.intervals.push((at - last).as_nanos());
                }
            }
        }
        self.last = Some(at);
        self.mean_with_pause_nanos = self.intervals.mean() + self.config.acceptable_heartbeat_pause.as_nanos() as f64;
        self.std_deviation_nanos =
            self.intervals.variance().sqrt().max(self.config.min_std_deviation.as_nanos() as f64);
        let guess = guess_nanos(self.mean_with_pause_nanos + self.threshold_y * self.std_deviation_nanos);
        let elapsed = first_true(guess, |nanos| self.phi_after(nanos) >= self.config.threshold);
        self.suspect_at = Some(suspect_instant(at, elapsed));
    }

    fn suspect_at(&self) -> Option<Time> {
        self.suspect_at
    }

    fn level(&self, now: Time) -> f64 {
        self.last.map_or(0.0, |last| self.phi_after((now - last).as_nanos()))
    }
}

/// The standardised delay at which φ equals `threshold`. φ depends on the delay only through
/// `y`, and increasingly, so this is solved once per detector, by bisection.
fn threshold_y(threshold: f64) -> f64 {
    // φ(y) for unit standard deviation and zero mean.
    let phi = |y: f64| PhiAccrual::phi(y, 0.0, 1.0);
    // φ(-40) is 0 and φ(40) is infinite, so the root of φ(y) = threshold > 0 lies between.
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if phi(mid) >= threshold {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
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

    fn detector(adjust: impl FnOnce(&mut PhiAccrualConfig)) -> PhiAccrual {
        let mut config = PhiAccrualConfig::default();
        adjust(&mut config);
        PhiAccrual::new(config)
    }

    /// Feeds heartbeats at the cumulative sums of `intervals_ms`, starting at 0.
    fn beats(d: &mut PhiAccrual, intervals_ms: &[u64]) -> Time {
        let mut t = ms(0);
        for &interval in intervals_ms {
            t = t + Span::from_millis(interval);
            d.heartbeat(t);
        }
        t
    }

    /// The CDF Akka's tests recover from φ: `1 - 10^-φ`.
    fn cdf(phi: f64) -> f64 {
        1.0 - 10f64.powf(-phi)
    }

    /// Akka's AccrualFailureDetectorSpec, "use good enough cumulative distribution
    /// function": the CDF behind φ against the normal CDF at mean 0, std 10.
    #[test]
    fn cdf_matches_akka_reference_values() {
        let phi = PhiAccrual::phi;
        for (elapsed, expected, tolerance) in [
            (0.0, 0.5, 0.001),
            (6.0, 0.7257, 0.001),
            (15.0, 0.9332, 0.001),
            (20.0, 0.97725, 0.001),
            (25.0, 0.99379, 0.001),
            (35.0, 0.99977, 0.001),
            (40.0, 0.99997, 0.0001),
        ] {
            assert!(close(cdf(phi(elapsed, 0.0, 10.0)), expected, tolerance), "elapsed {elapsed}");
        }
        for x in 0..40 {
            assert!(phi(f64::from(x), 0.0, 10.0) < phi(f64::from(x + 1), 0.0, 10.0), "increasing at {x}");
        }
        assert!(close(cdf(phi(22.0, 20.0, 3.0)), 0.7475, 0.001));
    }

    /// Akka's "handle outliers without losing precision or hitting exceptions".
    #[test]
    fn outliers_match_akka_reference_values() {
        assert!(close(PhiAccrual::phi(10.0, 0.0, 1.0), 38.0, 1.0));
        assert_eq!(PhiAccrual::phi(-25.0, 0.0, 1.0), 0.0);
    }

    /// Akka's "return realistic phi values": mean 1000 ms, std 100 ms, within 0.1.
    #[test]
    fn phi_matches_akka_realistic_values() {
        for (elapsed, expected) in
            [(0.0, 0.0), (500.0, 0.1), (1000.0, 0.3), (1200.0, 1.6), (1400.0, 4.7), (1600.0, 10.8), (1700.0, 15.3)]
        {
            let phi = PhiAccrual::phi(elapsed, 1000.0, 100.0);
            assert!(close(phi, expected, 0.1), "phi({elapsed}) = {phi}, Akka says {expected}");
        }
        // At the mean, φ is exactly -log10(1/2).
        assert!(close(PhiAccrual::phi(1000.0, 1000.0, 100.0), 2f64.log10(), 1e-15));
        // A larger standard deviation gives a lower φ.
        assert!(PhiAccrual::phi(1100.0, 1000.0, 500.0) < PhiAccrual::phi(1100.0, 1000.0, 100.0));
    }

    /// Akka's "return phi value of 0.0 on startup for each address, when no heartbeats".
    #[test]
    fn no_heartbeat_means_phi_zero_and_trusted() {
        let d = detector(|_| {});
        assert_eq!(d.level(ms(1_000_000)), 0.0);
        assert_eq!(d.suspect_at(), None);
        assert!(!d.suspects(ms(1_000_000)));
        assert_eq!(d.mean_ms(), None);
    }

    /// Akka's "return phi based on guess when only one heartbeat": seeds 750 and 1250 ms.
    #[test]
    fn first_heartbeat_seeds_the_window_like_akka() {
        let mut d = detector(|_| {});
        d.heartbeat(ms(0));
        assert_eq!(d.samples(), 2);
        assert_eq!(d.mean_ms(), Some(1000.0));
        assert_eq!(d.std_deviation_ms(), Some(250.0));
        assert!(close(d.level(ms(1000)), 0.3, 0.2));
        assert!(close(d.level(ms(2000)), 4.5, 0.3));
        assert!(d.level(ms(3000)) > 15.0);
    }

    /// Akka's "return phi value using first interval after second heartbeat".
    #[test]
    fn phi_is_positive_after_first_and_second_heartbeat() {
        let mut d = detector(|_| {});
        d.heartbeat(ms(0));
        assert!(d.level(ms(100)) > 0.0);
        d.heartbeat(ms(200));
        assert!(d.level(ms(300)) > 0.0);
    }

    /// Akka's "mark node as monitored after a series of successful heartbeats" and "mark
    /// node as dead if heartbeat are missed" (threshold 3).
    #[test]
    fn missed_heartbeats_make_the_peer_suspected() {
        let mut d = detector(|c| c.threshold = 3.0);
        let last = beats(&mut d, &[0, 1000, 100]);
        assert!(!d.suspects(last + Span::from_millis(100)));
        assert!(d.suspects(last + Span::from_millis(7100)));
    }

    /// Akka's "mark node as available if it starts heartbeat again after being marked dead
    /// due to detection of failure": the heartbeat ending a 5 minute pause, and the one
    /// ending a 7 s pause, do not enter the window.
    #[test]
    fn heartbeats_after_suspicion_restore_trust_without_skewing_the_window() {
        let mut d = detector(|c| c.acceptable_heartbeat_pause = Span::from_secs(3));
        let mut regular = vec![0u64];
        regular.extend([1000; 999]);
        let t = beats(&mut d, &regular);
        let (mean, std) = (d.mean_ms(), d.std_deviation_ms());
        assert!(d.suspects(t + Span::from_millis(300_000)), "after the long pause");
        let t = t + Span::from_millis(300_100);
        d.heartbeat(t);
        assert_eq!((d.mean_ms(), d.std_deviation_ms()), (mean, std), "the 300 s interval was not recorded");
        assert!(!d.suspects(t + Span::from_millis(900)));
        let t = t + Span::from_millis(1000);
        d.heartbeat(t);
        assert!(d.suspects(t + Span::from_millis(7000)), "after the 7 s pause");
        let t = t + Span::from_millis(7100);
        d.heartbeat(t);
        assert!(!d.suspects(t + Span::from_millis(900)));
        let t = t + Span::from_millis(1000);
        d.heartbeat(t);
        assert!(!d.suspects(t + Span::from_millis(900)));
    }

    /// Akka's "accept some configured missing heartbeats".
    #[test]
    fn acceptable_pause_tolerates_missing_heartbeats() {
        let mut d = detector(|c| c.acceptable_heartbeat_pause = Span::from_secs(3));
        let t = beats(&mut d, &[0, 1000, 1000, 1000]);
        assert!(!d.suspects(t + Span::from_millis(4000)));
        d.heartbeat(t + Span::from_millis(5000));
        assert!(!d.suspects(t + Span::from_millis(6000)));
    }

    /// Akka's "fail after configured acceptable missing heartbeats".
    #[test]
    fn pause_beyond_the_acceptable_one_is_suspected() {
        let mut d = detector(|c| c.acceptable_heartbeat_pause = Span::from_secs(3));
        let t = beats(&mut d, &[0, 1000, 1000, 1000, 1000, 1000]);
        assert!(!d.suspects(t + Span::from_millis(500)));
        d.heartbeat(t + Span::from_millis(1000));
        assert!(d.suspects(t + Span::from_millis(6000)));
    }

    /// Akka's "use maxSampleSize heartbeats": once the 100 ms intervals have left a window
    /// of 3, φ at 500 ms after a 500 ms rhythm equals φ at 100 ms after a 100 ms rhythm.
    #[test]
    fn window_eviction_forgets_old_intervals() {
        let mut d = detector(|c| c.max_sample_size = 3);
        let t = beats(&mut d, &[0, 100, 100, 100]);
        let phi1 = d.level(t + Span::from_millis(100));
        let t = beats_from(&mut d, t, &[700, 500, 500, 500]);
        let phi2 = d.level(t + Span::from_millis(500));
        assert!(close(phi2, phi1, 0.001), "{phi1} vs {phi2}");
        assert_eq!(d.mean_ms(), Some(500.0));
    }

    fn beats_from(d: &mut PhiAccrual, mut t: Time, intervals_ms: &[u64]) -> Time {
        for &interval in intervals_ms {
            t = t + Span::from_millis(interval);
            d.heartbeat(t);
        }
        t
    }

    #[test]
    fn min_std_deviation_is_applied_to_regular_heartbeats() {
        let mut d = detector(|c| c.max_sample_size = 10);
        let mut regular = vec![0u64];
        regular.extend([1000; 20]);
        let t = beats(&mut d, &regular);
        assert_eq!(d.mean_ms(), Some(1000.0));
        assert_eq!(d.std_deviation_ms(), Some(100.0), "measured deviation is 0, floor is 100 ms");
        let expected = PhiAccrual::phi(1100.0, 1000.0, 100.0);
        assert!(close(d.level(t + Span::from_millis(1100)), expected, 1e-12));
    }

    #[test]
    fn phi_increases_with_elapsed_time() {
        let mut d = detector(|_| {});
        let t = beats(&mut d, &[0, 980, 1010, 1030, 990, 1200, 870]);
        let mut previous = d.level(t);
        for step in 1..=4000u64 {
            let phi = d.level(t + Span::from_millis(step));
            assert!(phi >= previous, "phi decreased at {step} ms");
            previous = phi;
        }
        assert!(previous.is_infinite() || previous > 100.0);
    }

    /// `suspect_at` is the first nanosecond at which φ reaches the threshold, and
    /// `suspects` agrees with `level >= threshold` everywhere on a 1 ms grid.
    #[test]
    fn suspect_at_agrees_with_level() {
        let rhythms: [&[u64]; 4] =
            [&[0], &[0, 1000, 1000, 1000], &[0, 980, 1010, 1030, 990, 1200, 870, 1, 5000, 3], &[0, 7, 7, 7, 7]];
        for threshold in [0.05, 0.5, 1.0, 3.0, 8.0, 12.5, 16.0, 40.0] {
            for pause_ms in [0, 3000] {
                for rhythm in rhythms {
                    let mut d = detector(|c| {
                        c.threshold = threshold;
                        c.acceptable_heartbeat_pause = Span::from_millis(pause_ms);
                        c.min_std_deviation = Span::from_micros(1);
                    });
                    let mut t = ms(0);
                    for &interval in rhythm {
                        t = t + Span::from_millis(interval);
                        d.heartbeat(t);
                        let at = d.suspect_at().unwrap();
                        assert!(at >= t);
                        assert!(d.level(at) >= threshold, "threshold {threshold}: level at suspect_at");
                        if at > t {
                            let before = Time::from_nanos(at.as_nanos() - 1);
                            assert!(d.level(before) < threshold, "threshold {threshold}: level before suspect_at");
                        }
                        for step in 0..20_000u64 {
                            let now = t + Span::from_millis(step);
                            assert_eq!(d.suspects(now), d.level(now) >= threshold);
                        }
                    }
                }
            }
        }
    }

    /// With Akka cluster's defaults and perfectly regular 1 s heartbeats, the window's
    /// deviation is 0, the 100 ms floor applies, and φ reaches 8 at
    /// 1000 + 3000 + y*·100 ms with y* ≈ 5.226 (solving y(1.5976 + 0.070566 y²) = ln(10⁸ - 1)).
    #[test]
    fn akka_cluster_defaults_suspect_regular_heartbeats_after_about_4_5_seconds() {
        let mut d = PhiAccrual::new(PhiAccrualConfig::akka_cluster());
        let mut regular = vec![0u64];
        regular.extend([1000; 1000]);
        let t = beats(&mut d, &regular);
        assert_eq!(d.std_deviation_ms(), Some(100.0));
        let after_ms = (d.suspect_at().unwrap() - t).as_millis_f64();
        assert!((4522.0..4523.0).contains(&after_ms), "{after_ms}");
        assert!(close(threshold_y(8.0), 5.226, 0.001), "{}", threshold_y(8.0));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad = [
            PhiAccrualConfig { threshold: 0.0, ..Default::default() },
            PhiAccrualConfig { threshold: f64::NAN, ..Default::default() },
            PhiAccrualConfig { threshold: f64::INFINITY, ..Default::default() },
            PhiAccrualConfig { max_sample_size: 0, ..Default::default() },
            PhiAccrualConfig { min_std_deviation: Span::ZERO, ..Default::default() },
            PhiAccrualConfig { first_heartbeat_estimate: Span::ZERO, ..Default::default() },
        ];
        for config in bad {
            assert!(PhiAccrual::try_new(config).is_err(), "{config:?}");
        }
        assert!(PhiAccrualConfig::akka_cluster().validate().is_ok());
    }

    #[test]
    fn a_window_of_one_keeps_only_the_latest_interval() {
        let mut d = detector(|c| c.max_sample_size = 1);
        d.heartbeat(ms(0));
        assert_eq!(d.mean_ms(), Some(1250.0), "only the second seed survives");
        d.heartbeat(ms(300));
        assert_eq!(d.mean_ms(), Some(300.0));
    }
}
