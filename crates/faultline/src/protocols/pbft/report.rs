//! A PBFT run, reported: the checkers' findings, the client outcomes, and the cost
//! figures (messages, bytes and authenticator operations per executed request).

use serde::Serialize;

use super::check;
use super::{ClientResult, PbftConfig, PbftObs};
use crate::check::Violation;
use crate::detect::qos::nearest_rank;
use crate::fault::{FaultName, Model};
use crate::protocol::NodeId;
use crate::scenario::Scenario;
use crate::sim::world::{Observed, StopReason};
use crate::time::{Span, Time};
use crate::trace::Tracer;

/// One case of a PBFT scenario under one seed.
#[derive(Clone, Debug, Serialize)]
pub struct PbftRow {
    pub case: String,
    #[serde(skip)]
    pub history: crate::linear::History,
    pub seed: u64,
    pub stop: StopReason,
    pub end_ms: f64,
    pub replicas: usize,
    pub f: usize,
    pub quorum: usize,
    /// Nodes counted as correct by the checkers (no Byzantine fault or restart, not twinned).
    pub correct: Vec<String>,
    /// The highest view a correct replica entered.
    pub view: u64,
    /// The highest sequence number a correct replica executed.
    pub executed: u64,
    pub ok: u64,
    pub unknown: u64,
    /// Fraction of client operations that succeeded.
    pub availability: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    /// Messages sent by every node.
    pub messages: u64,
    /// Correct replicas left behind a stable checkpoint (no state transfer).
    pub behind: Vec<String>,
    #[serde(serialize_with = "crate::check::serialize_violations")]
    pub violations: Vec<Violation>,
    /// Cost figures, when the run counted them (`faultline costs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub costs: Option<Costs>,
}

/// What a run cost, in all: divide by `requests` for per-request figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Costs {
    /// Requests executed by every correct replica (the lowest count among them).
    pub requests: u64,
    pub replica_messages: u64,
    /// Replica messages plus requests and replies.
    pub messages: u64,
    pub bytes: u64,
    /// Signatures made and checked, by replicas and clients.
    pub auth_ops: u64,
}

/// Runs case `case` and reports it; with `costs`, counts per-link messages and bytes too.
pub fn run_case_traced(
    scenario: &Scenario,
    config: &PbftConfig,
    case: usize,
    seed: u64,
    liveness: Span,
    tracer: Option<Box<dyn Tracer>>,
    costs: bool,
) -> (PbftRow, Option<Box<dyn Tracer>>) {
    let faults = scenario.faults(case, seed);
    let mut sim = scenario.build_with(config.nodes(), case, seed);
    if let Some(t) = tracer {
        sim.set_tracer(t);
    }
    if costs {
        sim.count_links();
    }
    let stop = sim.run();
    let tracer = sim.take_tracer();
    let end = sim.now();
    let obs: Vec<Observed<PbftObs>> = sim.drain_observations().collect();
    let names = config.node_names();
    // A restarted replica comes back with nothing (PBFT keeps no durable state here, as the
    // paper's replicas keep theirs in memory): it forgets what it promised, which is a
    // Byzantine failure, not a crash. So it does not count as correct either.
    let byzantine: Vec<NodeId> = faults
        .iter()
        .filter(|f| f.kind.model() == Model::Byzantine || f.kind.fault_name() == FaultName::Restart)
        .map(|f| f.node)
        .collect();
    let correct = |n: NodeId| config.identity(n).is_some() && !config.twinned(n) && !byzantine.contains(&n);

    let mut violations = check::safety(&obs, &correct, &names);
    let healed = faults.iter().map(|f| f.end.unwrap_or(f.start)).max().unwrap_or(Time::ZERO);
    violations.extend(check::eventually_replies(&obs, healed, liveness, end));

    let (mut ok, mut unknown) = (0, 0);
    let mut invoked = std::collections::BTreeMap::new();
    let mut latencies = Vec::new();
    for o in &obs {
        match &o.obs {
            PbftObs::Invoke { client, ts, .. } => {
                invoked.insert((*client, *ts), o.time);
            }
            PbftObs::Outcome { client, ts, result } => match result {
                ClientResult::Ok { .. } => {
                    ok += 1;
                    if let Some(t) = invoked.get(&(*client, *ts)) {
                        latencies.push(o.time.since(*t));
                    }
                }
                ClientResult::Unknown => unknown += 1,
            },
            _ => {}
        }
    }
    latencies.sort();
    let pct = |p| nearest_rank(&latencies, p).map(|s: Span| s.as_nanos() as f64 / 1e6);
    let view = obs
        .iter()
        .filter(|o| correct(o.node))
        .filter_map(|o| match o.obs {
            PbftObs::View { view } => Some(view),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let executed = obs
        .iter()
        .filter(|o| correct(o.node))
        .filter_map(|o| match o.obs {
            PbftObs::Executed { seq, .. } => Some(seq),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let replica_nodes: Vec<NodeId> = (0..(config.replicas + config.twins.len()) as u32).map(NodeId).collect();
    let behind = replica_nodes
        .iter()
        .filter(|&&n| correct(n) && sim.node(n).as_replica().is_some_and(|r| r.behind()))
        .map(|n| names[n.index()].clone())
        .collect();
    let costs = costs.then(|| {
        let n = names.len() as u32;
        let mut c = Costs::default();
        for from in 0..n {
            for to in 0..n {
                let (m, b) = sim.link(NodeId(from), NodeId(to));
                let replica = |x: u32| (x as usize) < config.replicas + config.twins.len();
                if replica(from) && replica(to) {
                    c.replica_messages += m;
                }
                c.messages += m;
                c.bytes += b;
            }
        }
        c.auth_ops = replica_nodes.iter().filter_map(|&r| sim.node(r).as_replica()).map(|r| r.auth_ops).sum::<u64>()
            + (0..config.clients as u32)
                .filter_map(|i| match sim.node(config.client_node(i)) {
                    super::PbftNode::Client(cl) => Some(cl.auth_ops),
                    _ => None,
                })
                .sum::<u64>();
        c.requests = replica_nodes
            .iter()
            .filter(|&&r| correct(r))
            .filter_map(|&r| sim.node(r).as_replica())
            .map(|r| r.last_executed())
            .min()
            .unwrap_or(0);
        c
    });
    let row = PbftRow {
        case: scenario.cases[case].name.clone(),
        history: check::history(&obs).0,
        seed,
        stop,
        end_ms: end.as_millis_f64(),
        replicas: config.replicas,
        f: config.f,
        quorum: config.quorum(),
        correct: (0..names.len() as u32)
            .map(NodeId)
            .filter(|&n| correct(n))
            .map(|n| names[n.index()].clone())
            .collect(),
        view,
        executed,
        ok,
        unknown,
        availability: (ok + unknown > 0).then(|| ok as f64 / (ok + unknown) as f64),
        latency_ms_p50: pct(50.0),
        latency_ms_p99: pct(99.0),
        messages: sim.stats().sends,
        behind,
        violations,
        costs,
    };
    (row, tracer)
}
