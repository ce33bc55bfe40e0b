//! Raft under the simulator (healthy runs, crashes, restarts, pauses, partitions, tampering)
//! and each canary's break, shown directly on one handler where that is clearest.

use std::collections::BTreeMap;

use rand::Rng;

use super::*;
use crate::fault::{Direction, Fault, FaultKind};
use crate::latency::LatencyDist;
use crate::protocol::{Context, Runtime};
use crate::rng::{SimRng, Stream, stream};
use crate::sim::disk::Disk;
use crate::sim::world::{Limits, Observed, Sim, SimConfig};
use crate::time::Time;

fn at(millis: u64) -> Time {
    Time::ZERO + Span::from_millis(millis)
}

fn build(config: &RaftConfig, seed: u64, until: Time, faults: Vec<Fault>) -> Sim<RaftNode> {
    let sim_config = SimConfig {
        seed,
        limits: Limits { max_time: until, ..Limits::default() },
        names: config.node_names(),
        latency: Box::new(|_, _| LatencyDist::Uniform { min: Span::from_millis(1), max: Span::from_millis(5) }),
    };
    Sim::new(sim_config, config.nodes(), faults)
}

fn run(config: &RaftConfig, seed: u64, until: Time, faults: Vec<Fault>) -> Sim<RaftNode> {
    let mut sim = build(config, seed, until, faults);
    sim.run();
    sim
}

fn fault(node: u32, kind: FaultKind, start: Time, end: Option<Time>) -> Fault {
    Fault { node: NodeId(node), kind, start, end }
}

/// `(time, node, term)` of every `Leader` observation.
fn leaders(obs: &[Observed<RaftObs>]) -> Vec<(Time, NodeId, u64)> {
    obs.iter()
        .filter_map(|o| match &o.obs {
            RaftObs::Leader { term, .. } => Some((o.time, o.node, *term)),
            _ => None,
        })
        .collect()
}

/// The server leading at `t` in a run without faults: the last one elected by then.
fn leader_at(obs: &[Observed<RaftObs>], t: Time) -> NodeId {
    leaders(obs).into_iter().rev().find(|&(time, _, _)| time <= t).expect("a leader by then").1
}

/// The first safety violation in a run, if any: two leaders in one term (Election
/// Safety), two entries applied at one index (State Machine Safety), or a leader elected
/// without an entry applied before (Leader Completeness).
fn violation(obs: &[Observed<RaftObs>]) -> Option<String> {
    let mut leader_of: BTreeMap<u64, NodeId> = BTreeMap::new();
    let mut applied: BTreeMap<u64, (u64, Command)> = BTreeMap::new();
    for o in obs {
        match &o.obs {
            RaftObs::Leader { term, log_terms } => {
                let first = *leader_of.entry(*term).or_insert(o.node);
                if first != o.node {
                    return Some(format!("{} and {} both lead term {term}", first, o.node));
                }
                if let Some((index, _)) = applied.iter().find(|&(&i, (t, _))| log_terms.get(i as usize - 1) != Some(t))
                {
                    return Some(format!("{} leads term {term} without applied entry {index}", o.node));
                }
            }
            RaftObs::Applied { index, term, cmd } => {
                let first = applied.entry(*index).or_insert_with(|| (*term, cmd.clone()));
                if *first != (*term, cmd.clone()) {
                    return Some(format!("{} applied {cmd:?} of term {term} at {index}: {first:?}", o.node));
                }
            }
            _ => {}
        }
    }
    None
}

fn assert_safe(obs: &[Observed<RaftObs>]) {
    if let Some(v) = violation(obs) {
        panic!("{v}");
    }
}

fn applied_indices(obs: &[Observed<RaftObs>]) -> usize {
    let indices: std::collections::BTreeSet<u64> = obs
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::Applied { index, .. } => Some(index),
            _ => None,
        })
        .collect();
    indices.len()
}

fn outcomes(obs: &[Observed<RaftObs>]) -> Vec<&ClientResult> {
    obs.iter()
        .filter_map(|o| match &o.obs {
            RaftObs::Outcome { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

fn confirmed_puts_after(obs: &[Observed<RaftObs>], t: Time) -> usize {
    obs.iter().filter(|o| o.time > t && matches!(o.obs, RaftObs::Confirmed { op: Op::Put { .. }, .. })).count()
}

fn server(sim: &Sim<RaftNode>, node: u32) -> &Server {
    sim.node(NodeId(node)).as_server().expect("a server")
}

#[test]
fn healthy_cluster_elects_one_leader_and_commits_writes_everywhere() {
    let config = RaftConfig::default();
    let sim = run(&config, 1, at(10_000), vec![]);
    let obs = sim.observations();
    let leaders = leaders(obs);
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert!(leaders[0].0 < at(2_500), "elected by the first timeouts: {leaders:?}");
    assert_safe(obs);
    let indices = applied_indices(obs);
    assert!(indices > 100, "only {indices} entries applied");
    // Every server applied every committed entry, and holds it durably.
    let leader = leaders[0].1;
    let committed = server(&sim, leader.0).commit_index();
    for s in 0..config.servers as u32 {
        let durable = durable_log(sim.disk(NodeId(s)));
        assert_eq!(durable.as_slice(), server(&sim, s).log(), "s{s}: in memory = on disk");
        assert!(durable.len() as u64 >= committed - 5, "s{s} is behind");
        assert_eq!(durable_term(sim.disk(NodeId(s))), 1);
    }
    let results = outcomes(obs);
    let ok = results.iter().filter(|r| matches!(r, ClientResult::Ok { .. })).count();
    assert!(results.len() > 100 && ok * 100 >= results.len() * 95, "{ok} of {} ok", results.len());
    // Reads see writes: every Ok read returns a value some client wrote to that key.
    let written: Vec<(u32, u64)> = obs
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::Invoke { op: Op::Put { key, value }, .. } => Some((key, value)),
            _ => None,
        })
        .collect();
    let invokes: BTreeMap<(u32, u64), Op> = obs
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::Invoke { client, seq, op } => Some(((client, seq), op)),
            _ => None,
        })
        .collect();
    for o in obs {
        if let RaftObs::Outcome { client, seq, result: ClientResult::Ok { value: Some(v) } } = o.obs {
            let key = invokes[&(client, seq)].key();
            assert!(written.contains(&(key, v)), "read {v} from key {key}, never written there");
        }
    }
    // The leader sampled progress once a second.
    let progress = obs.iter().filter(|o| matches!(o.obs, RaftObs::Progress { .. })).count();
    assert!((7..=10).contains(&progress), "{progress} progress samples");
}

#[test]
fn every_read_path_serves_reads_in_a_healthy_cluster() {
    for read in [ReadPath::Log, ReadPath::ReadIndex, ReadPath::Lease, ReadPath::Local] {
        let config = RaftConfig { read, check_quorum: read == ReadPath::Lease, ..RaftConfig::default() };
        let sim = run(&config, 2, at(6_000), vec![]);
        let obs = sim.observations();
        assert_safe(obs);
        let reads = obs.iter().filter(|o| matches!(o.obs, RaftObs::Confirmed { op: Op::Get { .. }, .. })).count();
        let gets_in_log = obs
            .iter()
            .filter(|o| matches!(&o.obs, RaftObs::Applied { cmd: Command::Op { op: Op::Get { .. }, .. }, .. }))
            .count();
        assert!(reads > 20, "{read:?}: {reads} reads confirmed");
        assert_eq!(gets_in_log > 0, read == ReadPath::Log, "{read:?}");
    }
}

#[test]
fn leader_crash_elects_a_new_leader_within_two_election_timeouts() {
    let config = RaftConfig::default();
    let crash = at(3_000);
    let old = leader_at(run(&config, 3, crash, vec![]).observations(), crash);
    let sim = run(&config, 3, at(10_000), vec![fault(old.0, FaultKind::Crash, crash, None)]);
    let obs = sim.observations();
    let (elected, new, _) = *leaders(obs).iter().find(|&&(t, _, _)| t > crash).expect("a new leader");
    assert_ne!(new, old);
    let bound = crash + Span::from_millis(2 * 1000 + 500);
    assert!(elected < bound, "new leader only at {elected}");
    assert_safe(obs);
    assert!(confirmed_puts_after(obs, elected) > 50, "writes resume");
}

#[test]
fn restarted_leader_keeps_its_term_and_vote_and_rejoins() {
    let config = RaftConfig::default();
    let (down, up) = (at(3_000), at(4_000));
    let old = leader_at(run(&config, 4, down, vec![]).observations(), down);
    let mut sim = build(&config, 4, at(10_000), vec![fault(old.0, FaultKind::Restart, down, Some(up))]);
    while sim.now() < down {
        sim.step();
    }
    let (term, vote) = (durable_term(sim.disk(old)), durable_vote(sim.disk(old)));
    assert_eq!(vote, Some(old.0), "a leader voted for itself");
    while sim.now() < up {
        sim.step();
    }
    let restarted = server(&sim, old.0);
    assert_eq!((restarted.term(), restarted.voted_for(), restarted.role()), (term, vote, Role::Follower));
    sim.run();
    let obs = sim.observations();
    let stepped_down: Vec<_> =
        obs.iter().filter(|o| o.node == old && matches!(o.obs, RaftObs::SteppedDown { .. })).collect();
    assert_eq!(stepped_down.len(), 1);
    assert_eq!(stepped_down[0].time, up, "a restarted leader reports that it no longer leads");
    assert_safe(obs);
    // It re-applies its log after the restart and catches up with the rest.
    let reapplied = obs.iter().filter(|o| o.node == old && o.time >= up && matches!(o.obs, RaftObs::Applied { .. }));
    assert!(reapplied.count() > 100);
    let leader = leader_at(obs, at(10_000));
    let behind = server(&sim, leader.0).commit_index() - server(&sim, old.0).commit_index();
    assert!(behind < 5, "{behind} behind");
    assert!(server(&sim, old.0).term() > term, "it learnt the new term");
}

#[test]
fn same_seed_gives_the_same_observations() {
    let config = RaftConfig { pre_vote: true, check_quorum: true, read: ReadPath::ReadIndex, ..RaftConfig::default() };
    let faults = || {
        vec![
            fault(0, FaultKind::Pause, at(2_000), Some(at(4_500))),
            fault(2, FaultKind::Restart, at(5_000), Some(at(6_000))),
        ]
    };
    let trace = |sim: Sim<RaftNode>| -> Vec<(Time, NodeId, RaftObs)> {
        sim.observations().iter().map(|o| (o.time, o.node, o.obs.clone())).collect()
    };
    let a = trace(run(&config, 9, at(8_000), faults()));
    let b = trace(run(&config, 9, at(8_000), faults()));
    assert!(a.len() > 500);
    assert_eq!(a, b);
    let c = trace(run(&config, 10, at(8_000), faults()));
    assert_ne!(a, c, "another seed, another run");
}

#[test]
fn pre_vote_keeps_a_partitioned_follower_from_disrupting_the_leader() {
    let (cut, heal) = (at(2_000), at(7_000));
    for pre_vote in [false, true] {
        let config = RaftConfig { pre_vote, ..RaftConfig::default() };
        let leader = leader_at(run(&config, 5, cut, vec![]).observations(), cut);
        let victim = (leader.0 + 1) % 5;
        let others = (0..7).filter(|&n| n != victim).map(NodeId).collect();
        let partition = FaultKind::Partition { peers: others, direction: Direction::General, p: 1.0 };
        let sim = run(&config, 5, at(10_000), vec![fault(victim, partition, cut, Some(heal))]);
        let obs = sim.observations();
        assert_safe(obs);
        let terms = leaders(obs).len();
        if pre_vote {
            assert_eq!(terms, 1, "the leader keeps its term");
            assert_eq!(server(&sim, victim).term(), 1);
        } else {
            assert!(terms >= 2, "the returning follower's higher term forces an election");
        }
    }
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let cut = at(2_000);
    for check_quorum in [false, true] {
        let config = RaftConfig { check_quorum, ..RaftConfig::default() };
        let leader = leader_at(run(&config, 6, cut, vec![]).observations(), cut);
        let servers = (0..5).filter(|&n| n != leader.0).map(NodeId).collect();
        let partition = FaultKind::Partition { peers: servers, direction: Direction::General, p: 1.0 };
        let sim = run(&config, 6, at(6_000), vec![fault(leader.0, partition, cut, None)]);
        let obs = sim.observations();
        assert_safe(obs);
        let stepped = obs.iter().find(|o| o.node == leader && matches!(o.obs, RaftObs::SteppedDown { .. }));
        match stepped {
            Some(o) => {
                assert!(check_quorum, "only CheckQuorum makes it step down");
                assert!(o.time <= cut + Span::from_millis(2_000), "stepped down at {}", o.time);
            }
            None => assert!(!check_quorum, "an isolated leader with CheckQuorum steps down"),
        }
    }
}

/// KapitalKite: the leader stops for 4.2 s, a new one is elected, the old one resumes and
/// answers the requests that waited for it before it hears of its successor.
fn pause_leader(config: &RaftConfig, seed: u64) -> (NodeId, u64, Time, Sim<RaftNode>) {
    let (pause, resume) = (at(3_000), at(7_200));
    let first = run(config, seed, pause, vec![]);
    let old = leader_at(first.observations(), pause);
    let term = server(&first, old.0).term();
    let sim = run(config, seed, at(9_000), vec![fault(old.0, FaultKind::Pause, pause, Some(resume))]);
    (old, term, resume, sim)
}

/// Reads the paused leader confirmed in its old term after it resumed, for requests
/// issued after it paused: a read issued earlier may legitimately be confirmed late, by
/// acknowledgements sent before the pause.
fn stale_reads(obs: &[Observed<RaftObs>], old: NodeId, term: u64, resume: Time) -> usize {
    let pause = at(3_000);
    let issued: BTreeMap<(u32, u64), Time> = obs
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::Invoke { client, seq, .. } => Some(((client, seq), o.time)),
            _ => None,
        })
        .collect();
    obs.iter()
        .filter(|o| {
            o.node == old
                && o.time >= resume
                && matches!(o.obs, RaftObs::Confirmed { op: Op::Get { .. }, term: t, client, seq, .. }
                    if t == term && issued[&(client, seq)] > pause)
        })
        .count()
}

#[test]
fn a_deposed_leader_serves_stale_reads_locally_but_not_with_read_index_or_fencing() {
    let local = RaftConfig { read: ReadPath::Local, ..RaftConfig::default() };
    let (old, term, resume, sim) = pause_leader(&local, 7);
    let obs = sim.observations();
    assert!(leaders(obs).iter().any(|&(t, n, _)| n != old && t < resume), "a successor was elected");
    assert!(stale_reads(obs, old, term, resume) > 0, "the old leader answered reads after resuming");

    for config in [
        RaftConfig { read: ReadPath::ReadIndex, ..RaftConfig::default() },
        RaftConfig { read: ReadPath::Lease, check_quorum: true, ..RaftConfig::default() },
    ] {
        let (old, term, resume, sim) = pause_leader(&config, 7);
        assert_eq!(stale_reads(sim.observations(), old, term, resume), 0, "{:?}", config.read);
    }

    let fenced = RaftConfig { read: ReadPath::Local, fencing: true, ..RaftConfig::default() };
    let (old, term, resume, sim) = pause_leader(&fenced, 7);
    let obs = sim.observations();
    assert_eq!(stale_reads(obs, old, term, resume), 0);
    let rejected =
        obs.iter().filter(|o| matches!(o.obs, RaftObs::Fenced { token, accepted: false, .. } if token == term));
    assert!(rejected.count() > 0, "the resource rejected the old leader's token");
    let failed = outcomes(obs).iter().filter(|r| matches!(r, ClientResult::Fail)).count();
    let accepted = obs.iter().filter(|o| matches!(o.obs, RaftObs::Fenced { accepted: true, .. })).count();
    let confirmed = obs.iter().filter(|o| matches!(o.obs, RaftObs::Confirmed { .. })).count();
    assert!(confirmed > 0 && confirmed <= accepted, "every confirmation went through the resource");
    assert!(failed <= rejected_count(obs));

    // The NoFencing canary lets the stale reads through again.
    let canary = RaftConfig { canary: Some(Canary::NoFencing), ..fenced };
    let (old, term, resume, sim) = pause_leader(&canary, 7);
    assert!(stale_reads(sim.observations(), old, term, resume) > 0);
}

fn rejected_count(obs: &[Observed<RaftObs>]) -> usize {
    obs.iter().filter(|o| matches!(o.obs, RaftObs::Fenced { accepted: false, .. })).count()
}

#[test]
fn checksums_catch_values_corrupted_on_the_way_to_the_client() {
    let tamper = |config: &RaftConfig| {
        let faults = (0..5).map(|s| fault(s, FaultKind::Tamper { p: 0.5 }, Time::ZERO, None)).collect();
        run(config, 8, at(6_000), faults)
    };
    // What the leader sent, and what the client accepted.
    let mismatches = |obs: &[Observed<RaftObs>]| {
        let sent: BTreeMap<(u32, u64), Option<u64>> = obs
            .iter()
            .filter_map(|o| match o.obs {
                RaftObs::Confirmed { client, seq, op: Op::Get { .. }, value, .. } => Some(((client, seq), value)),
                _ => None,
            })
            .collect();
        obs.iter()
            .filter(|o| {
                matches!(o.obs, RaftObs::Outcome { client, seq, result: ClientResult::Ok { value: Some(v) } }
                    if sent.get(&(client, seq)).is_some_and(|&s| s != Some(v)))
            })
            .count()
    };
    let plain = tamper(&RaftConfig::default());
    let obs = plain.observations();
    assert!(mismatches(obs) > 0, "corrupted reads reach the clients");
    assert!(!obs.iter().any(|o| matches!(o.obs, RaftObs::CorruptCaught { .. })));

    let checked = tamper(&RaftConfig { checksums: true, ..RaftConfig::default() });
    let obs = checked.observations();
    assert_eq!(mismatches(obs), 0, "no corrupted read is accepted");
    let caught: Vec<(u32, u64)> = obs
        .iter()
        .filter_map(|o| match o.obs {
            RaftObs::CorruptCaught { client, seq } => Some((client, seq)),
            _ => None,
        })
        .collect();
    assert!(!caught.is_empty());
    for (c, s) in caught {
        assert!(obs.iter().any(|o| o.obs == RaftObs::Outcome { client: c, seq: s, result: ClientResult::Fail }));
    }
}

#[test]
fn omit_large_starves_a_follower_while_its_heartbeats_get_through() {
    // PaySetu: appends with entries are lost, heartbeats are not. The follower falls
    // behind without ever starting an election.
    let config = RaftConfig::default();
    let start = at(2_000);
    let leader = leader_at(run(&config, 11, start, vec![]).observations(), start);
    let victim = (leader.0 + 2) % 5;
    let omit = FaultKind::OmitLarge { direction: Direction::Receive, bytes: 100 };
    let sim = run(&config, 11, at(8_000), vec![fault(victim, omit, start, None)]);
    let obs = sim.observations();
    assert_eq!(leaders(obs).len(), 1, "no election");
    assert_eq!(server(&sim, victim).term(), 1);
    let stuck = server(&sim, victim).log().len() as u64;
    let commit = server(&sim, leader.0).commit_index();
    assert!(commit > stuck + 100, "victim at {stuck}, commit at {commit}");
    let last = obs.iter().rev().find_map(|o| match &o.obs {
        RaftObs::Progress { match_index, .. } => Some(match_index.clone()),
        _ => None,
    });
    assert_eq!(last.expect("progress")[victim as usize], stuck, "the leader sees the lag");
}

#[test]
fn commit_on_minority_commits_with_two_of_five_servers_up() {
    let crash = at(2_000);
    for canary in [None, Some(Canary::CommitOnMinority)] {
        let config = RaftConfig { canary, ..RaftConfig::default() };
        let leader = leader_at(run(&config, 12, crash, vec![]).observations(), crash);
        let down: Vec<u32> = (0..5).filter(|&s| s != leader.0).take(3).collect();
        let faults = down.iter().map(|&s| fault(s, FaultKind::Crash, crash, None)).collect();
        let sim = run(&config, 12, at(6_000), faults);
        let committed = confirmed_puts_after(sim.observations(), crash + Span::from_millis(100));
        if canary.is_some() {
            assert!(committed > 20, "{committed} writes confirmed with a minority");
        } else {
            assert_eq!(committed, 0, "no write commits without a majority");
        }
    }
}

// ----- Canaries, one handler at a time -----

#[derive(Debug)]
enum Effect {
    Send(RaftMsg),
    Fsync,
}

/// A runtime that records what a handler does, over a real simulated disk.
struct Recorder {
    rng: SimRng,
    disk: Disk,
    effects: Vec<Effect>,
    observations: Vec<RaftObs>,
    timers: u64,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            rng: stream(1, Stream::Setup(0)),
            disk: Disk::default(),
            effects: vec![],
            observations: vec![],
            timers: 0,
        }
    }

    fn deliver(&mut self, node: &mut RaftNode, me: u32, from: u32, msg: RaftMsg) {
        self.effects.clear();
        let mut ctx = Context::new(NodeId(me), Time::ZERO + Span::from_millis(1), self);
        node.on_message(&mut ctx, NodeId(from), msg);
    }

    fn start(&mut self, node: &mut RaftNode, me: u32) {
        let mut ctx = Context::new(NodeId(me), Time::ZERO, self);
        node.on_start(&mut ctx);
    }

    fn replies(&self) -> Vec<&RaftMsg> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(m) => Some(m),
                Effect::Fsync => None,
            })
            .collect()
    }
}

impl Runtime<RaftNode> for Recorder {
    fn rng(&mut self, _me: NodeId) -> &mut SimRng {
        &mut self.rng
    }
    fn send(&mut self, _from: NodeId, _to: NodeId, msg: RaftMsg) {
        self.effects.push(Effect::Send(msg));
    }
    fn set_timer(&mut self, _me: NodeId, _after: Span, _timer: RaftTimer) -> TimerId {
        self.timers += 1;
        TimerId(self.timers)
    }
    fn cancel_timer(&mut self, _me: NodeId, _id: TimerId) {}
    fn observe(&mut self, _me: NodeId, obs: RaftObs) {
        self.observations.push(obs);
    }
    fn write(&mut self, _me: NodeId, key: &str, value: Vec<u8>) {
        self.disk.write(key, value);
    }
    fn fsync(&mut self, _me: NodeId) {
        self.disk.sync();
        self.effects.push(Effect::Fsync);
    }
    fn read(&mut self, _me: NodeId, key: &str) -> Option<Vec<u8>> {
        self.disk.read(key).map(<[u8]>::to_vec)
    }
    fn stale(&mut self, _me: NodeId) -> Option<Span> {
        None
    }
}

fn entry(term: u64, seq: u64) -> LogEntry {
    LogEntry { term, cmd: Command::Op { client: 0, seq, op: Op::Put { key: 0, value: seq } }, checksum: None }
}

fn append(term: u64, prev_index: u64, prev_term: u64, entries: Vec<LogEntry>) -> RaftMsg {
    RaftMsg::AppendEntries { term, prev_index, prev_term, entries, commit: 0, round: 1 }
}

/// Server s1 of five, started, with the given canary.
fn follower(canary: Option<Canary>) -> (RaftNode, Recorder) {
    let config = RaftConfig { canary, ..RaftConfig::default() };
    let mut node = config.nodes().swap_remove(1);
    let mut rec = Recorder::new();
    rec.start(&mut node, 1);
    (node, rec)
}

#[test]
fn no_term_check_obeys_a_deposed_leader() {
    for canary in [None, Some(Canary::NoTermCheck)] {
        let (mut node, mut rec) = follower(canary);
        rec.deliver(&mut node, 1, 0, append(5, 0, 0, vec![entry(5, 1)]));
        // A deposed leader of term 3 overwrites index 1.
        rec.deliver(&mut node, 1, 2, append(3, 0, 0, vec![entry(3, 2)]));
        let s = node.as_server().expect("server");
        let reply = rec.replies()[0].clone();
        let RaftMsg::AppendReply { term, success, .. } = reply else { panic!("{reply:?}") };
        assert_eq!(s.term(), 5, "the follower's own term does not change");
        if canary.is_some() {
            assert_eq!((term, success), (3, true), "answers in the deposed leader's term");
            assert_eq!(s.log(), &[entry(3, 2)]);
        } else {
            assert_eq!((term, success), (5, false));
            assert_eq!(s.log(), &[entry(5, 1)]);
        }
    }
}

#[test]
fn ack_before_fsync_acks_what_is_not_durable() {
    for canary in [None, Some(Canary::AckBeforeFsync)] {
        let (mut node, mut rec) = follower(canary);
        rec.deliver(&mut node, 1, 0, append(1, 0, 0, vec![entry(1, 1), entry(1, 2)]));
        let fsync_at = rec.effects.iter().position(|e| matches!(e, Effect::Fsync));
        let ack_at =
            rec.effects.iter().position(|e| matches!(e, Effect::Send(RaftMsg::AppendReply { success: true, .. })));
        let ack_at = ack_at.expect("acked");
        if canary.is_some() {
            // The term change is synced; the entries are not.
            assert!(durable_log(&rec.disk).is_empty(), "acked, not durable");
            rec.deliver(&mut node, 1, 0, append(1, 2, 1, vec![]));
            assert!(matches!(rec.effects[0], Effect::Fsync), "synced on the next heartbeat");
        } else {
            let fsyncs_after_term = rec.effects.iter().filter(|e| matches!(e, Effect::Fsync)).count();
            assert!(fsync_at.is_some_and(|f| f < ack_at) && fsyncs_after_term == 2, "{:?}", rec.effects);
        }
        assert_eq!(durable_log(&rec.disk), vec![entry(1, 1), entry(1, 2)]);
    }
}

#[test]
fn no_fencing_accepts_every_token() {
    for canary in [None, Some(Canary::NoFencing)] {
        let config = RaftConfig { canary, fencing: true, ..RaftConfig::default() };
        let db = config.db();
        let mut node = config.nodes().pop().expect("db last");
        let mut rec = Recorder::new();
        rec.deliver(&mut node, db.0, 0, RaftMsg::Fence { token: 5, client: 0, seq: 1 });
        rec.deliver(&mut node, db.0, 1, RaftMsg::Fence { token: 3, client: 0, seq: 2 });
        let accepted = matches!(rec.replies()[0], RaftMsg::FenceAck { accepted: true, .. });
        assert_eq!(accepted, canary.is_some());
        assert_eq!(
            rec.observations.last(),
            Some(&RaftObs::Fenced { token: 3, client: 0, seq: 2, accepted: canary.is_some() })
        );
    }
}

#[test]
fn a_follower_that_loses_acked_entries_is_repaired_from_what_it_has() {
    // A lying disk on a follower, then a restart: it lost entries it acknowledged. The
    // leader notices from its reply and starts over from the follower's real log.
    let config = RaftConfig::default();
    let start = at(2_000);
    let leader = leader_at(run(&config, 13, start, vec![]).observations(), start);
    let victim = (leader.0 + 1) % 5;
    let faults = vec![
        fault(victim, FaultKind::Lie, start, Some(at(4_000))),
        fault(victim, FaultKind::Restart, at(4_000), Some(at(4_500))),
    ];
    let sim = run(&config, 13, at(8_000), faults);
    let behind = server(&sim, leader.0).commit_index() - server(&sim, victim).commit_index();
    assert!(behind < 5, "{behind} behind");
    assert_eq!(durable_log(sim.disk(NodeId(victim))).as_slice(), server(&sim, victim).log());
}

/// A random mix of crash-recovery, timing and omission faults on the servers: the faults
/// Raft is built to survive.
fn random_faults(seed: u64, servers: u32) -> Vec<Fault> {
    let mut rng = stream(seed, Stream::Setup(7));
    let mut draw = |n: u64| rng.next_u64() % n;
    let mut faults = Vec::new();
    for _ in 0..1 + draw(4) {
        let node = draw(u64::from(servers)) as u32;
        let start = at(1_000 + draw(7_000));
        let end = Some(start + Span::from_millis(200 + draw(3_000)));
        let kind = match draw(8) {
            0 => FaultKind::Pause,
            1 => FaultKind::Restart,
            2 => {
                let peers = (0..servers).filter(|_| draw(2) == 0).map(NodeId).collect();
                FaultKind::Partition { peers, direction: Direction::General, p: 1.0 }
            }
            3 => FaultKind::Omit { direction: Direction::General, p: 0.3 },
            4 => FaultKind::OmitLarge { direction: Direction::Receive, bytes: 100 },
            5 => FaultKind::Duplicate { p: 0.3 },
            6 => FaultKind::Reorder {
                p: 0.3,
                extra: LatencyDist::Uniform { min: Span::from_millis(1), max: Span::from_millis(200) },
            },
            _ => FaultKind::Delay { extra: LatencyDist::Uniform { min: Span::ZERO, max: Span::from_millis(600) } },
        };
        faults.push(fault(node, kind, start, end));
    }
    faults
}

#[test]
fn random_crash_timing_and_omission_faults_never_break_safety() {
    for seed in 0..24 {
        let config = RaftConfig {
            pre_vote: seed % 2 == 0,
            check_quorum: seed % 3 == 0,
            read: [ReadPath::Log, ReadPath::ReadIndex, ReadPath::Lease][seed as usize % 3],
            max_inflight: [64, 2][seed as usize % 2],
            max_batch: [64, 3][(seed as usize / 2) % 2],
            ..RaftConfig::default()
        };
        let config = RaftConfig { check_quorum: config.check_quorum || config.read == ReadPath::Lease, ..config };
        let sim = run(&config, seed, at(12_000), random_faults(seed, 5));
        let obs = sim.observations();
        assert_safe(obs);
        let ok = outcomes(obs).iter().filter(|r| matches!(r, ClientResult::Ok { .. })).count();
        assert!(ok > 50, "seed {seed}: only {ok} operations succeeded");
    }
}

#[test]
fn each_canary_breaks_safety_where_raft_does_not() {
    let minority = |leader: u32| {
        // The leader and one follower are cut off from the other three for 4 s.
        let follower = (leader + 1) % 5;
        let rest: Vec<NodeId> = (0..5).filter(|&s| s != leader && s != follower).map(NodeId).collect();
        let cut = FaultKind::Partition { peers: rest, direction: Direction::General, p: 1.0 };
        vec![fault(leader, cut.clone(), at(3_000), Some(at(7_000))), fault(follower, cut, at(3_000), Some(at(7_000)))]
    };
    // Every server loses power at once and comes back 300 ms later.
    let power_loss = |_| (0..5).map(|s| fault(s, FaultKind::Restart, at(3_000), Some(at(3_300)))).collect();
    type Faults<'a> = &'a dyn Fn(u32) -> Vec<Fault>;
    let cases: [(Canary, Faults); 3] = [
        (Canary::NoTermCheck, &minority),
        (Canary::CommitOnMinority, &minority),
        (Canary::AckBeforeFsync, &power_loss),
    ];
    for (canary, faults) in cases {
        let mut caught = 0;
        for seed in 0..4 {
            for canary in [None, Some(canary)] {
                let config = RaftConfig { canary, ..RaftConfig::default() };
                let leader = leader_at(run(&config, seed, at(3_000), vec![]).observations(), at(3_000));
                let sim = run(&config, seed, at(10_000), faults(leader.0));
                match (canary, violation(sim.observations())) {
                    (None, Some(v)) => panic!("seed {seed}: Raft itself broke: {v}"),
                    (Some(_), Some(_)) => caught += 1,
                    _ => {}
                }
            }
        }
        assert!(caught >= 2, "{canary:?} broke safety in only {caught} of 4 seeds");
    }
}

#[test]
fn one_and_three_server_clusters_serve_clients() {
    for servers in [1, 3] {
        let config = RaftConfig { servers, clients: 3, read: ReadPath::ReadIndex, ..RaftConfig::default() };
        assert_eq!(config.node_names().len(), servers + 4);
        assert_eq!(config.db(), NodeId(servers as u32 + 3));
        let sim = run(&config, 14, at(5_000), vec![]);
        let obs = sim.observations();
        assert_safe(obs);
        let ok = outcomes(obs).iter().filter(|r| matches!(r, ClientResult::Ok { .. })).count();
        assert!(ok > 100, "{servers} servers: {ok} ok");
    }
}
