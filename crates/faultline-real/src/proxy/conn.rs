//! One proxied connection: two pumps (client to upstream, upstream to client) polled by one
//! task, so that a reset decided by either ends both at once and an aborted task leaves no
//! half behind.
//!
//! A pump reads chunks, applies the per-chunk faults as it reads them (omission, flip,
//! tamper, replay) and queues each with the instant it may leave (now, or now plus a delay,
//! never before the chunk ahead of it); it writes the head of the queue when that instant
//! has come and nothing blocks the direction (a stall, half-open, the bandwidth budget).
//! Reading goes on while writing waits, up to [`MAX_QUEUED_BYTES`], so that a delay holds
//! bytes back without slowing the stream (a delayed stream keeps its throughput, as a long
//! link does). Every change to the route's faults wakes both pumps, which re-evaluate what
//! applies to their connection: faults act on live connections, and a removed stall lets
//! the held bytes go.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::http::{HEAD_BYTES, Requests};
use super::{
    ActiveFault, CHUNK_BYTES, CONNECT_TIMEOUT, Counters, FaultHandle, OmissionMode, PREFIX_BYTES, PREFIX_WAIT,
    PartitionMode, Route, SEEN_BYTES, StreamFaultKind, Way,
};

/// The most bytes a direction reads ahead of what it has written; past it, reading stops
/// and TCP's own flow control holds the sender back.
const MAX_QUEUED_BYTES: usize = 1 << 20;
/// How many earlier chunks a direction keeps for `replay` to choose from.
const REPLAY_HISTORY: usize = 16;
/// How many written chunks' buffers a direction keeps for its next reads.
const SPARE_BUFFERS: usize = 4;

type Faults = Arc<Vec<ActiveFault>>;
type Prefix = Option<Arc<Seen>>;

/// What `matches` is judged on for one connection: its first client bytes, then the lines
/// of each later request head that the text does not hold yet (up to [`SEEN_BYTES`]), and
/// the faults that a head matched when it came (so that a fault keeps acting on the
/// connection even when the text is full). A connection that once carried a matching head
/// matches from then on.
#[derive(Debug, Default)]
struct Seen {
    text: Vec<u8>,
    matched: Vec<FaultHandle>,
}

/// How a pump, and with it the connection, ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum End {
    /// End of stream passed on (a FIN), or the proxy is closing.
    Closed,
    /// A fault, or one end, reset the connection: both ends get a RST.
    Reset,
}

/// Counts the connection as active while it lives, whatever way its task ends.
struct Active<'a>(&'a Counters);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Closes with a RST rather than a FIN: a zero linger makes the close abortive.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

pub(super) async fn run(route: Arc<Route>, mut client: TcpStream, seed: u64) {
    let counters = &route.counters;
    Counters::add(&counters.connections, 1);
    Counters::add(&counters.active, 1);
    let _active = Active(counters);
    let faults = route.faults.subscribe();
    let refused = faults.borrow().iter().any(|f| {
        f.fault.matches.is_none() && matches!(f.fault.kind, StreamFaultKind::Partition { mode: PartitionMode::Refuse })
    });
    if refused {
        Counters::add(&counters.refused, 1);
        reset(client);
        return;
    }
    let mut server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(route.spec.upstream.as_str())).await
    {
        Ok(Ok(server)) => server,
        _ => {
            Counters::add(&counters.upstream_errors, 1);
            reset(client);
            return;
        }
    };
    // Chunks are forwarded as they come: Nagle's algorithm would add its own delay.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let (prefix_tx, prefix_rx) = watch::channel::<Prefix>(None);
        let up = Pump::new(Way::Up, &route, seed, faults.borrow().clone()).run(
            client_read,
            server_write,
            faults.clone(),
            Some(prefix_tx),
            None,
        );
        let seed_down = faultline::sim::rng::splitmix64(seed ^ 0x5eed);
        let now = faults.borrow().clone();
        let down =
            Pump::new(Way::Down, &route, seed_down, now).run(server_read, client_write, faults, None, Some(prefix_rx));
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let end = tokio::select! {
                end = &mut up, if !up_done => { up_done = true; end }
                end = &mut down, if !down_done => { down_done = true; end }
                else => break End::Closed,
            };
            if end == End::Reset {
                break End::Reset;
            }
        }
    };
    if end == End::Reset {
        Counters::add(&counters.resets, 1);
        reset(client);
        reset(server);
    }
}

/// A chunk on its way, and the instant it may leave.
struct Chunk {
    bytes: Vec<u8>,
    offset: usize,
    release: Instant,
}

/// What the route's faults do to one direction of one connection now.
#[derive(Default)]
struct Effect {
    /// A reset or refuse partition both ways: the connection is reset at once.
    reset_now: bool,
    /// A reset or refuse partition this way: reset at the first byte that would cross.
    cut_reset: bool,
    stall: bool,
    discard: bool,
    latency_ms: u64,
    jitter_ms: u64,
    bytes_per_s: Option<u64>,
    omissions: Vec<(FaultHandle, f64, OmissionMode)>,
    flip: f64,
    tamper: f64,
    replay: f64,
    /// Some fault waits for the connection's prefix to be known.
    undecided: bool,
    /// Some `matches` fault does not act on the connection (yet): a new request head may
    /// change that.
    unmatched: bool,
}

/// Whether a fault confined to connections whose prefix contains `needle` applies.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The chance that at least one of two independent draws strikes.
fn either(p: f64, q: f64) -> f64 {
    1.0 - (1.0 - p) * (1.0 - q)
}

fn effect(faults: &[ActiveFault], way: Way, prefix: Option<&Seen>) -> Effect {
    let mut e = Effect::default();
    for f in faults {
        let applies = match (&f.fault.matches, prefix) {
            (None, _) => true,
            (Some(needle), Some(seen)) => {
                let hit = seen.matched.contains(&f.id) || contains(&seen.text, needle.as_bytes());
                e.unmatched |= !hit;
                hit
            }
            (Some(_), None) => {
                e.undecided = true;
                false
            }
        };
        if !applies {
            continue;
        }
        let cut =
            matches!(f.fault.kind, StreamFaultKind::Partition { mode: PartitionMode::Reset | PartitionMode::Refuse });
        if cut && f.fault.direction == super::Direction::Both {
            e.reset_now = true;
        }
        if !f.fault.direction.covers(way) {
            continue;
        }
        match f.fault.kind {
            StreamFaultKind::Delay { latency_ms, jitter_ms } => {
                e.latency_ms = e.latency_ms.saturating_add(latency_ms);
                e.jitter_ms = e.jitter_ms.saturating_add(jitter_ms);
            }
            StreamFaultKind::Partition { mode: PartitionMode::Stall } => e.stall = true,
            StreamFaultKind::Partition { .. } => e.cut_reset = true,
            StreamFaultKind::HalfOpen => e.discard = true,
            StreamFaultKind::Omission { p, mode } => e.omissions.push((f.id, p, mode)),
            StreamFaultKind::Bandwidth { bytes_per_s } => {
                e.bytes_per_s = Some(e.bytes_per_s.map_or(bytes_per_s, |b| b.min(bytes_per_s)));
            }
            StreamFaultKind::Flip { p } => e.flip = either(e.flip, p),
            StreamFaultKind::Tamper { p } => e.tamper = either(e.tamper, p),
            StreamFaultKind::Replay { p } => e.replay = either(e.replay, p),
        }
    }
    e
}

/// One direction of a connection.
struct Pump<'r> {
    way: Way,
    route: &'r Route,
    rng: Xoshiro256PlusPlus,
    effect: Effect,
    queue: VecDeque<Chunk>,
    queued_bytes: usize,
    /// The chunk being written, taken from the head of the queue.
    current: Option<Chunk>,
    history: VecDeque<Vec<u8>>,
    /// When the last queued chunk leaves: no later chunk leaves before it.
    last_release: Instant,
    /// When the bandwidth budget allows the next byte.
    bandwidth_next: Instant,
    /// The omission fault that stalled this direction, until it is removed.
    omission_stall: Option<FaultHandle>,
    eof: bool,
    /// What `matches` is judged on, once the first bytes are decided (both directions
    /// learn it, and every later request head that adds to it).
    prefix: Prefix,
    /// The client bytes gathered so far, while the prefix is undecided (upstream only).
    gathering: Vec<u8>,
    /// When the prefix, or a later request head, is judged with what has come by then.
    deadline: Option<Instant>,
    /// Chunks read while a `matches` fault waited for the prefix or a request head, not yet
    /// through the per-chunk faults (which depend on the verdict).
    undecided: Vec<Vec<u8>>,
    /// The client's requests, framed (upstream only), so that each head is judged.
    requests: Requests,
    /// The head being gathered waited its [`PREFIX_WAIT`] already: not held again.
    head_waited: bool,
    /// The route's faults as last seen.
    faults: Faults,
    /// The buffer the next read fills, and buffers of written chunks kept for reuse.
    next: Vec<u8>,
    spare: Vec<Vec<u8>>,
}

/// The bytes of `chunk` to write now: all that remain, or one bandwidth piece.
fn piece(chunk: Option<&Chunk>, bytes_per_s: Option<u64>) -> &[u8] {
    let Some(c) = chunk else { return &[] };
    let rest = &c.bytes[c.offset..];
    // A piece is a twentieth of a second's budget, so a limited stream flows evenly.
    let most = bytes_per_s.map_or(rest.len(), |b| ((b / 20) as usize).max(1));
    &rest[..rest.len().min(most)]
}

impl<'r> Pump<'r> {
    fn new(way: Way, route: &'r Route, seed: u64, faults: Faults) -> Pump<'r> {
        let now = Instant::now();
        Pump {
            way,
            route,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            effect: Effect::default(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            current: None,
            history: VecDeque::new(),
            last_release: now,
            bandwidth_next: now,
            omission_stall: None,
            eof: false,
            prefix: None,
            gathering: Vec::new(),
            deadline: None,
            undecided: Vec::new(),
            requests: Requests::default(),
            head_waited: false,
            faults,
            next: Vec::with_capacity(CHUNK_BYTES),
            spare: Vec::new(),
        }
    }

    fn refresh(&mut self) {
        self.effect = effect(&self.faults, self.way, self.prefix.as_deref());
        if let Some(id) = self.omission_stall
            && !self.effect.omissions.iter().any(|(o, _, mode)| *o == id && *mode == OmissionMode::Stall)
        {
            self.omission_stall = None;
        }
    }

    fn blocked(&self) -> bool {
        self.effect.stall
            || self.effect.discard
            || self.omission_stall.is_some()
            || (self.way == Way::Up && self.prefix.is_none() && self.effect.undecided)
    }

    /// Makes `seen` what `matches` is judged on, in both directions.
    fn publish(&mut self, seen: Seen, tx: Option<&watch::Sender<Prefix>>) {
        let seen = Arc::new(seen);
        self.prefix = Some(seen.clone());
        if let Some(tx) = tx {
            tx.send_replace(Some(seen));
        }
        self.refresh();
    }

    /// Ends the gathering of the prefix and tells the other direction.
    fn decide_prefix(&mut self, tx: Option<&watch::Sender<Prefix>>) -> Result<(), End> {
        let text = std::mem::take(&mut self.gathering);
        self.deadline = None;
        // A first head that never completed: not an HTTP client this proxy can frame, so
        // the connection is judged on its first bytes alone.
        if self.requests.in_head() {
            self.requests.give_up();
        }
        self.publish(Seen { text, matched: Vec::new() }, tx);
        self.release_undecided()
    }

    /// Passes the held chunks through the per-chunk faults, as they now apply.
    fn release_undecided(&mut self) -> Result<(), End> {
        for chunk in std::mem::take(&mut self.undecided) {
            self.take_chunk(chunk)?;
        }
        Ok(())
    }

    /// Adds a later request head to what `matches` is judged on.
    fn see(&mut self, head: &[u8], tx: Option<&watch::Sender<Prefix>>) {
        let Some(old) = self.prefix.clone() else { return };
        let hits: Vec<FaultHandle> = self
            .faults
            .iter()
            .filter(|f| {
                f.fault.matches.as_ref().is_some_and(|m| contains(head, m.as_bytes())) && !old.matched.contains(&f.id)
            })
            .map(|f| f.id)
            .collect();
        let mut room = SEEN_BYTES.saturating_sub(old.text.len());
        let mut lines = Vec::new();
        for line in head.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() && line.len() + 2 <= room && !contains(&old.text, line) && !lines.contains(&line) {
                room -= line.len() + 2;
                lines.push(line);
            }
        }
        if hits.is_empty() && lines.is_empty() {
            return;
        }
        let mut seen = Seen { text: old.text.clone(), matched: old.matched.clone() };
        seen.matched.extend(hits);
        for line in lines {
            seen.text.extend_from_slice(line);
            seen.text.extend_from_slice(b"\r\n");
        }
        self.publish(seen, tx);
    }

    /// Applies the per-chunk faults to a chunk just read and queues what results.
    fn take_chunk(&mut self, mut bytes: Vec<u8>) -> Result<(), End> {
        let route = self.route;
        let counters = &route.counters;
        if self.effect.cut_reset {
            return Err(End::Reset);
        }
        if self.effect.discard {
            Counters::add(&counters.bytes_discarded, bytes.len() as u64);
            return Ok(());
        }
        for i in 0..self.effect.omissions.len() {
            let (id, p, mode) = self.effect.omissions[i];
            if self.rng.random_bool(p) {
                Counters::add(&counters.omitted, 1);
                match mode {
                    OmissionMode::Reset => return Err(End::Reset),
                    OmissionMode::Stall => self.omission_stall = Some(id),
                }
            }
        }
        if !bytes.is_empty() && self.effect.flip > 0.0 && self.rng.random_bool(self.effect.flip) {
            let bit = self.rng.random_range(0..bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            Counters::add(&counters.flipped, 1);
        }
        if !bytes.is_empty() && self.effect.tamper > 0.0 && self.rng.random_bool(self.effect.tamper) {
            for _ in 0..self.rng.random_range(1..=4usize.min(bytes.len())) {
                let at = self.rng.random_range(0..bytes.len());
                // XOR with a non-zero byte, so that every overwritten byte really changes.
                bytes[at] ^= self.rng.random_range(1..=255u8);
            }
            Counters::add(&counters.tampered, 1);
        }
        let replayed = if self.effect.replay > 0.0 {
            let again = if !self.history.is_empty() && self.rng.random_bool(self.effect.replay) {
                let i = self.rng.random_range(0..self.history.len());
                self.history.get(i).cloned()
            } else {
                None
            };
            if self.history.len() == REPLAY_HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(bytes.clone());
            again
        } else {
            None
        };
        let release = self.release();
        self.push(bytes, release);
        if let Some(again) = replayed {
            Counters::add(&counters.replayed, 1);
            self.push(again, release);
        }
        Ok(())
    }

    /// When a chunk read now may leave: after the delay, and never before the one ahead.
    fn release(&mut self) -> Instant {
        let now = Instant::now();
        let (latency, jitter) = (self.effect.latency_ms as i64, self.effect.jitter_ms as i64);
        let wait_ms = if jitter > 0 { latency + self.rng.random_range(-jitter..=jitter) } else { latency };
        let at = now + Duration::from_millis(wait_ms.max(0) as u64);
        self.last_release = self.last_release.max(at);
        self.last_release
    }

    fn push(&mut self, bytes: Vec<u8>, release: Instant) {
        self.queued_bytes += bytes.len();
        self.queue.push_back(Chunk { bytes, offset: 0, release });
    }

    /// A buffer to read the next chunk into: a spare one, or a new one.
    fn fresh(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES))
    }

    /// Keeps a written chunk's buffer for a later read, so that a busy stream does not
    /// allocate per chunk.
    fn recycle(&mut self, mut bytes: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && bytes.capacity() >= CHUNK_BYTES {
            bytes.clear();
            self.spare.push(bytes);
        }
    }

    /// Handles the end of the stream read.
    fn on_eof(&mut self, tx: Option<&watch::Sender<Prefix>>) -> Result<(), End> {
        self.eof = true;
        match self.way {
            Way::Up if self.prefix.is_none() => self.decide_prefix(tx),
            Way::Up => self.release_undecided(),
            Way::Down => Ok(()),
        }
    }

    /// Handles the bytes of one read.
    fn on_read(&mut self, bytes: Vec<u8>, tx: Option<&watch::Sender<Prefix>>) -> Result<(), End> {
        if self.way == Way::Down {
            return self.take_chunk(bytes);
        }
        let mut heads = Vec::new();
        self.requests.feed(&bytes, &mut heads);
        if !heads.is_empty() {
            self.head_waited = false;
        }
        if self.prefix.is_some() {
            for head in &heads {
                self.see(head, tx);
            }
            // A new request's head has begun, and a `matches` fault does not act on this
            // connection yet: the head decides whether it does, before a byte of it leaves.
            if self.requests.in_head() && self.effect.unmatched && !self.head_waited {
                self.undecided.push(bytes);
                self.deadline.get_or_insert_with(|| Instant::now() + PREFIX_WAIT);
                return Ok(());
            }
            self.deadline = None;
            self.release_undecided()?;
            return self.take_chunk(bytes);
        }
        // An HTTP request's head may take up to HEAD_BYTES; anything else is judged on its
        // first PREFIX_BYTES.
        let limit = if self.requests.is_framed() { HEAD_BYTES } else { PREFIX_BYTES };
        let room = limit.saturating_sub(self.gathering.len());
        self.gathering.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.deadline.get_or_insert_with(|| Instant::now() + PREFIX_WAIT);
        if self.effect.undecided {
            self.undecided.push(bytes);
        } else {
            self.take_chunk(bytes)?;
        }
        if self.gathering.len() >= limit || contains(&self.gathering, b"\r\n\r\n") {
            self.decide_prefix(tx)?;
            // Requests pipelined behind the first, in the same read.
            for head in heads.iter().skip(1) {
                self.see(head, tx);
            }
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut reader: ReadHalf<'_>,
        mut writer: WriteHalf<'_>,
        mut faults: watch::Receiver<Faults>,
        prefix_tx: Option<watch::Sender<Prefix>>,
        mut prefix_rx: Option<watch::Receiver<Prefix>>,
    ) -> End {
        let route = self.route;
        let counters = &route.counters;
        let written = match self.way {
            Way::Up => &counters.bytes_upstream,
            Way::Down => &counters.bytes_downstream,
        };
        self.faults = faults.borrow_and_update().clone();
        self.refresh();
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            if self.effect.reset_now {
                return End::Reset;
            }
            if self.current.is_none()
                && let Some(chunk) = self.queue.pop_front()
            {
                self.queued_bytes -= chunk.bytes.len();
                self.current = Some(chunk);
            }
            if self.effect.cut_reset && self.current.is_some() {
                return End::Reset;
            }
            let blocked = self.blocked();
            if self.eof && self.current.is_none() && self.undecided.is_empty() && !blocked {
                let _ = writer.shutdown().await;
                return End::Closed;
            }
            let can_read = !self.eof && self.queued_bytes < MAX_QUEUED_BYTES;
            let writing = !blocked && self.current.is_some();
            let bandwidth = self.effect.bytes_per_s;
            let ready_at = match (&self.current, bandwidth) {
                (Some(c), Some(_)) => c.release.max(self.bandwidth_next),
                (Some(c), None) => c.release,
                (None, _) => far,
            };
            let now = Instant::now();
            let due = ready_at <= now;
            let deadline = self.deadline.unwrap_or(far);
            let watching_prefix = prefix_rx.is_some();
            tokio::select! {
                biased;
                changed = faults.changed() => {
                    if changed.is_err() {
                        return End::Closed;
                    }
                    self.faults = faults.borrow_and_update().clone();
                    self.refresh();
                    // Held for a head that no fault waits on any more: let it go.
                    if self.prefix.is_some() && !self.undecided.is_empty() && !self.effect.unmatched {
                        self.deadline = None;
                        if let Err(end) = self.release_undecided() {
                            return end;
                        }
                    }
                }
                changed = async { match prefix_rx.as_mut() { Some(rx) => rx.changed().await, None => Ok(()) } },
                    if watching_prefix =>
                {
                    match changed {
                        // Kept watching: later request heads add to what is matched.
                        Ok(()) => {
                            self.prefix = prefix_rx.as_mut().and_then(|rx| rx.borrow_and_update().clone());
                        }
                        // The upstream pump ended without a prefix: no `matches` fault will
                        // ever apply to this connection's downstream.
                        Err(_) => {
                            if self.prefix.is_none() {
                                self.prefix = Some(Arc::new(Seen::default()));
                            }
                            prefix_rx = None;
                        }
                    }
                    self.refresh();
                }
                _ = sleep_until(deadline), if self.deadline.is_some() => {
                    // The prefix, or a later head, is judged on what came in time.
                    let outcome = if self.prefix.is_none() {
                        self.decide_prefix(prefix_tx.as_ref())
                    } else {
                        self.deadline = None;
                        self.head_waited = true;
                        self.release_undecided()
                    };
                    if let Err(end) = outcome {
                        return end;
                    }
                }
                _ = sleep_until(ready_at), if writing && !due => {}
                result = writer.write(piece(self.current.as_ref(), bandwidth)), if writing && due => {
                    match result {
                        Ok(0) | Err(_) => return End::Reset,
                        Ok(n) => {
                            Counters::add(written, n as u64);
                            if let Some(rate) = bandwidth {
                                let cost = Duration::from_secs_f64(n as f64 / rate as f64);
                                self.bandwidth_next = self.bandwidth_next.max(now) + cost;
                            }
                            if let Some(c) = self.current.as_mut() {
                                c.offset += n;
                                if c.offset == c.bytes.len()
                                    && let Some(done) = self.current.take()
                                {
                                    self.recycle(done.bytes);
                                }
                            }
                        }
                    }
                }
                result = reader.read_buf(&mut self.next), if can_read => {
                    let outcome = match result {
                        Ok(0) => self.on_eof(prefix_tx.as_ref()),
                        Ok(_) => {
                            let fresh = self.fresh();
                            let chunk = std::mem::replace(&mut self.next, fresh);
                            self.on_read(chunk, prefix_tx.as_ref())
                        }
                        // The peer reset (or the socket failed): pass the reset on.
                        Err(_) => Err(End::Reset),
                    };
                    if let Err(end) = outcome {
                        return end;
                    }
                }
            }
        }
    }
}
