//! The proxy routes in front of the members: one route in front of each member's peer
//! listener and one in front of its client listener, all on the crate's general proxy
//! ([`crate::proxy::Proxy`], the one `faultline proxy` runs), driven through the four effects
//! the nemesis needs (cut, drop one direction, hold half-open), each optionally confined to
//! the connections one member dialed.
//!
//! Why that works: etcd's rafthttp sends every peer request with a header
//! `X-Server-From: <member id>`, and the proxy's `matches` judges every HTTP request of a
//! kept-alive connection (Go's transport reuses the prober's connections for pipeline
//! posts). Messages from A to B travel on streams that B dialed into A
//! (`GET /raft/stream/...`, on A's route, downstream) and on pipeline posts that A dialed
//! into B (`POST /raft`, on B's route, upstream). So a rule "on B's route, connections from
//! A" selects A's traffic with B.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::proxy::{Direction, FaultHandle, PartitionMode, Proxy, RouteSpec, StreamFault, StreamFaultKind};

/// What a rule does to the connections it selects.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reset, live and new ones: a partition. On a whole route, new connections are reset
    /// at accept (`refuse`); confined to one member's, at their first request's verdict.
    Cut,
    /// Bytes from the dialer to the upstream are read and thrown away.
    DropUp,
    /// Bytes from the upstream to the dialer are read and thrown away.
    DropDown,
    /// Accepted and held open, nothing forwarded either way, nothing answered: a half-open
    /// endpoint (the kernel, or a sidecar, alive; the application gone).
    Hold,
}

/// The routes, on one general proxy, and the faults the nemesis put on them.
pub struct Net {
    proxy: Option<Proxy>,
    faults: std::collections::BTreeMap<u64, (String, FaultHandle)>,
    next_id: u64,
    names: Vec<String>,
}

impl Net {
    /// Opens one route per `(name, upstream)`, on free loopback ports; returns their
    /// addresses in the same order.
    pub async fn open(routes: &[(String, SocketAddr)]) -> std::io::Result<(Net, Vec<SocketAddr>)> {
        let specs = routes
            .iter()
            .map(|(name, upstream)| RouteSpec {
                name: name.clone(),
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                upstream: upstream.to_string(),
            })
            .collect();
        // The seed only draws for probabilistic faults, which the nemesis does not use.
        let proxy = Proxy::start(specs, None, 1).await.map_err(std::io::Error::other)?;
        let addrs = routes.iter().map(|(name, _)| proxy.route_addr(name).expect("a started route")).collect();
        let names = routes.iter().map(|(n, _)| n.clone()).collect();
        Ok((Net { proxy: Some(proxy), faults: Default::default(), next_id: 1, names }, addrs))
    }

    /// Adds a rule to a route, on the connections one of whose requests contains `matches`
    /// (every connection without it); returns its id for [`Net::remove`].
    pub fn add(&mut self, route: &str, effect: Effect, matches: Option<&str>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let (kind, direction) = match effect {
            Effect::Cut if matches.is_none() => {
                (StreamFaultKind::Partition { mode: PartitionMode::Refuse }, Direction::Both)
            }
            Effect::Cut => (StreamFaultKind::Partition { mode: PartitionMode::Reset }, Direction::Both),
            Effect::DropUp => (StreamFaultKind::HalfOpen, Direction::Upstream),
            Effect::DropDown => (StreamFaultKind::HalfOpen, Direction::Downstream),
            Effect::Hold => (StreamFaultKind::HalfOpen, Direction::Both),
        };
        let mut fault = StreamFault::new(kind).direction(direction);
        if let Some(m) = matches {
            fault = fault.matching(m);
        }
        if let Some(proxy) = &self.proxy
            && let Ok(handle) = proxy.add_fault(route, fault)
        {
            self.faults.insert(id, (route.to_owned(), handle));
        }
        id
    }

    /// Removes rules by id.
    pub fn remove(&mut self, ids: &[u64]) {
        for id in ids {
            if let (Some((route, handle)), Some(proxy)) = (self.faults.remove(id), &self.proxy) {
                let _ = proxy.remove_fault(&route, handle);
            }
        }
    }

    /// What the proxy saw: each route's counters (connections, resets, bytes each way and
    /// thrown away), one line per route.
    pub fn log(&self) -> String {
        let mut s = String::new();
        for name in &self.names {
            if let Some(stats) = self.proxy.as_ref().and_then(|x| x.stats(name)) {
                let _ = writeln!(s, "{name}\t{}", serde_json::to_string(&stats).unwrap_or_default());
            }
        }
        s
    }

    /// Closes the routes: dropping the proxy aborts its tasks (listeners and connections).
    pub fn shutdown(&mut self) {
        drop(self.proxy.take());
    }
}
