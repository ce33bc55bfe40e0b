//! The failure-detector workload: every node watches every other node through three
//! channels at once, and reports what it saw as [`Signal`]s.
//!
//! - **Heartbeats** (probe plane): each node sends `Heartbeat` to every peer every
//!   `interval`, plus a jitter drawn per beat. The arrival times are what heartbeat-based
//!   detectors (fixed timeout, phi-accrual, Cassandra's variant) consume.
//! - **SWIM probing** (probe plane; Das, Gupta and Motivala 2002, as in HashiCorp
//!   memberlist): every protocol period a node pings the next member of a shuffled
//!   round-robin list; without an ack within the probe timeout it asks `indirect` other
//!   members to ping the target for it; without any ack by the end of the period it
//!   suspects the target and tells everyone. A suspected node that hears of it refutes by
//!   broadcasting that it is alive, and whoever hears the refutation passes it on once, so
//!   one bad link does not keep it from the suspecter. The suspicion timeout (what turns a
//!   suspicion into a conviction) is applied by the detector over these signals.
//! - **Data-plane probes** (data plane): each node sends a `Request` to every peer every
//!   probe period and expects a `Response` within the timeout: the check that sees a gray
//!   node, whose health probes pass while its real work fails.
//!
//! Detectors are passive: none of them changes what the nodes send, so every detector and
//! every threshold can be evaluated over the signals of one run (see [`crate::detect`]).

use std::fmt;

use rand::seq::SliceRandom;

use crate::latency::{LatencyDist, Sampler};
use crate::protocol::{Context, Message, NodeId, Plane, Protocol, TimerId};
use crate::time::Span;

mod workload;
pub use workload::{Heartbeat, HeartbeatRow, HeartbeatSweepRow, RawHeartbeat, default_detectors};

/// SWIM's parameters, with memberlist's LAN defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SwimConfig {
    /// The protocol period: one probe per period (memberlist `ProbeInterval`, 1 s).
    pub interval: Span,
    /// How long to wait for a direct ack before probing indirectly (`ProbeTimeout`, 500 ms).
    pub timeout: Span,
    /// How many members are asked to probe indirectly (`IndirectChecks`, 3).
    pub indirect: usize,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig { interval: Span::from_millis(1000), timeout: Span::from_millis(500), indirect: 3 }
    }
}

/// Data-plane probing: a request to every peer each `interval`, failed after `timeout`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataProbeConfig {
    pub interval: Span,
    pub timeout: Span,
}

impl Default for DataProbeConfig {
    fn default() -> Self {
        DataProbeConfig { interval: Span::from_millis(1000), timeout: Span::from_millis(500) }
    }
}

/// The workload's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct HeartbeatConfig {
    pub nodes: usize,
    /// The time between two heartbeats of a sender, drawn per beat from the sender's own
    /// stream: a constant, or a distribution for a sender whose scheduling is noisy.
    pub interval: LatencyDist,
    pub swim: Option<SwimConfig>,
    pub data_probe: Option<DataProbeConfig>,
}

impl HeartbeatConfig {
    pub fn node_names(&self) -> Vec<String> {
        (0..self.nodes).map(|i| format!("n{i}")).collect()
    }

    pub fn build(&self) -> Vec<HeartbeatNode> {
        (0..self.nodes).map(|_| HeartbeatNode::new(self)).collect()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum HbMsg {
    Heartbeat,
    /// A SWIM ping for probe `seq`; `origin` is the member that wants the answer (the
    /// sender for a direct ping, the requester for an indirect one).
    Ping {
        seq: u64,
        origin: NodeId,
    },
    Ack {
        seq: u64,
        origin: NodeId,
        target: NodeId,
    },
    PingReq {
        seq: u64,
        target: NodeId,
    },
    /// Gossip: `about` is suspected by the sender / says it is alive.
    Suspect {
        about: NodeId,
        incarnation: u64,
    },
    Alive {
        about: NodeId,
        incarnation: u64,
    },
    Request {
        seq: u64,
    },
    Response {
        seq: u64,
    },
}

impl fmt::Debug for HbMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HbMsg::Heartbeat => f.write_str("Heartbeat"),
            HbMsg::Ping { seq, origin } => write!(f, "Ping {{ seq: {seq}, origin: {origin} }}"),
            HbMsg::Ack { seq, origin, target } => write!(f, "Ack {{ seq: {seq}, origin: {origin}, target: {target} }}"),
            HbMsg::PingReq { seq, target } => write!(f, "PingReq {{ seq: {seq}, target: {target} }}"),
            HbMsg::Suspect { about, incarnation } => write!(f, "Suspect {{ about: {about}, inc: {incarnation} }}"),
            HbMsg::Alive { about, incarnation } => write!(f, "Alive {{ about: {about}, inc: {incarnation} }}"),
            HbMsg::Request { seq } => write!(f, "Request {{ seq: {seq} }}"),
            HbMsg::Response { seq } => write!(f, "Response {{ seq: {seq} }}"),
        }
    }
}

impl Message for HbMsg {
    fn plane(&self) -> Plane {
        match self {
            HbMsg::Request { .. } | HbMsg::Response { .. } => Plane::Data,
            _ => Plane::Probe,
        }
    }

    fn wire_size(&self) -> usize {
        // A tag and up to three 8-byte fields: what a compact UDP encoding would carry.
        match self {
            HbMsg::Heartbeat => 1,
            HbMsg::Ack { .. } => 25,
            _ => 17,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HbTimer {
    Beat,
    /// Start of a SWIM protocol period.
    SwimPeriod,
    /// The direct ping of probe `seq` went unanswered for the probe timeout.
    SwimIndirect {
        seq: u64,
    },
    /// End of the period of probe `seq`.
    SwimEnd {
        seq: u64,
    },
    DataPeriod,
    DataTimeout {
        seq: u64,
    },
}

/// What a node reports about a peer. The time is the observation's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// A heartbeat from `from` was handled.
    Heartbeat {
        from: NodeId,
    },
    /// SWIM: this node's probe of `target` failed, directly and indirectly: it suspects it.
    Suspect {
        target: NodeId,
    },
    /// SWIM: evidence that `target` is alive (an ack to a probe, or its refutation).
    Alive {
        target: NodeId,
    },
    /// The data-plane request to `to` was answered in time, or not.
    DataOk {
        to: NodeId,
    },
    DataFailed {
        to: NodeId,
    },
}

#[derive(Clone)]
pub struct HeartbeatNode {
    nodes: usize,
    interval: Sampler,
    swim_config: Option<SwimConfig>,
    data_probe: Option<DataProbeConfig>,
    swim: Swim,
    /// Data-plane requests in flight: `(seq, to)`.
    data_pending: Vec<(u64, NodeId)>,
    data_seq: u64,
}

#[derive(Clone, Default)]
struct Swim {
    order: Vec<NodeId>,
    next: usize,
    seq: u64,
    /// The current probe: its sequence number, target, and whether an ack came.
    probe: Option<(u64, NodeId, bool)>,
    /// Indirect probes this node runs for others: `(seq, origin, target)`.
    relaying: Vec<(u64, NodeId, NodeId)>,
    /// This node's own incarnation: raised to refute a suspicion.
    incarnation: u64,
    /// Highest alive incarnation heard per member (refutations are passed on once).
    heard_alive: Vec<u64>,
}

impl HeartbeatNode {
    pub fn new(config: &HeartbeatConfig) -> Self {
        let n = config.nodes;
        HeartbeatNode {
            nodes: n,
            interval: config.interval.sampler(),
            swim_config: config.swim.clone(),
            data_probe: config.data_probe.clone(),
            swim: Swim { heard_alive: vec![0; n], ..Swim::default() },
            data_pending: Vec::new(),
            data_seq: 0,
        }
    }

    fn peers(&self, me: NodeId) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.nodes as u32).map(NodeId).filter(move |&p| p != me)
    }

    fn beat_after(&self, ctx: &mut Context<'_, Self>) -> Span {
        Span::from_nanos(self.interval.sample(ctx.rng()))
    }

    fn swim_period(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(swim) = self.swim_config.clone() else { return };
        if self.swim.next >= self.swim.order.len() {
            // A fresh random order each cycle, as memberlist shuffles its member list.
            self.swim.order = self.peers(ctx.me()).collect();
            self.swim.order.shuffle(ctx.rng());
            self.swim.next = 0;
        }
        let Some(&target) = self.swim.order.get(self.swim.next) else {
            ctx.set_timer(swim.interval, HbTimer::SwimPeriod);
            return;
        };
        self.swim.next += 1;
        self.swim.seq += 1;
        let seq = self.swim.seq;
        self.swim.probe = Some((seq, target, false));
        ctx.send(target, HbMsg::Ping { seq, origin: ctx.me() });
        ctx.set_timer(swim.timeout, HbTimer::SwimIndirect { seq });
        // The period ends as the next begins: set first, its timer fires first.
        ctx.set_timer(swim.interval, HbTimer::SwimEnd { seq });
        ctx.set_timer(swim.interval, HbTimer::SwimPeriod);
    }

    fn broadcast(&self, ctx: &mut Context<'_, Self>, msg: HbMsg, except: NodeId) {
        for p in self.peers(ctx.me()) {
            if p != except {
                ctx.send(p, msg.clone());
            }
        }
    }

    fn data_period(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(probe) = self.data_probe.clone() else { return };
        ctx.set_timer(probe.interval, HbTimer::DataPeriod);
        for p in self.peers(ctx.me()) {
            self.data_seq += 1;
            let seq = self.data_seq;
            self.data_pending.push((seq, p));
            ctx.send(p, HbMsg::Request { seq });
            ctx.set_timer(probe.timeout, HbTimer::DataTimeout { seq });
        }
    }
}

impl Protocol for HeartbeatNode {
    type Msg = HbMsg;
    type Timer = HbTimer;
    type Obs = Signal;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        let after = self.beat_after(ctx);
        ctx.set_timer(after, HbTimer::Beat);
        if let Some(swim) = &self.swim_config {
            ctx.set_timer(swim.interval, HbTimer::SwimPeriod);
        }
        if let Some(probe) = &self.data_probe {
            ctx.set_timer(probe.interval, HbTimer::DataPeriod);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: HbMsg) {
        let me = ctx.me();
        match msg {
            HbMsg::Heartbeat => ctx.observe(Signal::Heartbeat { from }),
            HbMsg::Ping { seq, origin } => ctx.send(from, HbMsg::Ack { seq, origin, target: me }),
            HbMsg::PingReq { seq, target } => {
                self.swim.relaying.push((seq, from, target));
                if self.swim.relaying.len() > 64 {
                    self.swim.relaying.remove(0);
                }
                ctx.send(target, HbMsg::Ping { seq, origin: from });
            }
            HbMsg::Ack { seq, origin, target } if origin == me => {
                if let Some((s, t, acked)) = &mut self.swim.probe
                    && *s == seq
                    && *t == target
                    && !*acked
                {
                    *acked = true;
                    ctx.observe(Signal::Alive { target });
                }
            }
            HbMsg::Ack { seq, origin, target } => {
                // An indirect probe this node ran: pass the ack to whoever asked.
                if let Some(pos) = self.swim.relaying.iter().position(|&r| r == (seq, origin, target)) {
                    self.swim.relaying.remove(pos);
                    ctx.send(origin, HbMsg::Ack { seq, origin, target });
                }
            }
            HbMsg::Suspect { about, incarnation } if about == me => {
                if incarnation >= self.swim.incarnation {
                    self.swim.incarnation = incarnation + 1;
                    let alive = HbMsg::Alive { about: me, incarnation: self.swim.incarnation };
                    self.broadcast(ctx, alive, me);
                }
            }
            HbMsg::Suspect { .. } => {}
            HbMsg::Alive { about, incarnation } => {
                if about != me && incarnation > self.swim.heard_alive[about.index()] {
                    self.swim.heard_alive[about.index()] = incarnation;
                    ctx.observe(Signal::Alive { target: about });
                    self.broadcast(ctx, HbMsg::Alive { about, incarnation }, from);
                }
            }
            HbMsg::Request { seq } => ctx.send(from, HbMsg::Response { seq }),
            HbMsg::Response { seq } => {
                if let Some(pos) = self.data_pending.iter().position(|&(s, _)| s == seq) {
                    let (_, to) = self.data_pending.remove(pos);
                    ctx.observe(Signal::DataOk { to });
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, timer: HbTimer) {
        match timer {
            HbTimer::Beat => {
                for p in self.peers(ctx.me()) {
                    ctx.send(p, HbMsg::Heartbeat);
                }
                let after = self.beat_after(ctx);
                ctx.set_timer(after, HbTimer::Beat);
            }
            HbTimer::SwimPeriod => self.swim_period(ctx),
            HbTimer::SwimIndirect { seq } => {
                let Some((s, target, false)) = self.swim.probe else { return };
                if s != seq {
                    return;
                }
                let k = self.swim_config.as_ref().map_or(0, |s| s.indirect);
                let mut helpers: Vec<NodeId> = self.peers(ctx.me()).filter(|&p| p != target).collect();
                let (chosen, _) = helpers.partial_shuffle(ctx.rng(), k);
                for &h in chosen.iter() {
                    ctx.send(h, HbMsg::PingReq { seq, target });
                }
            }
            HbTimer::SwimEnd { seq } => {
                if let Some((s, target, false)) = self.swim.probe
                    && s == seq
                {
                    ctx.observe(Signal::Suspect { target });
                    let incarnation = self.swim.heard_alive[target.index()];
                    self.broadcast(ctx, HbMsg::Suspect { about: target, incarnation }, ctx.me());
                }
            }
            HbTimer::DataPeriod => self.data_period(ctx),
            HbTimer::DataTimeout { seq } => {
                if let Some(pos) = self.data_pending.iter().position(|&(s, _)| s == seq) {
                    let (_, to) = self.data_pending.remove(pos);
                    ctx.observe(Signal::DataFailed { to });
                }
            }
        }
    }
}
