//! Faults as data: what goes wrong, on which node, over which window of virtual time.
//!
//! Each configured [`Fault`] has an index (its [`FaultId`]) that the trace carries as ground
//! truth: every event a fault caused (a drop, a delay, a tampered message, a deferral while
//! paused, a crash) names it. The four classic models (Schneider 1990; Cristian 1991):
//!
//! - **crash**: the node stops at `start` and never sends again (crash-stop);
//! - **omission**: the node's outgoing (`send`), incoming (`receive`) or both (`general`)
//!   messages are lost, each independently with probability `p` (basis: per message);
//! - **timing**: extra latency on the node's outgoing messages drawn from a distribution
//!   (`delay`, basis: per message), or a window in which the node processes nothing
//!   (`pause`: inbound messages and timers wait and are handled after it resumes);
//! - **Byzantine**: the node's outgoing messages are rewritten by the protocol's own
//!   [`Message::tamper`] hook (`tamper`, basis: per message, with probability `p`).
//!
//! Byzantine behaviour rewrites a process's output; it is not the network's job
//! (TigerBeetle's packet simulator, turmoil). The injector is the one place where send-time
//! verdicts are decided, so the fuller catalogue (duplication, replay, partitions,
//! size-triggered loss) adds variants and verdicts here rather than new paths in the loop.

use rand::Rng;
use serde::Serialize;

use crate::protocol::{Message, NodeId};
use crate::sim::network::{LatencyDist, Sampler};
use crate::sim::rng::{SimRng, Stream, stream};
use crate::sim::time::Time;

/// A configured fault's index in its run, carried by every trace event it causes.
pub type FaultId = u16;

/// The failure model a fault belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Crash,
    Omission,
    Timing,
    Byzantine,
    Gray,
}

/// Which of a node's messages an omission fault loses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Messages the node sends (send-omission).
    Send,
    /// Messages sent to the node (receive-omission).
    Receive,
    /// Both (general omission).
    General,
}

impl Direction {
    fn loses_outgoing(self) -> bool {
        matches!(self, Direction::Send | Direction::General)
    }
    fn loses_incoming(self) -> bool {
        matches!(self, Direction::Receive | Direction::General)
    }
}

/// What a fault does while it is active.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// Crash-stop: from `start` the node handles nothing and sends nothing, forever.
    Crash,
    /// Omission: lose messages in `direction` with probability `p` each.
    Omit { direction: Direction, p: f64 },
    /// Timing: add a delay drawn from `extra` to every message the node sends.
    Delay { extra: LatencyDist },
    /// Timing: between `start` and `end` the node processes nothing; what arrives waits.
    Pause,
    /// Byzantine: with probability `p`, rewrite each message the node sends.
    Tamper { p: f64 },
}

impl FaultKind {
    pub fn model(&self) -> Model {
        match self {
            FaultKind::Crash => Model::Crash,
            FaultKind::Omit { .. } => Model::Omission,
            FaultKind::Delay { .. } | FaultKind::Pause => Model::Timing,
            FaultKind::Tamper { .. } => Model::Byzantine,
        }
    }

    /// The glossary word for the fault (docs/glossary.md).
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Omit { direction: Direction::Send, .. } => "omit-send",
            FaultKind::Omit { direction: Direction::Receive, .. } => "omit-receive",
            FaultKind::Omit { direction: Direction::General, .. } => "omit-general",
            FaultKind::Delay { .. } => "delay",
            FaultKind::Pause => "pause",
            FaultKind::Tamper { .. } => "tamper",
        }
    }
}

/// One fault on one node over `[start, end)`; `end: None` means until the run ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub node: NodeId,
    pub kind: FaultKind,
    pub start: Time,
    pub end: Option<Time>,
}

/// The causes of one event: up to three fault ids (e.g. delayed by one fault, tampered by
/// another, held by a pause). Inline and `Copy`, so the hot path never allocates for it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Causes([Option<FaultId>; 3]);

impl Causes {
    pub fn one(id: FaultId) -> Self {
        Causes([Some(id), None, None])
    }
    /// Adds a cause; a fourth distinct cause replaces the last (never seen with the
    /// catalogue today, where an event has at most delay, tamper and pause).
    pub fn add(&mut self, id: FaultId) {
        for slot in &mut self.0 {
            match slot {
                Some(x) if *x == id => return,
                None => {
                    *slot = Some(id);
                    return;
                }
                _ => {}
            }
        }
        self.0[2] = Some(id);
    }
    pub fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }
    pub fn iter(&self) -> impl Iterator<Item = FaultId> + '_ {
        self.0.iter().flatten().copied()
    }
}

/// The injector's decision about one message at send time.
pub enum Verdict {
    /// Lost; the fault that lost it.
    Drop(FaultId),
    /// Sent, with extra delay in nanoseconds and the faults that shaped it.
    Pass { extra_ns: u64, causes: Causes },
}

struct Injected {
    fault: Fault,
    rng: SimRng,
    sampler: Option<Sampler>,
    active: bool,
    fired: u64,
}

/// Applies the configured faults. Holds each fault's random stream and whether it is in
/// its window; the control loop toggles windows with scheduled start and end events.
pub struct Injector {
    faults: Vec<Injected>,
    /// Per node: its send-side and receive-side faults (ids), in configuration order.
    outgoing: Vec<Vec<FaultId>>,
    incoming: Vec<Vec<FaultId>>,
}

impl Injector {
    pub fn new(root_seed: u64, nodes: usize, faults: Vec<Fault>) -> Self {
        assert!(faults.len() <= FaultId::MAX as usize, "more faults than a FaultId can name");
        let mut outgoing = vec![Vec::new(); nodes];
        let mut incoming = vec![Vec::new(); nodes];
        let faults = faults
            .into_iter()
            .enumerate()
            .map(|(i, fault)| {
                let id = i as FaultId;
                let node = fault.node.index();
                assert!(node < nodes, "fault {i} names node {node} of {nodes}");
                match &fault.kind {
                    FaultKind::Omit { direction, .. } => {
                        if direction.loses_outgoing() {
                            outgoing[node].push(id);
                        }
                        if direction.loses_incoming() {
                            incoming[node].push(id);
                        }
                    }
                    FaultKind::Delay { .. } | FaultKind::Tamper { .. } => outgoing[node].push(id),
                    FaultKind::Crash | FaultKind::Pause => {}
                }
                let sampler = match &fault.kind {
                    FaultKind::Delay { extra } => Some(extra.sampler()),
                    _ => None,
                };
                Injected { fault, rng: stream(root_seed, Stream::Fault(i as u32)), sampler, active: false, fired: 0 }
            })
            .collect();
        Injector { faults, outgoing, incoming }
    }

    pub fn faults(&self) -> impl ExactSizeIterator<Item = &Fault> {
        self.faults.iter().map(|f| &f.fault)
    }

    pub fn fault(&self, id: FaultId) -> &Fault {
        &self.faults[id as usize].fault
    }

    /// How many times each fault acted (dropped, delayed, tampered, held or crashed).
    pub fn fired(&self, id: FaultId) -> u64 {
        self.faults[id as usize].fired
    }

    pub fn set_active(&mut self, id: FaultId, active: bool) {
        self.faults[id as usize].active = active;
    }

    pub fn note_fired(&mut self, id: FaultId) {
        self.faults[id as usize].fired += 1;
    }

    /// Decides the fate of `msg` from `from` to `to`. Sender-side faults apply first, in
    /// configuration order, then receiver-side omission; the first drop wins. Every coin is
    /// drawn from the deciding fault's own stream, at send time.
    #[inline]
    pub fn on_send<M: Message>(&mut self, from: NodeId, to: NodeId, msg: &mut M) -> Verdict {
        let mut extra_ns = 0u64;
        let mut causes = Causes::default();
        for &id in &self.outgoing[from.index()] {
            let f = &mut self.faults[id as usize];
            if !f.active {
                continue;
            }
            match f.fault.kind {
                FaultKind::Omit { p, .. } => {
                    if chance(&mut f.rng, p) {
                        f.fired += 1;
                        return Verdict::Drop(id);
                    }
                }
                FaultKind::Delay { .. } => {
                    let sampler = f.sampler.as_ref().expect("delay fault has a sampler");
                    extra_ns = extra_ns.saturating_add(sampler.sample(&mut f.rng));
                    f.fired += 1;
                    causes.add(id);
                }
                FaultKind::Tamper { p } => {
                    if chance(&mut f.rng, p) && msg.tamper(&mut f.rng) {
                        f.fired += 1;
                        causes.add(id);
                    }
                }
                FaultKind::Crash | FaultKind::Pause => {}
            }
        }
        for &id in &self.incoming[to.index()] {
            let f = &mut self.faults[id as usize];
            if let (true, FaultKind::Omit { p, .. }) = (f.active, &f.fault.kind)
                && chance(&mut f.rng, *p)
            {
                f.fired += 1;
                return Verdict::Drop(id);
            }
        }
        Verdict::Pass { extra_ns, causes }
    }
}

/// A biased coin that draws nothing when the outcome is certain, so `p = 1` and `p = 0`
/// faults leave their stream untouched.
#[inline]
fn chance(rng: &mut SimRng, p: f64) -> bool {
    if p >= 1.0 {
        true
    } else if p <= 0.0 {
        false
    } else {
        // 53 random bits as a float in [0, 1).
        ((rng.next_u64() >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < p
    }
}
