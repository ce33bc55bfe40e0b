//! The quorum coordinator as a workload: its `[quorum]` table, its run, its checker and
//! its rows. Everything protocol-specific the command line prints comes from here.

use serde::Deserialize;

use super::report::{self, Row, Sums, SweepRow};
use super::{Coordinator, Defences, QuorumConfig, QuorumNode, SignatureScheme};
use crate::check::Violation;
use crate::observe::{Monitorable, Recording};
use crate::protocol::NodeId;
use crate::scenario::MAX_FOLLOWERS;
use crate::scenario::Scenario;
use crate::scenario::validate::{Check, FieldPath, Invalid, bad, count, millis, required};
use crate::sim::disk::Disk;
use crate::sim::world::Sim;
use crate::time::Span;
use crate::time::Time;
use crate::trace::Tracer;
use crate::workload::{Table, Tally, Workload};

/// The coordinator's parameters in a quorum scenario.
///
/// # Panics
/// If the scenario runs another workload: callers look at [`Scenario::protocol`] first.
pub fn config(scenario: &Scenario) -> &QuorumConfig {
    crate::workload::config::<Quorum>(scenario).unwrap_or_else(|| {
        panic!("scenario {:?} runs {}, not the quorum coordinator", scenario.name, scenario.protocol())
    })
}

/// The simulation of case `case` of a quorum scenario under root seed `seed`.
///
/// # Panics
/// As [`config`].
pub fn build(scenario: &Scenario, case: usize, seed: u64) -> Sim<QuorumNode> {
    scenario.build_with(config(scenario).nodes(), case, seed)
}

/// The coordinator's scenario shortcuts: `scenario.quorum()`, `scenario.build(case, seed)`.
pub trait QuorumScenario {
    /// As [`config`].
    fn quorum(&self) -> &QuorumConfig;
    /// As [`build`].
    fn build(&self, case: usize, seed: u64) -> Sim<QuorumNode>;
}

impl QuorumScenario for Scenario {
    fn quorum(&self) -> &QuorumConfig {
        config(self)
    }
    fn build(&self, case: usize, seed: u64) -> Sim<QuorumNode> {
        build(self, case, seed)
    }
}

/// The chapter's coordinator: `protocol = "quorum"` (the default), its table `[quorum]`.
pub struct Quorum;

impl Workload for Quorum {
    const NAME: &'static str = "quorum";
    const SUMMARY: &'static str = "the chapter's quorum coordinator: a leader, n followers, a deadline, and the defences against each failure model";
    type Raw = RawQuorum;
    type Config = QuorumConfig;
    type Row = Row;
    type Sums = Sums;
    type SweepRow = SweepRow;

    fn validate(raw: &RawQuorum, at: &FieldPath, seed: Option<u64>) -> Result<Table<QuorumConfig>, Invalid> {
        Ok(Table { config: quorum(raw, at, seed)?, duration: None })
    }
    fn node_names(config: &QuorumConfig) -> Vec<String> {
        config.node_names()
    }
    fn run(
        scenario: &Scenario,
        config: &QuorumConfig,
        case: usize,
        seed: u64,
        tracer: Option<Box<dyn Tracer>>,
    ) -> (Row, Option<Box<dyn Tracer>>) {
        report::run(scenario, config, case, seed, tracer)
    }
    fn violations(row: &Row) -> Vec<Violation> {
        row.violations.iter().map(|v| v.violation.clone()).collect()
    }
    const OBSERVABLE: bool = true;
    fn record(
        scenario: &Scenario,
        config: &QuorumConfig,
        case: usize,
        seed: u64,
        interval: Span,
        until: Time,
    ) -> Option<Recording> {
        Some(crate::observe::record(scenario, config.nodes(), case, seed, interval, until))
    }
    fn table(rows: &[Row]) -> String {
        report::table(rows)
    }
    fn sums(row: &Row) -> Sums {
        Sums::of(row)
    }
    fn sweep_row(tally: &Tally, sums: Sums) -> SweepRow {
        report::sweep_row(tally, sums)
    }
    fn sweep_table(rows: &[SweepRow]) -> String {
        report::sweep_table(rows)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuorum {
    pub followers: Option<i64>,
    pub deadline_ms: Option<f64>,
    pub rounds: Option<i64>,
    pub index: Option<u64>,
    pub data: Option<String>,
    /// A preset: naive, content-quorum, checksummed, signed or retrying.
    pub coordinator: Option<String>,
    pub content_quorum: Option<bool>,
    /// none, crc32c, sha256 or crc32c+sha256.
    pub checksum: Option<String>,
    /// none, hmac or ed25519.
    pub signature: Option<String>,
    pub retry_ms: Option<f64>,
    pub deadline_max_ms: Option<f64>,
    pub key_seed: Option<u64>,
    pub persist: Option<bool>,
}

/// Most retries per round a scenario may ask for (`deadline_ms / retry_ms`).
const MAX_RETRIES_PER_ROUND: u64 = 10_000;

/// The coordinator's defences: the `coordinator` preset, then each field that overrides it.
fn defences(q: &RawQuorum, deadline: Span, qp: &FieldPath) -> Check<Defences> {
    let mut d = match q.coordinator.as_deref() {
        None => Defences::default(),
        Some(name) => match Coordinator::parse(name) {
            Some(c) => c.defences(),
            None => {
                let names: Vec<&str> = Coordinator::ALL.iter().map(|c| c.name()).collect();
                return bad(
                    qp.key("coordinator"),
                    format!("unknown coordinator {name:?} (expected one of {})", names.join(", ")),
                );
            }
        },
    };
    if let Some(on) = q.content_quorum {
        d.content_quorum = on;
    }
    if let Some(checksum) = q.checksum.as_deref() {
        (d.crc32c, d.sha256) = match checksum {
            "none" => (false, false),
            "crc32c" => (true, false),
            "sha256" => (false, true),
            "crc32c+sha256" | "sha256+crc32c" => (true, true),
            other => {
                return bad(
                    qp.key("checksum"),
                    format!("unknown checksum {other:?} (expected none, crc32c, sha256 or crc32c+sha256)"),
                );
            }
        };
    }
    if let Some(signature) = q.signature.as_deref() {
        d.signature = match signature {
            "none" => None,
            "hmac" => Some(SignatureScheme::Hmac),
            "ed25519" => Some(SignatureScheme::Ed25519),
            other => {
                return bad(
                    qp.key("signature"),
                    format!("unknown signature {other:?} (expected none, hmac or ed25519)"),
                );
            }
        };
    }
    if let Some(ms) = q.retry_ms {
        // Zero switches retries off (useful to override a preset).
        let retry = millis(ms, &qp.key("retry_ms"), true)?;
        if retry > Span::ZERO && deadline.as_nanos() / retry.as_nanos() > MAX_RETRIES_PER_ROUND {
            return bad(
                qp.key("retry_ms"),
                format!("{ms} ms would retry more than {MAX_RETRIES_PER_ROUND} times within deadline_ms"),
            );
        }
        d.retry = (retry > Span::ZERO).then_some(retry);
    }
    if let Some(ms) = q.deadline_max_ms {
        let max = millis(ms, &qp.key("deadline_max_ms"), false)?;
        if max < deadline {
            return bad(
                qp.key("deadline_max_ms"),
                format!("{ms} ms is below deadline_ms ({}): the adaptive deadline ranges between them", deadline),
            );
        }
        d.deadline_max = Some(max);
    }
    Ok(d)
}

fn quorum(q: &RawQuorum, qp: &FieldPath, seed: Option<u64>) -> Check<QuorumConfig> {
    let followers = count(required(q.followers, qp.key("followers"))?, &qp.key("followers"), 1, MAX_FOLLOWERS as i64)?;
    let deadline = millis(required(q.deadline_ms, qp.key("deadline_ms"))?, &qp.key("deadline_ms"), false)?;
    Ok(QuorumConfig {
        followers: followers as usize,
        deadline,
        rounds: count(q.rounds.unwrap_or(1), &qp.key("rounds"), 0, 1_000_000_000)?,
        index: q.index.unwrap_or(0),
        data: q.data.clone().unwrap_or_else(|| "balance=9000".to_owned()),
        defences: defences(q, deadline, qp)?,
        // Keys are configuration: the file's seed by default, not the run's `--seed`.
        key_seed: q.key_seed.or(seed).unwrap_or(0),
        persist: q.persist.unwrap_or(false),
    })
}

/// What the coordinator and its followers tell the observers: the leader's view of each
/// follower's latest acked round and the latest round agreed; the round a follower last
/// applied; the round on its disk.
impl Monitorable for QuorumNode {
    fn is_replica(&self) -> bool {
        true
    }
    fn leads(&self) -> bool {
        self.as_leader().is_some()
    }
    fn acked_index(&self, peer: NodeId) -> Option<u64> {
        // Followers are nodes 1..=n, slots 0..n.
        self.as_leader()?.acked_round(peer.index().checked_sub(1)?)
    }
    fn commit_index(&self) -> Option<u64> {
        self.as_leader().map(|l| l.last_agreed())
    }
    fn served_version(&self) -> u64 {
        match self {
            QuorumNode::Leader(l) => l.last_agreed(),
            QuorumNode::Follower(f) => f.last_round(),
        }
    }
    /// Only a follower that persists its appends (`quorum.persist = true`) keeps a log to
    /// audit; by default followers remember appends in memory, and the leader keeps none.
    fn durable_index(&self, disk: &Disk) -> Option<u64> {
        self.as_follower().filter(|f| f.persists()).map(|_| super::durable_round(disk).unwrap_or(0))
    }
}
