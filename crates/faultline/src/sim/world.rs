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

use crate::fault::{Causes, Extra, Fault, FaultId, FaultKind, Injector, Verdict};
use crate::latency::LatencyDist;
use crate::protocol::{Context, Message, NodeId, Plane, Protocol, Runtime, TimerId};
use crate::rng::{SimRng, Stream, stream};
use crate::sim::disk::Disk;
use crate::sim::network::Network;
use crate::time::{Span, Time};
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

/// How a node looks from outside: its process and its kernel.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    Up,
    /// Stopped (crash, fail-stop, or a restart's down time).
    Crashed,
    /// Stopped for now (a pause): its kernel still holds its connections.
    Paused,
    /// Its transport answers; its application does not.
    HalfOpen,
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
    /// Messages that arrived corrupted beyond decoding (bit flips) and were dropped.
    pub garbled: u64,
    /// Extra messages faults made nodes send: duplicates, replays, forgeries.
    pub injected: u64,
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
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: P::Msg,
        causes: Causes,
        held: bool,
    },
    Timer {
        node: NodeId,
        id: TimerId,
        timer: P::Timer,
        causes: Causes,
    },
    /// A message corrupted beyond decoding, arriving as garbage.
    Garbled {
        from: NodeId,
        to: NodeId,
        by: FaultId,
    },
    FaultStart(FaultId),
    FaultEnd(FaultId),
}

/// A pending item with its place in the order: time first, then insertion sequence.
struct Entry<T> {
    time: Time,
    seq: u64,
    item: T,
}

// BinaryHeap is a max-heap: order entries so that the earliest (time, seq) is greatest.
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<T> Eq for Entry<T> {}

/// The pending events, ordered by `(time, seq)`; `seq` is assigned here, so ties in time
/// pop in the order they were pushed.
struct Queue<P: Protocol> {
    agenda: Agenda<Event<P>>,
    seq: u64,
}

impl<P: Protocol> Queue<P> {
    fn new() -> Self {
        Queue { agenda: Agenda::default(), seq: 0 }
    }

    #[inline]
    fn push(&mut self, time: Time, event: Event<P>) {
        let seq = self.seq;
        self.seq += 1;
        self.agenda.push(Entry { time, seq, item: event });
    }

    #[inline]
    fn pop(&mut self) -> Option<(Time, Event<P>)> {
        self.agenda.pop().map(|e| (e.time, e.item))
    }

    fn next_time(&self) -> Option<Time> {
        self.agenda.peek_time()
    }
}

/// A priority queue that adapts to its size. Simulations usually have a handful of
/// pending events, and for those a vector kept sorted latest-first is several times
/// faster than a binary heap: popping is `Vec::pop`, and a push shifts a few entries.
/// Past `LARGE` entries the vector becomes a binary heap (O(log n) per operation), and it
/// turns back below `SMALL`; the gap keeps it from switching back and forth. Entries are
/// unique (`seq` is), so both forms pop in exactly the same order.
pub(crate) struct Agenda<T> {
    /// Sorted so that the earliest entry is last. Used while `heap` is empty.
    sorted: Vec<Entry<T>>,
    heap: BinaryHeap<Entry<T>>,
}

impl<T> Default for Agenda<T> {
    fn default() -> Self {
        Agenda { sorted: Vec::new(), heap: BinaryHeap::new() }
    }
}

impl<T> Agenda<T> {
    const LARGE: usize = 128;
    const SMALL: usize = 32;

    /// `entry.seq` must exceed the `seq` of every entry pushed before it.
    #[inline(always)]
    fn push(&mut self, entry: Entry<T>) {
        if !self.heap.is_empty() {
            self.heap.push(entry);
            return;
        }
        if self.sorted.len() >= Self::LARGE {
            self.heap = BinaryHeap::from(std::mem::take(&mut self.sorted));
            self.heap.push(entry);
            return;
        }
        // Latest first, so the earliest pops from the end. A new entry is usually among the
        // earliest pending (a short network hop), so a linear scan from the end finds its
        // place in a few steps, where a binary search would always take several. The scan
        // opens a hole at the end and moves it down, one entry at a time, to where the new
        // entry belongs (insertion sort's inner loop). `seq` only grows, so a new entry is
        // later than every pending entry of its time: comparing times alone places it.
        //
        // This is `Vec::insert` written out. `insert` shifts with one `memmove` of however
        // many entries follow the new one (0 to 10 or so here), and the size dispatch
        // inside `memmove` mispredicts; one-entry moves are a few vector instructions
        // each: 3 % fewer instructions in `faultline bench` (503 M -> 489 M per 100k rounds)
        // and fewer mispredicted branches (README, "Measured figures").
        let len = self.sorted.len();
        self.sorted.reserve(1);
        let base = self.sorted.as_mut_ptr();
        // SAFETY: `reserve(1)` leaves room for `len + 1` entries, and every index touched
        // below is at most `len`. Each pending entry that moves is read once and written
        // once, one slot up, into the slot vacated just before (the first into the spare
        // slot at `len`), so none is duplicated or lost; the new entry then fills the hole
        // and the length grows to cover it. Nothing in the loop can panic (it compares
        // integers), so the vector is never observed half-shifted.
        unsafe {
            let mut hole = len;
            while hole > 0 && entry.time >= (*base.add(hole - 1)).time {
                debug_assert!((*base.add(hole - 1)).seq < entry.seq, "agenda seq must only grow");
                std::ptr::copy_nonoverlapping(base.add(hole - 1), base.add(hole), 1);
                hole -= 1;
            }
            std::ptr::write(base.add(hole), entry);
            self.sorted.set_len(len + 1);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<Entry<T>> {
        if self.heap.is_empty() {
            return self.sorted.pop();
        }
        let entry = self.heap.pop();
        if self.heap.len() < Self::SMALL {
            // `into_sorted_vec` sorts ascending by `Ord`, which is reversed time order:
            // latest first, as `sorted` wants.
            self.sorted = std::mem::take(&mut self.heap).into_sorted_vec();
        }
        entry
    }

    fn peek_time(&self) -> Option<Time> {
        if self.heap.is_empty() { self.sorted.last().map(|e| e.time) } else { self.heap.peek().map(|e| e.time) }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.sorted.len() + self.heap.len()
    }
}

/// A node's runtime state: everything but its protocol.
struct Node {
    rng: SimRng,
    disk: Disk,
    next_timer: u64,
    /// Timers set and neither fired nor cancelled, in increasing id order.
    pending_timers: Vec<TimerId>,
    /// The crash fault that stopped the node, if any (cleared by a restart).
    crashed_by: Option<FaultId>,
    /// While `now < paused_until` the node handles nothing; `paused_by` says which fault.
    paused_until: Time,
    paused_by: Option<FaultId>,
    /// A stalled fsync keeps the node busy: what it sends leaves no earlier than this.
    busy_until: Time,
    half_open_by: Option<FaultId>,
    /// Node-state faults in force, with their parameters.
    stale: Option<(FaultId, Span)>,
    lie_by: Option<FaultId>,
    slow_disk_by: Option<FaultId>,
    skew: Option<(FaultId, i64, f64)>,
    /// Messages to or from the node lost on the wire (omission, garbling): what TCP
    /// would retransmit, and its hosts' counters show.
    lost: u64,
}

impl Node {
    fn new(rng: SimRng) -> Self {
        Node {
            rng,
            disk: Disk::default(),
            next_timer: 0,
            pending_timers: Vec::new(),
            crashed_by: None,
            paused_until: Time::ZERO,
            paused_by: None,
            busy_until: Time::ZERO,
            half_open_by: None,
            stale: None,
            lie_by: None,
            slow_disk_by: None,
            skew: None,
            lost: 0,
        }
    }

    /// The node's own clock: virtual time, offset and drifting under a `skew` fault.
    #[inline]
    fn local(&self, now: Time) -> Time {
        match self.skew {
            None => now,
            Some((_, offset, drift_ppm)) => {
                let t = now.as_nanos() as f64;
                let local = t + offset as f64 + t * drift_ppm / 1e6;
                Time::from_nanos(local.max(0.0) as u64)
            }
        }
    }

    /// Virtual time for a span of the node's own time (a fast clock's timers fire early).
    #[inline]
    fn virtual_span(&self, local: Span) -> Span {
        match self.skew {
            None => local,
            Some((_, _, drift_ppm)) => Span::from_nanos((local.as_nanos() as f64 / (1.0 + drift_ppm / 1e6)) as u64),
        }
    }
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

/// A simulation of one protocol on `n` nodes under a set of faults. The protocols are
/// kept apart from the [`World`] so that a handler can hold its own node mutably while
/// its context applies effects to everything else.
pub struct Sim<P: Protocol> {
    protocols: Vec<P>,
    /// Each node as it was built: what a restart rebuilds it from.
    initial: Vec<P>,
    world: World<P>,
}

/// Everything in a run but the protocols: clock, queue, network, faults, nodes' runtime
/// state, statistics and the tracer. It is the [`Runtime`] a handler's context talks to.
pub struct World<P: Protocol> {
    now: Time,
    queue: Queue<P>,
    nodes: Vec<Node>,
    names: Vec<String>,
    fault_labels: Vec<String>,
    network: Network,
    injector: Injector<P::Msg>,
    /// Extra messages faults emit while one send is judged; reused to avoid allocating.
    extras: Vec<Extra<P::Msg>>,
    /// Node-state faults that shaped the handler now running (a skewed clock, a stale
    /// read, a lying or slow fsync): every message it sends and timer it sets names them.
    ambient: Causes,
    limits: Limits,
    stats: Stats,
    observations: Vec<Observed<P::Obs>>,
    tracer: Option<Box<dyn Tracer>>,
    trace_seq: u64,
    stopped: Option<StopReason>,
    /// Per (from, to), messages sent and their bytes (`Message::wire_size`), when asked
    /// for with [`Sim::count_links`]; empty otherwise, and then free.
    links: Vec<(u64, u64)>,
}

impl<P: Protocol> Sim<P> {
    /// Counts messages and bytes per link from now on (cost figures). Sizing a message
    /// may encode it, so this is off unless asked for.
    pub fn count_links(&mut self) {
        let n = self.world.nodes.len();
        self.world.links = vec![(0, 0); n * n];
    }

    /// Messages and bytes sent from `from` to `to` since [`Sim::count_links`].
    pub fn link(&self, from: NodeId, to: NodeId) -> (u64, u64) {
        let n = self.world.nodes.len();
        self.world.links.get(from.index() * n + to.index()).copied().unwrap_or((0, 0))
    }

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
        let nodes = (0..n).map(|i| Node::new(stream(seed, Stream::Node(i as u32)))).collect();
        let mut world = World {
            now: Time::ZERO,
            queue: Queue::new(),
            nodes,
            names: config.names,
            fault_labels,
            network,
            injector: Injector::new(seed, n, faults.clone()),
            extras: Vec::new(),
            ambient: Causes::default(),
            limits: config.limits,
            stats: Stats::default(),
            observations: Vec::new(),
            tracer: None,
            trace_seq: 0,
            stopped: None,
            links: Vec::new(),
        };
        // Fault windows are scheduled before node starts, so a crash at time 0 means the
        // node never starts, and a pause from time 0 holds its start.
        for (i, f) in faults.iter().enumerate() {
            world.queue.push(f.start, Event::FaultStart(i as FaultId));
            if let Some(end) = f.end {
                world.queue.push(end, Event::FaultEnd(i as FaultId));
            }
        }
        for i in 0..n {
            world.queue.push(Time::ZERO, Event::Start(NodeId(i as u32)));
        }
        Sim { initial: protocols.clone(), protocols, world }
    }

    /// Installs a tracer. Install it before the first step to see the whole run.
    pub fn set_tracer(&mut self, tracer: Box<dyn Tracer>) {
        self.world.tracer = Some(tracer);
    }

    pub fn take_tracer(&mut self) -> Option<Box<dyn Tracer>> {
        self.world.tracer.take()
    }

    pub fn now(&self) -> Time {
        self.world.now
    }

    pub fn stats(&self) -> &Stats {
        &self.world.stats
    }

    pub fn node(&self, id: NodeId) -> &P {
        &self.protocols[id.index()]
    }

    pub fn disk(&self, id: NodeId) -> &Disk {
        &self.world.nodes[id.index()].disk
    }

    pub fn injector(&self) -> &Injector<P::Msg> {
        &self.world.injector
    }

    pub fn name(&self, id: NodeId) -> &str {
        &self.world.names[id.index()]
    }

    /// When the next pending event happens, if any (it may lie past `max_time`).
    pub fn next_time(&self) -> Option<Time> {
        self.world.queue.next_time()
    }

    /// How the node looks from outside now: what a peer's kernel sees of it.
    pub fn status(&self, id: NodeId) -> NodeStatus {
        let n = &self.world.nodes[id.index()];
        if n.crashed_by.is_some() {
            NodeStatus::Crashed
        } else if n.paused_until > self.world.now {
            NodeStatus::Paused
        } else if n.half_open_by.is_some() {
            NodeStatus::HalfOpen
        } else {
            NodeStatus::Up
        }
    }

    /// Messages to or from the node lost on the wire so far (omission and garbling; not
    /// those that reached a crashed node): the retransmissions its host would count.
    pub fn lost(&self, id: NodeId) -> u64 {
        self.world.nodes[id.index()].lost
    }

    pub fn observations(&self) -> &[Observed<P::Obs>] {
        &self.world.observations
    }

    /// Hands over the observations gathered so far, so long runs need not keep them all.
    pub fn drain_observations(&mut self) -> std::vec::Drain<'_, Observed<P::Obs>> {
        self.world.observations.drain(..)
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
    #[inline]
    pub fn step(&mut self) -> Option<StopReason> {
        let w = &mut self.world;
        if let Some(reason) = w.stopped {
            return Some(reason);
        }
        if w.stats.events() >= w.limits.max_events {
            return w.stop(StopReason::MaxEvents);
        }
        let Some((time, event)) = w.queue.pop() else {
            return w.stop(StopReason::Quiescent);
        };
        if let Event::Timer { node, id, .. } = &event
            && !w.nodes[node.index()].pending_timers.contains(id)
        {
            return None; // cancelled, or its node crashed: nothing happens, not even time passing
        }
        if time > w.limits.max_time {
            w.queue.push(time, event);
            return w.stop(StopReason::MaxTime);
        }
        assert!(time >= w.now, "time went backwards: {time:?} < {:?}", w.now);
        w.now = time;
        match event {
            Event::Deliver { from, to, msg, causes, held } => self.deliver(from, to, msg, causes, held),
            Event::Timer { node, id, timer, causes } => self.fire(node, id, timer, causes),
            Event::Start(node) => self.start(node),
            Event::FaultStart(id) => self.fault_start(id),
            Event::FaultEnd(id) => self.fault_end(id),
            Event::Garbled { from, to, by } => self.world.garbled(from, to, by),
        }
        None
    }

    fn start(&mut self, node: NodeId) {
        let w = &mut self.world;
        if let Some(by) = w.nodes[node.index()].crashed_by {
            // Crashed before it ever started.
            w.trace(node, Kind::Drop, None, None, Causes::one(by));
            return;
        }
        if w.nodes[node.index()].paused_until > w.now {
            w.hold(node, Event::Start(node));
            return;
        }
        if let Some(by) = w.nodes[node.index()].half_open_by {
            // A hung application does not start until it comes back.
            w.hold_for(node, Event::Start(node), by);
            return;
        }
        w.trace(node, Kind::Start, None, None, Causes::default());
        self.dispatch(node, |p, ctx| p.on_start(ctx));
    }

    #[inline]
    fn deliver(&mut self, from: NodeId, to: NodeId, msg: P::Msg, causes: Causes, held: bool) {
        let w = &mut self.world;
        if !held {
            // First arrival: the message leaves the wire (a held message already has).
            w.network.release(from.index(), to.index());
        }
        let node = &w.nodes[to.index()];
        if let Some(by) = node.crashed_by {
            w.stats.drops += 1;
            let mut causes = causes;
            causes.add(by);
            w.trace_with(to, Kind::Drop, Some(from), None, || format!("{msg:?}"), causes);
            return;
        }
        if node.paused_until > w.now {
            w.hold(to, Event::Deliver { from, to, msg, causes, held });
            return;
        }
        if let Some(by) = node.half_open_by
            && msg.plane() == Plane::Data
        {
            // The transport accepted it; the dead application never reads it.
            w.stats.drops += 1;
            w.injector.note_fired(by);
            let mut causes = causes;
            causes.add(by);
            w.trace_with(to, Kind::Drop, Some(from), None, || format!("{msg:?}"), causes);
            return;
        }
        w.stats.deliveries += 1;
        w.trace_with(to, Kind::Deliver, Some(from), None, || format!("{msg:?}"), causes);
        self.dispatch(to, |p, ctx| p.on_message(ctx, from, msg));
    }

    #[inline]
    fn fire(&mut self, node: NodeId, id: TimerId, timer: P::Timer, causes: Causes) {
        let w = &mut self.world;
        let n = &mut w.nodes[node.index()];
        if n.paused_until > w.now {
            w.hold(node, Event::Timer { node, id, timer, causes });
            return;
        }
        if let Some(by) = n.half_open_by {
            // A hung application's timers wait for it to come back.
            w.hold_for(node, Event::Timer { node, id, timer, causes }, by);
            return;
        }
        // Pending timers are few and in increasing id order; the one firing is usually
        // first. `step` has checked that it is pending.
        if let Some(pos) = n.pending_timers.iter().position(|&t| t == id) {
            n.pending_timers.remove(pos);
        }
        w.stats.timer_fires += 1;
        w.trace_with(node, Kind::Timer, None, None, || format!("{timer:?}"), causes);
        self.dispatch(node, |p, ctx| p.on_timer(ctx, id, timer));
    }

    fn fault_start(&mut self, id: FaultId) {
        let fault = self.world.injector.fault(id).clone();
        let node = fault.node;
        self.world.injector.set_active(id, true);
        self.world.trace(node, Kind::FaultStart, None, None, Causes::one(id));
        let n = &mut self.world.nodes[node.index()];
        match fault.kind {
            FaultKind::Crash | FaultKind::FailStop | FaultKind::Restart => {
                if n.crashed_by.is_some() {
                    return;
                }
                n.crashed_by = Some(id);
                n.pending_timers.clear();
                n.disk.crash();
                self.world.injector.note_fired(id);
                if matches!(fault.kind, FaultKind::FailStop) {
                    // The idealisation: every live peer learns of the failure at once.
                    for peer in 0..self.protocols.len() {
                        let peer = NodeId(peer as u32);
                        if peer != node && self.world.nodes[peer.index()].crashed_by.is_none() {
                            self.dispatch(peer, |p, ctx| p.on_peer_down(ctx, node));
                        }
                    }
                }
            }
            FaultKind::Pause => {
                let until = fault.end.unwrap_or(Time::MAX);
                if until > n.paused_until {
                    n.paused_until = until;
                    n.paused_by = Some(id);
                }
            }
            FaultKind::HalfOpen => n.half_open_by = Some(id),
            FaultKind::Stale { age } => n.stale = Some((id, age)),
            FaultKind::Lie => n.lie_by = Some(id),
            FaultKind::SlowDisk { .. } => n.slow_disk_by = Some(id),
            FaultKind::Skew { offset, drift_ppm } => {
                n.skew = Some((id, offset, drift_ppm));
                self.world.injector.note_fired(id);
            }
            // The rest are judged message by message by the injector while active.
            _ => {}
        }
    }

    fn fault_end(&mut self, id: FaultId) {
        let fault = self.world.injector.fault(id).clone();
        let node = fault.node;
        self.world.injector.set_active(id, false);
        self.world.trace(node, Kind::FaultEnd, None, None, Causes::one(id));
        let n = &mut self.world.nodes[node.index()];
        match fault.kind {
            FaultKind::Restart if n.crashed_by == Some(id) => {
                // Crash-recovery: the process comes back as it was built, with only what
                // it had synced, and starts again.
                n.crashed_by = None;
                n.pending_timers.clear();
                n.busy_until = Time::ZERO;
                self.protocols[node.index()] = self.initial[node.index()].clone();
                self.world.trace(node, Kind::Start, None, None, Causes::one(id));
                self.dispatch(node, |p, ctx| p.on_start(ctx));
            }
            FaultKind::HalfOpen if n.half_open_by == Some(id) => n.half_open_by = None,
            FaultKind::Stale { .. } if n.stale.is_some_and(|(f, _)| f == id) => n.stale = None,
            FaultKind::Lie if n.lie_by == Some(id) => n.lie_by = None,
            FaultKind::SlowDisk { .. } if n.slow_disk_by == Some(id) => n.slow_disk_by = None,
            FaultKind::Skew { .. } if n.skew.is_some_and(|(f, _, _)| f == id) => n.skew = None,
            _ => {}
        }
    }

    /// Runs one handler of `node` with a context whose effects apply to the world at once.
    #[inline]
    fn dispatch(&mut self, node: NodeId, handler: impl FnOnce(&mut P, &mut Context<'_, P>)) {
        let n = &self.world.nodes[node.index()];
        let now = n.local(self.world.now);
        self.world.ambient = match n.skew {
            Some((by, _, _)) => Causes::one(by),
            None => Causes::default(),
        };
        let may_be_stale = n.stale.is_some();
        let mut ctx = Context::in_sim(node, now, &mut self.world, may_be_stale);
        handler(&mut self.protocols[node.index()], &mut ctx);
    }
}

impl<P: Protocol> World<P> {
    fn stop(&mut self, reason: StopReason) -> Option<StopReason> {
        self.stopped = Some(reason);
        Some(reason)
    }

    /// Holds `event` until its paused `node` resumes.
    #[cold]
    fn hold(&mut self, node: NodeId, event: Event<P>) {
        let n = &self.nodes[node.index()];
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
        self.queue.push(until, event);
    }

    /// A garbled message arrives: the receiver cannot decode it and drops it.
    fn garbled(&mut self, from: NodeId, to: NodeId, by: FaultId) {
        self.network.release(from.index(), to.index());
        self.stats.garbled += 1;
        self.stats.drops += 1;
        self.nodes[from.index()].lost += 1;
        self.nodes[to.index()].lost += 1;
        self.trace_with(to, Kind::Drop, Some(from), None, || "garbled: does not decode".to_owned(), Causes::one(by));
    }

    /// Holds `event` of a half-open node until the fault's window ends (for ever if it has
    /// no end: the event is then never handled).
    #[cold]
    fn hold_for(&mut self, node: NodeId, event: Event<P>, by: FaultId) {
        self.injector.note_fired(by);
        self.stats.deferrals += 1;
        self.trace(node, Kind::Defer, None, None, Causes::one(by));
        if let Some(end) = self.injector.fault(by).end {
            self.queue.push(end, event);
        }
    }

    /// Sends a message that faults in their window may judge, and whatever extra messages
    /// they make the sender emit. Kept out of line: `send`'s quiet path, the common one,
    /// then saves and restores fewer registers.
    #[inline(never)]
    fn send_judged(&mut self, from: NodeId, to: NodeId, msg: P::Msg, depart: Time, ambient: Causes) {
        self.transmit(from, to, msg, depart, true, ambient, 0);
        if !self.extras.is_empty() {
            // Duplicates, replays and forgeries: sent after the original, not judged again.
            let mut extras = std::mem::take(&mut self.extras);
            for e in extras.drain(..) {
                self.stats.injected += 1;
                self.transmit(from, e.to, e.msg, depart, false, e.causes, e.extra_ns);
            }
            self.extras = extras;
        }
    }

    /// Sends one message through the injector (when `judge`) and the network, leaving at
    /// `depart`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn transmit(
        &mut self,
        from: NodeId,
        to: NodeId,
        mut msg: P::Msg,
        depart: Time,
        judge: bool,
        mut causes: Causes,
        mut extra_ns: u64,
    ) {
        if judge {
            match self.injector.on_send(from, to, &mut msg, &mut self.extras) {
                Verdict::Drop(by) => {
                    self.stats.drops += 1;
                    self.nodes[from.index()].lost += 1;
                    self.nodes[to.index()].lost += 1;
                    self.trace_with(from, Kind::Drop, Some(to), None, || format!("{msg:?}"), Causes::one(by));
                    return;
                }
                Verdict::Garble(by) => {
                    match self.network.admit(from.index(), to.index()) {
                        Some(latency_ns) => {
                            let at = depart + Span::from_nanos(latency_ns);
                            self.trace_with(
                                from,
                                Kind::Send,
                                Some(to),
                                Some(at),
                                || format!("{msg:?} (garbled)"),
                                Causes::one(by),
                            );
                            self.queue.push(at, Event::Garbled { from, to, by });
                        }
                        None => self.stats.overflows += 1,
                    }
                    return;
                }
                Verdict::Pass { extra_ns: e, causes: c } => {
                    extra_ns = e;
                    for id in c.iter() {
                        causes.add(id);
                    }
                }
            }
        }
        self.put_on_wire(from, to, msg, depart, causes, extra_ns);
    }

    /// Admits a message to its link and schedules its delivery.
    #[inline(always)]
    fn put_on_wire(&mut self, from: NodeId, to: NodeId, msg: P::Msg, depart: Time, causes: Causes, extra_ns: u64) {
        match self.network.admit(from.index(), to.index()) {
            None => {
                self.stats.overflows += 1;
                self.trace_with(from, Kind::Drop, Some(to), None, || format!("{msg:?}"), causes);
            }
            Some(latency_ns) => {
                let at = depart + Span::from_nanos(latency_ns.saturating_add(extra_ns));
                self.trace_with(from, Kind::Send, Some(to), Some(at), || format!("{msg:?}"), causes);
                self.queue.push(at, Event::Deliver { from, to, msg, causes, held: false });
            }
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

impl<P: Protocol> Runtime<P> for World<P> {
    fn rng(&mut self, me: NodeId) -> &mut SimRng {
        &mut self.nodes[me.index()].rng
    }

    #[inline]
    fn send(&mut self, from: NodeId, to: NodeId, msg: P::Msg) {
        assert!(
            to.index() < self.nodes.len(),
            "{} sent to node {} of {}",
            self.names[from.index()],
            to.0,
            self.nodes.len()
        );
        self.stats.sends += 1;
        if !self.links.is_empty() {
            let link = &mut self.links[from.index() * self.nodes.len() + to.index()];
            link.0 += 1;
            link.1 += msg.wire_size() as u64;
        }
        let depart = self.now.max(self.nodes[from.index()].busy_until);
        let ambient = self.ambient;
        if self.injector.is_quiet(from, to) {
            // No fault in its window judges this link: straight onto the wire.
            self.put_on_wire(from, to, msg, depart, ambient, 0);
            return;
        }
        self.send_judged(from, to, msg, depart, ambient);
    }

    fn set_timer(&mut self, me: NodeId, after: Span, timer: P::Timer) -> TimerId {
        let node = &mut self.nodes[me.index()];
        let id = TimerId(node.next_timer);
        node.next_timer += 1;
        node.pending_timers.push(id);
        let at = self.now.max(node.busy_until) + node.virtual_span(after);
        self.queue.push(at, Event::Timer { node: me, id, timer, causes: self.ambient });
        id
    }

    fn cancel_timer(&mut self, me: NodeId, id: TimerId) {
        let pending = &mut self.nodes[me.index()].pending_timers;
        if let Some(pos) = pending.iter().position(|&t| t == id) {
            pending.remove(pos);
        }
    }

    fn observe(&mut self, me: NodeId, obs: P::Obs) {
        self.trace_with(me, Kind::Observe, None, None, || format!("{obs:?}"), Causes::default());
        self.observations.push(Observed { time: self.now, node: me, obs });
    }

    fn write(&mut self, me: NodeId, key: &str, value: Vec<u8>) {
        self.nodes[me.index()].disk.write(key, value);
    }

    fn fsync(&mut self, me: NodeId) {
        let n = &mut self.nodes[me.index()];
        if let Some(by) = n.lie_by {
            if n.disk.sync_lying() > 0 {
                self.injector.note_fired(by);
                self.ambient.add(by);
            }
        } else {
            n.disk.sync();
        }
        if let Some(by) = self.nodes[me.index()].slow_disk_by {
            // The fsync blocks: the node is busy until the disk answers and handles
            // nothing else meanwhile; what it sends after the fsync leaves then.
            let stall = Span::from_nanos(self.injector.sample(by));
            self.injector.note_fired(by);
            self.ambient.add(by);
            let n = &mut self.nodes[me.index()];
            n.busy_until = self.now.max(n.busy_until) + stall;
            if n.busy_until > n.paused_until {
                n.paused_until = n.busy_until;
                n.paused_by = Some(by);
            }
        }
    }

    fn read(&mut self, me: NodeId, key: &str) -> Option<Vec<u8>> {
        self.nodes[me.index()].disk.read(key).map(<[u8]>::to_vec)
    }

    fn stale(&mut self, me: NodeId) -> Option<Span> {
        let (by, age) = self.nodes[me.index()].stale?;
        self.injector.note_fired(by);
        self.ambient.add(by);
        Some(age)
    }
}

#[cfg(test)]
mod agenda_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The adaptive agenda pops in exactly the order a plain binary heap does, across
        /// the switch between its two forms in both directions. Pushes outnumber pops two
        /// to one in the first half, so the queue grows past `LARGE`, then drains.
        #[test]
        fn pops_in_heap_order(ops in proptest::collection::vec((0u8..3, 0u64..50), 1..1500)) {
            let (mut agenda, mut reference) = (Agenda::default(), BinaryHeap::new());
            let half = ops.len() / 2;
            let (mut seq, mut now, mut largest) = (0u64, 0u64, 0usize);
            for (i, (coin, dt)) in ops.into_iter().enumerate() {
                let push = if i < half { coin < 2 } else { coin == 0 };
                if push || reference.is_empty() {
                    let at = Time::from_nanos(now + dt);
                    agenda.push(Entry { time: at, seq, item: seq });
                    reference.push(Entry { time: at, seq, item: seq });
                    seq += 1;
                } else {
                    let (a, b) = (agenda.pop().map(|e| e.item), reference.pop());
                    prop_assert_eq!(a, b.as_ref().map(|e| e.item));
                    now = b.map_or(now, |e| e.time.as_nanos());
                }
                prop_assert_eq!(agenda.len(), reference.len());
                largest = largest.max(agenda.len());
            }
            while let Some(b) = reference.pop() {
                prop_assert_eq!(agenda.pop().map(|e| e.item), Some(b.item));
            }
            prop_assert!(agenda.pop().is_none());
        }
    }

    #[test]
    fn crosses_both_thresholds() {
        let mut agenda = Agenda::default();
        for i in 0..500u64 {
            agenda.push(Entry { time: Time::from_nanos(1_000 - i), seq: i, item: i });
        }
        assert!(!agenda.heap.is_empty(), "500 entries live in the heap form");
        let popped: Vec<u64> = std::iter::from_fn(|| agenda.pop().map(|e| e.item)).collect();
        assert_eq!(popped, (0..500).rev().collect::<Vec<_>>());
        assert!(agenda.heap.is_empty() && agenda.sorted.is_empty());
    }

    /// The hand-written shift in `push` moves entries that own heap memory: none may be
    /// dropped twice or leaked, whether popped or dropped with the agenda, in either form.
    #[test]
    fn owned_items_are_moved_not_copied() {
        let token = std::rc::Rc::new(());
        for count in [40usize, 300] {
            let mut agenda = Agenda::default();
            for i in 0..count as u64 {
                // Times out of order, with ties, so the scan shifts a varying number of entries.
                let at = Time::from_nanos((i * 7919) % 61);
                agenda.push(Entry { time: at, seq: i, item: (i, std::rc::Rc::clone(&token)) });
            }
            assert_eq!(std::rc::Rc::strong_count(&token), count + 1);
            let mut last = None;
            for _ in 0..count / 2 {
                let e = agenda.pop().expect("half the entries remain");
                assert!(last.is_none_or(|l| (e.time, e.seq) > l), "pops in (time, seq) order");
                assert_eq!(e.seq, e.item.0, "each entry keeps its own item");
                last = Some((e.time, e.seq));
            }
            assert_eq!(std::rc::Rc::strong_count(&token), count - count / 2 + 1);
            drop(agenda);
            assert_eq!(std::rc::Rc::strong_count(&token), 1, "no item leaked or dropped twice");
        }
    }
}
