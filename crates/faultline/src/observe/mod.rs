//! Signals from a simulated run, as real observers would see them (`faultline signals`):
//! the leader (heartbeat ages, ack latencies, acked indices, its commit index), a load
//! balancer's health checker and a client's read prober (a monitor node in the simulation,
//! see [`monitor`]), each replica's kernel (its transport state, its lost-packet counter)
//! and an audit of its disk (its WAL position). Sampled every `interval` of virtual time.
//!
//! Beside them, the ground truth: per replica and interval, the faults in force and their
//! models ([`Label`]), from the run's fault schedule. Labels are written to their own file,
//! never among the signals.

pub mod evaluate;
pub mod monitor;

use std::collections::VecDeque;

use serde::Serialize;

use crate::fault::{Fault, Model};
use crate::protocol::NodeId;
use crate::scenario::Scenario;
use crate::signals::{Sample, Signal, Transport, Value};
use crate::sim::{NodeStatus, Sim};
use crate::time::{Span, Time};
pub use monitor::{Mon, Monitorable};

/// The ground truth of one replica over one sampling interval `(time_s - interval, time_s]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub time_s: f64,
    pub replica: String,
    /// The faults in force on the replica at any time in the interval: `(fault kind,
    /// model)`, in schedule order. Empty: healthy.
    pub faults: Vec<(&'static str, Model)>,
}

/// A recorded run: its signals, in time order, and its labels.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    pub samples: Vec<Sample>,
    pub labels: Vec<Label>,
    /// The replicas, in node order, and the interval.
    pub replicas: Vec<String>,
    pub interval: Span,
}

/// Runs case `case` of `scenario` over `nodes` (the workload's state machines) with the
/// observers attached, sampling every `interval` until `until` or the end of the run.
pub fn record<P: Monitorable>(
    scenario: &Scenario,
    nodes: Vec<P>,
    case: usize,
    seed: u64,
    interval: Span,
    until: Time,
) -> Recording {
    let names: Vec<String> = scenario.node_names().into_iter().chain(std::iter::once("monitor".to_owned())).collect();
    let faults = scenario.faults(case, seed);
    let config = scenario.sim_config(seed, names.clone());
    let mut sim = Sim::new(config, Mon::wrap(nodes, interval), faults.clone());
    let monitor_id = NodeId(names.len() as u32 - 1);
    let replicas: Vec<NodeId> = sim.node(monitor_id).monitor().expect("the monitor").replicas.clone();
    let mut rec = Recording {
        replicas: replicas.iter().map(|r| names[r.index()].clone()).collect(),
        interval,
        ..Recording::default()
    };
    let mut sampler = Sampler { heard: vec![None; names.len()], leader_versions: VecDeque::new() };
    let mut next = Time::ZERO + interval;
    // Observed until `until`, or the run's time limit: past it nothing happens, and the
    // observers would only repeat a frozen world.
    let until = until.min(scenario.limits.max_time);
    while next <= until {
        // Run every event up to the sampling instant, then look.
        let mut stopped = false;
        while sim.next_time().is_some_and(|t| t <= next) {
            if sim.step().is_some() {
                stopped = true;
                break;
            }
        }
        if stopped {
            break;
        }
        // The protocol's own observations are for its checkers, not the observers: a long
        // run would otherwise keep them all.
        sim.drain_observations().for_each(drop);
        sampler.sample(&sim, &replicas, monitor_id, next, &mut rec.samples);
        label(&faults, &replicas, &rec.replicas, next, interval, &mut rec.labels);
        next = next + interval;
    }
    rec
}

struct Sampler {
    /// Per node: when a leader last heard it.
    heard: Vec<Option<Time>>,
    /// `(time, version)` each time the leader's served version was seen to move: how old a
    /// version is against the leader's latest.
    leader_versions: VecDeque<(Time, u64)>,
}

fn secs(t: Time) -> f64 {
    t.as_nanos() as f64 / 1e9
}

fn n(x: f64) -> Value {
    Value::Number(x)
}

impl Sampler {
    fn sample<P: Monitorable>(
        &mut self,
        sim: &Sim<Mon<P>>,
        replicas: &[NodeId],
        monitor_id: NodeId,
        now: Time,
        out: &mut Vec<Sample>,
    ) {
        let t = secs(now);
        let monitor = sim.node(monitor_id).monitor().expect("the monitor is the last node");
        // The leader: the replica that leads with the highest commit index (two may both
        // believe they lead for a moment; the one ahead is the one clients reach).
        let leader = replicas
            .iter()
            .copied()
            .filter(|&r| sim.status(r) != NodeStatus::Crashed)
            .filter(|&r| sim.node(r).inner().is_some_and(P::leads))
            .max_by_key(|&r| (sim.node(r).inner().and_then(P::commit_index).unwrap_or(0), std::cmp::Reverse(r)));
        let mut push = |replica: NodeId, signal: Signal, value: Value| {
            out.push(Sample { time_s: t, replica: sim.name(replica).to_owned(), signal, value });
        };
        if let Some(l) = leader {
            let p = sim.node(l).inner().expect("a replica");
            if let Some(c) = p.commit_index() {
                push(l, Signal::LeaderCommitIndex, n(c as f64));
            }
            let v = p.served_version();
            if self.leader_versions.back().is_none_or(|&(_, last)| last != v) {
                if self.leader_versions.len() == 4096 {
                    self.leader_versions.pop_front();
                }
                self.leader_versions.push_back((now, v));
            }
        }
        for (i, &r) in replicas.iter().enumerate() {
            // The leader's view of its peers.
            if let Some(l) = leader.filter(|&l| l != r) {
                let w = sim.node(l).watch().expect("a replica");
                // Since a leader last heard it: a new leader that has not heard it yet
                // inherits its predecessor's last word, as a dashboard's panel does.
                let heard = &mut self.heard[r.index()];
                *heard = (*heard).max(w.last_heard[r.index()]);
                if let Some(h) = *heard {
                    push(r, Signal::HeartbeatAge, n(now.since(h).as_nanos() as f64 / 1e9));
                }
                if let Some(ns) = w.answer_ns[r.index()] {
                    push(r, Signal::AckLatency, n(ns as f64 / 1e6));
                }
                if let Some(a) = sim.node(l).inner().and_then(|p| p.acked_index(r)) {
                    push(r, Signal::AckedIndex, n(a as f64));
                }
            }
            // Its kernel, as a peer connecting to it sees it.
            let transport = match sim.status(r) {
                NodeStatus::Up => Transport::Open,
                NodeStatus::Crashed => Transport::Refused,
                NodeStatus::Paused | NodeStatus::HalfOpen => Transport::HalfOpen,
            };
            push(r, Signal::Transport, Value::Transport(transport));
            // The probes.
            if let Some(o) = monitor.health.last[i] {
                match o {
                    monitor::Outcome::Ok { latency, .. } => {
                        push(r, Signal::HealthOk, n(1.0));
                        push(r, Signal::HealthLatency, n(latency.as_nanos() as f64 / 1e6));
                    }
                    monitor::Outcome::Failed => push(r, Signal::HealthOk, n(0.0)),
                }
            }
            if let Some(o) = monitor.reads.last[i] {
                match o {
                    monitor::Outcome::Ok { latency, version, digest } => {
                        push(r, Signal::DataOk, n(1.0));
                        push(r, Signal::DataLatency, n(latency.as_nanos() as f64 / 1e6));
                        push(r, Signal::ServedVersionAge, n(self.age(version, now)));
                        push(r, Signal::ContentDigest, Value::Digest(format!("{digest:016x}")));
                    }
                    monitor::Outcome::Failed => push(r, Signal::DataOk, n(0.0)),
                }
            }
            // An audit of its disk, and its host's lost-packet counter.
            if let Some(d) = sim.node(r).inner().and_then(|p| p.durable_index(sim.disk(r))) {
                push(r, Signal::DurableIndex, n(d as f64));
            }
            push(r, Signal::Retransmits, n(sim.lost(r) as f64));
        }
    }

    /// How old `version` is against the leader's latest: the time since the leader first
    /// served a newer one (0 when none is newer).
    fn age(&self, version: u64, now: Time) -> f64 {
        self.leader_versions.iter().find(|&&(_, v)| v > version).map_or(0.0, |&(t, _)| secs(now) - secs(t))
    }
}

/// Labels the replicas for the interval ending at `end`.
fn label(faults: &[Fault], replicas: &[NodeId], names: &[String], end: Time, interval: Span, out: &mut Vec<Label>) {
    let start = Time::ZERO + Span::from_nanos(end.as_nanos().saturating_sub(interval.as_nanos()));
    for (i, &r) in replicas.iter().enumerate() {
        let faults: Vec<(&'static str, Model)> = faults
            .iter()
            .filter(|f| f.node == r && f.start <= end && f.end.is_none_or(|e| e > start))
            .map(|f| (f.kind.name(), f.kind.model()))
            .collect();
        out.push(Label { time_s: secs(end), replica: names[i].clone(), faults });
    }
}

/// Writes labels as CSV, `time_s,replica,model,fault`: one row per fault in force, or one
/// row `healthy` with no fault.
pub fn write_labels_csv<W: std::io::Write>(labels: &[Label], out: W) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["time_s", "replica", "model", "fault"])?;
    for l in labels {
        let t = l.time_s.to_string();
        if l.faults.is_empty() {
            w.write_record([t.as_str(), &l.replica, "healthy", ""])?;
        }
        for (fault, model) in &l.faults {
            w.write_record([t.as_str(), &l.replica, model.name(), fault])?;
        }
    }
    w.flush()
}
