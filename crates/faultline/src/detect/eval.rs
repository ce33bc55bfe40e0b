//! Detectors measured over simulated runs: `faultline detect`.
//!
//! One run of a heartbeat scenario ([`crate::protocols::heartbeat`]) records, for every
//! ordered pair (monitor, monitored), the heartbeats the monitor handled, SWIM's suspicions
//! and evidence of life, and the data-plane probes' outcomes. No detector changes what the
//! nodes send, so every detector and every threshold is evaluated over the same recorded
//! signals: one simulation per seed, however many configurations are compared.
//!
//! What a threshold means depends on the detector:
//!
//! | detector    | threshold                                  | output                         |
//! |-------------|--------------------------------------------|--------------------------------|
//! | `timeout`   | the timeout, in ms                          | suspect once that long silent  |
//! | `phi`       | φ (Akka's `threshold`)                     | [`PhiAccrual`]                 |
//! | `cassandra` | Cassandra's `phi_convict_threshold`        | [`CassandraPhi`]               |
//! | `swim`      | memberlist's `SuspicionMult`               | convicted once a suspicion has lasted `mult × max(1, log10 n) × period` without refutation |
//! | `probe`     | consecutive failed data-plane probes       | suspect from the k-th failure until a probe succeeds |
//!
//! Ground truth: a monitored node has *failed* from the first `crash`, `fail-stop` or
//! `gray` fault on it (a gray node answers its health checks but not its work: it has
//! failed, and a detector that never suspects it misses the failure). `pause`, `partition`
//! and the rest leave it up: suspicions during them are mistakes. Pairs whose monitor
//! fails are left out. The observation is the whole run, `[0, max_time)`.

use std::fmt;

use rayon::prelude::*;

use super::qos::{Observation, QosMeter, QosSummary};
use super::{
    CassandraPhi, CassandraPhiConfig, Detector, FixedTimeout, FixedTimeoutConfig, PhiAccrual, PhiAccrualConfig,
};
use serde::Serialize;

use crate::fault::FaultKind;
use crate::protocols::heartbeat::{HeartbeatConfig, Signal};
use crate::scenario::Scenario;
use crate::time::{Span, Time};
use crate::trace::Tracer;

/// The detectors `faultline detect` compares.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DetectorKind {
    Timeout,
    Phi,
    Cassandra,
    Swim,
    Probe,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 5] =
        [DetectorKind::Timeout, DetectorKind::Phi, DetectorKind::Cassandra, DetectorKind::Swim, DetectorKind::Probe];

    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Timeout => "timeout",
            DetectorKind::Phi => "phi",
            DetectorKind::Cassandra => "cassandra",
            DetectorKind::Swim => "swim",
            DetectorKind::Probe => "probe",
        }
    }

    pub fn parse(s: &str) -> Option<DetectorKind> {
        DetectorKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Ten thresholds spanning each detector's useful range, when none are given.
    pub fn default_thresholds(self) -> Vec<f64> {
        match self {
            DetectorKind::Timeout => {
                vec![1100.0, 1250.0, 1500.0, 1750.0, 2000.0, 2500.0, 3000.0, 4000.0, 5000.0, 6000.0]
            }
            DetectorKind::Phi | DetectorKind::Cassandra => vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0],
            DetectorKind::Swim => vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0],
            DetectorKind::Probe => vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        }
    }

    /// Checks a threshold; the message says what it must be.
    pub fn check_threshold(self, v: f64) -> Result<(), String> {
        let ok = v.is_finite()
            && v > 0.0
            && match self {
                DetectorKind::Probe => v.fract() == 0.0 && v <= 1000.0,
                // Judged in the integer nanoseconds the timeout runs on: 1e-10 ms is 0 ns.
                DetectorKind::Timeout => v <= 3.6e9 && Span::from_millis_f64(v) > Span::ZERO,
                _ => v <= 1e6,
            };
        if ok {
            return Ok(());
        }
        Err(match self {
            DetectorKind::Timeout => format!(
                "timeout threshold {v}: expected a timeout in ms, at least 0.000001 (1 ns) and at most 3600000000"
            ),
            DetectorKind::Probe => format!("probe threshold {v}: expected a whole number of failed probes, 1 to 1000"),
            _ => format!("{} threshold {v}: expected a positive number", self.name()),
        })
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of results: a case, a detector and a threshold, pooled over pairs and seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectRow {
    pub case: String,
    pub detector: DetectorKind,
    pub threshold: f64,
    pub qos: QosSummary,
}

/// What one run recorded, per ordered pair `monitor * n + monitored`.
#[derive(Clone, Debug, Default)]
pub struct Signals {
    pub nodes: usize,
    pub end: Time,
    /// When each node failed (crash, fail-stop or gray), if it did.
    pub failed_at: Vec<Option<Time>>,
    pub heartbeats: Vec<Vec<Time>>,
    /// SWIM: `true` evidence of life, `false` a suspicion, in time order.
    pub swim: Vec<Vec<(Time, bool)>>,
    /// Data-plane probes: `true` answered, `false` failed, in time order.
    pub data: Vec<Vec<(Time, bool)>>,
}

impl Signals {
    fn pair(&self, monitor: usize, monitored: usize) -> usize {
        monitor * self.nodes + monitored
    }

    /// The pairs that are measured: both ends distinct, and the monitor never fails.
    fn pairs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.nodes)
            .filter(|&m| self.failed_at[m].is_none())
            .flat_map(move |m| (0..self.nodes).filter(move |&q| q != m).map(move |q| (m, q)))
    }

    fn observation(&self, monitored: usize) -> Observation {
        Observation { start: Time::ZERO, end: self.end, crash: self.failed_at[monitored] }
    }
}

/// The heartbeat workload of `scenario`, or an error naming the protocol it runs.
pub fn heartbeat_config(scenario: &Scenario) -> Result<&HeartbeatConfig, String> {
    // By its configuration's type: only the heartbeat workload's is a HeartbeatConfig.
    scenario.config::<HeartbeatConfig>().ok_or_else(|| {
        format!(
            "scenario {:?} runs protocol {:?}; faultline detect needs protocol = \"heartbeat\"",
            scenario.name,
            scenario.protocol()
        )
    })
}

/// Runs case `case` of a heartbeat scenario with `seed` and records its signals.
pub fn record(scenario: &Scenario, config: &HeartbeatConfig, case: usize, seed: u64) -> Signals {
    record_traced(scenario, config, case, seed, None).0
}

/// SWIM's protocol period (what its suspicion multiplier scales), 1 s when SWIM is off.
pub fn swim_period(config: &HeartbeatConfig) -> Span {
    config.swim.as_ref().map_or(Span::from_secs(1), |s| s.interval)
}

/// As [`record`], feeding `tracer` (handed back afterwards).
pub fn record_traced(
    scenario: &Scenario,
    config: &HeartbeatConfig,
    case: usize,
    seed: u64,
    tracer: Option<Box<dyn Tracer>>,
) -> (Signals, Option<Box<dyn Tracer>>) {
    let n = config.nodes;
    let faults = scenario.faults(case, seed);
    let mut failed_at: Vec<Option<Time>> = vec![None; n];
    for f in &faults {
        if matches!(f.kind, FaultKind::Crash | FaultKind::FailStop | FaultKind::Gray { .. }) {
            let at = &mut failed_at[f.node.index()];
            *at = Some(at.map_or(f.start, |t| t.min(f.start)));
        }
    }
    let mut sim = scenario.build_with(config.build(), case, seed);
    if let Some(t) = tracer {
        sim.set_tracer(t);
    }
    let mut s = Signals {
        nodes: n,
        end: scenario.limits.max_time,
        failed_at,
        heartbeats: vec![Vec::new(); n * n],
        swim: vec![Vec::new(); n * n],
        data: vec![Vec::new(); n * n],
    };
    let stop = loop {
        let stopped = sim.step();
        for o in sim.drain_observations() {
            let m = o.node.index();
            match o.obs {
                Signal::Heartbeat { from } => s.heartbeats[m * n + from.index()].push(o.time),
                Signal::Alive { target } => s.swim[m * n + target.index()].push((o.time, true)),
                Signal::Suspect { target } => s.swim[m * n + target.index()].push((o.time, false)),
                Signal::DataOk { to } => s.data[m * n + to.index()].push((o.time, true)),
                Signal::DataFailed { to } => s.data[m * n + to.index()].push((o.time, false)),
            }
        }
        if let Some(reason) = stopped {
            break reason;
        }
    };
    // A run that stopped early (a limit on events) was observed only until then.
    if stop != crate::sim::world::StopReason::MaxTime {
        s.end = sim.now();
    }
    (s, sim.take_tracer())
}

/// Measures one detector at one threshold over one run's signals, pooled over its pairs.
pub fn measure(signals: &Signals, detector: DetectorKind, threshold: f64, swim_period: Span) -> QosSummary {
    let mut summary = QosSummary::default();
    for (m, q) in signals.pairs() {
        let p = signals.pair(m, q);
        let observation = signals.observation(q);
        let qos = match detector {
            DetectorKind::Timeout => {
                let config = FixedTimeoutConfig { timeout: Span::from_millis_f64(threshold) };
                heartbeat_qos(FixedTimeout::new(config), &signals.heartbeats[p], observation)
            }
            DetectorKind::Phi => {
                let config = PhiAccrualConfig { threshold, ..PhiAccrualConfig::default() };
                heartbeat_qos(PhiAccrual::new(config), &signals.heartbeats[p], observation)
            }
            DetectorKind::Cassandra => {
                let config = CassandraPhiConfig { threshold, ..CassandraPhiConfig::default() };
                heartbeat_qos(CassandraPhi::new(config), &signals.heartbeats[p], observation)
            }
            DetectorKind::Swim => {
                let scale = (signals.nodes as f64).log10().max(1.0);
                let timeout = Span::from_nanos((threshold * scale * swim_period.as_nanos() as f64) as u64);
                timeline_qos(&swim_timeline(&signals.swim[p], timeout), observation)
            }
            DetectorKind::Probe => timeline_qos(&probe_timeline(&signals.data[p], threshold as usize), observation),
        };
        summary.add(&qos);
    }
    summary
}

fn heartbeat_qos<D: Detector>(mut d: D, arrivals: &[Time], observation: Observation) -> super::qos::Qos {
    super::qos::evaluate(&mut d, arrivals, observation)
}

/// A detector's output as `(trusted from, suspected from)` pieces: trusted from each
/// instant until the next, suspected from the second until the next piece begins.
type Timeline = Vec<(Time, Time)>;

fn timeline_qos(timeline: &Timeline, observation: Observation) -> super::qos::Qos {
    let mut meter = QosMeter::new(observation);
    for &(trust, suspect) in timeline {
        meter.heartbeat(trust, Some(suspect));
    }
    meter.finish()
}

/// SWIM's conviction over its signals: trusted from the start and after each piece of
/// evidence of life; convicted `timeout` after the first suspicion that no evidence of life
/// followed within `timeout`.
fn swim_timeline(signals: &[(Time, bool)], timeout: Span) -> Timeline {
    let mut out: Timeline = Vec::new();
    let mut trust = Time::ZERO;
    let mut first_suspicion: Option<Time> = None;
    for &(at, alive) in signals {
        if alive {
            out.push((trust, first_suspicion.map_or(Time::MAX, |s| (s + timeout).max(trust))));
            trust = at;
            first_suspicion = None;
        } else if first_suspicion.is_none() {
            first_suspicion = Some(at);
        }
    }
    out.push((trust, first_suspicion.map_or(Time::MAX, |s| (s + timeout).max(trust))));
    out
}

/// The data-plane probe detector: trusted from the start and from each answered probe;
/// suspected from the `k`-th consecutive failure.
fn probe_timeline(signals: &[(Time, bool)], k: usize) -> Timeline {
    let mut out: Timeline = Vec::new();
    let mut trust = Time::ZERO;
    let (mut failures, mut convicted) = (0usize, Time::MAX);
    for &(at, ok) in signals {
        if ok {
            out.push((trust, convicted));
            trust = at;
            (failures, convicted) = (0, Time::MAX);
        } else {
            failures += 1;
            if failures == k {
                convicted = at;
            }
        }
    }
    out.push((trust, convicted));
    out
}

/// Runs every case of `scenario` over `seeds` and measures every detector at every
/// threshold. Seeds run in parallel, drawn from the range as they are needed (a range of a
/// billion seeds costs no memory up front); the pooled results do not depend on the thread
/// count (the merge is exact, and rows are assembled in a fixed order).
pub fn detect(
    scenario: &Scenario,
    detectors: &[(DetectorKind, Vec<f64>)],
    seeds: std::ops::Range<u64>,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<DetectRow>, String> {
    let config = heartbeat_config(scenario)?;
    let period = swim_period(config);
    for (kind, _) in detectors {
        if *kind == DetectorKind::Swim && config.swim.is_none() {
            return Err(format!("scenario {:?} turns SWIM off ([heartbeat.swim] enabled = false)", scenario.name));
        }
        if *kind == DetectorKind::Probe && config.data_probe.is_none() {
            return Err(format!(
                "scenario {:?} has no data-plane probes: add [heartbeat] data_probe = {{ interval_ms = 1000, timeout_ms = 500 }}",
                scenario.name
            ));
        }
    }
    let configs: Vec<(DetectorKind, f64)> =
        detectors.iter().flat_map(|(k, ts)| ts.iter().map(move |&t| (*k, t))).collect();
    let mut rows = Vec::new();
    for case in 0..scenario.cases.len() {
        let pooled = seeds
            .clone()
            .into_par_iter()
            .map(|seed| {
                let signals = record(scenario, config, case, seed);
                let out: Vec<QosSummary> = configs.iter().map(|&(k, t)| measure(&signals, k, t, period)).collect();
                progress();
                out
            })
            .reduce(
                || vec![QosSummary::default(); configs.len()],
                |a, b| a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect(),
            );
        for (&(detector, threshold), qos) in configs.iter().zip(pooled) {
            rows.push(DetectRow { case: scenario.cases[case].name.clone(), detector, threshold, qos });
        }
    }
    Ok(rows)
}

/// How `faultline detect` prints its rows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DetectFormat {
    Table,
    Json,
    Csv,
}

/// One output row of `faultline detect`: the JSON and CSV fields.
#[derive(Serialize)]
pub struct DetectOut<'a> {
    case: &'a str,
    detector: &'static str,
    threshold: f64,
    pairs: u64,
    crashes: u64,
    undetected: u64,
    t_d_ms_p50: Option<f64>,
    t_d_ms_p99: Option<f64>,
    t_mr_s: Option<f64>,
    t_m_ms: Option<f64>,
    p_a: Option<f64>,
    false_suspicions: u64,
}

impl DetectOut<'_> {
    pub fn of(r: &DetectRow) -> DetectOut<'_> {
        let q = &r.qos;
        DetectOut {
            case: &r.case,
            detector: r.detector.name(),
            threshold: r.threshold,
            pairs: q.pairs,
            crashes: q.crashes,
            undetected: q.undetected(),
            t_d_ms_p50: q.detection_time_percentile(50.0).map(|s| s.as_millis_f64()),
            t_d_ms_p99: q.detection_time_percentile(99.0).map(|s| s.as_millis_f64()),
            t_mr_s: q.mistake_recurrence_mean().map(|s| s.as_millis_f64() / 1e3),
            t_m_ms: q.mistake_duration_mean().map(|s| s.as_millis_f64()),
            p_a: q.query_accuracy(),
            false_suspicions: q.mistakes,
        }
    }
}

/// The rows as `faultline detect` prints them: a header naming the scenario and the seeds,
/// then a table, JSON `{ "rows", "scenario", "seeds" }`, or CSV.
pub fn render(
    scenario: &str,
    seeds: std::ops::Range<u64>,
    rows: &[DetectRow],
    format: DetectFormat,
) -> serde_json::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    match format {
        DetectFormat::Table => {
            let _ = writeln!(out, "scenario: {scenario}  seeds: {}..{}", seeds.start, seeds.end);
            out.push_str(&render_table(rows));
        }
        DetectFormat::Json => {
            let rows: Vec<DetectOut<'_>> = rows.iter().map(DetectOut::of).collect();
            let json = serde_json::json!({ "scenario": scenario, "seeds": [seeds.start, seeds.end], "rows": rows });
            let _ = writeln!(out, "{}", serde_json::to_string_pretty(&json)?);
        }
        DetectFormat::Csv => {
            let _ = writeln!(
                out,
                "case,detector,threshold,pairs,crashes,undetected,t_d_ms_p50,t_d_ms_p99,t_mr_s,t_m_ms,p_a,false_suspicions"
            );
            let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
            for r in rows.iter().map(DetectOut::of) {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    r.case,
                    r.detector,
                    r.threshold,
                    r.pairs,
                    r.crashes,
                    r.undetected,
                    cell(r.t_d_ms_p50),
                    cell(r.t_d_ms_p99),
                    cell(r.t_mr_s),
                    cell(r.t_m_ms),
                    cell(r.p_a),
                    r.false_suspicions
                );
            }
        }
    }
    Ok(out)
}

/// The detect table's column header and rows.
pub fn render_table(rows: &[DetectRow]) -> String {
    use std::fmt::Write as _;
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<10} {:>9} {:>10} {:>10} {:>11} {:>10} {:>9} {:>9} {:>10}",
        "case",
        "detector",
        "threshold",
        "T_D p50 ms",
        "T_D p99 ms",
        "undetected",
        "T_MR s",
        "T_M ms",
        "P_A",
        "mistakes"
    );
    for r in rows.iter().map(DetectOut::of) {
        let _ = writeln!(
            out,
            "{:<14} {:<10} {:>9} {:>10} {:>10} {:>11} {:>10} {:>9} {:>9} {:>10}",
            r.case,
            r.detector,
            r.threshold,
            opt(r.t_d_ms_p50, 1),
            opt(r.t_d_ms_p99, 1),
            if r.crashes == 0 { "-".to_owned() } else { format!("{}/{}", r.undetected, r.crashes) },
            opt(r.t_mr_s, 1),
            opt(r.t_m_ms, 1),
            opt(r.p_a, 6),
            r.false_suspicions
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Time {
        Time::ZERO + Span::from_millis(ms)
    }

    #[test]
    fn swim_convicts_only_suspicions_that_outlast_the_timeout() {
        let signals = [(t(1000), true), (t(2000), false), (t(3000), true), (t(5000), false)];
        let timeline = swim_timeline(&signals, Span::from_millis(1500));
        // Suspected at 2 s, refuted at 3 s: never convicted. Suspected at 5 s: convicted at 6.5 s.
        assert_eq!(timeline, vec![(t(0), Time::MAX), (t(1000), t(3500)), (t(3000), t(6500))]);
        let qos = timeline_qos(&timeline, Observation::failure_free(Time::ZERO, t(10_000)));
        // The (1 s, 3.5 s) piece is cut by the next trust at 3 s: one mistake, 6.5 s to 10 s.
        assert_eq!(qos.mistakes, 1);
        assert_eq!(qos.mistake_time, Span::from_millis(3500));
    }

    #[test]
    fn probe_detector_waits_for_k_consecutive_failures() {
        let signals = [(t(1000), false), (t(2000), true), (t(3000), false), (t(4000), false), (t(5000), true)];
        assert_eq!(probe_timeline(&signals, 2), vec![(t(0), Time::MAX), (t(2000), t(4000)), (t(5000), Time::MAX)]);
        assert_eq!(probe_timeline(&signals, 1), vec![(t(0), t(1000)), (t(2000), t(3000)), (t(5000), Time::MAX)]);
    }
}
