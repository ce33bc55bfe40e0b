//! The heartbeat/detector workload as a workload: its `[heartbeat]` table, and its run,
//! which records every monitor's signals and measures each failure detector at its
//! production default over them (`faultline detect` compares thresholds and seeds; see
//! [`crate::detect::eval`]). It has no checkers: a detector's mistakes are measured, not
//! violations.

use std::ops::Range;

use serde::Deserialize;
use serde::ser::{Serialize, Serializer};

use super::{DataProbeConfig, HeartbeatConfig, SwimConfig};
use crate::check::Violation;
use crate::detect::eval::{self, DetectFormat, DetectRow, DetectorKind};
use crate::detect::qos::QosSummary;
use crate::latency::LatencyDist;
use crate::scenario::raw::RawDist;
use crate::scenario::validate::{Check, FieldPath, Invalid, bad, count, count_or, dist, millis, millis_or, required};
use crate::scenario::{MAX_FOLLOWERS, Scenario};
use crate::time::Span;
use crate::trace::Tracer;
use crate::workload::{Drawn, Format, Merge, Table, Tally, Workload};

/// Heartbeats between every pair of nodes, SWIM and data-plane probes:
/// `protocol = "heartbeat"`, its table `[heartbeat]`.
pub struct Heartbeat;

/// One case under one seed: each default detector's quality of service.
pub struct HeartbeatRow(pub Vec<DetectRow>);

/// `faultline sweep` of a heartbeat scenario: per case, each default detector pooled over
/// the seeds.
pub struct HeartbeatSweepRow(pub Vec<DetectRow>);

/// Per default detector (and its threshold), its quality of service pooled in seed order
/// (exact: sums and concatenation).
pub struct Pooled(Vec<(DetectorKind, f64, QosSummary)>);

impl Merge for Pooled {
    fn merge(self, other: Pooled) -> Pooled {
        Pooled(self.0.into_iter().zip(other.0).map(|((k, t, a), (_, _, b))| (k, t, a.merge(b))).collect())
    }
}

impl Serialize for HeartbeatRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(eval::DetectOut::of))
    }
}

impl Serialize for HeartbeatSweepRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(eval::DetectOut::of))
    }
}

/// Each detector the scenario runs, at its production default: a 4 s timeout, φ 8 (Akka
/// and Cassandra), SWIM's suspicion multiplier 4, and one failed data-plane probe.
pub fn default_detectors(config: &HeartbeatConfig) -> Vec<(DetectorKind, f64)> {
    let mut detectors = vec![(DetectorKind::Timeout, 4000.0), (DetectorKind::Phi, 8.0), (DetectorKind::Cassandra, 8.0)];
    if config.swim.is_some() {
        detectors.push((DetectorKind::Swim, 4.0));
    }
    if config.data_probe.is_some() {
        detectors.push((DetectorKind::Probe, 1.0));
    }
    detectors
}

/// Every detector row of several runs or sweep rows, in order: one detect table.
fn flatten<'a>(groups: impl Iterator<Item = &'a [DetectRow]>) -> Vec<DetectRow> {
    groups.flat_map(|g| g.iter().cloned()).collect()
}

fn detect_format(format: Format) -> DetectFormat {
    match format {
        Format::Table => DetectFormat::Table,
        Format::Json => DetectFormat::Json,
    }
}

impl Workload for Heartbeat {
    const NAME: &'static str = "heartbeat";
    const SUMMARY: &'static str =
        "heartbeats, SWIM and data-plane probes among n nodes, for measuring failure detectors (faultline detect)";
    type Raw = RawHeartbeat;
    type Config = HeartbeatConfig;
    type Row = HeartbeatRow;
    type Sums = Pooled;
    type SweepRow = HeartbeatSweepRow;

    fn validate(raw: &RawHeartbeat, at: &FieldPath, _seed: Option<u64>) -> Result<Table<HeartbeatConfig>, Invalid> {
        let (config, duration) = heartbeat(raw, at)?;
        Ok(Table { config, duration })
    }
    fn node_names(config: &HeartbeatConfig) -> Vec<String> {
        config.node_names()
    }
    fn run(
        scenario: &Scenario,
        config: &HeartbeatConfig,
        case: usize,
        seed: u64,
        tracer: Option<Box<dyn Tracer>>,
    ) -> (HeartbeatRow, Option<Box<dyn Tracer>>) {
        let (signals, tracer) = eval::record_traced(scenario, config, case, seed, tracer);
        let period = eval::swim_period(config);
        let rows = default_detectors(config)
            .into_iter()
            .map(|(detector, threshold)| DetectRow {
                case: scenario.cases[case].name.clone(),
                detector,
                threshold,
                qos: eval::measure(&signals, detector, threshold, period),
            })
            .collect();
        (HeartbeatRow(rows), tracer)
    }
    fn violations(_: &HeartbeatRow) -> Vec<Violation> {
        Vec::new()
    }
    fn table(rows: &[HeartbeatRow]) -> String {
        let rows = flatten(rows.iter().map(|r| &r.0[..]));
        eval::render_table(&rows)
    }
    /// The table `faultline detect` prints, for the one seed.
    fn render_run(
        scenario: &Scenario,
        seed: u64,
        _drawn: &[Drawn],
        rows: &[HeartbeatRow],
        format: Format,
    ) -> serde_json::Result<String> {
        let rows = flatten(rows.iter().map(|r| &r.0[..]));
        eval::render(&scenario.name, seed..seed + 1, &rows, detect_format(format))
    }
    fn sums(row: &HeartbeatRow) -> Pooled {
        Pooled(row.0.iter().map(|r| (r.detector, r.threshold, r.qos.clone())).collect())
    }
    fn sweep_row(tally: &Tally, sums: Pooled) -> HeartbeatSweepRow {
        let case = match &tally.vary {
            None => tally.case.clone(),
            Some(v) => format!("{} {v}", tally.case),
        };
        HeartbeatSweepRow(
            sums.0
                .into_iter()
                .map(|(detector, threshold, qos)| DetectRow { case: case.clone(), detector, threshold, qos })
                .collect(),
        )
    }
    fn sweep_table(rows: &[HeartbeatSweepRow]) -> String {
        let rows = flatten(rows.iter().map(|r| &r.0[..]));
        eval::render_table(&rows)
    }
    fn render_sweep(
        scenario: &Scenario,
        seeds: Range<u64>,
        rows: &[HeartbeatSweepRow],
        format: Format,
    ) -> serde_json::Result<String> {
        let rows = flatten(rows.iter().map(|r| &r.0[..]));
        eval::render(&scenario.name, seeds, &rows, detect_format(format))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    pub nodes: Option<i64>,
    /// A constant heartbeat period, or `interval` for a distribution (not both).
    pub interval_ms: Option<f64>,
    pub interval: Option<RawDist>,
    /// Virtual time the run lasts (sets `limits.max_time_ms` unless that is given).
    pub duration_ms: Option<f64>,
    pub swim: Option<RawSwim>,
    pub data_probe: Option<RawDataProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwim {
    pub enabled: Option<bool>,
    pub interval_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub indirect: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataProbe {
    pub interval_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
}

/// The heartbeat workload, and how long it runs.
fn heartbeat(h: &RawHeartbeat, hp: &FieldPath) -> Check<(HeartbeatConfig, Option<Span>)> {
    let nodes = count(required(h.nodes, hp.key("nodes"))?, &hp.key("nodes"), 2, MAX_FOLLOWERS as i64 + 1)? as usize;
    let interval = match (&h.interval_ms, &h.interval) {
        (Some(_), Some(_)) => return bad(hp.key("interval"), "give interval_ms or interval, not both"),
        (Some(ms), None) => LatencyDist::Constant(millis(*ms, &hp.key("interval_ms"), false)?),
        (None, Some(d)) => {
            let interval = dist(d, &hp.key("interval"))?;
            let typical = match interval {
                LatencyDist::Constant(x) => x,
                LatencyDist::Uniform { max, .. } => max,
                LatencyDist::Normal { mean, .. } => mean,
                LatencyDist::LogNormal { median, .. } => median,
                LatencyDist::Pareto { scale, .. } => scale,
            };
            if typical == Span::ZERO {
                return bad(hp.key("interval"), "a heartbeat period must be positive");
            }
            interval
        }
        (None, None) => LatencyDist::Constant(Span::from_millis(1000)),
    };
    let duration = h.duration_ms.map(|ms| millis(ms, &hp.key("duration_ms"), false)).transpose()?;
    let swim = match &h.swim {
        Some(s) if s.enabled == Some(false) => None,
        None => Some(SwimConfig::default()),
        Some(s) => {
            let sp = hp.key("swim");
            let d = SwimConfig::default();
            let swim = SwimConfig {
                interval: millis_or(s.interval_ms, &sp.key("interval_ms"), d.interval)?,
                timeout: millis_or(s.timeout_ms, &sp.key("timeout_ms"), d.timeout)?,
                indirect: count_or(s.indirect, &sp.key("indirect"), 0, 64, d.indirect as u64)? as usize,
            };
            if swim.timeout >= swim.interval {
                return bad(sp.key("timeout_ms"), "must be shorter than the protocol period (interval_ms)");
            }
            Some(swim)
        }
    };
    let data_probe = match &h.data_probe {
        None => None,
        Some(p) => {
            let pp = hp.key("data_probe");
            let d = DataProbeConfig::default();
            Some(DataProbeConfig {
                interval: millis_or(p.interval_ms, &pp.key("interval_ms"), d.interval)?,
                timeout: millis_or(p.timeout_ms, &pp.key("timeout_ms"), d.timeout)?,
            })
        }
    };
    Ok((HeartbeatConfig { nodes, interval, swim, data_probe }, duration))
}
