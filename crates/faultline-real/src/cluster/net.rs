//! The cluster's own small TCP proxy: one route in front of each member's peer listener and
//! one in front of its client listener, with the few stream faults the nemesis needs (cut,
//! drop one direction, hold half-open), each optionally limited to connections whose first
//! bytes contain given strings.
//!
//! [`Routes`] is the cluster's own proxy, kept to what the etcd nemesis uses, and the
//! default. The crate's general proxy ([`crate::proxy`]) can carry the traffic instead
//! (`[cluster] proxy = "faultline-proxy"`), through the same four effects; it decides
//! `matches` on a connection's first bytes only, which an etcd partition leaks through
//! (docs/real.md), so it is not the default.
//!
//! Why the first bytes: etcd's rafthttp sends every peer request with a header
//! `X-Server-From: <member id>`, and the first line says which kind of connection it is.
//! Messages from A to B travel on streams that B dialed into A (`GET /raft/stream/...`, on
//! A's route, downstream) and on pipeline posts that A dialed into B (`POST /raft`, on B's
//! route, upstream). So a rule "on B's route, connections from A" selects A's traffic with B.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a rule does to the connections it selects.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Closed (new ones are accepted and closed at once): a partition that resets.
    Cut,
    /// Bytes from the dialer to the upstream are read and thrown away.
    DropUp,
    /// Bytes from the upstream to the dialer are read and thrown away.
    DropDown,
    /// Accepted and held open, nothing forwarded either way, nothing answered: a half-open
    /// endpoint (the kernel, or a sidecar, alive; the application gone).
    Hold,
}

/// An effect on the connections whose first bytes contain every one of `matches`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: u64,
    pub effect: Effect,
    pub matches: Vec<String>,
}

impl Rule {
    fn selects(&self, head: &[u8]) -> bool {
        self.matches.iter().all(|m| head.windows(m.len().max(1)).any(|w| w == m.as_bytes()))
    }
}

/// What the rules say about one connection now.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct State {
    cut: bool,
    hold: bool,
    drop_up: bool,
    drop_down: bool,
}

fn state(rules: &[Rule], head: &[u8]) -> State {
    let mut s = State::default();
    for r in rules.iter().filter(|r| r.selects(head)) {
        match r.effect {
            Effect::Cut => s.cut = true,
            Effect::Hold => s.hold = true,
            Effect::DropUp => s.drop_up = true,
            Effect::DropDown => s.drop_down = true,
        }
    }
    s
}

struct Route {
    name: String,
    listen: SocketAddr,
    rules: watch::Sender<Vec<Rule>>,
    task: JoinHandle<()>,
}

/// The routes, their rules, and a log of the connections they saw (first line and
/// `X-Server-From`, so a reader can check what the rules matched).
pub struct Routes {
    routes: Vec<Route>,
    next_id: u64,
    log: Arc<Mutex<String>>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes { routes: Vec::new(), next_id: 1, log: Arc::new(Mutex::new(String::new())) }
    }

    /// Opens a route on a free loopback port to `upstream`; returns its address.
    pub async fn add_route(&mut self, name: &str, upstream: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let listen = listener.local_addr()?;
        let (rules, watcher) = watch::channel(Vec::new());
        let log = self.log.clone();
        let route = name.to_owned();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so aborting the route aborts them all.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        conns.spawn(connection(route.clone(), stream, upstream, watcher.clone(), log.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        self.routes.push(Route { name: name.to_owned(), listen, rules, task });
        Ok(listen)
    }

    pub fn route_addr(&self, name: &str) -> Option<SocketAddr> {
        self.routes.iter().find(|r| r.name == name).map(|r| r.listen)
    }

    /// Adds a rule to a route; returns its id for [`Routes::remove`].
    pub fn add(&mut self, route: &str, effect: Effect, matches: &[&str]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(r) = self.routes.iter().find(|r| r.name == route) {
            let rule = Rule { id, effect, matches: matches.iter().map(|s| (*s).to_owned()).collect() };
            r.rules.send_modify(|rules| rules.push(rule));
        }
        id
    }

    /// Removes rules by id, wherever they are.
    pub fn remove(&mut self, ids: &[u64]) {
        for r in &self.routes {
            r.rules.send_if_modified(|rules| {
                let before = rules.len();
                rules.retain(|x| !ids.contains(&x.id));
                rules.len() != before
            });
        }
    }

    /// The connection log so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn shutdown(&mut self) {
        for r in self.routes.drain(..) {
            r.task.abort();
        }
    }
}

impl Default for Routes {
    fn default() -> Self {
        Routes::new()
    }
}

impl Drop for Routes {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Which proxy carries the cluster's traffic.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The cluster's own routes ([`Routes`]).
    Routes,
    /// The crate's general proxy ([`crate::proxy::Proxy`]).
    FaultlineProxy,
}

/// The general proxy, driven through the four effects.
pub struct ProxyNet {
    proxy: Option<crate::proxy::Proxy>,
    faults: std::collections::BTreeMap<u64, (String, crate::proxy::FaultHandle)>,
    next_id: u64,
    names: Vec<String>,
}

/// The proxy in front of the members, whichever it is.
pub enum Net {
    Routes(Routes),
    Proxy(ProxyNet),
}

impl Net {
    /// Opens one route per `(name, upstream)`, on free loopback ports; returns their
    /// addresses in the same order.
    pub async fn open(backend: Backend, routes: &[(String, SocketAddr)]) -> std::io::Result<(Net, Vec<SocketAddr>)> {
        match backend {
            Backend::Routes => {
                let mut net = Routes::new();
                let mut addrs = Vec::new();
                for (name, upstream) in routes {
                    addrs.push(net.add_route(name, *upstream).await?);
                }
                Ok((Net::Routes(net), addrs))
            }
            Backend::FaultlineProxy => {
                let specs = routes
                    .iter()
                    .map(|(name, upstream)| crate::proxy::RouteSpec {
                        name: name.clone(),
                        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                        upstream: upstream.to_string(),
                    })
                    .collect();
                let proxy = crate::proxy::Proxy::start(specs, None, 1).await.map_err(std::io::Error::other)?;
                let addrs = routes.iter().map(|(name, _)| proxy.route_addr(name).expect("a started route")).collect();
                let names = routes.iter().map(|(n, _)| n.clone()).collect();
                Ok((Net::Proxy(ProxyNet { proxy: Some(proxy), faults: Default::default(), next_id: 1, names }), addrs))
            }
        }
    }

    /// Adds a rule to a route; returns its id for [`Net::remove`].
    pub fn add(&mut self, route: &str, effect: Effect, matches: &[&str]) -> u64 {
        match self {
            Net::Routes(r) => r.add(route, effect, matches),
            Net::Proxy(p) => {
                use crate::proxy::{Direction, PartitionMode, StreamFault, StreamFaultKind};
                let id = p.next_id;
                p.next_id += 1;
                let (kind, direction) = match effect {
                    Effect::Cut if matches.is_empty() => {
                        (StreamFaultKind::Partition { mode: PartitionMode::Refuse }, Direction::Both)
                    }
                    Effect::Cut => (StreamFaultKind::Partition { mode: PartitionMode::Reset }, Direction::Both),
                    Effect::DropUp => (StreamFaultKind::HalfOpen, Direction::Upstream),
                    Effect::DropDown => (StreamFaultKind::HalfOpen, Direction::Downstream),
                    Effect::Hold => (StreamFaultKind::HalfOpen, Direction::Both),
                };
                let mut fault = StreamFault::new(kind).direction(direction);
                // One string per fault: the sender's header when there is one (it says whose
                // connection it is), else the first.
                if let Some(m) = matches.iter().find(|m| m.starts_with("X-Server-From")).or(matches.first()) {
                    fault = fault.matching(*m);
                }
                if let Some(proxy) = &p.proxy
                    && let Ok(handle) = proxy.add_fault(route, fault)
                {
                    p.faults.insert(id, (route.to_owned(), handle));
                }
                id
            }
        }
    }

    /// Removes rules by id.
    pub fn remove(&mut self, ids: &[u64]) {
        match self {
            Net::Routes(r) => r.remove(ids),
            Net::Proxy(p) => {
                for id in ids {
                    if let (Some((route, handle)), Some(proxy)) = (p.faults.remove(id), &p.proxy) {
                        let _ = proxy.remove_fault(&route, handle);
                    }
                }
            }
        }
    }

    /// What the proxy saw: the connection log, or the general proxy's counters per route.
    pub fn log(&self) -> String {
        match self {
            Net::Routes(r) => r.log(),
            Net::Proxy(p) => {
                let mut s = String::new();
                for name in &p.names {
                    if let Some(stats) = p.proxy.as_ref().and_then(|x| x.stats(name)) {
                        let _ = writeln!(s, "{name}\t{}", serde_json::to_string(&stats).unwrap_or_default());
                    }
                }
                s
            }
        }
    }

    pub fn shutdown(&mut self) {
        match self {
            Net::Routes(r) => r.shutdown(),
            // Dropping the general proxy aborts its tasks.
            Net::Proxy(p) => drop(p.proxy.take()),
        }
    }
}

/// The most bytes read before a connection's rules are decided: an HTTP request's headers.
const HEAD_BYTES: usize = 4096;

async fn connection(
    route: String,
    mut client: TcpStream,
    upstream: SocketAddr,
    mut rules: watch::Receiver<Vec<Rule>>,
    log: Arc<Mutex<String>>,
) {
    let _ = client.set_nodelay(true);
    // Before reading anything: a rule for every connection acts at once (a server that
    // speaks first would otherwise wait on the head).
    let everything = state(&rules.borrow(), &[]);
    if everything.cut {
        return;
    }
    if everything.hold {
        return hold(client, Vec::new(), rules).await;
    }
    // The head: until the end of the request's headers, what fits, or 500 ms.
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let mut buf = [0u8; HEAD_BYTES];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while head.len() < HEAD_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut buf[..HEAD_BYTES - head.len()]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if head.is_empty() {
        return;
    }
    note(&log, &route, &head);
    let now = state(&rules.borrow(), &head);
    if now.cut {
        return;
    }
    if now.hold {
        return hold(client, head, rules).await;
    }
    let Ok(Ok(mut up)) = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(upstream)).await else {
        return;
    };
    let _ = up.set_nodelay(true);
    if !now.drop_up && up.write_all(&head).await.is_err() {
        return;
    }
    let mut current = now;
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = up.split();
    let mut a = [0u8; 16 * 1024];
    let mut b = [0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = cr.read(&mut a) => {
                let Ok(n @ 1..) = n else { return };
                // A connection kept alive carries more requests after its first (Go's
                // transport reuses a prober's connection for pipeline posts): what they say
                // about their sender is judged before they are forwarded.
                if remember(&mut head, &a[..n]) {
                    let next = state(&rules.borrow(), &head);
                    if next.cut {
                        return;
                    }
                    if next.hold {
                        drop(up);
                        return hold(client, head, rules).await;
                    }
                    current = next;
                }
                if !current.drop_up && uw.write_all(&a[..n]).await.is_err() { return }
            }
            n = ur.read(&mut b) => {
                let Ok(n @ 1..) = n else { return };
                if !current.drop_down && cw.write_all(&b[..n]).await.is_err() { return }
            }
            changed = rules.changed() => {
                if changed.is_err() { return }
                let next = state(&rules.borrow_and_update(), &head);
                // A connection that lost bytes mid-stream is closed when the loss ends:
                // resuming would hand the reader the rest of a frame it never began.
                let healed = (current.drop_up && !next.drop_up) || (current.drop_down && !next.drop_down);
                if next.cut || healed {
                    return;
                }
                if next.hold {
                    drop(up);
                    return hold(client, head, rules).await;
                }
                current = next;
            }
        }
    }
}

/// The most bytes of a connection's request lines and `X-Server-From` headers kept.
const SEEN_BYTES: usize = 16 * 1024;

/// Adds the request lines and `X-Server-From` headers in `chunk` that `head` does not hold
/// yet; returns whether it added any. (A line split across two chunks is missed; HTTP
/// clients write a request's head in one write.)
fn remember(head: &mut Vec<u8>, chunk: &[u8]) -> bool {
    let mut added = false;
    for line in chunk.split(|&b| b == b'\n') {
        let keep =
            ["X-Server-From: ", "GET /", "POST /", "PUT /", "DELETE /"].iter().any(|p| line.starts_with(p.as_bytes()));
        if keep && head.len() + line.len() < SEEN_BYTES && !head.windows(line.len().max(1)).any(|w| w == line) {
            head.extend_from_slice(b"\n");
            head.extend_from_slice(line);
            added = true;
        }
    }
    added
}

/// Keeps `client` open, reading and discarding, until the hold is lifted (then closes).
async fn hold(mut client: TcpStream, head: Vec<u8>, mut rules: watch::Receiver<Vec<Rule>>) {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            n = client.read(&mut buf) => {
                if !matches!(n, Ok(1..)) { return }
            }
            changed = rules.changed() => {
                if changed.is_err() || !state(&rules.borrow_and_update(), &head).hold { return }
            }
        }
    }
}

/// Logs a connection's first line and its `X-Server-From`, if any.
fn note(log: &Mutex<String>, route: &str, head: &[u8]) {
    let text = String::from_utf8_lossy(&head[..head.len().min(1024)]);
    let first = text.lines().next().unwrap_or("").chars().take(80).collect::<String>();
    let from = text.lines().find_map(|l| l.strip_prefix("X-Server-From: ")).unwrap_or("-").to_owned();
    if let Ok(mut l) = log.lock()
        && l.len() < 4 << 20
    {
        let _ = writeln!(l, "{route}\tfrom {from}\t{first}");
    }
}
