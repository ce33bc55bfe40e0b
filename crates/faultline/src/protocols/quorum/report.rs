//! The coordinator's runs, reported: one row per case (the chapter's columns, then every
//! round's totals), its sweep row, and their tables.
//!
//! Rows are built from the protocol's observations, never from hard-coded expectations.

use std::fmt::Write as _;

use serde::Serialize;

use super::check::{RoundViolation, acked_not_durable, agreement_on_proposal};
use super::{QuorumConfig, Reason, durable_round, node_name};
use crate::scenario::Scenario;
use crate::sim::world::{Stats, StopReason};
use crate::trace::Tracer;
use crate::workload::{Merge, Tally};

/// One case of one run. The fields from `name` to `winning_data` are the chapter's columns
/// and, with `rejected`, describe the first round; the rest summarise every round of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    pub acks: usize,
    pub followers: usize,
    pub quorum: usize,
    pub agreed: bool,
    pub tampered_seen: bool,
    pub winning_data: Option<String>,
    /// Round 1's acks that arrived in time and were not counted, in arrival order (the
    /// outvoted last).
    pub rejected: Vec<RejectedAck>,
    /// The coordinator's defences: a preset's name, or what is switched on.
    pub coordinator: String,
    pub rounds: u64,
    pub agreed_rounds: u64,
    pub acks_total: u64,
    pub tampered_rounds: u64,
    /// Acks rejected over all rounds (while their round was open).
    pub rejected_total: u64,
    /// Ground truth over all rounds: counted acks that misreport their sender or carry
    /// other data than the proposal. A correct coordinator keeps this at 0 for corruption
    /// and forgery; no coordinator can for a Byzantine quorum.
    pub corrupt_counted: u64,
    /// Over all rounds: counted acks whose follower had not made the append durable
    /// (`check::acked_not_durable`; the `lie` fault). Reported, not a violation.
    pub acked_not_durable: u64,
    pub events: u64,
    pub end_ns: u64,
    pub stop: StopReason,
    pub stats: Stats,
    pub violations: Vec<RoundViolation>,
}

/// An ack the coordinator did not count.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RejectedAck {
    /// The follower the ack claimed to come from.
    pub follower: String,
    pub reason: Reason,
    /// Who really sent it (ground truth), when that is not `follower`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_by: Option<String>,
}

/// Runs case `case` of a quorum scenario with root seed `seed`, feeding `tracer` if given.
///
/// # Panics
/// If the scenario runs another workload.
pub fn run_case(
    scenario: &Scenario,
    case: usize,
    seed: u64,
    tracer: Option<Box<dyn Tracer>>,
) -> (Row, Option<Box<dyn Tracer>>) {
    run(scenario, super::config(scenario), case, seed, tracer)
}

/// As [`run_case`], with the coordinator's configuration at hand.
pub fn run(
    scenario: &Scenario,
    config: &QuorumConfig,
    case: usize,
    seed: u64,
    tracer: Option<Box<dyn Tracer>>,
) -> (Row, Option<Box<dyn Tracer>>) {
    let mut sim = scenario.build_with(config.nodes(), case, seed);
    if let Some(t) = tracer {
        sim.set_tracer(t);
    }
    let mut row = Row {
        name: scenario.cases[case].name.clone(),
        acks: 0,
        followers: config.followers,
        quorum: config.quorum(),
        agreed: false,
        tampered_seen: false,
        winning_data: None,
        rejected: Vec::new(),
        coordinator: config.defences.label(),
        rounds: 0,
        agreed_rounds: 0,
        acks_total: 0,
        tampered_rounds: 0,
        rejected_total: 0,
        corrupt_counted: 0,
        acked_not_durable: 0,
        events: 0,
        end_ns: 0,
        stop: StopReason::Quiescent,
        stats: Stats::default(),
        violations: Vec::new(),
    };
    let stop = loop {
        let stopped = sim.step();
        if !sim.observations().is_empty() {
            for o in sim.observations() {
                let r = &o.obs;
                // The chapter's columns describe the first round the run reports (a restarted
                // leader numbers its rounds from 1 again, so "round 1" may come twice).
                if row.rounds == 0 {
                    row.acks = r.acks;
                    row.agreed = r.agreed;
                    row.tampered_seen = r.tampered_seen;
                    row.winning_data = r.winning_data.as_deref().map(str::to_owned);
                    row.rejected = r
                        .rejected
                        .iter()
                        .map(|x| RejectedAck {
                            follower: node_name(x.voter),
                            reason: x.reason,
                            sent_by: (x.sender != x.voter).then(|| node_name(x.sender)),
                        })
                        .collect();
                }
                row.rounds += 1;
                row.agreed_rounds += r.agreed as u64;
                row.acks_total += r.acks as u64;
                row.tampered_rounds += r.tampered_seen as u64;
                row.rejected_total += r.rejected.len() as u64;
                row.corrupt_counted += r.corrupt_counted as u64;
                // Checked as the round closes: see `check::acked_not_durable`.
                if config.persist {
                    row.acked_not_durable += acked_not_durable(r, |v| durable_round(sim.disk(v))).len() as u64;
                }
                // Keep the first few violations: the first is what a reader needs.
                if row.violations.len() < 10
                    && let Some(v) = agreement_on_proposal(o)
                {
                    row.violations.push(v);
                }
            }
            sim.drain_observations();
        }
        if let Some(reason) = stopped {
            break reason;
        }
    };
    row.stop = stop;
    row.stats = sim.stats().clone();
    row.events = row.stats.events();
    row.end_ns = sim.now().as_nanos();
    (row, sim.take_tracer())
}

/// Runs every case of `scenario` with the same root seed.
pub fn run_all(scenario: &Scenario, seed: u64) -> Vec<Row> {
    (0..scenario.cases.len()).map(|c| run_case(scenario, c, seed, None).0).collect()
}

/// The chapter's layout: `healthy      acks=4/4 quorum=3 agreed=1 tampered_seen=0 winning_data=balance=9000`.
pub fn chapter_line(row: &Row) -> String {
    format!(
        "{:<12} acks={}/{} quorum={} agreed={} tampered_seen={} winning_data={}",
        row.name,
        row.acks,
        row.followers,
        row.quorum,
        row.agreed as u8,
        row.tampered_seen as u8,
        row.winning_data.as_deref().unwrap_or("None")
    )
}

/// The table `faultline run` prints: the chapter line; then round 1's rejected acks and
/// the acked-but-not-durable count, when there are any; then totals when there were
/// several rounds.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&chapter_line(row));
        if !row.rejected.is_empty() {
            let rejected: Vec<String> = row
                .rejected
                .iter()
                .map(|r| match &r.sent_by {
                    None => format!("{} {}", r.follower, r.reason),
                    Some(by) => format!("{} {} (sent by {by})", r.follower, r.reason),
                })
                .collect();
            let _ = write!(out, " rejected=[{}]", rejected.join(", "));
        }
        if row.acked_not_durable > 0 {
            let _ = write!(out, " acked_not_durable={}", row.acked_not_durable);
        }
        if row.rounds != 1 {
            let _ = write!(
                out,
                " rounds={} agreed_rounds={} ({:.4}) mean_acks={:.3}",
                row.rounds,
                row.agreed_rounds,
                ratio(row.agreed_rounds, row.rounds),
                ratio(row.acks_total, row.rounds)
            );
        }
        out.push('\n');
    }
    out
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A sweep's result for one case under one variant, over all seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepRow {
    pub case: String,
    /// The varied `key=value`, or `None` when nothing was varied.
    pub vary: Option<String>,
    pub seeds: u64,
    pub rounds: u64,
    pub agreed_rounds: u64,
    pub acks_total: u64,
    /// Agreed rounds over all rounds of all seeds.
    pub agreed_fraction: f64,
    pub mean_acks: f64,
    /// Seeds on which a property was violated, and the first such seed.
    pub violating_seeds: u64,
    pub first_violating_seed: Option<u64>,
    /// Over all rounds of all seeds: acks rejected, counted acks that were corrupt (ground
    /// truth, see [`Row::corrupt_counted`]), and counted acks not durable.
    pub rejected: u64,
    pub corrupt_counted: u64,
    pub acked_not_durable: u64,
}

/// What one seed's run adds to a sweep row: integer sums, exact and associative.
#[derive(Clone, Copy, Default)]
pub struct Sums {
    rounds: u64,
    agreed: u64,
    acks: u64,
    rejected: u64,
    corrupt_counted: u64,
    acked_not_durable: u64,
}

impl Sums {
    pub fn of(row: &Row) -> Sums {
        Sums {
            rounds: row.rounds,
            agreed: row.agreed_rounds,
            acks: row.acks_total,
            rejected: row.rejected_total,
            corrupt_counted: row.corrupt_counted,
            acked_not_durable: row.acked_not_durable,
        }
    }
}

impl Merge for Sums {
    fn merge(self, o: Sums) -> Sums {
        Sums {
            rounds: self.rounds + o.rounds,
            agreed: self.agreed + o.agreed,
            acks: self.acks + o.acks,
            rejected: self.rejected + o.rejected,
            corrupt_counted: self.corrupt_counted + o.corrupt_counted,
            acked_not_durable: self.acked_not_durable + o.acked_not_durable,
        }
    }
}

/// A sweep row from the generic tally and the summed figures.
pub fn sweep_row(t: &Tally, s: Sums) -> SweepRow {
    SweepRow {
        case: t.case.clone(),
        vary: t.vary.clone(),
        seeds: t.seeds,
        rounds: s.rounds,
        agreed_rounds: s.agreed,
        acks_total: s.acks,
        agreed_fraction: ratio(s.agreed, s.rounds),
        mean_acks: ratio(s.acks, s.rounds),
        violating_seeds: t.violating_seeds,
        first_violating_seed: t.first_violating_seed,
        rejected: s.rejected,
        corrupt_counted: s.corrupt_counted,
        acked_not_durable: s.acked_not_durable,
    }
}

/// The table `faultline sweep` prints. A row where the coordinator rejected or counted
/// something it should not have also shows `rejected` and `corrupt_counted` (both, so that
/// a defence's zero is visible next to what it rejected), and `acked_not_durable` when
/// there were any.
pub fn sweep_table(rows: &[SweepRow]) -> String {
    let mut out = String::new();
    let width = rows.iter().map(|r| r.vary.as_deref().map_or(0, str::len)).max().unwrap_or(0);
    for r in rows {
        let _ = write!(out, "{:<12} ", r.case);
        if width > 0 {
            let _ = write!(out, "{:<width$} ", r.vary.as_deref().unwrap_or(""));
        }
        let _ = write!(
            out,
            "seeds={} rounds={} agreed={:.4} mean_acks={:.3}",
            r.seeds, r.rounds, r.agreed_fraction, r.mean_acks
        );
        if r.rejected > 0 || r.corrupt_counted > 0 {
            let _ = write!(out, " rejected={} corrupt_counted={}", r.rejected, r.corrupt_counted);
        }
        if r.acked_not_durable > 0 {
            let _ = write!(out, " acked_not_durable={}", r.acked_not_durable);
        }
        if r.violating_seeds > 0 {
            let _ = write!(
                out,
                " violating_seeds={} first={}",
                r.violating_seeds,
                r.first_violating_seed.unwrap_or_default()
            );
        }
        out.push('\n');
    }
    out
}
