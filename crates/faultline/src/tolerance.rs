//! The tolerance table: for each protocol, failure model, cluster size `n` and number of
//! faulty replicas `k`, whether safety and liveness held over a range of seeds. It turns
//! the chapter's arithmetic (crash, omission and timing need 2f + 1 replicas, Byzantine
//! needs 3f + 1) into measurements.
//!
//! Each cell is a generated scenario ([`scenario_text`]; `faultline tolerance --emit`
//! prints it, so any cell can be run, traced and changed by hand). The faulty replicas are
//! the first `k`, so the leader or primary is among them whenever `k ≥ 1`:
//! - **crash**: crashed from the start;
//! - **omission**: every message they send or receive is lost (`omit`, general, p = 1);
//! - **timing**: every message they send arrives 1.5 s late (five election or view
//!   timeouts): correct, and too late;
//! - **Byzantine**: the naive and content quorums' followers tamper with their acks; Raft's
//!   servers equivocate (the bootstrap leader tells odd-numbered clients wrong read values:
//!   Raft trusts its leader); PBFT's replicas run as Twins (two correct instances under one
//!   identity), with the others split into two camps at random per seed until 1 s, each
//!   camp with one instance of every twin and one client (Twins' sampled partitions).
//!
//! Quorum sizes: the quorum coordinators and Raft use majorities of their `n` replicas (a
//! leader and `n − 1` followers for the coordinators, whose faulty replicas are followers
//! only, so `k < n`). PBFT is sized for the faults it faces, as far as majority quorums
//! allow: `f = min(k, ⌊(n − 1) / 2⌋)`, quorums of `n − f`, as an operator who expects `k`
//! faults would deploy it (sizing it for more would give quorums that need not meet even
//! among correct replicas, and reply quorums of `f + 1` no live cluster could send).
//!
//! A cell is safe when no seed violated a safety property, live when no seed violated a
//! liveness one (Raft: a write commits within 3 s; PBFT: a client operation succeeds
//! within 3 s of the partition healing, or of the start for faults that never heal; the
//! coordinators: every round reaches a quorum by its deadline).

use std::ops::Range;

use rayon::prelude::*;
use serde::Serialize;

use crate::check::Class;
use crate::protocols::{pbft, quorum, raft};
use crate::scenario::Scenario;

/// The protocols the table compares.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    NaiveQuorum,
    ContentQuorum,
    Raft,
    Pbft,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [Protocol::NaiveQuorum, Protocol::ContentQuorum, Protocol::Raft, Protocol::Pbft];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::NaiveQuorum => "naive-quorum",
            Protocol::ContentQuorum => "content-quorum",
            Protocol::Raft => "raft",
            Protocol::Pbft => "pbft",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The most faulty replicas a cell may have: every replica, or every follower.
    pub fn max_faulty(self, n: usize) -> usize {
        match self {
            Protocol::NaiveQuorum | Protocol::ContentQuorum => n - 1,
            Protocol::Raft | Protocol::Pbft => n,
        }
    }
}

/// The failure models, as the table's columns.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Crash,
    Omission,
    Timing,
    Byzantine,
}

impl Model {
    pub const ALL: [Model; 4] = [Model::Crash, Model::Omission, Model::Timing, Model::Byzantine];

    pub fn name(self) -> &'static str {
        match self {
            Model::Crash => "crash",
            Model::Omission => "omission",
            Model::Timing => "timing",
            Model::Byzantine => "byzantine",
        }
    }

    pub fn parse(s: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// One cell: a protocol under a model, at `n` replicas of which `faulty` are faulty.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    pub protocol: Protocol,
    pub model: Model,
    pub n: usize,
    pub faulty: usize,
}

impl Cell {
    /// `protocol:model:n:faulty`, as `--emit` takes it.
    pub fn label(&self) -> String {
        format!("{}:{}:{}:{}", self.protocol.name(), self.model.name(), self.n, self.faulty)
    }

    pub fn parse(s: &str) -> Result<Cell, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [p, m, n, k] = parts[..] else {
            return Err(format!("{s:?}: expected PROTOCOL:MODEL:N:FAULTY, e.g. pbft:byzantine:4:1"));
        };
        let protocol = Protocol::parse(p).ok_or_else(|| {
            format!("{p:?} is not a protocol (expected {})", Protocol::ALL.map(Protocol::name).join(", "))
        })?;
        let model = Model::parse(m)
            .ok_or_else(|| format!("{m:?} is not a model (expected {})", Model::ALL.map(Model::name).join(", ")))?;
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| (MIN_N..=MAX_N).contains(n))
            .ok_or_else(|| format!("{n:?}: n must be {MIN_N} to {MAX_N}"))?;
        let faulty: usize = k.parse().ok().filter(|&k| k <= protocol.max_faulty(n)).ok_or_else(|| {
            format!("{k:?}: faulty must be 0 to {} for {} at n = {n}", protocol.max_faulty(n), protocol.name())
        })?;
        Ok(Cell { protocol, model, n, faulty })
    }
}

/// The cluster sizes the table may cover.
pub const MIN_N: usize = 2;
pub const MAX_N: usize = 16;

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub protocol: Protocol,
    pub model: Model,
    pub n: usize,
    pub faulty: usize,
    pub safe: bool,
    pub live: bool,
    pub seeds: u64,
    pub unsafe_seeds: u64,
    pub unlive_seeds: u64,
    /// The first seed that violated anything (safety or liveness).
    pub first_violating_seed: Option<u64>,
    /// What it violated first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_violation: Option<String>,
    /// The command line that runs that seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reproduce: Option<String>,
}

/// The cells for `protocols` × every model × `ns` × every `k`, in that order.
pub fn cells(protocols: &[Protocol], models: &[Model], ns: &[usize]) -> Vec<Cell> {
    let mut out = Vec::new();
    for &protocol in protocols {
        for &model in models {
            for &n in ns {
                for faulty in 0..=protocol.max_faulty(n) {
                    out.push(Cell { protocol, model, n, faulty });
                }
            }
        }
    }
    out
}

/// How long a cell's run lasts, and the liveness budget, in ms.
const RUN_MS: u64 = 4_000;
const BUDGET_MS: u64 = 3_000;
/// A timing fault's lateness: five election or view timeouts.
const LATE_MS: u64 = 1_500;
/// When Twins' partition heals.
const HEAL_MS: u64 = 1_000;

/// The faults of a cell's case, as TOML inline tables.
fn faults(cell: &Cell, names: &[String], seed: u64) -> Vec<String> {
    let k = cell.faulty;
    let each = |kind: &str| -> Vec<String> {
        names[..k].iter().map(|node| format!("{{ node = \"{node}\", {kind} }}")).collect()
    };
    match cell.model {
        Model::Crash => each("kind = \"crash\""),
        Model::Omission => each("kind = \"omit\", direction = \"general\", p = 1.0"),
        Model::Timing => each(&format!("kind = \"delay\", extra = {{ dist = \"constant\", ms = {LATE_MS} }}")),
        Model::Byzantine => match cell.protocol {
            Protocol::NaiveQuorum | Protocol::ContentQuorum => each("kind = \"tamper\""),
            Protocol::Raft => each("kind = \"equivocate\""),
            Protocol::Pbft => twins_partition(cell, seed),
        },
    }
}

/// Twins' sampled partition: every twin's first instance and client c0 on one side, its
/// second instance and c1 on the other, each correct replica on a side drawn from the seed.
fn twins_partition(cell: &Cell, seed: u64) -> Vec<String> {
    let (n, k) = (cell.n, cell.faulty);
    let mut x: Vec<String> = (0..k).map(|i| format!("r{i}")).collect();
    let mut y: Vec<String> = (0..k).map(|i| format!("t{i}")).collect();
    for i in k..n {
        // One coin per replica, from the seed alone ("twins" keeps it apart from the
        // simulator's own streams of the same seed).
        let coin = crate::rng::splitmix64(seed ^ crate::rng::splitmix64(0x0074_7769_6e73 + i as u64));
        if coin & 1 == 0 { x.push(format!("r{i}")) } else { y.push(format!("r{i}")) }
    }
    x.push("c0".to_owned());
    y.push("c1".to_owned());
    let peers = y.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    x.iter()
        .map(|node| format!("{{ node = \"{node}\", kind = \"partition\", peers = [{peers}], until_ms = {HEAL_MS} }}"))
        .collect()
}

/// The scenario file of a cell under `seed` (the seed matters only where the faults are
/// drawn from it: PBFT's Twins partitions).
pub fn scenario_text(cell: &Cell, seed: u64) -> String {
    let (n, k) = (cell.n, cell.faulty);
    let mut out = format!(
        "# The tolerance table's cell {label}: {protocol} at n = {n} with {k} replica(s) faulty ({model}).\n\
         # faultline tolerance --emit {label} --seed {seed}\n\
         name = \"tolerance-{protocol}-{model}-n{n}-k{k}\"\nseed = {seed}\n",
        label = cell.label(),
        protocol = cell.protocol.name(),
        model = cell.model.name(),
    );
    let names: Vec<String> = match cell.protocol {
        Protocol::NaiveQuorum | Protocol::ContentQuorum => {
            let coordinator = if cell.protocol == Protocol::NaiveQuorum { "naive" } else { "content-quorum" };
            out.push_str(&format!(
                "protocol = \"quorum\"\n\n[quorum]\nfollowers = {}\ncoordinator = \"{coordinator}\"\ndeadline_ms = 200\nrounds = 5\n",
                n - 1
            ));
            (0..n - 1).map(|i| format!("f{i}")).collect()
        }
        Protocol::Raft => {
            out.push_str(&format!(
                "protocol = \"raft\"\n\n[raft]\nservers = {n}\nclients = 2\nbootstrap_leader = \"s0\"\npre_vote = true\ncheck_quorum = true\n\
                 heartbeat_ms = 50\nelection_timeout_ms = 300\nduration_ms = {RUN_MS}\nliveness_budget_ms = {BUDGET_MS}\n\n\
                 [raft.client]\ninterval_ms = 20\ntimeout_ms = 500\nread_fraction = 0.5\nkeys = 2\nops = 0\n"
            ));
            (0..n).map(|i| format!("s{i}")).collect()
        }
        Protocol::Pbft => {
            let twins = if cell.model == Model::Byzantine {
                (0..k).map(|i| format!("\"r{i}\"")).collect::<Vec<_>>().join(", ")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "protocol = \"pbft\"\n\n[pbft]\nreplicas = {n}\nf = {f}\nclients = 2\ntwins = [{twins}]\nview_timeout_ms = 300\n\
                 duration_ms = {RUN_MS}\nliveness_budget_ms = {BUDGET_MS}\n\n\
                 [pbft.client]\ninterval_ms = 20\nretransmit_ms = 200\ntimeout_ms = 1000\nread_fraction = 0.5\nkeys = 2\n",
                f = k.min((n - 1) / 2)
            ));
            (0..n).map(|i| format!("r{i}")).collect()
        }
    };
    out.push_str("\n[network]\nlatency = { dist = \"lognormal\", median_ms = 1, sigma = 0.4 }\n\n[[cases]]\n");
    out.push_str(&format!("name = \"{}-k{k}\"\n", cell.model.name()));
    let faults = faults(cell, &names, seed);
    if !faults.is_empty() {
        out.push_str("faults = [\n");
        for f in faults {
            out.push_str(&format!("  {f},\n"));
        }
        out.push_str("]\n");
    }
    out
}

/// What one seed of a cell found.
#[derive(Clone, Debug, Default)]
struct Outcome {
    unsafe_: bool,
    unlive: bool,
    first: Option<String>,
}

/// Runs one seed of a cell.
fn judge(cell: &Cell, seed: u64) -> Outcome {
    let text = scenario_text(cell, seed);
    let scenario = Scenario::parse(&format!("<tolerance {}>", cell.label()), &text, &[])
        .unwrap_or_else(|e| panic!("the tolerance table's scenario for {} is invalid: {e}\n{text}", cell.label()));
    let violations = match cell.protocol {
        Protocol::NaiveQuorum | Protocol::ContentQuorum => {
            let (row, _) = quorum::report::run_case(&scenario, 0, seed, None);
            let mut out = Outcome::default();
            if let Some(v) = row.violations.first() {
                out.unsafe_ = true;
                out.first = Some(v.violation.property.to_owned());
            }
            if row.agreed_rounds < row.rounds {
                out.unlive = true;
                out.first.get_or_insert_with(|| "every-round-agrees".to_owned());
            }
            return out;
        }
        Protocol::Raft => {
            let run = crate::workload::config::<raft::Raft>(&scenario).expect("a raft scenario");
            raft::report::run_case(&scenario, &run.config, 0, seed, run.liveness).violations
        }
        Protocol::Pbft => {
            let run = crate::workload::config::<pbft::Pbft>(&scenario).expect("a pbft scenario");
            pbft::report::run_case_traced(&scenario, &run.config, 0, seed, run.liveness, None, false).0.violations
        }
    };
    Outcome {
        unsafe_: violations.iter().any(|v| v.class == Class::Always),
        unlive: violations.iter().any(|v| v.class == Class::Eventually),
        first: violations.first().map(|v| v.property.to_owned()),
    }
}

/// Runs every cell over `seeds`, seeds in parallel on the current rayon pool; the rows
/// do not depend on the thread count. `progress` is called once per finished seed.
pub fn run(cells: &[Cell], seeds: Range<u64>, progress: &(dyn Fn() + Sync)) -> Vec<Row> {
    cells
        .iter()
        .map(|cell| {
            let outcomes: Vec<(u64, Outcome)> = seeds
                .clone()
                .into_par_iter()
                .map(|seed| {
                    let o = judge(cell, seed);
                    progress();
                    (seed, o)
                })
                .collect();
            let first = outcomes.iter().find(|(_, o)| o.unsafe_ || o.unlive);
            Row {
                protocol: cell.protocol,
                model: cell.model,
                n: cell.n,
                faulty: cell.faulty,
                safe: outcomes.iter().all(|(_, o)| !o.unsafe_),
                live: outcomes.iter().all(|(_, o)| !o.unlive),
                seeds: outcomes.len() as u64,
                unsafe_seeds: outcomes.iter().filter(|(_, o)| o.unsafe_).count() as u64,
                unlive_seeds: outcomes.iter().filter(|(_, o)| o.unlive).count() as u64,
                first_violating_seed: first.map(|(s, _)| *s),
                first_violation: first.and_then(|(_, o)| o.first.clone()),
                reproduce: first.map(|(s, _)| {
                    format!(
                        "faultline tolerance --emit {label} --seed {s} > cell.toml && faultline run cell.toml --seed {s}",
                        label = cell.label()
                    )
                }),
            }
        })
        .collect()
}

/// What a healthy run costs, per client request that succeeded: PBFT against Raft on the
/// same request stream (one client, one request at a time, half reads and half writes,
/// both through the ordering protocol: Raft's reads go through its log).
#[derive(Clone, Debug, Serialize)]
pub struct CostRow {
    pub protocol: Protocol,
    pub n: usize,
    pub requests: u64,
    /// Messages between replicas (every kind: heartbeats and checkpoints included).
    pub replica_messages_per_request: f64,
    /// The closed form of the normal case between replicas: PBFT 2n(n − 1), Raft 2(n − 1).
    pub closed_form_replica_messages: u64,
    /// Replica messages plus the client's requests and the replies.
    pub messages_per_request: f64,
    pub bytes_per_request: f64,
    /// Signatures (or MACs) made and checked, by every node.
    pub auth_ops_per_request: f64,
}

/// The request stream both protocols serve in [`costs`].
pub const COST_REQUESTS: u64 = 1000;

/// The scenario [`costs`] runs for `protocol` (Raft or PBFT) at `n` replicas.
pub fn cost_scenario(protocol: Protocol, n: usize, auth: pbft::Auth) -> String {
    let body = match protocol {
        Protocol::Raft => format!(
            "protocol = \"raft\"\n[raft]\nservers = {n}\nclients = 1\nbootstrap_leader = \"s0\"\nduration_ms = 60000\n\
             [raft.client]\ninterval_ms = 5\ntimeout_ms = 1000\nread_fraction = 0.5\nkeys = 4\nops = {COST_REQUESTS}\n"
        ),
        _ => format!(
            "protocol = \"pbft\"\n[pbft]\nreplicas = {n}\nclients = 1\nauth = \"{}\"\nduration_ms = 60000\n\
             [pbft.client]\ninterval_ms = 5\ntimeout_ms = 1000\nread_fraction = 0.5\nkeys = 4\nops = {COST_REQUESTS}\n",
            match auth {
                pbft::Auth::Hmac => "hmac",
                pbft::Auth::Ed25519 => "ed25519",
            }
        ),
    };
    format!(
        "name = \"costs-{}-n{n}\"\nseed = 1\n{body}[network]\nlatency = {{ dist = \"constant\", ms = 1 }}\n[[cases]]\nname = \"healthy\"\n",
        protocol.name()
    )
}

/// Runs the healthy request stream of [`cost_scenario`] and counts what it cost. Raft or
/// PBFT only.
pub fn costs(protocol: Protocol, n: usize, auth: pbft::Auth) -> CostRow {
    let text = cost_scenario(protocol, n, auth);
    let scenario = Scenario::parse("<costs>", &text, &[]).expect("the cost scenarios are valid");
    let seed = 1;
    let (replica_messages, messages, bytes, auth_ops, requests, closed) = match protocol {
        Protocol::Raft => {
            let run = crate::workload::config::<raft::Raft>(&scenario).expect("a raft scenario");
            let mut sim = scenario.build_with(run.config.nodes(), 0, seed);
            sim.count_links();
            // Stop when the client is done: heartbeats go on for as long as the run does,
            // and would be charged to requests that no longer come.
            let done = |o: &crate::sim::world::Observed<raft::RaftObs>| matches!(o.obs, raft::RaftObs::Outcome { .. });
            let (mut seen, mut outcomes) = (0, 0);
            while outcomes < COST_REQUESTS && sim.step().is_none() {
                let obs = sim.observations();
                outcomes += obs[seen..].iter().filter(|o| done(o)).count() as u64;
                seen = obs.len();
            }
            let servers = n as u32;
            let (mut rm, mut m, mut b) = (0, 0, 0);
            let nodes = run.config.node_names().len() as u32;
            for from in 0..nodes {
                for to in 0..nodes {
                    let (msgs, bytes) = sim.link(crate::protocol::NodeId(from), crate::protocol::NodeId(to));
                    if from < servers && to < servers {
                        rm += msgs;
                    }
                    m += msgs;
                    b += bytes;
                }
            }
            let ok = sim
                .observations()
                .iter()
                .filter(|o| matches!(o.obs, raft::RaftObs::Outcome { result: raft::ClientResult::Ok { .. }, .. }))
                .count() as u64;
            (rm, m, b, 0, ok, 2 * (n as u64 - 1))
        }
        _ => {
            let run = crate::workload::config::<pbft::Pbft>(&scenario).expect("a pbft scenario");
            let (row, _) = pbft::report::run_case_traced(&scenario, &run.config, 0, seed, run.liveness, None, true);
            let c = row.costs.expect("counted");
            (c.replica_messages, c.messages, c.bytes, c.auth_ops, row.ok, 2 * n as u64 * (n as u64 - 1))
        }
    };
    let per = |x: u64| x as f64 / requests.max(1) as f64;
    CostRow {
        protocol,
        n,
        requests,
        replica_messages_per_request: per(replica_messages),
        closed_form_replica_messages: closed,
        messages_per_request: per(messages),
        bytes_per_request: per(bytes),
        auth_ops_per_request: per(auth_ops),
    }
}
