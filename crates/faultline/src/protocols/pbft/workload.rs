//! PBFT as a workload: its `[pbft]` table, its run ([`super::report`]), its checkers
//! ([`super::check`]), and how its rows print.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::report::{self, PbftRow};
use super::{Auth, Canary, ClientConfig, PbftConfig};
use crate::check::Violation;
use crate::scenario::Scenario;
use crate::scenario::validate::{Check, FieldPath, Invalid, bad, count_or, millis_or, node, probability};
use crate::time::Span;
use crate::trace::Tracer;
use crate::workload::{Merge, Table, Tally, Workload};

/// PBFT with its clients: `protocol = "pbft"`, its table `[pbft]`.
pub struct Pbft;

/// A PBFT scenario's protocol parameters and the liveness budget.
#[derive(Clone, Debug, PartialEq)]
pub struct PbftRun {
    pub config: PbftConfig,
    /// After the last fault heals, a client operation must succeed within this.
    pub liveness: Span,
}

pub struct Sums {
    ok: u64,
    ops: u64,
    messages: u64,
    executed: u64,
}

impl Merge for Sums {
    fn merge(self, o: Sums) -> Sums {
        Sums {
            ok: self.ok + o.ok,
            ops: self.ops + o.ops,
            messages: self.messages + o.messages,
            executed: self.executed + o.executed,
        }
    }
}

/// One row of a PBFT sweep.
#[derive(Clone, Debug, Serialize)]
pub struct PbftSweepRow {
    pub case: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vary: Option<String>,
    pub seeds: u64,
    pub violating_seeds: u64,
    pub first_violating_seed: Option<u64>,
    pub by_property: BTreeMap<String, u64>,
    pub ok: u64,
    pub ops: u64,
    pub executed: u64,
    pub messages: u64,
}

impl Workload for Pbft {
    const NAME: &'static str = "pbft";
    const SUMMARY: &'static str = "PBFT (checkpoints, view changes, signed messages, Twins) with clients, and its agreement, validity, linearizability and liveness checkers";
    type Raw = RawPbft;
    type Config = PbftRun;
    type Row = PbftRow;
    type Sums = Sums;
    type SweepRow = PbftSweepRow;

    fn validate(raw: &RawPbft, at: &FieldPath, _seed: Option<u64>) -> Result<Table<PbftRun>, Invalid> {
        let (config, duration, liveness) = pbft(raw, at)?;
        Ok(Table { config: PbftRun { config, liveness }, duration })
    }
    fn node_names(run: &PbftRun) -> Vec<String> {
        run.config.node_names()
    }
    /// Swarms fault the replicas (not their twins or the clients).
    fn fault_targets(run: &PbftRun) -> usize {
        run.config.replicas
    }
    fn run(
        scenario: &Scenario,
        run: &PbftRun,
        case: usize,
        seed: u64,
        tracer: Option<Box<dyn Tracer>>,
    ) -> (PbftRow, Option<Box<dyn Tracer>>) {
        report::run_case_traced(scenario, &run.config, case, seed, run.liveness, tracer, false)
    }
    fn violations(row: &PbftRow) -> Vec<Violation> {
        row.violations.clone()
    }
    fn history(row: &PbftRow) -> Option<crate::linear::History> {
        Some(row.history.clone())
    }
    fn table(rows: &[PbftRow]) -> String {
        let mut out = String::new();
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
        for r in rows {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "case {}  ({:.1} s simulated, stopped: {:?})  n={} f={} quorum={}",
                r.case,
                r.end_ms / 1e3,
                r.stop,
                r.replicas,
                r.f,
                r.quorum
            );
            let _ = writeln!(
                out,
                "correct: {}  view={}  executed={}  behind: {}",
                r.correct.join(","),
                r.view,
                r.executed,
                if r.behind.is_empty() { "none".to_owned() } else { r.behind.join(",") }
            );
            let _ = writeln!(
                out,
                "ops: ok={} unknown={}  availability={}  latency_ms p50={} p99={}  messages={}",
                r.ok,
                r.unknown,
                r.availability.map_or("-".to_owned(), |a| format!("{a:.4}")),
                opt(r.latency_ms_p50),
                opt(r.latency_ms_p99),
                r.messages
            );
            for v in &r.violations {
                let _ = writeln!(out, "VIOLATION {} at {:.3} ms: {}", v.property, v.t_ns as f64 / 1e6, v.detail);
            }
        }
        out
    }
    fn sums(row: &PbftRow) -> Sums {
        Sums { ok: row.ok, ops: row.ok + row.unknown, messages: row.messages, executed: row.executed }
    }
    fn sweep_row(t: &Tally, s: Sums) -> PbftSweepRow {
        PbftSweepRow {
            case: t.case.clone(),
            vary: t.vary.clone(),
            seeds: t.seeds,
            violating_seeds: t.violating_seeds,
            first_violating_seed: t.first_violating_seed,
            by_property: t.by_property.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
            ok: s.ok,
            ops: s.ops,
            executed: s.executed,
            messages: s.messages,
        }
    }
    fn sweep_table(rows: &[PbftSweepRow]) -> String {
        let mut out = String::new();
        for r in rows {
            let _ = write!(
                out,
                "{:<22} {}seeds={} violating_seeds={} availability={:.4} messages_per_request={:.1}",
                r.case,
                r.vary.as_deref().map_or(String::new(), |v| format!("{v} ")),
                r.seeds,
                r.violating_seeds,
                r.ok as f64 / r.ops.max(1) as f64,
                r.messages as f64 / r.executed.max(1) as f64
            );
            if let Some(s) = r.first_violating_seed {
                let _ = write!(out, " first_violating_seed={s}");
            }
            for (p, n) in &r.by_property {
                let _ = write!(out, " {p}={n}");
            }
            out.push('\n');
        }
        out
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPbft {
    pub replicas: Option<i64>,
    /// The faults quorums are sized for; defaults to ⌊(replicas − 1) / 3⌋.
    pub f: Option<i64>,
    pub clients: Option<i64>,
    /// Replicas that run twice under one identity (Twins).
    pub twins: Option<Vec<String>>,
    pub checkpoint_interval: Option<i64>,
    pub window: Option<i64>,
    pub view_timeout_ms: Option<f64>,
    /// hmac or ed25519.
    pub auth: Option<String>,
    pub key_seed: Option<i64>,
    /// small-certificates, unchecked-new-view, few-replies or unsigned.
    pub canary: Option<String>,
    pub liveness_budget_ms: Option<f64>,
    pub duration_ms: Option<f64>,
    pub client: Option<RawPbftClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPbftClient {
    pub interval_ms: Option<f64>,
    pub retransmit_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub ops: Option<i64>,
    pub read_fraction: Option<f64>,
    pub keys: Option<i64>,
}

fn pbft(r: &RawPbft, p: &FieldPath) -> Check<(PbftConfig, Option<Span>, Span)> {
    let d = PbftConfig::default();
    let replicas = count_or(r.replicas, &p.key("replicas"), 1, 64, d.replicas as u64)? as usize;
    let f = count_or(r.f, &p.key("f"), 0, 64, PbftConfig::max_faults(replicas) as u64)? as usize;
    if f >= replicas {
        return bad(p.key("f"), format!("must be below replicas ({replicas})"));
    }
    let clients = count_or(r.clients, &p.key("clients"), 0, 1000, d.clients as u64)? as usize;
    let auth = match r.auth.as_deref() {
        None | Some("hmac") => Auth::Hmac,
        Some("ed25519") => Auth::Ed25519,
        Some(other) => return bad(p.key("auth"), format!("unknown scheme {other:?} (expected hmac or ed25519)")),
    };
    let canary = match r.canary.as_deref() {
        None | Some("none") => None,
        Some(name) => match Canary::ALL.into_iter().find(|c| c.name() == name) {
            Some(c) => Some(c),
            None => {
                let names: Vec<&str> = Canary::ALL.iter().map(|c| c.name()).collect();
                return bad(p.key("canary"), format!("unknown canary {name:?} (expected {})", names.join(", ")));
            }
        },
    };
    let cp = p.key("client");
    let dc = d.client.clone();
    let client = match &r.client {
        None => dc,
        Some(c) => ClientConfig {
            interval: millis_or(c.interval_ms, &cp.key("interval_ms"), dc.interval)?,
            retransmit: millis_or(c.retransmit_ms, &cp.key("retransmit_ms"), dc.retransmit)?,
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
    let mut config = PbftConfig {
        replicas,
        f,
        clients,
        twins: Vec::new(),
        checkpoint_interval: count_or(
            r.checkpoint_interval,
            &p.key("checkpoint_interval"),
            1,
            1 << 20,
            d.checkpoint_interval,
        )?,
        window: count_or(r.window, &p.key("window"), 1, 1 << 22, d.window)?,
        view_timeout: millis_or(r.view_timeout_ms, &p.key("view_timeout_ms"), d.view_timeout)?,
        auth,
        key_seed: count_or(r.key_seed, &p.key("key_seed"), 0, i64::MAX, d.key_seed)?,
        client,
        canary,
    };
    if config.window < config.checkpoint_interval {
        return bad(
            p.key("window"),
            "must be at least checkpoint_interval, or the primary stalls before a checkpoint can move it",
        );
    }
    if let Some(twins) = &r.twins {
        let names: Vec<String> = (0..replicas).map(|i| format!("r{i}")).collect();
        for (i, name) in twins.iter().enumerate() {
            let id = node(name, &names, &p.key("twins").index(i))?;
            if config.twins.contains(&id.index()) {
                return bad(p.key("twins").index(i), format!("{name} is twinned twice"));
            }
            config.twins.push(id.index());
        }
    }
    // Clients run until the run ends: ten simulated seconds unless the table says.
    let duration = Some(millis_or(r.duration_ms, &p.key("duration_ms"), Span::from_secs(10))?);
    let ten = Span::from_nanos(config.view_timeout.as_nanos().saturating_mul(10));
    let liveness = millis_or(r.liveness_budget_ms, &p.key("liveness_budget_ms"), ten)?;
    Ok((config, duration, liveness))
}
