//! Gray failure: healthy to one observer, broken to another (Huang et al., HotOS 2017).
//!
//! A server answers two observers. A health checker probes it every 100 ms on the probe
//! plane (a synthetic /health endpoint); a client sends it real requests every 10 ms on the
//! data plane. From 1 s to 3 s the server has a gray failure: 90 % of its data-plane
//! messages are lost while probes pass. The health checker sees 100 % healthy throughout;
//! the client sees its success rate collapse. Failure is a relation between observer and
//! observed, not a property of the node alone.
//!
//! Run: `cargo run -p faultline --example gray`

use faultline::fault::{Fault, FaultKind};
use faultline::protocol::{Context, Message, NodeId, Plane, Protocol, TimerId};
use faultline::sim::network::LatencyDist;
use faultline::sim::world::{Limits, Sim, SimConfig};
use faultline::sim::{Span, Time};

const SERVER: NodeId = NodeId(2);

#[derive(Clone, Debug)]
enum Msg {
    Request { plane: Plane },
    Reply { plane: Plane },
}

impl Message for Msg {
    fn plane(&self) -> Plane {
        match self {
            Msg::Request { plane } | Msg::Reply { plane } => *plane,
        }
    }
}

#[derive(Clone, Debug)]
struct Tick;

/// Per observer and per second of the run: requests sent, replies received.
#[derive(Clone, Debug, PartialEq)]
struct Window {
    second: u64,
    sent: u64,
    answered: u64,
}

#[derive(Clone)]
enum Node {
    /// Sends on `plane` every `every`, counts answers per second of virtual time.
    Observer {
        plane: Plane,
        every: Span,
        sent: u64,
        answered: u64,
        second: u64,
    },
    Server,
}

impl Protocol for Node {
    type Msg = Msg;
    type Timer = Tick;
    type Obs = Window;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let Node::Observer { every, .. } = self {
            ctx.set_timer(*every, Tick);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match (self, msg) {
            (Node::Server, Msg::Request { plane }) => ctx.send(from, Msg::Reply { plane }),
            (Node::Observer { answered, .. }, Msg::Reply { .. }) => *answered += 1,
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, _t: Tick) {
        if let Node::Observer { plane, every, sent, answered, second } = self {
            let now_second = ctx.now().as_nanos() / 1_000_000_000;
            if now_second > *second {
                // A second has passed: report it. Replies still in flight count late, which
                // at 1-3 ms latency moves at most one answer across the boundary.
                ctx.observe(Window { second: *second, sent: *sent, answered: *answered });
                (*second, *sent, *answered) = (now_second, 0, 0);
            }
            ctx.send(SERVER, Msg::Request { plane: *plane });
            *sent += 1;
            ctx.set_timer(*every, Tick);
        }
    }
}

/// Each observer's success rate per second: (observer, second, answered / sent).
fn run(seed: u64) -> Vec<(&'static str, u64, f64)> {
    let config = SimConfig {
        seed,
        limits: Limits { max_time: Time::ZERO + Span::from_secs(5), ..Limits::default() },
        names: ["health-checker", "client", "server"].map(String::from).to_vec(),
        latency: Box::new(|_, _| LatencyDist::Uniform { min: Span::from_millis(1), max: Span::from_millis(3) }),
    };
    let observer = |plane, every| Node::Observer { plane, every, sent: 0, answered: 0, second: 0 };
    let nodes = vec![
        observer(Plane::Probe, Span::from_millis(100)),
        observer(Plane::Data, Span::from_millis(10)),
        Node::Server,
    ];
    let gray = Fault {
        node: SERVER,
        kind: FaultKind::Gray { p: 0.9, extra: None },
        start: Time::ZERO + Span::from_secs(1),
        end: Some(Time::ZERO + Span::from_secs(3)),
    };
    let mut sim = Sim::new(config, nodes, vec![gray]);
    sim.run();
    sim.observations()
        .iter()
        .map(|o| {
            let who = if o.node == NodeId(0) { "health-checker" } else { "client" };
            (who, o.obs.second, o.obs.answered as f64 / o.obs.sent.max(1) as f64)
        })
        .collect()
}

fn main() {
    println!("second  health-checker  client");
    let rows = run(7);
    for second in 0..4 {
        let rate = |who| rows.iter().find(|r| r.0 == who && r.1 == second).map_or(f64::NAN, |r| r.2);
        println!("{second:>6}  {:>13.0}%  {:>5.0}%", 100.0 * rate("health-checker"), 100.0 * rate("client"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_disagree_during_the_gray_failure_only() {
        let rows = run(7);
        let rate = |who, second| rows.iter().find(|r| r.0 == who && r.1 == second).expect("a window").2;
        for second in 0..4 {
            assert!(rate("health-checker", second) >= 0.9, "probes pass in second {second}");
        }
        // Healthy before and after; the client loses about 1 - 0.1 * 0.1 of its round trips
        // (request and reply each pass with probability 0.1) during the failure.
        assert!(rate("client", 0) > 0.95 && rate("client", 3) > 0.95);
        assert!(rate("client", 1) < 0.1 && rate("client", 2) < 0.1);
    }
}
