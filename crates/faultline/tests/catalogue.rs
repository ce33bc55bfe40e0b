//! Every fault in the catalogue fires and leaves its ground truth in the trace: one
//! "sometimes" test per fault, on a small ping protocol written for the purpose (a client
//! pings servers every 10 ms on the data plane, and on the probe plane every 50 ms).

use faultline::fault::{Direction, Fault, FaultKind};
use faultline::protocol::{Context, Message, NodeId, Plane, Protocol, TimerId};
use faultline::sim::network::LatencyDist;
use faultline::sim::rng::SimRng;
use faultline::sim::world::{Limits, Sim, SimConfig};
use faultline::sim::{Span, Time};
use faultline::trace::DigestTracer;
use serde_json::Value;

const CLIENT: NodeId = NodeId(0);
const S1: NodeId = NodeId(1);
const S2: NodeId = NodeId(2);

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    Ping { seq: u64, plane: Plane, pad: u16 },
    Pong { seq: u64, plane: Plane, claimed: NodeId, local_ns: u64 },
}

impl Message for Msg {
    fn wire_size(&self) -> usize {
        match self {
            Msg::Ping { pad, .. } => 16 + *pad as usize,
            Msg::Pong { .. } => 32,
        }
    }
    fn plane(&self) -> Plane {
        match self {
            Msg::Ping { plane, .. } | Msg::Pong { plane, .. } => *plane,
        }
    }
    fn tamper(&mut self, _rng: &mut SimRng) -> bool {
        match self {
            Msg::Ping { seq, .. } | Msg::Pong { seq, .. } => *seq += 1_000_000,
        }
        true
    }
    fn forge(&self, victim: NodeId, _rng: &mut SimRng) -> Option<Self> {
        match self {
            Msg::Pong { seq, plane, local_ns, .. } => {
                Some(Msg::Pong { seq: *seq, plane: *plane, claimed: victim, local_ns: *local_ns })
            }
            Msg::Ping { .. } => None,
        }
    }
    fn encode(&self) -> Option<Vec<u8>> {
        let Msg::Pong { seq, claimed, local_ns, .. } = self else { return None };
        let mut b = vec![0xA5];
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&claimed.0.to_le_bytes());
        b.extend_from_slice(&local_ns.to_le_bytes());
        Some(b)
    }
    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 21 || b[0] != 0xA5 {
            return None;
        }
        let seq = u64::from_le_bytes(b[1..9].try_into().ok()?);
        let claimed = NodeId(u32::from_le_bytes(b[9..13].try_into().ok()?));
        let local_ns = u64::from_le_bytes(b[13..21].try_into().ok()?);
        Some(Msg::Pong { seq, plane: Plane::Data, claimed, local_ns })
    }
}

#[derive(Clone, Debug)]
enum Tick {
    Data,
    Probe,
}

/// What the nodes report.
#[derive(Clone, Debug, PartialEq)]
enum Obs {
    /// The client got a pong: from whom (network), the pong's fields, when.
    Pong {
        from: NodeId,
        seq: u64,
        plane: Plane,
        claimed: NodeId,
        local_ns: u64,
    },
    /// A server (re)started and found this value synced on its disk.
    Started {
        last_synced: Option<u64>,
    },
    PeerDown(NodeId),
}

#[derive(Clone)]
enum Node {
    Client { seq: u64, large_every: u64 },
    Server { history: Vec<(Time, u64)> },
}

impl Protocol for Node {
    type Msg = Msg;
    type Timer = Tick;
    type Obs = Obs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            Node::Client { .. } => {
                ctx.set_timer(Span::from_millis(10), Tick::Data);
                ctx.set_timer(Span::from_millis(50), Tick::Probe);
            }
            Node::Server { .. } => {
                let last_synced = ctx.read("last").map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                ctx.observe(Obs::Started { last_synced });
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match (self, msg) {
            (Node::Server { history }, Msg::Ping { seq, plane, .. }) => {
                let now = ctx.now();
                history.push((now, seq));
                if plane == Plane::Data {
                    // Durable before the answer, as a WAL would be; then an unsynced scratch write.
                    ctx.persist("last", seq.to_le_bytes().to_vec());
                    ctx.write("scratch", seq.to_le_bytes().to_vec());
                }
                // A stale server answers with what it had seen `age` ago.
                let answer = match ctx.stale() {
                    Some(age) => history.iter().rev().find(|(t, _)| now.since(*t) >= age).map_or(0, |(_, s)| *s),
                    None => seq,
                };
                let me = ctx.me();
                ctx.send(from, Msg::Pong { seq: answer, plane, claimed: me, local_ns: now.as_nanos() });
            }
            (Node::Client { .. }, Msg::Pong { seq, plane, claimed, local_ns }) => {
                ctx.observe(Obs::Pong { from, seq, plane, claimed, local_ns });
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, timer: Tick) {
        if let Node::Client { seq, large_every } = self {
            let plane = match timer {
                Tick::Data => Plane::Data,
                Tick::Probe => Plane::Probe,
            };
            for server in [S1, S2] {
                let pad = if *large_every > 0 && *seq % *large_every == 0 { 4_000 } else { 0 };
                ctx.send(server, Msg::Ping { seq: *seq, plane, pad });
                *seq += 1;
            }
            let every = if plane == Plane::Data { 10 } else { 50 };
            ctx.set_timer(Span::from_millis(every), timer);
        }
    }

    fn on_peer_down(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId) {
        ctx.observe(Obs::PeerDown(peer));
    }
}

struct Run {
    sim: Sim<Node>,
    trace: Vec<Value>,
}

impl Run {
    fn pongs(&self) -> Vec<(Time, NodeId, u64, Plane, NodeId, u64)> {
        self.sim
            .observations()
            .iter()
            .filter_map(|o| match &o.obs {
                Obs::Pong { from, seq, plane, claimed, local_ns } => {
                    Some((o.time, *from, *seq, *plane, *claimed, *local_ns))
                }
                _ => None,
            })
            .collect()
    }

    /// Trace events caused by fault #0 (every test configures the fault under test first).
    fn caused(&self, kind: &str) -> Vec<&Value> {
        self.trace
            .iter()
            .filter(|e| {
                e["kind"] == kind
                    && e["cause"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c.as_str().is_some_and(|c| c.starts_with("#0 "))))
            })
            .collect()
    }
}

fn ms(x: u64) -> Time {
    Time::ZERO + Span::from_millis(x)
}

fn run(fault: FaultKind, node: NodeId, start: Time, end: Option<Time>, horizon_ms: u64, large_every: u64) -> Run {
    let config = SimConfig {
        seed: 5,
        limits: Limits { max_time: ms(horizon_ms), ..Limits::default() },
        names: ["client", "s1", "s2"].map(String::from).to_vec(),
        latency: Box::new(|_, _| LatencyDist::Uniform { min: Span::from_millis(1), max: Span::from_millis(2) }),
    };
    let nodes =
        vec![Node::Client { seq: 0, large_every }, Node::Server { history: vec![] }, Node::Server { history: vec![] }];
    let mut sim = Sim::new(config, nodes, vec![Fault { node, kind: fault, start, end }]);
    let digest = DigestTracer::new(true);
    sim.set_tracer(Box::new(digest.clone()));
    sim.run();
    assert!(sim.injector().fired(0) > 0, "the fault never fired");
    let trace = digest.lines().iter().map(|l| serde_json::from_str(l).expect("json")).collect();
    Run { sim, trace }
}

fn constant(x: u64) -> LatencyDist {
    LatencyDist::Constant(Span::from_millis(x))
}

#[test]
fn omit_every_nth_drops_exactly_every_4096th_message() {
    // The client sends 2 data pings every 10 ms: 3 s give 600 data pings... so run 30 s
    // (6,000 data + 1,200 probe pings), with the rule on the client's sends.
    let r = run(FaultKind::OmitEveryNth { direction: Direction::Send, n: 4096 }, CLIENT, Time::ZERO, None, 30_000, 0);
    let drops = r.caused("drop");
    assert_eq!(drops.len(), 1, "7,200 sends hold one multiple of 4096");
    assert_eq!(r.sim.injector().fired(0), 1);
    // It was the 4096th message the client sent: count its sends before the drop.
    let seq = drops[0]["seq"].as_u64().expect("seq");
    let sends_before = r
        .trace
        .iter()
        .filter(|e| e["node"] == "client" && e["kind"] == "send" && e["seq"].as_u64() < Some(seq))
        .count();
    assert_eq!(sends_before, 4095);
}

#[test]
fn omit_large_loses_big_messages_and_keeps_small_ones() {
    let r = run(FaultKind::OmitLarge { direction: Direction::Receive, bytes: 1_000 }, S1, Time::ZERO, None, 1_000, 4);
    let drops = r.caused("drop");
    assert!(!drops.is_empty());
    assert!(drops.iter().all(|e| e["detail"].as_str().is_some_and(|d| d.contains("pad: 4000"))));
    assert!(r.pongs().iter().any(|p| p.1 == S1), "small pings still reach s1 and are answered");
}

#[test]
fn partition_cuts_one_direction_of_one_link() {
    // The client cannot reach s1 from 100 ms to 300 ms; s2 is untouched.
    let r = run(
        FaultKind::Partition { peers: vec![S1], direction: Direction::Send, p: 1.0 },
        CLIENT,
        ms(100),
        Some(ms(300)),
        500,
        0,
    );
    let drops = r.caused("drop");
    assert!(drops.iter().all(|e| e["node"] == "client" && e["peer"] == "s1"));
    assert!(drops.iter().all(|e| (100_000_000..300_000_000).contains(&e["t_ns"].as_u64().unwrap_or(0))));
    let pongs = r.pongs();
    assert!(pongs.iter().any(|p| p.1 == S2 && p.0 > ms(110) && p.0 < ms(300)));
    assert!(!pongs.iter().any(|p| p.1 == S1 && p.0 > ms(105) && p.0 < ms(300)));
    assert!(pongs.iter().any(|p| p.1 == S1 && p.0 > ms(300)), "the partition heals");
}

#[test]
fn a_lossy_partition_loses_a_fraction_of_one_link() {
    // p = 0.3 on client -> s1: about 30 % of those pings lost, none on client -> s2.
    let r = run(
        FaultKind::Partition { peers: vec![S1], direction: Direction::Send, p: 0.3 },
        CLIENT,
        Time::ZERO,
        None,
        2_000,
        0,
    );
    let drops = r.caused("drop");
    assert!(drops.iter().all(|e| e["node"] == "client" && e["peer"] == "s1"));
    let sent_to_s1 = r.pongs().iter().filter(|p| p.1 == S1).count() + drops.len();
    let lost = drops.len() as f64 / sent_to_s1 as f64;
    assert!((0.2..0.4).contains(&lost), "lost {lost} of {sent_to_s1}");
    assert!(r.pongs().iter().any(|p| p.1 == S1), "most pings still get through");
}

#[test]
fn duplicate_delivers_twice() {
    let r = run(FaultKind::Duplicate { p: 1.0 }, S1, Time::ZERO, None, 200, 0);
    let mut copies = std::collections::BTreeMap::<u64, usize>::new();
    for p in r.pongs().iter().filter(|p| p.1 == S1) {
        *copies.entry(p.2).or_default() += 1;
    }
    // The last ping before the horizon may not have both copies back yet.
    let complete: Vec<usize> = copies.values().copied().take(copies.len() - 1).collect();
    assert!(!complete.is_empty() && complete.iter().all(|&c| c == 2), "every pong of s1 arrives twice: {copies:?}");
    assert!(r.sim.stats().injected > 0);
}

#[test]
fn reorder_lets_later_messages_overtake() {
    let r = run(FaultKind::Reorder { p: 0.3, extra: constant(25) }, S1, Time::ZERO, None, 2_000, 0);
    let s1: Vec<u64> = r.pongs().iter().filter(|p| p.1 == S1 && p.3 == Plane::Data).map(|p| p.2).collect();
    assert!(s1.windows(2).any(|w| w[1] < w[0]), "some pong arrives after a later one");
    assert!(!r.caused("send").is_empty());
}

#[test]
fn skew_offsets_and_drifts_the_nodes_clock() {
    let r = run(FaultKind::Skew { offset: 5_000_000_000, drift_ppm: 100_000.0 }, S1, Time::ZERO, None, 1_000, 0);
    assert!(!r.caused("send").is_empty(), "what a skewed node sends names its clock");
    // s1 stamps pongs with its local time: 5 s ahead and running 10 % fast.
    for (at, from, _, _, _, local_ns) in r.pongs() {
        if from == S1 {
            let sent_at = local_ns as f64;
            let lower = 5e9 + (at.as_nanos() as f64 - 2e6) * 1.1;
            assert!(sent_at >= lower - 1.0 && sent_at <= 5e9 + at.as_nanos() as f64 * 1.1 + 1.0, "{sent_at} vs {at}");
        }
    }
}

#[test]
fn slow_disk_stalls_the_node_for_each_fsync() {
    let r = run(FaultKind::SlowDisk { extra: constant(30) }, S1, Time::ZERO, None, 300, 0);
    // Every data ping costs s1 a 30 ms fsync before it answers: pings sent every 10 ms queue up.
    let first = r.pongs().into_iter().find(|p| p.1 == S1 && p.3 == Plane::Data).expect("a pong from s1");
    assert!(first.0 >= ms(10 + 1 + 30 + 1), "answered after the fsync: {:?}", first.0);
    assert!(!r.caused("defer").is_empty(), "pings arriving during a stalled fsync wait");
    assert!(!r.caused("send").is_empty(), "answers sent after a slow fsync name it");
}

#[test]
fn tamper_rewrites_content() {
    let r = run(FaultKind::Tamper { p: 1.0 }, S1, Time::ZERO, None, 100, 0);
    assert!(r.pongs().iter().filter(|p| p.1 == S1).all(|p| p.2 >= 1_000_000));
    assert!(!r.caused("send").is_empty());
}

#[test]
fn equivocate_tells_different_peers_different_things() {
    // The client equivocates: s1 (odd id) gets rewritten pings, s2 the true ones.
    let r = run(FaultKind::Equivocate { p: 1.0 }, CLIENT, Time::ZERO, None, 100, 0);
    let pongs = r.pongs();
    assert!(pongs.iter().filter(|p| p.1 == S1).all(|p| p.2 >= 1_000_000));
    assert!(pongs.iter().filter(|p| p.1 == S2).all(|p| p.2 < 1_000_000));
}

#[test]
fn replay_resends_old_messages() {
    let r = run(FaultKind::Replay { p: 0.5 }, S1, Time::ZERO, None, 500, 0);
    let s1: Vec<u64> = r.pongs().iter().filter(|p| p.1 == S1 && p.3 == Plane::Data).map(|p| p.2).collect();
    let mut seen = std::collections::BTreeSet::new();
    assert!(s1.iter().any(|s| !seen.insert(*s)), "an old pong arrives again");
    assert!(!r.caused("send").is_empty());
}

#[test]
fn stale_answers_from_the_past_while_reporting_success() {
    let r = run(FaultKind::Stale { age: Span::from_millis(100) }, S1, Time::ZERO, None, 500, 0);
    let pongs: Vec<_> = r.pongs().into_iter().filter(|p| p.1 == S1 && p.3 == Plane::Data).collect();
    // Early answers have nothing 100 ms old to give (0); later ones lag the truth, which
    // the honest s2 tells at the same moment.
    assert!(pongs.iter().filter(|p| p.0 < ms(100)).all(|p| p.2 == 0));
    let last = pongs.last().expect("pongs");
    let truth = r.pongs().into_iter().filter(|p| p.1 == S2 && p.3 == Plane::Data).map(|p| p.2).max().unwrap_or(0);
    assert!(last.2 > 0 && last.2 + 10 < truth, "stale {} vs fresh {truth}", last.2);
    // Ground truth: every answer s1 gave while stale names the fault.
    assert!(r.caused("send").iter().filter(|e| e["node"] == "s1").count() >= pongs.len());
    assert!(r.sim.injector().fired(0) > 0);
}

#[test]
fn lie_acks_without_durability() {
    let r = run(FaultKind::Lie, S1, Time::ZERO, None, 200, 0);
    assert!(r.pongs().iter().any(|p| p.1 == S1), "s1 still answers");
    assert_eq!(r.sim.disk(S1).read_durable("last"), None, "nothing it acked is durable");
    assert!(r.sim.disk(S1).lost_to_lies() > 0);
    assert!(r.sim.disk(S2).read_durable("last").is_some());
    // The node reads back what it believes it synced, and its acks name the lie.
    assert!(r.caused("send").iter().all(|e| e["node"] == "s1") && !r.caused("send").is_empty());
}

#[test]
fn flip_garbles_some_messages_and_silently_corrupts_others() {
    let r = run(FaultKind::Flip { p: 1.0, bits: 1 }, S1, Time::ZERO, None, 5_000, 0);
    let stats = r.sim.stats();
    assert!(stats.garbled > 0, "a flipped tag byte no longer decodes");
    let wrong = r.pongs().iter().filter(|p| p.1 == S1 && (p.4 != S1 || p.2 > 10_000)).count();
    assert!(wrong > 0, "a flip in the fields decodes to a silently wrong pong");
    assert!(r.trace.iter().any(|e| e["detail"].as_str().is_some_and(|d| d.contains("garbled"))));
}

#[test]
fn forge_claims_another_identity() {
    let r = run(FaultKind::Forge { victim: S2, p: 1.0 }, S1, Time::ZERO, None, 100, 0);
    assert!(r.pongs().iter().any(|p| p.1 == S1 && p.4 == S2), "s1 sent pongs claiming to be s2");
}

#[test]
fn gray_fails_the_data_plane_and_passes_probes() {
    let r = run(FaultKind::Gray { p: 1.0, extra: None }, S1, Time::ZERO, None, 500, 0);
    let s1: Vec<_> = r.pongs().into_iter().filter(|p| p.1 == S1).collect();
    assert!(!s1.is_empty() && s1.iter().all(|p| p.3 == Plane::Probe), "only probes get through");
    assert!(r.pongs().iter().any(|p| p.1 == S2 && p.3 == Plane::Data));
}

#[test]
fn half_open_answers_probes_and_swallows_data() {
    let r = run(FaultKind::HalfOpen, S1, ms(100), None, 500, 0);
    let after: Vec<_> = r.pongs().into_iter().filter(|p| p.1 == S1 && p.0 > ms(105)).collect();
    assert!(!after.is_empty() && after.iter().all(|p| p.3 == Plane::Probe));
    assert!(r.caused("drop").iter().all(|e| e["node"] == "s1"));
}

#[test]
fn fail_stop_tells_every_peer_at_once() {
    let r = run(FaultKind::FailStop, S1, ms(100), None, 300, 0);
    let notices: Vec<_> = r.sim.observations().iter().filter(|o| o.obs == Obs::PeerDown(S1)).collect();
    assert_eq!(notices.len(), 2, "the client and s2 are told");
    assert!(notices.iter().all(|o| o.time == ms(100)));
}

#[test]
fn restart_recovers_with_only_synced_state() {
    let r = run(FaultKind::Restart, S1, ms(100), Some(ms(200)), 400, 0);
    let starts: Vec<_> =
        r.sim.observations().iter().filter(|o| o.node == S1 && matches!(o.obs, Obs::Started { .. })).collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1].time, ms(200));
    // It synced "last" before crashing; the unsynced "scratch" write of the same ping is gone.
    assert!(matches!(starts[1].obs, Obs::Started { last_synced: Some(_) }));
    assert!(r.pongs().iter().any(|p| p.1 == S1 && p.0 > ms(200)), "it answers again");
    assert!(!r.pongs().iter().any(|p| p.1 == S1 && p.0 > ms(103) && p.0 < ms(200)));
}

#[test]
fn a_node_half_open_from_the_start_never_starts() {
    let r = run(FaultKind::HalfOpen, S1, Time::ZERO, None, 300, 0);
    assert!(!r.sim.observations().iter().any(|o| o.node == S1 && matches!(o.obs, Obs::Started { .. })));
    assert!(r.pongs().iter().filter(|p| p.1 == S1).all(|p| p.3 == Plane::Probe));
}

#[test]
fn garbage_is_still_judged_by_the_receivers_faults() {
    // s1's pongs are all flipped, and the client's link from s1 is cut: nothing from s1,
    // garbled or not, reaches the client.
    let config = SimConfig {
        seed: 5,
        limits: Limits { max_time: ms(300), ..Limits::default() },
        names: ["client", "s1", "s2"].map(String::from).to_vec(),
        latency: Box::new(|_, _| LatencyDist::Constant(Span::from_millis(1))),
    };
    let nodes = vec![
        Node::Client { seq: 0, large_every: 0 },
        Node::Server { history: vec![] },
        Node::Server { history: vec![] },
    ];
    let faults = vec![
        Fault { node: S1, kind: FaultKind::Flip { p: 1.0, bits: 8 }, start: Time::ZERO, end: None },
        Fault {
            node: CLIENT,
            kind: FaultKind::Partition { peers: vec![S1], direction: Direction::Receive, p: 1.0 },
            start: Time::ZERO,
            end: None,
        },
    ];
    let mut sim = Sim::new(config, nodes, faults);
    sim.run();
    assert_eq!(sim.stats().garbled, 0, "garbage from s1 is dropped by the partition, not delivered");
    assert!(sim.injector().fired(1) > 0);
    assert!(!sim.observations().iter().any(|o| matches!(o.obs, Obs::Pong { from, .. } if from == S1)));
}
