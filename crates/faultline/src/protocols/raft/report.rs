//! A Raft run, reported: the safety and liveness checkers, the cost figures (messages per
//! committed entry, commit latency, availability), the figures the chapter's incidents are
//! told in (failover time, write unavailability, dual-leader window, stale confirmations,
//! follower lag, silently wrong reads), and a compact terminal timeline of who led when.

use std::collections::BTreeMap;

use serde::Serialize;

use super::check as checks;
use super::{ClientResult, Command, Op, RaftConfig, RaftObs, durable_log};
use crate::check::Violation;
use crate::detect::qos::nearest_rank;
use crate::fault::{Fault, FaultKind};
use crate::protocol::NodeId;
use crate::scenario::Scenario;
use crate::sim::world::{Observed, StopReason};
use crate::time::{Span, Time};
use crate::trace::Tracer;

/// One case of a Raft scenario under one seed.
#[derive(Clone, Debug, Serialize)]
pub struct RaftRow {
    pub case: String,
    /// The clients' history (`faultline run --history`), not part of the printed row.
    #[serde(skip)]
    pub history: crate::linear::History,
    pub seed: u64,
    pub stop: StopReason,
    pub end_ms: f64,
    /// `(term, leader, elected at ms)`, in election order.
    pub leaders: Vec<(u64, String, f64)>,
    /// Entries committed: the highest index any server applied.
    pub committed: u64,
    pub writes: Outcomes,
    pub reads: Outcomes,
    /// Fraction of client writes that succeeded (`ok / all write outcomes`).
    pub availability: Option<f64>,
    /// Client write latency, invoke to success, over the writes that succeeded.
    pub commit_latency_ms_p50: Option<f64>,
    pub commit_latency_ms_p99: Option<f64>,
    /// Messages sent by every node (retries and heartbeats included).
    pub messages: u64,
    pub messages_per_commit: Option<f64>,
    /// From the first crash, pause or restart of a leader to the next leader's election.
    pub failover_ms: Option<f64>,
    /// The longest stretch in which no client was told a write succeeded, between the first
    /// and last such replies (or the end of the run, if writes stopped succeeding while
    /// clients kept asking).
    pub write_unavailable_ms: f64,
    /// When the longest stretch began.
    pub write_unavailable_from_ms: f64,
    /// Total time during which two or more servers believed they led.
    pub dual_leader_ms: f64,
    /// Operations confirmed to clients by leaders already superseded.
    pub stale_confirmations: u64,
    /// Reads that returned a value no write to that key had written (applied anywhere, at
    /// any index) by then: served silently wrong.
    pub wrong_reads_served: u64,
    /// Reads a client rejected because their checksum did not match.
    pub corrupt_caught: u64,
    /// Per server, the largest lag in entries behind the leader's last index.
    pub lag_max: Vec<u64>,
    /// Sample times in seconds (at most 120, from the leader's progress reports), and per
    /// server its lag in entries at each.
    pub lag_times_s: Vec<f64>,
    pub lag_series: Vec<Vec<u64>>,
    #[serde(serialize_with = "crate::check::serialize_violations")]
    pub violations: Vec<Violation>,
    #[serde(skip)]
    pub timeline: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcomes {
    pub ok: u64,
    /// Definitely did not happen.
    pub failed: u64,
    /// Timed out: may or may not have happened.
    pub unknown: u64,
}

fn ms(t: Time) -> f64 {
    t.as_millis_f64()
}

/// Runs case `case` of a Raft scenario and reports it.
pub fn run_case(scenario: &Scenario, config: &RaftConfig, case: usize, seed: u64, liveness: Span) -> RaftRow {
    run_case_traced(scenario, config, case, seed, liveness, None).0
}

/// As [`run_case`], recording every event with `tracer` (handed back afterwards).
pub fn run_case_traced(
    scenario: &Scenario,
    config: &RaftConfig,
    case: usize,
    seed: u64,
    liveness: Span,
    tracer: Option<Box<dyn Tracer>>,
) -> (RaftRow, Option<Box<dyn Tracer>>) {
    let faults = scenario.faults(case, seed);
    let mut sim = scenario.build_with(config.nodes(), case, seed);
    if let Some(t) = tracer {
        sim.set_tracer(t);
    }
    let stop = sim.run();
    let tracer = sim.take_tracer();
    let end = sim.now();
    let obs: Vec<Observed<RaftObs>> = sim.drain_observations().collect();
    let final_logs: Vec<_> = (0..config.servers).map(|s| durable_log(sim.disk(NodeId(s as u32)))).collect();
    let names = config.node_names();

    let mut violations = checks::safety(&obs, &final_logs);
    let healed = faults.iter().map(|f| f.end.unwrap_or(f.start)).max().unwrap_or(Time::ZERO);
    violations.extend(checks::eventually_commits(&obs, healed, liveness, end));

    let leaders: Vec<(u64, String, f64)> = obs
        .iter()
        .filter_map(|o| match &o.obs {
            RaftObs::Leader { term, .. } => Some((*term, names[o.node.index()].clone(), ms(o.time))),
            _ => None,
        })
        .collect();

    // Client outcomes, and write latency.
    let mut invoked: BTreeMap<(u32, u64), (Time, Op)> = BTreeMap::new();
    let (mut writes, mut reads) = (Outcomes::default(), Outcomes::default());
    let mut latencies: Vec<Span> = Vec::new();
    let mut wrong_reads_served = 0;
    let mut corrupt_caught = 0;
    let mut written: BTreeMap<u64, u32> = BTreeMap::new(); // value -> key
    let mut acked_writes: Vec<Time> = Vec::new();
    let mut seen_index = 0u64;
    for o in &obs {
        match &o.obs {
            RaftObs::Applied { index, cmd, .. } => {
                seen_index = seen_index.max(*index);
                if let Command::Op { op: Op::Put { key, value }, .. } = cmd {
                    written.insert(*value, *key);
                }
            }
            RaftObs::Invoke { client, seq, op } => {
                invoked.insert((*client, *seq), (o.time, *op));
            }
            RaftObs::CorruptCaught { .. } => corrupt_caught += 1,
            RaftObs::Outcome { client, seq, result } => {
                let Some(&(at, op)) = invoked.get(&(*client, *seq)) else { continue };
                let is_write = matches!(op, Op::Put { .. });
                let tally = if is_write { &mut writes } else { &mut reads };
                match result {
                    ClientResult::Ok { value } => {
                        tally.ok += 1;
                        if is_write {
                            latencies.push(o.time.since(at));
                            acked_writes.push(o.time);
                        } else if let (Some(v), Op::Get { key }) = (value, op)
                            && written.get(v) != Some(&key)
                        {
                            wrong_reads_served += 1;
                        }
                    }
                    ClientResult::Fail => tally.failed += 1,
                    ClientResult::Unknown => tally.unknown += 1,
                }
            }
            _ => {}
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| nearest_rank(&latencies, p).map(Span::as_millis_f64);
    let total_writes = writes.ok + writes.failed + writes.unknown;

    // The longest stretch without a write acknowledged.
    let (mut gap, mut gap_from) = (Span::ZERO, Time::ZERO);
    for w in acked_writes.windows(2) {
        if w[1].since(w[0]) > gap {
            (gap, gap_from) = (w[1].since(w[0]), w[0]);
        }
    }
    if let Some(&last) = acked_writes.last()
        && end.since(last) > gap
        && invoked.values().any(|&(at, op)| matches!(op, Op::Put { .. }) && at > last)
    {
        (gap, gap_from) = (end.since(last), last);
    }

    let failover_ms = failover(&faults, &obs).map(|s| s.as_millis_f64());
    let (lag_max, lag_times_s, lag_series) = lag(&obs, config.servers);
    let messages = sim.stats().sends;
    let row = RaftRow {
        history: checks::history(&obs).0,
        case: scenario.cases[case].name.clone(),
        seed,
        stop,
        end_ms: ms(end),
        leaders,
        committed: seen_index,
        availability: (total_writes > 0).then(|| writes.ok as f64 / total_writes as f64),
        commit_latency_ms_p50: pct(50.0),
        commit_latency_ms_p99: pct(99.0),
        writes,
        reads,
        messages,
        messages_per_commit: (seen_index > 0).then(|| messages as f64 / seen_index as f64),
        failover_ms,
        write_unavailable_ms: gap.as_millis_f64(),
        write_unavailable_from_ms: ms(gap_from),
        dual_leader_ms: dual_leader(&obs, &faults, config.servers, end).as_millis_f64(),
        stale_confirmations: checks::stale_confirmations(&obs),
        wrong_reads_served,
        corrupt_caught,
        lag_max,
        lag_times_s,
        lag_series,
        violations,
        timeline: timeline(&obs, &faults, &names[..config.servers], end),
    };
    (row, tracer)
}

/// Faults that take a node down: it leads no more, whatever it last believed.
fn down(kind: &FaultKind) -> bool {
    matches!(kind, FaultKind::Crash | FaultKind::FailStop | FaultKind::Restart)
}

/// From the first fault that stops a node while it leads to the next election.
fn failover(faults: &[Fault], obs: &[Observed<RaftObs>]) -> Option<Span> {
    for f in faults.iter().filter(|f| down(&f.kind) || matches!(f.kind, FaultKind::Pause)) {
        let leading = leader_at(obs, f.start);
        if leading == Some(f.node) {
            let next = obs.iter().find(|o| o.time > f.start && matches!(o.obs, RaftObs::Leader { .. }))?;
            return Some(next.time.since(f.start));
        }
    }
    None
}

/// The server that most recently became leader at or before `at` (and has not stepped
/// down), if any.
fn leader_at(obs: &[Observed<RaftObs>], at: Time) -> Option<NodeId> {
    let mut leader = None;
    for o in obs.iter().take_while(|o| o.time <= at) {
        match o.obs {
            RaftObs::Leader { .. } => leader = Some(o.node),
            RaftObs::SteppedDown { .. } if leader == Some(o.node) => leader = None,
            _ => {}
        }
    }
    leader
}

/// Total time with two or more live servers believing they lead. A node taken down by a
/// crash, fail-stop or restart leads no more (it reports nothing as it goes).
fn dual_leader(obs: &[Observed<RaftObs>], faults: &[Fault], servers: usize, end: Time) -> Span {
    enum Change {
        Leads(usize),
        Stops(usize),
    }
    let mut changes: Vec<(Time, Change)> = Vec::new();
    for o in obs {
        let i = o.node.index();
        match o.obs {
            RaftObs::Leader { .. } if i < servers => changes.push((o.time, Change::Leads(i))),
            RaftObs::SteppedDown { .. } if i < servers => changes.push((o.time, Change::Stops(i))),
            _ => {}
        }
    }
    for f in faults.iter().filter(|f| down(&f.kind) && f.node.index() < servers) {
        changes.push((f.start, Change::Stops(f.node.index())));
    }
    // Stable: observations keep their order, and a fault at the same instant comes after.
    changes.sort_by_key(|(t, _)| *t);
    let mut leading = vec![false; servers];
    let mut total = 0u64;
    let mut since: Option<Time> = None;
    for (at, change) in changes {
        match change {
            Change::Leads(i) => leading[i] = true,
            Change::Stops(i) => leading[i] = false,
        }
        let many = leading.iter().filter(|&&l| l).count() >= 2;
        match (many, since) {
            (true, None) => since = Some(at),
            (false, Some(s)) => {
                total += at.since(s).as_nanos();
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        total += end.since(s).as_nanos();
    }
    Span::from_nanos(total)
}

/// Per server the largest lag behind the leader's last index, and the lag over time (at
/// most 120 samples, evenly spaced among the leader's progress reports).
fn lag(obs: &[Observed<RaftObs>], servers: usize) -> (Vec<u64>, Vec<f64>, Vec<Vec<u64>>) {
    let mut max = vec![0u64; servers];
    let mut samples: Vec<(Time, Vec<u64>)> = Vec::new();
    for o in obs {
        if let RaftObs::Progress { match_index, .. } = &o.obs {
            let head = match_index.iter().copied().max().unwrap_or(0);
            let lags: Vec<u64> = match_index.iter().map(|&m| head - m.min(head)).collect();
            for (m, l) in max.iter_mut().zip(&lags) {
                *m = (*m).max(*l);
            }
            samples.push((o.time, lags));
        }
    }
    let step = samples.len().div_ceil(120).max(1);
    let kept: Vec<&(Time, Vec<u64>)> = samples.iter().step_by(step).collect();
    let times = kept.iter().map(|(t, _)| t.as_millis_f64() / 1e3).collect();
    let series = (0..servers).map(|s| kept.iter().map(|(_, l)| l.get(s).copied().unwrap_or(0)).collect()).collect();
    (max, times, series)
}

/// One row per server over the run, 72 columns: `L` while it believes it leads, `.` while
/// it follows, `X` while a crash, fail-stop or restart holds it down, `P` while paused; the
/// header marks each term's election.
pub fn timeline(obs: &[Observed<RaftObs>], faults: &[Fault], names: &[String], end: Time) -> String {
    const COLS: usize = 72;
    let span = end.as_nanos().max(1);
    let col = |t: Time| ((t.as_nanos() as u128 * COLS as u128 / span as u128) as usize).min(COLS - 1);
    let mut rows: Vec<Vec<u8>> = vec![vec![b'.'; COLS]; names.len()];
    // Leadership intervals.
    let mut since: Vec<Option<Time>> = vec![None; names.len()];
    let mark = |rows: &mut Vec<Vec<u8>>, s: usize, from: Time, to: Time| {
        rows[s][col(from.min(to))..=col(to)].fill(b'L');
    };
    for o in obs {
        let s = o.node.index();
        if s >= names.len() {
            continue;
        }
        match o.obs {
            RaftObs::Leader { .. } => {
                // Elected again without a step-down on record (a restart hid it): the
                // previous term in office still shows.
                if let Some(from) = since[s].replace(o.time) {
                    mark(&mut rows, s, from, o.time);
                }
            }
            RaftObs::SteppedDown { .. } => {
                if let Some(from) = since[s].take() {
                    mark(&mut rows, s, from, o.time);
                }
            }
            _ => {}
        }
    }
    for (s, from) in since.iter().enumerate() {
        if let Some(from) = from {
            mark(&mut rows, s, *from, end);
        }
    }
    for f in faults {
        let s = f.node.index();
        if s >= names.len() {
            continue;
        }
        let ch = match f.kind {
            FaultKind::Crash | FaultKind::FailStop | FaultKind::Restart => b'X',
            FaultKind::Pause => b'P',
            _ => continue,
        };
        let to = f.end.unwrap_or(end).min(end);
        // A fault due after the run ended (a run shorter than its schedule) is not drawn.
        if f.start > to {
            continue;
        }
        rows[s][col(f.start)..=col(to)].fill(ch);
    }
    let mut out = String::new();
    let mut header = vec![b' '; COLS];
    for o in obs {
        if let RaftObs::Leader { term, .. } = o.obs {
            let digit = b"0123456789"[(term % 10) as usize];
            header[col(o.time)] = digit;
        }
    }
    let width = names.iter().map(String::len).max().unwrap_or(2).max(4);
    out.push_str(&format!("{:width$} |{}| elections (term mod 10)\n", "term", String::from_utf8_lossy(&header)));
    for (name, row) in names.iter().zip(&rows) {
        out.push_str(&format!("{name:width$} |{}|\n", String::from_utf8_lossy(row)));
    }
    out.push_str(&format!("{:width$}  0{:>w$}\n", "", format!("{:.1} s", end.as_millis_f64() / 1e3), w = COLS + 1));
    out.push_str("L leader  . follower  X down (crash, restart)  P paused\n");
    out
}

/// One case of a Raft scenario over many seeds (and one `--vary` value).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RaftSweepRow {
    pub case: String,
    pub vary: Option<String>,
    pub seeds: u64,
    /// Seeds with at least one violation, and the first of them.
    pub violating_seeds: u64,
    pub first_violating_seed: Option<u64>,
    /// Per property, the seeds that violated it.
    pub by_property: BTreeMap<String, u64>,
    /// Client writes over all seeds: succeeded, and all outcomes.
    pub writes_ok: u64,
    pub writes: u64,
    pub committed: u64,
    pub messages: u64,
}
