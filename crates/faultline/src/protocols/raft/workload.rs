//! Raft as a workload: its `[raft]` table, its run (the report in [`super::report`]), its
//! checkers ([`super::check`]), and how its rows print.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::report::{self, RaftRow, RaftSweepRow};
use super::{Canary, ClientConfig, RaftConfig, ReadPath};
use crate::check::Violation;
use crate::observe::{Monitorable, Recording};
use crate::protocol::NodeId;
use crate::scenario::Scenario;
use crate::scenario::validate::{Check, FieldPath, Invalid, bad, count_or, millis, millis_or, node, probability};
use crate::sim::disk::Disk;
use crate::time::{Span, Time};
use crate::trace::Tracer;
use crate::workload::{Drawn, Format, Merge, Table, Tally, Workload, run_header};

/// Raft with its clients and a downstream resource: `protocol = "raft"`, its table `[raft]`.
pub struct Raft;

/// A Raft scenario's protocol parameters and what its checkers need.
#[derive(Clone, Debug, PartialEq)]
pub struct RaftRun {
    pub config: RaftConfig,
    /// After the last fault heals, a new write must commit within this (liveness).
    pub liveness: Span,
}

/// What one seed's run adds to a sweep row: integer sums.
pub struct Sums {
    writes_ok: u64,
    writes: u64,
    committed: u64,
    messages: u64,
}

impl Merge for Sums {
    fn merge(self, o: Sums) -> Sums {
        Sums {
            writes_ok: self.writes_ok + o.writes_ok,
            writes: self.writes + o.writes,
            committed: self.committed + o.committed,
            messages: self.messages + o.messages,
        }
    }
}

impl Workload for Raft {
    const NAME: &'static str = "raft";
    const SUMMARY: &'static str = "Raft (PreVote, CheckQuorum, ReadIndex, leases) with clients and a fenced resource, and its safety and liveness checkers";
    type Raw = RawRaft;
    type Config = RaftRun;
    type Row = RaftRow;
    type Sums = Sums;
    type SweepRow = RaftSweepRow;

    fn validate(raw: &RawRaft, at: &FieldPath, _seed: Option<u64>) -> Result<Table<RaftRun>, Invalid> {
        let (config, duration, liveness) = raft(raw, at)?;
        Ok(Table { config: RaftRun { config, liveness }, duration })
    }
    fn node_names(run: &RaftRun) -> Vec<String> {
        run.config.node_names()
    }
    /// Swarms fault the servers, not the clients or the downstream resource.
    fn fault_targets(run: &RaftRun) -> usize {
        run.config.servers
    }
    fn run(
        scenario: &Scenario,
        run: &RaftRun,
        case: usize,
        seed: u64,
        tracer: Option<Box<dyn Tracer>>,
    ) -> (RaftRow, Option<Box<dyn Tracer>>) {
        report::run_case_traced(scenario, &run.config, case, seed, run.liveness, tracer)
    }
    fn violations(row: &RaftRow) -> Vec<Violation> {
        row.violations.clone()
    }
    fn history(row: &RaftRow) -> Option<crate::linear::History> {
        Some(row.history.clone())
    }
    const OBSERVABLE: bool = true;
    fn record(
        scenario: &Scenario,
        run: &RaftRun,
        case: usize,
        seed: u64,
        interval: Span,
        until: Time,
    ) -> Option<Recording> {
        Some(crate::observe::record(scenario, run.config.nodes(), case, seed, interval, until))
    }
    /// Per case: the timeline, who led, the client outcomes and costs, the incident
    /// figures, the lag of servers that fell behind, and the violations.
    fn table(rows: &[RaftRow]) -> String {
        let mut out = String::new();
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        for r in rows {
            let _ = writeln!(out);
            let _ = writeln!(out, "case {}  ({:.1} s simulated, stopped: {:?})", r.case, r.end_ms / 1e3, r.stop);
            out.push_str(&r.timeline);
            let leaders: Vec<String> = r.leaders.iter().map(|(t, n, at)| format!("t{t}:{n}@{:.0}ms", at)).collect();
            let _ =
                writeln!(out, "leaders: {}", if leaders.is_empty() { "none".to_owned() } else { leaders.join(" ") });
            let _ = writeln!(
                out,
                "writes: ok={} failed={} unknown={}  reads: ok={} failed={} unknown={}  committed={}",
                r.writes.ok,
                r.writes.failed,
                r.writes.unknown,
                r.reads.ok,
                r.reads.failed,
                r.reads.unknown,
                r.committed
            );
            let _ = writeln!(
                out,
                "availability={}  commit_latency_ms p50={} p99={}  messages={} per_commit={}",
                r.availability.map_or("-".to_owned(), |a| format!("{a:.4}")),
                opt(r.commit_latency_ms_p50),
                opt(r.commit_latency_ms_p99),
                r.messages,
                opt(r.messages_per_commit)
            );
            let _ = writeln!(
                out,
                "failover_ms={}  write_unavailable_ms={:.1} (from {:.1} ms)  dual_leader_ms={:.1}  stale_confirmations={}",
                opt(r.failover_ms),
                r.write_unavailable_ms,
                r.write_unavailable_from_ms,
                r.dual_leader_ms,
                r.stale_confirmations
            );
            let _ = writeln!(
                out,
                "wrong_reads_served={}  corrupt_caught={}  lag_max={:?}",
                r.wrong_reads_served, r.corrupt_caught, r.lag_max
            );
            let end_s = r.lag_times_s.last().copied().unwrap_or(0.0);
            // Followers run a few entries behind in normal pipelining; show the ones that
            // fell further (the JSON has every server's series).
            for (s, series) in r.lag_series.iter().enumerate() {
                if r.lag_max[s] >= LAG_SHOWN {
                    let _ =
                        writeln!(out, "lag s{s} |{}| max {} entries, 0..{end_s:.0} s", sparkline(series), r.lag_max[s]);
                }
            }
            for v in &r.violations {
                let _ = writeln!(out, "VIOLATION {} at {:.3} ms: {}", v.property, v.t_ns as f64 / 1e6, v.detail);
            }
        }
        out
    }
    /// As the default, but the JSON's keys are sorted (`drawn`, `rows`, `seed`), as Raft's
    /// output has always been and the incident write-ups quote.
    fn render_run(
        scenario: &Scenario,
        seed: u64,
        drawn: &[Drawn],
        rows: &[RaftRow],
        format: Format,
    ) -> serde_json::Result<String> {
        let _ = scenario;
        Ok(match format {
            Format::Json => {
                let json = serde_json::json!({ "seed": seed, "drawn": drawn, "rows": rows });
                serde_json::to_string_pretty(&json)? + "\n"
            }
            Format::Table => run_header(seed, drawn) + &Self::table(rows),
        })
    }
    fn sums(row: &RaftRow) -> Sums {
        Sums {
            writes_ok: row.writes.ok,
            writes: row.writes.ok + row.writes.failed + row.writes.unknown,
            committed: row.committed,
            messages: row.messages,
        }
    }
    fn sweep_row(t: &Tally, s: Sums) -> RaftSweepRow {
        RaftSweepRow {
            case: t.case.clone(),
            vary: t.vary.clone(),
            seeds: t.seeds,
            violating_seeds: t.violating_seeds,
            first_violating_seed: t.first_violating_seed,
            by_property: t.by_property.iter().map(|(p, n)| (p.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            writes_ok: s.writes_ok,
            writes: s.writes,
            committed: s.committed,
            messages: s.messages,
        }
    }
    /// Per case (and varied value): the seeds that violated a property, by property, and
    /// availability.
    fn sweep_table(rows: &[RaftSweepRow]) -> String {
        let mut out = String::new();
        for r in rows {
            let availability = r.writes_ok as f64 / r.writes.max(1) as f64;
            let _ = write!(
                out,
                "{:<22} {}seeds={} violating_seeds={} availability={availability:.4} messages_per_commit={:.1}",
                r.case,
                r.vary.as_deref().map_or(String::new(), |v| format!("{v} ")),
                r.seeds,
                r.violating_seeds,
                r.messages as f64 / r.committed.max(1) as f64
            );
            for (p, n) in &r.by_property {
                let _ = write!(out, " {p}={n}");
            }
            out.push('\n');
        }
        out
    }
}

/// The lag, in entries, from which a server's lag over time is drawn.
const LAG_SHOWN: u64 = 10;

/// A one-line chart of a series, from ` ` (zero) to `█` (its maximum).
fn sparkline(series: &[u64]) -> String {
    const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = series.iter().copied().max().unwrap_or(0).max(1);
    series.iter().map(|&v| BARS[(v * 8).div_ceil(max) as usize]).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaft {
    pub servers: Option<i64>,
    pub clients: Option<i64>,
    pub heartbeat_ms: Option<f64>,
    pub election_timeout_ms: Option<f64>,
    /// The election timeout is drawn from [election_timeout_ms, election_timeout_max_ms).
    pub election_timeout_max_ms: Option<f64>,
    pub max_inflight: Option<i64>,
    pub max_batch: Option<i64>,
    pub pre_vote: Option<bool>,
    pub check_quorum: Option<bool>,
    /// log, read-index, lease or local.
    pub read: Option<String>,
    pub fencing: Option<bool>,
    pub checksums: Option<bool>,
    /// A deliberately broken variant: no-term-check, ack-before-fsync, commit-on-minority
    /// or no-fencing.
    pub canary: Option<String>,
    /// A server that campaigns as soon as it first starts, so a scenario knows who leads.
    pub bootstrap_leader: Option<String>,
    /// How long after the last fault heals a new write must commit.
    pub liveness_budget_ms: Option<f64>,
    pub duration_ms: Option<f64>,
    pub client: Option<RawRaftClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaftClient {
    pub interval_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub ops: Option<i64>,
    pub read_fraction: Option<f64>,
    pub keys: Option<i64>,
}

/// The Raft workload, how long it runs, and the liveness budget.
fn raft(r: &RawRaft, rp: &FieldPath) -> Check<(RaftConfig, Option<Span>, Span)> {
    let d = RaftConfig::default();
    let servers = count_or(r.servers, &rp.key("servers"), 1, 99, d.servers as u64)? as usize;
    let clients = count_or(r.clients, &rp.key("clients"), 0, 1000, d.clients as u64)? as usize;
    let read = match r.read.as_deref() {
        None => d.read,
        Some("log") => ReadPath::Log,
        Some("read-index") => ReadPath::ReadIndex,
        Some("lease") => ReadPath::Lease,
        Some("local") => ReadPath::Local,
        Some(other) => {
            return bad(
                rp.key("read"),
                format!("unknown read path {other:?} (expected log, read-index, lease or local)"),
            );
        }
    };
    let canary = match r.canary.as_deref() {
        None | Some("none") => None,
        Some("no-term-check") => Some(Canary::NoTermCheck),
        Some("ack-before-fsync") => Some(Canary::AckBeforeFsync),
        Some("commit-on-minority") => Some(Canary::CommitOnMinority),
        Some("no-fencing") => Some(Canary::NoFencing),
        Some(other) => {
            return bad(
                rp.key("canary"),
                format!(
                    "unknown canary {other:?} (expected no-term-check, ack-before-fsync, commit-on-minority or no-fencing)"
                ),
            );
        }
    };
    let cp = rp.key("client");
    let dc = d.client.clone();
    let client = match &r.client {
        None => dc,
        Some(c) => ClientConfig {
            interval: millis_or(c.interval_ms, &cp.key("interval_ms"), dc.interval)?,
            timeout: millis_or(c.timeout_ms, &cp.key("timeout_ms"), dc.timeout)?,
            ops: count_or(c.ops, &cp.key("ops"), 0, 999_999, dc.ops)?,
            read_fraction: c
                .read_fraction
                .map(|v| probability(v, &cp.key("read_fraction")))
                .transpose()?
                .unwrap_or(dc.read_fraction),
            keys: count_or(c.keys, &cp.key("keys"), 1, 1_000_000, u64::from(dc.keys))? as u32,
        },
    };
    let mut config = RaftConfig {
        servers,
        clients,
        heartbeat: millis_or(r.heartbeat_ms, &rp.key("heartbeat_ms"), d.heartbeat)?,
        election_timeout: millis_or(r.election_timeout_ms, &rp.key("election_timeout_ms"), d.election_timeout)?,
        max_inflight: count_or(r.max_inflight, &rp.key("max_inflight"), 1, 1 << 16, d.max_inflight as u64)? as usize,
        max_batch: count_or(r.max_batch, &rp.key("max_batch"), 1, 1 << 16, d.max_batch as u64)? as usize,
        pre_vote: r.pre_vote.unwrap_or(d.pre_vote),
        check_quorum: r.check_quorum.unwrap_or(d.check_quorum),
        read,
        fencing: r.fencing.unwrap_or(d.fencing),
        checksums: r.checksums.unwrap_or(d.checksums),
        client,
        canary,
        ..d
    };
    if config.heartbeat >= config.election_timeout {
        return bad(rp.key("heartbeat_ms"), "must be shorter than election_timeout_ms");
    }
    if let Some(ms) = r.election_timeout_max_ms {
        let max = millis(ms, &rp.key("election_timeout_max_ms"), false)?;
        if max <= config.election_timeout {
            return bad(
                rp.key("election_timeout_max_ms"),
                "must be above election_timeout_ms: the timeout is drawn between them",
            );
        }
        config.election_timeout_max = Some(max);
    }
    if let Some(name) = &r.bootstrap_leader {
        let names = config.node_names();
        let id = node(name, &names, &rp.key("bootstrap_leader"))?;
        if id.index() >= config.servers {
            return bad(rp.key("bootstrap_leader"), format!("{name} is not a server (s0..s{})", config.servers - 1));
        }
        config.bootstrap_leader = Some(id.index());
    }
    let duration = r.duration_ms.map(|v| millis(v, &rp.key("duration_ms"), false)).transpose()?;
    let ten_timeouts = Span::from_nanos(config.election_timeout.as_nanos().saturating_mul(10));
    let liveness = millis_or(r.liveness_budget_ms, &rp.key("liveness_budget_ms"), ten_timeouts)?;
    Ok((config, duration, liveness))
}

/// What Raft's servers tell the observers: the leader's match and commit indices, the
/// applied index a server serves reads from, and the length of its log on disk.
impl Monitorable for super::RaftNode {
    fn is_replica(&self) -> bool {
        self.as_server().is_some()
    }
    fn leads(&self) -> bool {
        self.as_server().is_some_and(|s| s.role() == super::Role::Leader)
    }
    fn acked_index(&self, peer: NodeId) -> Option<u64> {
        self.as_server()?.match_index(peer)
    }
    fn commit_index(&self) -> Option<u64> {
        self.as_server().filter(|_| self.leads()).map(|s| s.commit_index())
    }
    fn served_version(&self) -> u64 {
        self.as_server().map_or(0, |s| s.applied_index())
    }
    fn durable_index(&self, disk: &Disk) -> Option<u64> {
        self.as_server().map(|_| super::log::durable_len(disk))
    }
}
