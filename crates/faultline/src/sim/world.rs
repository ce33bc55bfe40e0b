//! The world and its one control loop.
//!
//! [`Sim::step`] pops the earliest `(time, seq)` entry from a binary heap, jumps the clock
//! to it and dispatches it. Ties in time break by insertion sequence, so simultaneous
//! events happen in the order they were scheduled and a run is a pure function of its
//! configuration and seed. Nothing here reads a wall clock, spawns a thread or iterates a
//! hash map (clippy.toml bans all three in this crate).
//!
//! Semantics worth knowing (docs/simulator.md has the full list):
//! - A message's delivery time is fixed when it is sent. A message in flight when its
//!   sender crashes is still delivered; a message arriving at a crashed node is dropped.
//! - A paused node handles nothing: messages and timers due during the pause are held and
//!   handled, in arrival order, at the instant the pause ends.
//! - A crashed node's timers never fire.
//! - "Events", for limits and benchmarks, are message deliveries plus timer firings.
//!   Dropped messages, cancelled timers and fault windows opening or closing are not.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::fault::{Causes, Fault, FaultId, FaultKind, Injector, Verdict};
use crate::protocol::{Context, Effect, NodeId, Protocol, TimerId};
use crate::sim::disk::Disk;
use crate::sim::network::{LatencyDist, Network};
use crate::sim::rng::{SimRng, Stream, stream};
use crate::sim::time::{Span, Time};
use crate::trace::{Kind, TraceEvent, Tracer};

/// Bounds on a run. Every run has all three.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// No event later than this is processed.
    pub max_time: Time,
    /// At most this many events (deliveries plus timer firings).
    pub max_events: u64,
    /// At most this many messages in flight on one directed link; more are dropped.
    pub inflight_per_link: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_time: Time::from_nanos(3_600_000_000_000), max_events: 100_000_000, inflight_per_link: 65_536 }
    }
}

/// Why a run stopped.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Nothing left to do.
    Quiescent,
    /// The next event was past `max_time`.
    MaxTime,
    /// `max_events` events were processed.
    MaxEvents,
}

/// Counters over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub sends: u64,
    pub deliveries: u64,
    pub timer_fires: u64,
    /// Lost to a fault (omission) or to a crashed receiver.
    pub drops: u64,
    /// Lost because the link's in-flight cap was full.
    pub overflows: u64,
    /// Events held while their node was paused.
    pub deferrals: u64,
}

impl Stats {
    /// Deliveries plus timer firings: the unit of simulator speed and of `max_events`.
    pub fn events(&self) -> u64 {
        self.deliveries + self.timer_fires
    }
}

/// An observation a node reported, with when and where.
#[derive(Clone, Debug)]
pub struct Observed<O> {
    pub time: Time,
    pub node: NodeId,
    pub obs: O,
}

enum Event<P: Protocol> {
    Start(NodeId),
    /// `held` is set once a paused receiver has held the message: it is off the wire.
    Deliver { from: NodeId, to: NodeId, msg: P::Msg, causes: Causes, held: bool },
    Timer { node: NodeId, id: TimerId, timer: P::Timer, causes: Causes },
    FaultStart(FaultId),
    FaultEnd(FaultId),
}

struct Entry<P: Protocol> {
    time: Time,
    seq: u64,
    event: Event<P>,
}

// BinaryHeap is a max-heap: order entries so that the earliest (time, seq) is greatest.
impl<P: Protocol> Ord for Entry<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}
impl<P: Protocol> PartialOrd for Entry<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<P: Protocol> PartialEq for Entry<P> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<P: Protocol> Eq for Entry<P> {}

struct Node<P> {
    protocol: P,
    rng: SimRng,
    disk: Disk,
    next_timer: u64,
    /// Timers set and neither fired nor cancelled, in increasing id order.
    pending_timers: Vec<TimerId>,
    /// The crash fault that stopped the node, if any.
    crashed_by: Option<FaultId>,
    /// While `now < paused_until` the node handles nothing; `paused_by` says which fault.
    paused_until: Time,
    paused_by: Option<FaultId>,
}

/// Configuration of a run other than its protocol instances and faults.
pub struct SimConfig {
    pub seed: u64,
    pub limits: Limits,
    /// Human-readable node names, used in the trace ("leader", "f0", ...).
    pub names: Vec<String>,
    /// One-way latency of the directed link `from -> to`.
    pub latency: Box<dyn Fn(NodeId, NodeId) -> LatencyDist>,
}

/// A simulation of one protocol on `n` nodes under a set of faults.
pub struct Sim<P: Protocol> {
    now: Time,
    seq: u64,
    queue: BinaryHeap<Entry<P>>,
    nodes: Vec<Node<P>>,
    names: Vec<String>,
    fault_labels: Vec<String>,
    network: Network,
    injector: Injector,
    limits: Limits,
    stats: Stats,
    effects: Vec<Effect<P>>,
    observations: Vec<Observed<P::Obs>>,
    tracer: Option<Box<dyn Tracer>>,
    trace_seq: u64,
    stopped: Option<StopReason>,
}

impl<P: Protocol> Sim<P> {
    /// Builds a run. `protocols[i]` is node `i`'s state machine.
    pub fn new(config: SimConfig, protocols: Vec<P>, faults: Vec<Fault>) -> Self {
        let n = protocols.len();
        assert_eq!(config.names.len(), n, "one name per node");
        assert!(n <= u32::MAX as usize);
        let seed = config.seed;
        let latency = &config.latency;
        let network = Network::new(seed, n, config.limits.inflight_per_link, |from, to| {
            latency(NodeId(from as u32), NodeId(to as u32))
        });
        let fault_labels = faults
            .iter()
            .enumerate()
            .map(|(i, f)| format!("#{i} {} @{}", f.kind.name(), config.names[f.node.index()]))
            .collect();
        let nodes = protocols
            .into_iter()
            .enumerate()
            .map(|(i, protocol)| Node {
                protocol,
                rng: stream(seed, Stream::Node(i as u32)),
                disk: Disk::default(),
                next_timer: 0,
                pending_timers: Vec::new(),
                crashed_by: None,
                paused_until: Time::ZERO,
                paused_by: None,
            })
            .collect();
        let mut sim = Sim {
            now: Time::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            names: config.names,
            fault_labels,
            network,
            injector: Injector::new(seed, n, faults.clone()),
            limits: config.limits,
            stats: Stats::default(),
            effects: Vec::new(),
            observations: Vec::new(),
            tracer: None,
            trace_seq: 0,
            stopped: None,
        };
        // Fault windows are scheduled before node starts, so a crash at time 0 means the
        // node never starts, and a pause from time 0 holds its start.
        for (i, f) in faults.iter().enumerate() {
            sim.push(f.start, Event::FaultStart(i as FaultId));
            if let Some(end) = f.end {
                sim.push(end, Event::FaultEnd(i as FaultId));
            }
        }
        for i in 0..n {
            sim.push(Time::ZERO, Event::Start(NodeId(i as u32)));
        }
        sim
    }

    /// Installs a tracer. Install it before the first step to see the whole run.
    pub fn set_tracer(&mut self, tracer: Box<dyn Tracer>) {
        self.tracer = Some(tracer);
    }

    pub fn take_tracer(&mut self) -> Option<Box<dyn Tracer>> {
        self.tracer.take()
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn node(&self, id: NodeId) -> &P {
        &self.nodes[id.index()].protocol
    }

    pub fn disk(&self, id: NodeId) -> &Disk {
        &self.nodes[id.index()].disk
    }

    pub fn injector(&self) -> &Injector {
        &self.injector
    }

    pub fn name(&self, id: NodeId) -> &str {
        &self.names[id.index()]
    }

    pub fn observations(&self) -> &[Observed<P::Obs>] {
        &self.observations
    }

    /// Hands over the observations gathered so far, so long runs need not keep them all.
    pub fn drain_observations(&mut self) -> std::vec::Drain<'_, Observed<P::Obs>> {
        self.observations.drain(..)
    }

    /// Runs until quiescent or a limit is reached.
    pub fn run(&mut self) -> StopReason {
        loop {
            if let Some(reason) = self.step() {
                return reason;
            }
        }
    }

    /// Processes one queue entry. Returns why the run stopped once it has.
    pub fn step(&mut self) -> Option<StopReason> {
        if let Some(reason) = self.stopped {
            return Some(reason);
        }
        if self.stats.events() >= self.limits.max_events {
            return self.stop(StopReason::MaxEvents);
        }
        let Some(entry) = self.queue.pop() else {
            return self.stop(StopReason::Quiescent);
        };
        if entry.time > self.limits.max_time {
            self.queue.push(entry);
            return self.stop(StopReason::MaxTime);
        }
        assert!(entry.time >= self.now, "time went backwards: {:?} < {:?}", entry.time, self.now);
        if let Event::Timer { node, id, .. } = &entry.event
            && !self.nodes[node.index()].pending_timers.contains(id)
        {
            return None; // cancelled, or its node crashed: nothing happens, not even time passing
        }
        self.now = entry.time;
        match entry.event {
            Event::Deliver { from, to, msg, causes, held } => self.deliver(from, to, msg, causes, held),
            Event::Timer { node, id, timer, causes } => self.fire(node, id, timer, causes),
            Event::Start(node) => self.start(node),
            Event::FaultStart(id) => self.fault_start(id),
            Event::FaultEnd(id) => self.fault_end(id),
        }
        None
    }

    fn stop(&mut self, reason: StopReason) -> Option<StopReason> {
        self.stopped = Some(reason);
        Some(reason)
    }

    #[inline]
    fn push(&mut self, time: Time, event: Event<P>) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Entry { time, seq, event });
    }

    /// If `node` is paused, holds `event` until it resumes and returns `None`.
    #[inline]
    fn hold_if_paused(&mut self, node: NodeId, event: Event<P>) -> Option<Event<P>> {
        let n = &self.nodes[node.index()];
        if n.paused_until <= self.now {
            return Some(event);
        }
        let (until, by) = (n.paused_until, n.paused_by.expect("a paused node names its pause"));
        self.injector.note_fired(by);
        self.stats.deferrals += 1;
        let event = match event {
            Event::Deliver { from, to, msg, mut causes, .. } => {
                causes.add(by);
                self.trace_with(to, Kind::Defer, Some(from), None, || format!("{msg:?}"), causes);
                Event::Deliver { from, to, msg, causes, held: true }
            }
            Event::Timer { node, id, timer, mut causes } => {
                causes.add(by);
                self.trace_with(node, Kind::Defer, None, None, || format!("{timer:?}"), causes);
                Event::Timer { node, id, timer, causes }
            }
            other => {
                self.trace(node, Kind::Defer, None, None, Causes::one(by));
                other
            }
        };
        self.push(until, event);
        None
    }

    fn start(&mut self, node: NodeId) {
        if let Some(by) = self.nodes[node.index()].crashed_by {
            // Crashed before it ever started.
            self.trace(node, Kind::Drop, None, None, Causes::one(by));
            return;
        }
        let Some(_) = self.hold_if_paused(node, Event::Start(node)) else { return };
        self.trace(node, Kind::Start, None, None, Causes::default());
        self.dispatch(node, |p, ctx| p.on_start(ctx));
    }

    #[inline]
    fn deliver(&mut self, from: NodeId, to: NodeId, msg: P::Msg, causes: Causes, held: bool) {
        if !held {
            // First arrival: the message leaves the wire (a held message already has).
            self.network.release(from.index(), to.index());
        }
        if let Some(by) = self.nodes[to.index()].crashed_by {
            self.stats.drops += 1;
            let mut causes = causes;
            causes.add(by);
            self.trace_with(to, Kind::Drop, Some(from), None, || format!("{msg:?}"), causes);
            return;
        }
        let Some(Event::Deliver { from, to, msg, causes, .. }) =
            self.hold_if_paused(to, Event::Deliver { from, to, msg, causes, held })
        else {
            return;
        };
        self.stats.deliveries += 1;
        self.trace_with(to, Kind::Deliver, Some(from), None, || format!("{msg:?}"), causes);
        self.dispatch(to, |p, ctx| p.on_message(ctx, from, msg));
    }

    #[inline]
    fn fire(&mut self, node: NodeId, id: TimerId, timer: P::Timer, causes: Causes) {
        let n = &mut self.nodes[node.index()];
        // Pending timers are few and in increasing id order; the one firing is usually first.
        // A crashed node has none; a cancelled timer is not among them.
        let Some(pos) = n.pending_timers.iter().position(|&t| t == id) else {
            return;
        };
        if n.paused_until > self.now {
            let _ = self.hold_if_paused(node, Event::Timer { node, id, timer, causes });
            return;
        }
        n.pending_timers.remove(pos);
        self.stats.timer_fires += 1;
        self.trace_with(node, Kind::Timer, None, None, || format!("{timer:?}"), causes);
        self.dispatch(node, |p, ctx| p.on_timer(ctx, id, timer));
    }

    fn fault_start(&mut self, id: FaultId) {
        let fault = self.injector.fault(id).clone();
        let node = &mut self.nodes[fault.node.index()];
        match fault.kind {
            FaultKind::Crash => {
                if node.crashed_by.is_none() {
                    node.crashed_by = Some(id);
                    node.pending_timers.clear();
                    self.injector.note_fired(id);
                }
            }
            FaultKind::Pause => {
                let until = fault.end.unwrap_or(Time::MAX);
                if until > node.paused_until {
                    node.paused_until = until;
                    node.paused_by = Some(id);
                }
            }
            FaultKind::Omit { .. } | FaultKind::Delay { .. } | FaultKind::Tamper { .. } => {}
        }
        self.injector.set_active(id, true);
        self.trace(fault.node, Kind::FaultStart, None, None, Causes::one(id));
    }

    fn fault_end(&mut self, id: FaultId) {
        self.injector.set_active(id, false);
        let node = self.injector.fault(id).node;
        self.trace(node, Kind::FaultEnd, None, None, Causes::one(id));
    }

    /// Runs one handler of `node` and applies the effects it emitted, in order.
    #[inline]
    fn dispatch(&mut self, node: NodeId, handler: impl FnOnce(&mut P, &mut Context<'_, P>)) {
        let mut effects = std::mem::take(&mut self.effects);
        {
            let n = &mut self.nodes[node.index()];
            let mut ctx = Context::new(node, self.now, &mut n.rng, &mut n.disk, &mut n.next_timer, &mut effects);
            handler(&mut n.protocol, &mut ctx);
        }
        for effect in effects.drain(..) {
            match effect {
                Effect::Send { to, msg } => self.send(node, to, msg),
                Effect::SetTimer { id, after, timer } => {
                    self.nodes[node.index()].pending_timers.push(id);
                    self.push(self.now + after, Event::Timer { node, id, timer, causes: Causes::default() });
                }
                Effect::CancelTimer(id) => {
                    let pending = &mut self.nodes[node.index()].pending_timers;
                    if let Some(pos) = pending.iter().position(|&t| t == id) {
                        pending.remove(pos);
                    }
                }
                Effect::Observe(obs) => {
                    self.trace_with(node, Kind::Observe, None, None, || format!("{obs:?}"), Causes::default());
                    self.observations.push(Observed { time: self.now, node, obs });
                }
            }
        }
        self.effects = effects;
    }

    #[inline]
    fn send(&mut self, from: NodeId, to: NodeId, mut msg: P::Msg) {
        assert!(to.index() < self.nodes.len(), "{} sent to node {} of {}", self.names[from.index()], to.0, self.nodes.len());
        self.stats.sends += 1;
        match self.injector.on_send(from, to, &mut msg) {
            Verdict::Drop(by) => {
                self.stats.drops += 1;
                self.trace_with(from, Kind::Drop, Some(to), None, || format!("{msg:?}"), Causes::one(by));
            }
            Verdict::Pass { extra_ns, causes } => match self.network.admit(from.index(), to.index()) {
                None => {
                    self.stats.overflows += 1;
                    self.trace_with(from, Kind::Drop, Some(to), None, || format!("{msg:?}"), causes);
                }
                Some(latency_ns) => {
                    let at = self.now + Span::from_nanos(latency_ns.saturating_add(extra_ns));
                    self.trace_with(from, Kind::Send, Some(to), Some(at), || format!("{msg:?}"), causes);
                    self.push(at, Event::Deliver { from, to, msg, causes, held: false });
                }
            },
        }
    }

    #[inline]
    fn trace(&mut self, node: NodeId, kind: Kind, peer: Option<NodeId>, delivery: Option<Time>, causes: Causes) {
        if self.tracer.is_some() {
            self.emit(node, kind, peer, delivery, None, causes);
        }
    }

    #[inline]
    fn trace_with(
        &mut self,
        node: NodeId,
        kind: Kind,
        peer: Option<NodeId>,
        delivery: Option<Time>,
        detail: impl FnOnce() -> String,
        causes: Causes,
    ) {
        if self.tracer.is_some() {
            let detail = detail();
            self.emit(node, kind, peer, delivery, Some(&detail), causes);
        }
    }

    #[cold]
    fn emit(
        &mut self,
        node: NodeId,
        kind: Kind,
        peer: Option<NodeId>,
        delivery: Option<Time>,
        detail: Option<&str>,
        causes: Causes,
    ) {
        let cause: Vec<String> = causes.iter().map(|c| self.fault_labels[c as usize].clone()).collect();
        let event = TraceEvent {
            seq: self.trace_seq,
            t_ns: self.now.as_nanos(),
            node: &self.names[node.index()],
            kind,
            peer: peer.map(|p| self.names[p.index()].as_str()),
            delivery_ns: delivery.map(Time::as_nanos),
            detail,
            cause: &cause,
        };
        self.trace_seq += 1;
        if let Some(t) = self.tracer.as_mut() {
            t.record(&event);
        }
    }
}
