//! Quality of service of a failure detector, after Chen, Toueg and Aguilera, "On the
//! Quality of Service of Failure Detectors" (IEEE Transactions on Computers 51(5), 2002).
//!
//! For one monitor and one monitored process, a detector's output is a sequence of
//! *S-transitions* (trust to suspect) and *T-transitions* (suspect to trust). Because every
//! detector in [`super`] suspects from [`Detector::suspect_at`] until the next heartbeat,
//! the whole output follows from the arrival times and the `suspect_at` after each
//! arrival; [`QosMeter`] folds that into a [`Qos`] in one pass, exactly (to the
//! nanosecond) and without allocating, and [`evaluate`] drives it with a detector. Many
//! detector configurations are evaluated over one arrival list by calling [`evaluate`] once
//! per configuration; [`QosSummary`] pools the results of many pairs, seeds or runs.
//!
//! The metrics, over an [`Observation`] `[start, end)` in which the process is *up* on
//! `U = [start, min(crash, end))`:
//!
//! - a **mistake** is an S-transition at an instant in `U` (the detector starts suspecting
//!   a process that is up). A suspicion already under way at `start` counts as a mistake
//!   that begins at `start`, so that every suspected instant of `U` belongs to a mistake;
//! - the **mistake time** is the total time in `U` during which the detector suspects; a
//!   mistake still under way when the process crashes or the observation ends is cut there;
//! - `T_M`, the **mean mistake duration**, is mistake time over mistakes;
//! - `T_MR`, the **mean mistake recurrence time**, is the mean time between the beginnings
//!   of consecutive mistakes: `(last beginning - first beginning) / (mistakes - 1)`,
//!   undefined with fewer than two mistakes. The rate-based estimate `|U| / mistakes`
//!   (Chen et al.'s `1 / λ_M`) is also provided, defined with one mistake;
//! - `P_A`, the **query accuracy probability**, is the fraction of `U` during which the
//!   detector trusts the process;
//! - `T_D`, the **detection time**, is the time from the crash until the detector suspects
//!   permanently: the beginning of the suspicion still under way at `end`, minus the crash
//!   time, or 0 if that suspicion began before the crash. If the detector trusts the process
//!   at `end` (a heartbeat sent before the crash arrived late, or none ever arrived), the
//!   crash is *undetected* within the observation.
//!
//! Heartbeats arriving before `start` are given to the detector (a warm-up) but only their
//! effect on `[start, end)` is measured; heartbeats at or after `end` are ignored.

use super::Detector;
use crate::time::{Span, Time};

/// What is observed: the window `[start, end)` and, if the monitored process crashes, when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub start: Time,
    pub end: Time,
    /// A crash at or after `end` is outside the observation: the run counts as failure-free.
    pub crash: Option<Time>,
}

impl Observation {
    /// A failure-free observation of `[start, end)`.
    pub fn failure_free(start: Time, end: Time) -> Self {
        Observation { start, end, crash: None }
    }

    /// The end of the up period `[start, up_until)`: the crash, or `end`, whichever is first
    /// (and not before `start`).
    pub fn up_until(&self) -> Time {
        self.crash.map_or(self.end, |crash| crash.min(self.end)).max(self.start)
    }

    /// The crash, if it falls inside the observation.
    fn crash_observed(&self) -> Option<Time> {
        self.crash.filter(|&crash| crash < self.end)
    }
}

/// Whether and when a crash was detected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detection {
    /// No crash within the observation.
    #[default]
    NoCrash,
    /// The detector suspected permanently, `after` the crash (`T_D`).
    Detected { after: Span },
    /// The process crashed but the detector trusted it at the end of the observation.
    Undetected,
}

/// The quality of service of one detector for one (monitor, monitored) pair over one
/// [`Observation`]. See the module documentation for the definitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Qos {
    /// `|U|`: how long the monitored process was up within the observation.
    pub up_time: Span,
    /// S-transitions while up (plus one if a suspicion was under way at `start`).
    pub mistakes: u64,
    /// Time within `U` during which the detector suspected.
    pub mistake_time: Span,
    /// Beginning of the last mistake minus beginning of the first; 0 with fewer than two.
    pub recurrence_span: Span,
    pub detection: Detection,
}

impl Qos {
    /// The number of gaps between consecutive mistakes: `mistakes - 1`, or 0.
    pub fn recurrences(&self) -> u64 {
        self.mistakes.saturating_sub(1)
    }

    /// `P_A`: the fraction of the up time during which the detector trusted. `None` if the
    /// process was never up within the observation.
    pub fn query_accuracy(&self) -> Option<f64> {
        query_accuracy(u128::from(self.up_time.as_nanos()), u128::from(self.mistake_time.as_nanos()))
    }

    /// `T_M`: mistake time over mistakes, rounded down to the nanosecond. `None` without
    /// mistakes.
    pub fn mistake_duration_mean(&self) -> Option<Span> {
        mean(u128::from(self.mistake_time.as_nanos()), self.mistakes)
    }

    /// `T_MR`: mean time between the beginnings of consecutive mistakes, rounded down to the
    /// nanosecond. `None` with fewer than two mistakes.
    pub fn mistake_recurrence_mean(&self) -> Option<Span> {
        mean(u128::from(self.recurrence_span.as_nanos()), self.recurrences())
    }

    /// The rate-based estimate of `T_MR`: up time over mistakes (`1 / λ_M`). `None` without
    /// mistakes.
    pub fn mistake_recurrence_by_rate(&self) -> Option<Span> {
        mean(u128::from(self.up_time.as_nanos()), self.mistakes)
    }

    /// `λ_M`: mistakes per second of up time. `None` if never up.
    pub fn mistake_rate_per_s(&self) -> Option<f64> {
        rate_per_s(self.mistakes, u128::from(self.up_time.as_nanos()))
    }

    /// `T_D`, if the process crashed within the observation and the crash was detected.
    pub fn detection_time(&self) -> Option<Span> {
        match self.detection {
            Detection::Detected { after } => Some(after),
            Detection::NoCrash | Detection::Undetected => None,
        }
    }
}

/// Runs `detector` over `arrivals` (sorted heartbeat arrival times at the monitor) and
/// measures its quality of service over `observation`. Arrivals at or after
/// `observation.end` are not given to the detector.
///
/// # Panics
/// If `arrivals` is not sorted or `observation.start > observation.end`.
pub fn evaluate<D: Detector + ?Sized>(detector: &mut D, arrivals: &[Time], observation: Observation) -> Qos {
    let mut meter = QosMeter::new(observation);
    for &at in arrivals.iter().take_while(|&&at| at < observation.end) {
        detector.heartbeat(at);
        meter.heartbeat(at, detector.suspect_at());
    }
    meter.finish()
}

/// Streams a detector's output into a [`Qos`]: after each heartbeat, pass its arrival time
/// and the detector's [`suspect_at`](Detector::suspect_at). Use it directly when the
/// detector runs inside a simulation rather than over a list of arrivals.
#[derive(Clone, Debug)]
pub struct QosMeter {
    observation: Observation,
    up_until: Time,
    last_heartbeat: Option<Time>,
    /// The detector's `suspect_at` after the last heartbeat.
    suspect_at: Option<Time>,
    /// The beginning of the suspicion under way at the last heartbeat, if any.
    suspected_since: Option<Time>,
    first_mistake: Option<Time>,
    last_mistake: Option<Time>,
    qos: Qos,
}

impl QosMeter {
    /// # Panics
    /// If `observation.start > observation.end`.
    pub fn new(observation: Observation) -> Self {
        assert!(observation.start <= observation.end, "observation starts after it ends: {observation:?}");
        let up_until = observation.up_until();
        QosMeter {
            observation,
            up_until,
            last_heartbeat: None,
            suspect_at: None,
            suspected_since: None,
            first_mistake: None,
            last_mistake: None,
            qos: Qos { up_time: up_until - observation.start, ..Qos::default() },
        }
    }

    /// A heartbeat arrived at `at` and, having processed it, the detector suspects from
    /// `suspect_at` on. Heartbeats at or after the end of the observation are ignored.
    ///
    /// # Panics
    /// If `at` is earlier than the previous heartbeat, or `suspect_at` earlier than `at`.
    pub fn heartbeat(&mut self, at: Time, suspect_at: Option<Time>) {
        if at >= self.observation.end {
            return;
        }
        if let Some(last) = self.last_heartbeat {
            assert!(at >= last, "heartbeat at {at:?} before the previous one at {last:?}");
        }
        assert!(suspect_at.is_none_or(|s| s >= at), "suspect_at {suspect_at:?} before its heartbeat at {at:?}");
        // Between the previous heartbeat and this one the detector suspected from the old
        // `suspect_at` on; if that is before `at`, an S-transition happened there (unless a
        // suspicion was already under way, which happens when `suspect_at` equalled the
        // previous heartbeat).
        if let Some(old) = self.suspect_at
            && old < at
            && self.suspected_since.is_none()
        {
            self.suspected_since = Some(old);
        }
        // At `at` the detector reflects the heartbeat: it trusts unless it suspects at once.
        let suspects_now = suspect_at == Some(at);
        match (self.suspected_since, suspects_now) {
            (Some(since), false) => {
                self.suspected(since, at);
                self.suspected_since = None;
            }
            (None, true) => self.suspected_since = Some(at),
            _ => {}
        }
        self.last_heartbeat = Some(at);
        self.suspect_at = suspect_at;
    }

    /// The quality of service over the whole observation.
    pub fn finish(mut self) -> Qos {
        let end = self.observation.end;
        if let Some(old) = self.suspect_at
            && old < end
            && self.suspected_since.is_none()
        {
            self.suspected_since = Some(old);
        }
        let open = self.suspected_since.take();
        if let Some(since) = open {
            self.suspected(since, end);
        }
        if let Some(crash) = self.observation.crash_observed() {
            self.qos.detection = match open {
                Some(since) => Detection::Detected { after: since.max(crash) - crash },
                None => Detection::Undetected,
            };
        }
        if let (Some(first), Some(last)) = (self.first_mistake, self.last_mistake) {
            self.qos.recurrence_span = last - first;
        }
        self.qos
    }

    /// The detector suspected on `[from, to)` and trusted just before and at `to`.
    fn suspected(&mut self, from: Time, to: Time) {
        let (start, up_until) = (self.observation.start, self.up_until);
        let (from_up, to_up) = (from.max(start), to.min(up_until));
        if from_up >= to_up {
            return; // No part of the suspicion falls while the process is up.
        }
        // The suspicion began at `from` (an S-transition) if `from` is in U, or was under way
        // at `start`; either way it is one mistake, beginning at `from_up`.
        self.qos.mistakes += 1;
        self.qos.mistake_time = self.qos.mistake_time + (to_up - from_up);
        self.first_mistake.get_or_insert(from_up);
        self.last_mistake = Some(from_up);
    }
}

/// Quality of service pooled over many pairs, seeds or runs: sums and counts, so that
/// pooled means are exact, plus every detection time for percentiles.
///
/// [`QosSummary::merge`] is associative (integer sums, and concatenation of the detection
/// times), so `par_iter().map(QosSummary::from).reduce(QosSummary::default,
/// QosSummary::merge)` gives the same summary, detection-time order included, for any
/// number of threads: rayon's reduce combines neighbouring results in order. Statistics
/// depend only on the multiset of detection times, never on their order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QosSummary {
    /// How many [`Qos`] were pooled.
    pub pairs: u64,
    pub up_time_nanos: u128,
    pub mistakes: u64,
    pub mistake_time_nanos: u128,
    /// Pooled gaps between consecutive mistakes (each pair's `mistakes - 1`).
    pub recurrences: u64,
    pub recurrence_span_nanos: u128,
    /// Pairs whose monitored process crashed within the observation.
    pub crashes: u64,
    /// `T_D` of every detected crash, in the order pooled.
    pub detection_times: Vec<Span>,
}

impl From<&Qos> for QosSummary {
    fn from(qos: &Qos) -> Self {
        let mut summary = QosSummary::default();
        summary.add(qos);
        summary
    }
}

impl From<Qos> for QosSummary {
    fn from(qos: Qos) -> Self {
        QosSummary::from(&qos)
    }
}

impl QosSummary {
    pub fn add(&mut self, qos: &Qos) {
        self.pairs += 1;
        self.up_time_nanos += u128::from(qos.up_time.as_nanos());
        self.mistakes += qos.mistakes;
        self.mistake_time_nanos += u128::from(qos.mistake_time.as_nanos());
        self.recurrences += qos.recurrences();
        self.recurrence_span_nanos += u128::from(qos.recurrence_span.as_nanos());
        match qos.detection {
            Detection::NoCrash => {}
            Detection::Detected { after } => {
                self.crashes += 1;
                self.detection_times.push(after);
            }
            Detection::Undetected => self.crashes += 1,
        }
    }

    /// Pools two summaries; `self`'s detection times come first.
    pub fn merge(mut self, other: QosSummary) -> QosSummary {
        self.pairs += other.pairs;
        self.up_time_nanos += other.up_time_nanos;
        self.mistakes += other.mistakes;
        self.mistake_time_nanos += other.mistake_time_nanos;
        self.recurrences += other.recurrences;
        self.recurrence_span_nanos += other.recurrence_span_nanos;
        self.crashes += other.crashes;
        self.detection_times.extend(other.detection_times);
        self
    }

    /// Crashes the detector had not detected at the end of their observation.
    pub fn undetected(&self) -> u64 {
        self.crashes - self.detection_times.len() as u64
    }

    /// Pooled `P_A`: the fraction of all up time during which the detector trusted.
    pub fn query_accuracy(&self) -> Option<f64> {
        query_accuracy(self.up_time_nanos, self.mistake_time_nanos)
    }

    /// Pooled `T_M`: all mistake time over all mistakes.
    pub fn mistake_duration_mean(&self) -> Option<Span> {
        mean(self.mistake_time_nanos, self.mistakes)
    }

    /// Pooled `T_MR`: the mean of every gap between consecutive mistakes of the same pair.
    pub fn mistake_recurrence_mean(&self) -> Option<Span> {
        mean(self.recurrence_span_nanos, self.recurrences)
    }

    /// Pooled rate-based `T_MR`: all up time over all mistakes.
    pub fn mistake_recurrence_by_rate(&self) -> Option<Span> {
        mean(self.up_time_nanos, self.mistakes)
    }

    /// Pooled `λ_M`: mistakes per second of up time.
    pub fn mistake_rate_per_s(&self) -> Option<f64> {
        rate_per_s(self.mistakes, self.up_time_nanos)
    }

    /// Mean `T_D` over detected crashes, rounded down to the nanosecond.
    pub fn detection_time_mean(&self) -> Option<Span> {
        let total: u128 = self.detection_times.iter().map(|t| u128::from(t.as_nanos())).sum();
        mean(total, self.detection_times.len() as u64)
    }

    /// The `percent` percentile of `T_D` over detected crashes, by nearest rank: the
    /// smallest sample such that at least `percent`% of the samples are at most it, i.e. the
    /// sample of rank `ceil(percent / 100 · n)` (at least 1) in ascending order. Always one
    /// of the samples; `percent = 100` is the maximum. `None` without samples.
    ///
    /// # Panics
    /// If `percent` is not in `(0, 100]`.
    pub fn detection_time_percentile(&self, percent: f64) -> Option<Span> {
        let mut sorted = self.detection_times.clone();
        sorted.sort_unstable();
        nearest_rank(&sorted, percent)
    }
}

/// The nearest-rank percentile of ascending `sorted` samples; see
/// [`QosSummary::detection_time_percentile`].
///
/// # Panics
/// If `percent` is not in `(0, 100]`.
pub fn nearest_rank(sorted: &[Span], percent: f64) -> Option<Span> {
    assert!(percent > 0.0 && percent <= 100.0, "percentile {percent} is not in (0, 100]");
    if sorted.is_empty() {
        return None;
    }
    // Multiplying before dividing keeps integer percentages of integer counts exact.
    let rank = (percent * sorted.len() as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn query_accuracy(up_nanos: u128, mistake_nanos: u128) -> Option<f64> {
    (up_nanos > 0).then(|| (up_nanos - mistake_nanos) as f64 / up_nanos as f64)
}

fn mean(total_nanos: u128, count: u64) -> Option<Span> {
    // A mean of u64 spans fits a u64.
    (count > 0).then(|| Span::from_nanos((total_nanos / u128::from(count)) as u64))
}

fn rate_per_s(count: u64, nanos: u128) -> Option<f64> {
    (nanos > 0).then(|| count as f64 / (nanos as f64 / 1e9))
}

#[cfg(test)]
mod tests {
    use super::super::{FixedTimeout, FixedTimeoutConfig, PhiAccrual, PhiAccrualConfig};
    use super::*;

    fn ms(millis: u64) -> Time {
        Time::ZERO + Span::from_millis(millis)
    }

    fn span(millis: u64) -> Span {
        Span::from_millis(millis)
    }

    fn timeout(millis: u64) -> FixedTimeout {
        FixedTimeout::new(FixedTimeoutConfig { timeout: span(millis) })
    }

    fn arrivals(millis: &[u64]) -> Vec<Time> {
        millis.iter().map(|&m| ms(m)).collect()
    }

    /// Timeout 100 ms; heartbeats at 0, 50, 100, 300, 350, 600, 610. The detector suspects on
    /// [200, 300), [450, 600) and from 710 on.
    const BEATS: &[u64] = &[0, 50, 100, 300, 350, 600, 610];

    #[test]
    fn failure_free_run_by_hand() {
        let qos = evaluate(&mut timeout(100), &arrivals(BEATS), Observation::failure_free(ms(0), ms(1000)));
        assert_eq!(
            qos,
            Qos {
                up_time: span(1000),
                mistakes: 3,
                mistake_time: span(100 + 150 + 290),
                recurrence_span: span(710 - 200),
                detection: Detection::NoCrash,
            }
        );
        assert_eq!(qos.mistake_duration_mean(), Some(span(180)));
        assert_eq!(qos.mistake_recurrence_mean(), Some(span(255)));
        assert_eq!(qos.mistake_recurrence_by_rate(), Some(Span::from_nanos(333_333_333)));
        assert_eq!(qos.query_accuracy(), Some(0.46));
        assert_eq!(qos.mistake_rate_per_s(), Some(3.0));
        assert_eq!(qos.detection_time(), None);
    }

    #[test]
    fn crash_after_the_last_heartbeat_is_detected_at_the_final_suspicion() {
        let observation = Observation { start: ms(0), end: ms(1000), crash: Some(ms(620)) };
        let qos = evaluate(&mut timeout(100), &arrivals(BEATS), observation);
        // Up on [0, 620): mistakes at 200 and 450; the suspicion from 710 is correct.
        assert_eq!(qos.up_time, span(620));
        assert_eq!((qos.mistakes, qos.mistake_time, qos.recurrence_span), (2, span(250), span(250)));
        assert_eq!(qos.query_accuracy(), Some(370.0 / 620.0));
        assert_eq!(qos.detection, Detection::Detected { after: span(90) });
    }

    #[test]
    fn late_heartbeats_after_a_crash_end_a_correct_suspicion_and_delay_detection() {
        // Crash at 500 while the detector already suspects (since 450); heartbeats sent
        // before the crash arrive at 600 and 610 and restore trust until 710.
        let observation = Observation { start: ms(0), end: ms(1000), crash: Some(ms(500)) };
        let qos = evaluate(&mut timeout(100), &arrivals(BEATS), observation);
        assert_eq!((qos.mistakes, qos.mistake_time), (2, span(100 + 50)), "the mistake from 450 is cut at 500");
        assert_eq!(qos.mistake_duration_mean(), Some(span(75)));
        assert_eq!(qos.detection_time(), Some(span(210)));
    }

    #[test]
    fn suspicion_under_way_at_the_crash_gives_zero_detection_time() {
        let observation = Observation { start: ms(0), end: ms(1000), crash: Some(ms(150)) };
        let qos = evaluate(&mut timeout(100), &arrivals(&[0]), observation);
        assert_eq!((qos.mistakes, qos.mistake_time), (1, span(50)));
        assert_eq!(qos.detection, Detection::Detected { after: Span::ZERO });
        assert_eq!(qos.mistake_recurrence_mean(), None, "one mistake has no recurrence");
        assert_eq!(qos.mistake_recurrence_by_rate(), Some(span(150)));
    }

    #[test]
    fn heartbeat_in_flight_past_the_end_leaves_the_crash_undetected() {
        let observation = Observation { start: ms(0), end: ms(1000), crash: Some(ms(900)) };
        let qos = evaluate(
            &mut timeout(100),
            &arrivals(&[0, 80, 160, 240, 320, 400, 480, 560, 640, 720, 800, 880, 950]),
            observation,
        );
        assert_eq!(qos.mistakes, 0);
        assert_eq!(qos.query_accuracy(), Some(1.0));
        assert_eq!(qos.detection, Detection::Undetected);
    }

    #[test]
    fn suspicion_under_way_at_start_counts_as_a_mistake_beginning_at_start() {
        // The heartbeats before 250 warm the detector up; [200, 300) is cut to [250, 300).
        let qos = evaluate(&mut timeout(100), &arrivals(BEATS), Observation::failure_free(ms(250), ms(1000)));
        assert_eq!(qos.up_time, span(750));
        assert_eq!((qos.mistakes, qos.mistake_time), (3, span(50 + 150 + 290)));
        assert_eq!(qos.recurrence_span, span(710 - 250));
    }

    #[test]
    fn no_heartbeat_means_trusted_throughout_and_a_crash_goes_undetected() {
        let observation = Observation { start: ms(0), end: ms(1000), crash: Some(ms(10)) };
        let qos = evaluate(&mut timeout(100), &[], observation);
        assert_eq!((qos.mistakes, qos.mistake_time, qos.up_time), (0, Span::ZERO, span(10)));
        assert_eq!(qos.detection, Detection::Undetected);
    }

    #[test]
    fn heartbeat_exactly_at_suspect_at_is_no_mistake() {
        let qos =
            evaluate(&mut timeout(100), &arrivals(&[0, 100, 200, 300]), Observation::failure_free(ms(0), ms(400)));
        assert_eq!(qos.mistakes, 0);
        assert_eq!(qos.query_accuracy(), Some(1.0));
    }

    #[test]
    fn arrivals_at_or_after_end_are_ignored() {
        let observation = Observation::failure_free(ms(0), ms(300));
        let qos = evaluate(&mut timeout(100), &arrivals(&[0, 250, 300, 301]), observation);
        // Suspected on [100, 250) only: 250 + 100 = 350 is past the end.
        assert_eq!((qos.mistakes, qos.mistake_time), (1, span(150)));
    }

    #[test]
    fn suspicion_at_the_heartbeat_instant_continues_the_mistake() {
        // A detector that suspects at once after some heartbeats: the meter must merge.
        let mut meter = QosMeter::new(Observation::failure_free(ms(0), ms(100)));
        meter.heartbeat(ms(0), Some(ms(10)));
        meter.heartbeat(ms(20), Some(ms(20))); // Suspected since 10, and still at 20.
        meter.heartbeat(ms(30), Some(ms(50))); // Trusted from 30.
        meter.heartbeat(ms(40), Some(ms(40))); // An S-transition at the heartbeat itself.
        meter.heartbeat(ms(45), Some(ms(90)));
        let qos = meter.finish();
        assert_eq!((qos.mistakes, qos.mistake_time), (3, span(20 + 5 + 10)));
        assert_eq!(qos.recurrence_span, span(90 - 10));
    }

    /// The meter's totals match a brute-force scan of `suspects` on a fine grid.
    #[test]
    fn meter_matches_a_brute_force_scan_for_phi_accrual() {
        let intervals = [0u64, 95, 110, 100, 102, 98, 300, 90, 100, 100, 105, 410, 95, 100, 99, 101, 250, 100];
        let mut beats = Vec::new();
        let mut t = 0;
        for i in intervals {
            t += i;
            beats.push(ms(t));
        }
        let config = PhiAccrualConfig {
            threshold: 2.0,
            first_heartbeat_estimate: span(100),
            min_std_deviation: span(10),
            ..PhiAccrualConfig::default()
        };
        let end = ms(t + 500);
        let qos = evaluate(&mut PhiAccrual::new(config), &beats, Observation::failure_free(ms(0), end));
        // Brute force on a 10 µs grid: replay the detector and sample `suspects`.
        let mut d = PhiAccrual::new(config);
        let (mut suspected_ticks, mut transitions, mut was_suspected) = (0u64, 0u64, false);
        let mut next = 0;
        let step = Span::from_micros(10);
        let mut now = ms(0);
        while now < end {
            while next < beats.len() && beats[next] <= now {
                d.heartbeat(beats[next]);
                next += 1;
            }
            let suspected = d.suspects(now);
            suspected_ticks += u64::from(suspected);
            transitions += u64::from(suspected && !was_suspected);
            was_suspected = suspected;
            now = now + step;
        }
        assert!(qos.mistakes >= 3, "the test needs mistakes to be meaningful");
        assert_eq!(qos.mistakes, transitions);
        let brute = suspected_ticks as f64 * 0.01;
        let exact = qos.mistake_time.as_millis_f64();
        assert!((brute - exact).abs() <= 0.01 * qos.mistakes as f64 + 1e-9, "{brute} vs {exact}");
    }

    fn sample_qos() -> Vec<Qos> {
        let mut all = Vec::new();
        for (i, crash) in [None, Some(620), Some(500), Some(150), Some(900), None, Some(40)].into_iter().enumerate() {
            let start = ms(i as u64 * 10);
            let observation = Observation { start, end: ms(1000), crash: crash.map(ms) };
            all.push(evaluate(&mut timeout(60 + 20 * i as u64), &arrivals(BEATS), observation));
        }
        all
    }

    #[test]
    fn summary_merge_is_associative_and_matches_sequential_adds() {
        let all = sample_qos();
        let mut sequential = QosSummary::default();
        all.iter().for_each(|q| sequential.add(q));
        for split_a in 0..=all.len() {
            for split_b in split_a..=all.len() {
                let part = |range: std::ops::Range<usize>| {
                    all[range].iter().map(QosSummary::from).fold(QosSummary::default(), QosSummary::merge)
                };
                let (a, b, c) = (part(0..split_a), part(split_a..split_b), part(split_b..all.len()));
                assert_eq!(a.clone().merge(b.clone()).merge(c.clone()), sequential);
                assert_eq!(a.merge(b.merge(c)), sequential);
            }
        }
    }

    #[test]
    fn summary_reduced_with_rayon_is_identical_for_any_thread_count() {
        use rayon::prelude::*;
        let all: Vec<Qos> = (0..40).flat_map(|_| sample_qos()).collect();
        let reduce = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| all.par_iter().map(QosSummary::from).reduce(QosSummary::default, QosSummary::merge))
        };
        let one = reduce(1);
        assert_eq!(one.pairs, all.len() as u64);
        for threads in [2, 3, 8] {
            assert_eq!(reduce(threads), one);
        }
    }

    #[test]
    fn summary_pools_exactly() {
        let all = sample_qos();
        let summary = all.iter().map(QosSummary::from).fold(QosSummary::default(), QosSummary::merge);
        let up: u64 = all.iter().map(|q| q.up_time.as_nanos()).sum();
        let mistaken: u64 = all.iter().map(|q| q.mistake_time.as_nanos()).sum();
        let mistakes: u64 = all.iter().map(|q| q.mistakes).sum();
        assert_eq!(summary.query_accuracy(), Some((up - mistaken) as f64 / up as f64));
        assert_eq!(summary.mistake_duration_mean(), Some(Span::from_nanos(mistaken / mistakes)));
        assert_eq!(summary.crashes, 5);
        assert_eq!(summary.undetected() + summary.detection_times.len() as u64, 5);
    }

    /// Nearest rank, with the worked example of the Wikipedia article "Percentile"
    /// (samples 15, 20, 35, 40, 50).
    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Span> = [15, 20, 35, 40, 50].into_iter().map(span).collect();
        for (percent, expected) in [(5.0, 15), (30.0, 20), (40.0, 20), (50.0, 35), (100.0, 50)] {
            assert_eq!(nearest_rank(&samples, percent), Some(span(expected)), "p{percent}");
        }
        let hundred: Vec<Span> = (1..=100).map(span).collect();
        assert_eq!(nearest_rank(&hundred, 50.0), Some(span(50)));
        assert_eq!(nearest_rank(&hundred, 99.0), Some(span(99)));
        assert_eq!(nearest_rank(&hundred, 99.5), Some(span(100)));
        assert_eq!(nearest_rank(&[], 50.0), None);
        let summary = QosSummary {
            detection_times: vec![span(40), span(15), span(50), span(20), span(35)],
            ..QosSummary::default()
        };
        assert_eq!(summary.detection_time_percentile(50.0), Some(span(35)));
        assert_eq!(summary.detection_time_percentile(99.0), Some(span(50)));
        assert_eq!(summary.detection_time_mean(), Some(span(32)));
    }
}
