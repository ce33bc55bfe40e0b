//! A protocol of your own, in forty lines: heartbeats and a timeout failure detector.
//!
//! Three workers send a heartbeat to a monitor every 100 ms. The monitor checks every
//! 100 ms and suspects any worker it has not heard from for 350 ms. Worker w1 crashes at
//! 1 s; worker w2 stops the world for 500 ms at 2 s (a GC pause) and is suspected, wrongly,
//! then trusted again once its held heartbeats arrive.
//!
//! Run: `cargo run -p faultline --example heartbeat`

use faultline::fault::{Fault, FaultKind};
use faultline::protocol::{Context, Message, NodeId, Protocol, TimerId};
use faultline::sim::network::LatencyDist;
use faultline::sim::world::{Limits, Sim, SimConfig};
use faultline::sim::{Span, Time};

#[derive(Clone, Debug)]
struct Heartbeat;
impl Message for Heartbeat {}

#[derive(Clone, Debug)]
struct Tick;

/// What the monitor reports: a change of its opinion about a worker.
#[derive(Clone, Debug, PartialEq)]
enum Verdict {
    Suspect(NodeId),
    Trust(NodeId),
}

#[derive(Clone)]
enum Node {
    Monitor { last_heard: Vec<Time>, suspected: Vec<bool> },
    Worker,
}

const MONITOR: NodeId = NodeId(0);
const INTERVAL: Span = Span::from_millis(100);
const TIMEOUT: Span = Span::from_millis(350);

impl Protocol for Node {
    type Msg = Heartbeat;
    type Timer = Tick;
    type Obs = Verdict;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.set_timer(INTERVAL, Tick);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, _msg: Heartbeat) {
        if let Node::Monitor { last_heard, suspected } = self {
            last_heard[from.index()] = ctx.now();
            if std::mem::replace(&mut suspected[from.index()], false) {
                ctx.observe(Verdict::Trust(from));
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, _timer: Tick) {
        match self {
            Node::Worker => ctx.send(MONITOR, Heartbeat),
            Node::Monitor { last_heard, suspected } => {
                for w in 1..last_heard.len() {
                    if !suspected[w] && ctx.now().since(last_heard[w]) > TIMEOUT {
                        suspected[w] = true;
                        ctx.observe(Verdict::Suspect(NodeId(w as u32)));
                    }
                }
            }
        }
        ctx.set_timer(INTERVAL, Tick);
    }
}

/// Runs the example for 4 s of virtual time and returns the monitor's verdicts with times.
fn run(seed: u64) -> Vec<(Time, Verdict)> {
    let config = SimConfig {
        seed,
        limits: Limits { max_time: Time::ZERO + Span::from_secs(4), ..Limits::default() },
        names: ["monitor", "w0", "w1", "w2"].map(String::from).to_vec(),
        latency: Box::new(|_, _| LatencyDist::Uniform { min: Span::from_millis(1), max: Span::from_millis(5) }),
    };
    let nodes = vec![
        Node::Monitor { last_heard: vec![Time::ZERO; 4], suspected: vec![false; 4] },
        Node::Worker,
        Node::Worker,
        Node::Worker,
    ];
    let faults = vec![
        Fault { node: NodeId(2), kind: FaultKind::Crash, start: Time::ZERO + Span::from_secs(1), end: None },
        Fault {
            node: NodeId(3),
            kind: FaultKind::Pause,
            start: Time::ZERO + Span::from_secs(2),
            end: Some(Time::ZERO + Span::from_millis(2_500)),
        },
    ];
    let mut sim = Sim::new(config, nodes, faults);
    sim.run();
    sim.observations().iter().map(|o| (o.time, o.obs.clone())).collect()
}

fn main() {
    for (time, verdict) in run(7) {
        println!("{time:>12}  {verdict:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_is_suspected_for_good_and_pause_only_for_a_while() {
        let verdicts = run(7);
        let w1 = NodeId(2);
        let w2 = NodeId(3);
        // w1 crashes at 1 s, before its 1 s tick (the crash was scheduled first), so its last
        // heartbeat left at 0.9 s and arrived by 0.905 s. The monitor checks every 100 ms and
        // first sees more than 350 ms of silence at its 1.3 s check; it never trusts w1 again.
        let crash: Vec<_> =
            verdicts.iter().filter(|(_, v)| matches!(v, Verdict::Suspect(n) | Verdict::Trust(n) if *n == w1)).collect();
        assert_eq!(crash.len(), 1, "{verdicts:?}");
        let (t, v) = crash[0];
        assert_eq!(*v, Verdict::Suspect(w1));
        assert_eq!(*t, Time::ZERO + Span::from_millis(1_300));
        // w2 pauses 2.0-2.5 s: suspected during the pause, trusted once it resumes.
        let pause: Vec<_> =
            verdicts.iter().filter(|(_, v)| matches!(v, Verdict::Suspect(n) | Verdict::Trust(n) if *n == w2)).collect();
        assert_eq!(
            pause.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            vec![Verdict::Suspect(w2), Verdict::Trust(w2)]
        );
        assert!(
            pause[0].0 < Time::ZERO + Span::from_millis(2_500) && pause[1].0 >= Time::ZERO + Span::from_millis(2_500)
        );
        // w0 is never suspected.
        assert!(verdicts.iter().all(|(_, v)| !matches!(v, Verdict::Suspect(NodeId(1)))));
    }

    #[test]
    fn same_seed_same_verdicts() {
        assert_eq!(run(11), run(11));
    }
}
