//! A fault-injecting TCP proxy with a local HTTP/JSON control API, after Toxiproxy's model:
//! each route listens on one address and forwards every connection to one upstream
//! `host:port`; faults ("toxics" in Toxiproxy) are attached to a route, per direction, and
//! added or removed at run time, acting on live connections as well as new ones.
//!
//! The faults are the catalogue's where they keep a meaning on a byte stream
//! ([`crate::faults`]): delay, partition, half-open, omission (as resets or stalls), flip,
//! tamper, replay, and a bandwidth limit that the simulated catalogue does not have. A
//! byte stream has no messages, so the per-message faults act per chunk: one `read()` of at
//! most [`CHUNK_BYTES`].
//!
//! A fault may be confined to some connections with `matches`: it then applies only to the
//! connections whose client bytes contain the string, judged per HTTP request: on an
//! HTTP/1 connection every request head (up to `\r\n\r\n`, at most [`http::HEAD_BYTES`])
//! is judged before a byte of it is forwarded, and a connection that once carried a
//! matching head matches from then on (Go's transport reuses a kept-alive connection for
//! another request: etcd's prober's for pipeline posts). Any other stream is judged on its
//! first bytes (up to [`PREFIX_BYTES`], or what arrived [`PREFIX_WAIT`] after the first
//! byte). That is how a cluster run cuts only the connections one etcd member dialed: each
//! of its peer requests carries `X-Server-From: <member id>`.
//!
//! Randomness (which chunk is flipped, which earlier chunk is replayed, jitter) comes from
//! xoshiro256++ streams derived from the proxy's seed, the route and the connection's
//! number on it; the timing of real sockets is not reproducible, so neither is a run, but
//! the draws of a given connection are.

mod config;
mod conn;
mod control;
pub mod http;
mod spec;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::{ConfigError, ProxyConfig, RouteConfig, load_config, parse_config};
pub use spec::{FaultSpec, FaultSpecError};

/// The most bytes one read takes from a socket: the unit of the per-chunk faults.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// The most client bytes kept to decide `matches`.
pub const PREFIX_BYTES: usize = 4096;
/// The most bytes of request heads kept per connection for `matches` (a fault that matched
/// a head when it came keeps acting past it).
pub const SEEN_BYTES: usize = 16 * 1024;
/// How long after the first client byte the prefix (or a later request head) may still grow.
pub const PREFIX_WAIT: Duration = Duration::from_millis(100);
/// How long [`Proxy::shutdown`] waits for the control API's requests in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long dialing the upstream may take before the client's connection is reset.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One route: where it listens and where it forwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteSpec {
    pub name: String,
    /// Port 0 picks a free port; [`Proxy::route_addr`] says which.
    pub listen: SocketAddr,
    /// `host:port`, resolved at each connection, so a name may point at another host.
    pub upstream: String,
}

/// Which way a fault acts on a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to server (toward the upstream).
    Upstream,
    /// Server to client.
    Downstream,
    Both,
}

impl Direction {
    fn covers(self, way: Way) -> bool {
        matches!(
            (self, way),
            (Direction::Both, _) | (Direction::Upstream, Way::Up) | (Direction::Downstream, Way::Down)
        )
    }
}

/// One of the two concrete directions of a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Way {
    Up,
    Down,
}

/// What a partition does to connections.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionMode {
    /// New connections are accepted and reset at once, without dialing the upstream (a
    /// listening socket cannot be closed for one route cheaply and reopened on the same
    /// port); live connections are reset as by `Reset`.
    Refuse,
    /// Nothing crosses the cut; connections stay open and resume when the fault is removed.
    Stall,
    /// Connections are reset (RST both ends): at once when the cut is both ways, at the
    /// first byte that would cross it when it is one way.
    Reset,
}

/// What an omission does to the connection whose chunk it strikes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OmissionMode {
    /// The connection is reset.
    Reset,
    /// The direction stops forwarding (the chunk and all after it are held) until the
    /// fault is removed.
    Stall,
}

/// A fault's kind and parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StreamFaultKind {
    /// Each chunk is held `latency_ms ± jitter_ms` (uniform), order kept.
    Delay {
        latency_ms: u64,
        jitter_ms: u64,
    },
    Partition {
        mode: PartitionMode,
    },
    /// Bytes are read and discarded, never forwarded; the connection is never closed.
    HalfOpen,
    /// Per chunk with probability `p`.
    #[serde(rename = "omit-general")]
    Omission {
        p: f64,
        mode: OmissionMode,
    },
    /// A token bucket: at most `bytes_per_s` forwarded per second.
    Bandwidth {
        bytes_per_s: u64,
    },
    /// Per chunk with probability `p`, one random bit is flipped.
    Flip {
        p: f64,
    },
    /// Per chunk with probability `p`, one to four random bytes are overwritten.
    Tamper {
        p: f64,
    },
    /// Per chunk with probability `p`, an earlier chunk of the same connection and
    /// direction is sent again after it.
    Replay {
        p: f64,
    },
}

impl StreamFaultKind {
    /// The name as files and the control API spell it.
    pub fn name(&self) -> &'static str {
        match self {
            StreamFaultKind::Delay { .. } => "delay",
            StreamFaultKind::Partition { .. } => "partition",
            StreamFaultKind::HalfOpen => "half-open",
            StreamFaultKind::Omission { .. } => "omit-general",
            StreamFaultKind::Bandwidth { .. } => "bandwidth",
            StreamFaultKind::Flip { .. } => "flip",
            StreamFaultKind::Tamper { .. } => "tamper",
            StreamFaultKind::Replay { .. } => "replay",
        }
    }
}

/// A fault on a route.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamFault {
    #[serde(flatten)]
    pub kind: StreamFaultKind,
    pub direction: Direction,
    /// Only connections whose first client bytes, or one of whose HTTP request heads,
    /// contain this string.
    pub matches: Option<String>,
}

impl StreamFault {
    /// A fault on every connection, both ways.
    pub fn new(kind: StreamFaultKind) -> StreamFault {
        StreamFault { kind, direction: Direction::Both, matches: None }
    }

    pub fn direction(mut self, direction: Direction) -> StreamFault {
        self.direction = direction;
        self
    }

    pub fn matching(mut self, matches: impl Into<String>) -> StreamFault {
        self.matches = Some(matches.into());
        self
    }
}

/// The id of a fault on a route, unique within the proxy.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FaultHandle(pub u64);

/// A fault in force, with its id.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActiveFault {
    pub id: FaultHandle,
    #[serde(flatten)]
    pub fault: StreamFault,
}

/// Counters of a route since the proxy started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RouteStats {
    /// Connections accepted, refused ones included.
    pub connections: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections closed at accept by a `refuse` partition.
    pub refused: u64,
    /// Connections reset by a fault or because one end reset (counted once each).
    pub resets: u64,
    /// Connections whose upstream could not be dialed.
    pub upstream_errors: u64,
    /// Bytes written to the upstream and to clients.
    pub bytes_upstream: u64,
    pub bytes_downstream: u64,
    /// Bytes read and thrown away by `half-open`.
    pub bytes_discarded: u64,
    pub flipped: u64,
    pub tampered: u64,
    pub replayed: u64,
    /// Chunks struck by an omission (each a reset or a stall).
    pub omitted: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    active: AtomicU64,
    refused: AtomicU64,
    resets: AtomicU64,
    upstream_errors: AtomicU64,
    bytes_upstream: AtomicU64,
    bytes_downstream: AtomicU64,
    bytes_discarded: AtomicU64,
    flipped: AtomicU64,
    tampered: AtomicU64,
    replayed: AtomicU64,
    omitted: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RouteStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RouteStats {
            connections: get(&self.connections),
            active: get(&self.active),
            refused: get(&self.refused),
            resets: get(&self.resets),
            upstream_errors: get(&self.upstream_errors),
            bytes_upstream: get(&self.bytes_upstream),
            bytes_downstream: get(&self.bytes_downstream),
            bytes_discarded: get(&self.bytes_discarded),
            flipped: get(&self.flipped),
            tampered: get(&self.tampered),
            replayed: get(&self.replayed),
            omitted: get(&self.omitted),
        }
    }
}

/// What went wrong starting a proxy or changing its faults.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("route '{0}': no such route")]
    UnknownRoute(String),
    #[error("route '{0}': named twice")]
    DuplicateRoute(String),
    #[error("route '{route}': cannot listen on {addr}: {source}")]
    Bind { route: String, addr: SocketAddr, source: std::io::Error },
    #[error("control API: cannot listen on {addr}: {source}")]
    ControlBind { addr: SocketAddr, source: std::io::Error },
    #[error("route '{route}': no fault with id {id}")]
    UnknownFault { route: String, id: u64 },
    #[error("{0}")]
    InvalidFault(#[from] FaultSpecError),
}

/// A route as it runs: its address, its faults (watched by every live connection, which
/// re-evaluates what applies to it on each change) and its counters.
struct Route {
    spec: RouteSpec,
    addr: SocketAddr,
    index: u64,
    faults: watch::Sender<Arc<Vec<ActiveFault>>>,
    /// Serialises changes, so ids appear in the list in the order they were given.
    edit: Mutex<()>,
    counters: Counters,
}

/// What the proxy's handle and its control API share.
struct Shared {
    routes: Vec<Arc<Route>>,
    next_id: AtomicU64,
    seed: u64,
}

/// A route, its faults and its counters, as `GET /routes` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RouteInfo {
    pub name: String,
    pub listen: SocketAddr,
    pub upstream: String,
    pub faults: Vec<ActiveFault>,
    pub stats: RouteStats,
}

impl Shared {
    fn route(&self, name: &str) -> Result<&Arc<Route>, ProxyError> {
        self.routes.iter().find(|r| r.spec.name == name).ok_or_else(|| ProxyError::UnknownRoute(name.to_owned()))
    }

    fn add_fault(&self, route: &str, fault: StreamFault) -> Result<FaultHandle, ProxyError> {
        spec::check(&fault)?;
        let route = self.route(route)?;
        let id = FaultHandle(self.next_id.fetch_add(1, Ordering::Relaxed));
        let _edit = route.edit.lock().unwrap_or_else(|p| p.into_inner());
        route.faults.send_modify(|list| Arc::make_mut(list).push(ActiveFault { id, fault }));
        Ok(id)
    }

    fn remove_fault(&self, route: &str, id: FaultHandle) -> Result<(), ProxyError> {
        let r = self.route(route)?;
        let _edit = r.edit.lock().unwrap_or_else(|p| p.into_inner());
        if !r.faults.borrow().iter().any(|f| f.id == id) {
            return Err(ProxyError::UnknownFault { route: route.to_owned(), id: id.0 });
        }
        r.faults.send_modify(|list| Arc::make_mut(list).retain(|f| f.id != id));
        Ok(())
    }

    fn clear(&self, route: &str) -> Result<(), ProxyError> {
        let r = self.route(route)?;
        let _edit = r.edit.lock().unwrap_or_else(|p| p.into_inner());
        r.faults.send_replace(Arc::new(Vec::new()));
        Ok(())
    }

    fn info(&self) -> Vec<RouteInfo> {
        self.routes
            .iter()
            .map(|r| RouteInfo {
                name: r.spec.name.clone(),
                listen: r.addr,
                upstream: r.spec.upstream.clone(),
                faults: r.faults.borrow().as_ref().clone(),
                stats: r.counters.snapshot(),
            })
            .collect()
    }
}

/// A running proxy. Dropping it without [`Proxy::shutdown`] stops it too (its tasks are
/// aborted), but `shutdown` waits for them to end.
pub struct Proxy {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    control: Option<SocketAddr>,
}

impl Proxy {
    /// Binds every route and the control API (when `control` is given; port 0 picks one)
    /// and starts forwarding. Must be called within a tokio runtime.
    pub async fn start(routes: Vec<RouteSpec>, control: Option<SocketAddr>, seed: u64) -> Result<Proxy, ProxyError> {
        for (i, r) in routes.iter().enumerate() {
            if routes[..i].iter().any(|o| o.name == r.name) {
                return Err(ProxyError::DuplicateRoute(r.name.clone()));
            }
        }
        let mut listeners = Vec::with_capacity(routes.len());
        let mut running = Vec::with_capacity(routes.len());
        for (index, spec) in routes.into_iter().enumerate() {
            let bind = |source| ProxyError::Bind { route: spec.name.clone(), addr: spec.listen, source };
            let listener = TcpListener::bind(spec.listen).await.map_err(bind)?;
            let addr = listener.local_addr().map_err(bind)?;
            running.push(Arc::new(Route {
                spec,
                addr,
                index: index as u64,
                faults: watch::Sender::new(Arc::new(Vec::new())),
                edit: Mutex::new(()),
                counters: Counters::default(),
            }));
            listeners.push(listener);
        }
        let shared = Arc::new(Shared { routes: running, next_id: AtomicU64::new(1), seed });
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let control = match control {
            Some(addr) => {
                let listener =
                    TcpListener::bind(addr).await.map_err(|source| ProxyError::ControlBind { addr, source })?;
                let local = listener.local_addr().map_err(|source| ProxyError::ControlBind { addr, source })?;
                tasks.spawn(control::serve(listener, shared.clone(), shutdown.subscribe()));
                Some(local)
            }
            None => None,
        };
        for (route, listener) in shared.routes.iter().zip(listeners) {
            tasks.spawn(accept_loop(route.clone(), listener, shared.seed, shutdown.subscribe()));
        }
        Ok(Proxy { shared, shutdown, tasks, control })
    }

    /// Where `route` listens.
    pub fn route_addr(&self, route: &str) -> Option<SocketAddr> {
        self.shared.route(route).ok().map(|r| r.addr)
    }

    /// Where the control API listens, if it was asked for.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control
    }

    /// Adds a fault to `route`; it acts on live connections at once.
    pub fn add_fault(&self, route: &str, fault: StreamFault) -> Result<FaultHandle, ProxyError> {
        self.shared.add_fault(route, fault)
    }

    /// Removes a fault: stalled connections resume; reset ones stay reset.
    pub fn remove_fault(&self, route: &str, id: FaultHandle) -> Result<(), ProxyError> {
        self.shared.remove_fault(route, id)
    }

    /// Removes every fault of `route` (an unknown route is ignored).
    pub fn clear(&self, route: &str) {
        let _ = self.shared.clear(route);
    }

    /// The faults in force on `route`.
    pub fn faults(&self, route: &str) -> Option<Vec<ActiveFault>> {
        self.shared.route(route).ok().map(|r| r.faults.borrow().as_ref().clone())
    }

    pub fn stats(&self, route: &str) -> Option<RouteStats> {
        self.shared.route(route).ok().map(|r| r.counters.snapshot())
    }

    /// Every route with its address, faults and counters, in the order given to `start`.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.shared.info()
    }

    /// Stops accepting, closes every connection and the control API, and waits for every
    /// task to end. The control API lets requests in progress finish; one that has not
    /// after [`SHUTDOWN_GRACE`] is cut.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let drained = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            self.tasks.shutdown().await;
        }
    }
}

/// Accepts connections on one route until shutdown; each connection is a task of this
/// loop's set, so that ending the loop ends them all.
async fn accept_loop(route: Arc<Route>, listener: TcpListener, seed: u64, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let mut number: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    number += 1;
                    let conn_seed = faultline::sim::rng::splitmix64(
                        seed ^ faultline::sim::rng::splitmix64((route.index << 40) ^ number),
                    );
                    connections.spawn(conn::run(route.clone(), client, conn_seed));
                }
                // Out of descriptors or a connection reset while queued: the listener
                // itself is fine; wait a little so a persistent error does not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    connections.shutdown().await;
}
