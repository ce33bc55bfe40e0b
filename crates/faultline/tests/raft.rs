//! Raft under the four failure models: correct Raft keeps every property over a thousand
//! swarm seeds within its fault model; each deliberately broken variant is caught within a
//! stated number of seeds; Byzantine faults break correct Raft; and each of the chapter's
//! incidents shows its signature.

use faultline::protocols::raft::report::{self as raft, RaftRow, RaftSweepRow};
use faultline::protocols::raft::{Raft, RaftRun};
use faultline::scenario::{Override, Scenario};
use faultline::workload::Variant;

fn load(file: &str, overrides: &[(&str, &str)]) -> Scenario {
    let path = format!("{}/../../scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let overrides: Vec<Override> =
        overrides.iter().map(|(k, v)| Override { key: (*k).into(), value: (*v).into() }).collect();
    Scenario::load(std::path::Path::new(&path), &overrides).unwrap_or_else(|e| panic!("{e}"))
}

fn raft_run(s: &Scenario) -> &RaftRun {
    faultline::workload::config::<Raft>(s).unwrap_or_else(|| panic!("not a Raft scenario: {}", s.protocol()))
}

/// Every case of `s` over `seeds`, through the generic sweep.
fn sweep(s: &Scenario, seeds: std::ops::Range<u64>) -> Vec<RaftSweepRow> {
    let variants = [Variant { label: String::new(), scenario: s.clone() }];
    faultline::workload::sweep::<Raft>(&variants, seeds, &|| ()).into_iter().map(|(_, row)| row).collect()
}

fn run(s: &Scenario, case: &str, seed: u64) -> RaftRow {
    let r = raft_run(s);
    let c = s.cases.iter().position(|c| c.name == case).unwrap_or_else(|| panic!("no case {case}"));
    raft::run_case(s, &r.config, c, seed, r.liveness)
}

fn properties(row: &RaftRow) -> Vec<&'static str> {
    row.violations.iter().map(|v| v.property).collect()
}

#[test]
fn correct_raft_keeps_every_property_over_a_thousand_swarm_seeds() {
    let s = load("raft-swarm.toml", &[]);
    let rows = sweep(&s, 1..1001);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.seeds, 1000);
    assert_eq!(
        (r.violating_seeds, r.first_violating_seed),
        (0, None),
        "correct Raft violated {:?}; replay: faultline run scenarios/raft-swarm.toml --seed {:?}",
        r.by_property,
        r.first_violating_seed
    );
    // The faults did bite: not every write succeeded, yet most did.
    assert!(r.writes_ok < r.writes && r.writes_ok * 100 > r.writes * 95, "{r:?}");

    // The other read paths and options, on fewer seeds.
    let variants: [&[(&str, &str)]; 3] = [
        &[("raft.read", "read-index")],
        &[("raft.read", "read-index"), ("raft.pre_vote", "true")],
        &[("raft.read", "lease"), ("raft.check_quorum", "true")],
    ];
    for overrides in variants {
        let s = load("raft-swarm.toml", overrides);
        let r = &sweep(&s, 1..101)[0];
        assert_eq!(r.violating_seeds, 0, "{overrides:?}: {:?}, first seed {:?}", r.by_property, r.first_violating_seed);
    }
}

/// Each canary, on the fault story that exposes it: the first violating seed must come
/// within `within` seeds, and correct Raft must keep every property on the same seeds.
#[test]
fn every_canary_is_caught_within_its_stated_seeds() {
    // (canary, fault story, the property it must break, within how many seeds)
    let cases = [
        ("no-term-check", "minority-partition", "state-machine-safety", 2),
        ("commit-on-minority", "minority-partition", "state-machine-safety", 2),
        ("ack-before-fsync", "power-loss", "durability", 5),
        ("no-fencing", "gc-pause", "no-stale-confirmation", 3),
    ];
    for (canary, case, property, within) in cases {
        let broken = load("raft-canaries.toml", &[("raft.canary", canary)]);
        let first = (1..=within).find(|&seed| properties(&run(&broken, case, seed)).contains(&property));
        assert!(first.is_some(), "canary {canary}: {property} not broken on {case} within {within} seeds");
    }
    let correct = load("raft-canaries.toml", &[]);
    for case in ["minority-partition", "power-loss", "gc-pause"] {
        for seed in 1..=5 {
            let row = run(&correct, case, seed);
            assert!(row.violations.is_empty(), "correct Raft, {case}, seed {seed}: {:?}", row.violations);
        }
    }
}

#[test]
fn byzantine_faults_break_correct_raft() {
    let s = load("raft-byzantine.toml", &[]);
    let lie = run(&s, "lie", 1);
    assert!(properties(&lie).contains(&"durability"), "{:?}", lie.violations);
    let stale = run(&s, "stale", 1);
    assert!(properties(&stale).contains(&"linearizable-reads"), "{:?}", stale.violations);
}

#[test]
fn raft_reports_cost_figures_under_each_failure_model() {
    let s = load("raft.toml", &[]);
    let rows: Vec<RaftRow> = s.cases.iter().map(|c| run(&s, &c.name, 1)).collect();
    for r in &rows {
        assert!(r.violations.is_empty(), "{}: {:?}", r.case, r.violations);
        assert!(r.messages_per_commit.is_some_and(|m| m > 1.0), "{}", r.case);
        assert!(r.commit_latency_ms_p50.is_some() && r.commit_latency_ms_p99 >= r.commit_latency_ms_p50);
        assert!(r.availability.is_some_and(|a| a > 0.9), "{}: {:?}", r.case, r.availability);
    }
    let healthy = &rows[0];
    let crash = rows.iter().find(|r| r.case == "crash-leader").unwrap();
    assert_eq!(healthy.leaders.len(), 1);
    assert!(crash.failover_ms.is_some_and(|f| (500.0..3000.0).contains(&f)), "{:?}", crash.failover_ms);
    // Same scenario, same seed: the same figures.
    let again = run(&s, "crash-leader", 1);
    assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(crash).unwrap());
}

#[test]
fn cricstream_crash_fails_over_in_a_fraction_of_a_second() {
    let s = load("incidents/cricstream-crash.toml", &[]);
    let r = run(&s, "kernel-panic", s.seed.unwrap());
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.leaders.len(), 2);
    let failover = r.failover_ms.expect("the leader crashed");
    assert!((150.0..400.0).contains(&failover), "failover {failover} ms");
    // Writes stop at the crash and resume once clients find the new leader.
    assert!((4_990.0..5_010.0).contains(&r.write_unavailable_from_ms), "{}", r.write_unavailable_from_ms);
    assert!((failover..1_000.0).contains(&r.write_unavailable_ms), "{}", r.write_unavailable_ms);
}

#[test]
fn paysetu_omission_hides_a_stuck_follower_until_the_restart() {
    let s = load("incidents/paysetu-omission.toml", &[]);
    let r = run(&s, "stuck-wallet-3", s.seed.unwrap());
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    // wallet-3 (s2) falls behind and stays behind, while the cluster keeps its leader...
    let s2 = &r.lag_series[2];
    assert!(r.lag_max[2] > 1_000, "{:?}", r.lag_max);
    let before_restart = r.lag_times_s.iter().position(|&t| t >= 59.0).unwrap();
    assert!(s2[before_restart] > s2[before_restart / 2], "the lag grows: {s2:?}");
    assert_eq!(r.leaders.len(), 1, "no election, no alarm");
    // ...until wallet-2 and wallet-5 restart at 60 s and writes pause, for 20 s.
    assert!((59_000.0..61_000.0).contains(&r.write_unavailable_from_ms), "{}", r.write_unavailable_from_ms);
    assert!(r.write_unavailable_ms > 15_000.0, "{}", r.write_unavailable_ms);
}

#[test]
fn kapitalkite_timing_confirms_stale_orders_unless_fenced() {
    let s = load("incidents/kapitalkite-timing.toml", &[]);
    let r = run(&s, "gc-pause", s.seed.unwrap());
    assert!(properties(&r).contains(&"no-stale-confirmation"), "{:?}", r.violations);
    assert!(r.stale_confirmations > 0);
    assert!((300.0..2_000.0).contains(&r.dual_leader_ms), "dual-leader window {} ms", r.dual_leader_ms);

    let fenced = load("incidents/kapitalkite-timing-fenced.toml", &[]);
    let f = run(&fenced, "fencing-tokens", fenced.seed.unwrap());
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    assert_eq!(f.stale_confirmations, 0);
    assert!(f.dual_leader_ms > 0.0, "the old leader still believes it leads; fencing makes that harmless");

    let lease = load(
        "incidents/kapitalkite-timing-fenced.toml",
        &[("raft.fencing", "false"), ("raft.check_quorum", "true"), ("raft.read", "lease")],
    );
    let l = run(&lease, "fencing-tokens", lease.seed.unwrap());
    assert!(l.violations.is_empty(), "{:?}", l.violations);
    assert_eq!(l.stale_confirmations, 0);
}

#[test]
fn bharatbazaar_bit_flips_are_served_silently_unless_checksummed() {
    let s = load("incidents/bharatbazaar-byzantine.toml", &[]);
    let r = run(&s, "bit-flips", s.seed.unwrap());
    assert!(r.wrong_reads_served > 0 && r.corrupt_caught == 0, "{} {}", r.wrong_reads_served, r.corrupt_caught);
    assert!(properties(&r).contains(&"linearizable-reads"));
    // About 0.05 % of the leader's read replies.
    let rate = r.wrong_reads_served as f64 / r.reads.ok as f64;
    assert!((0.0001..0.002).contains(&rate), "{rate}");

    let c = load("incidents/bharatbazaar-byzantine-checksummed.toml", &[]);
    let r = run(&c, "bit-flips", c.seed.unwrap());
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.wrong_reads_served, 0);
    assert!(r.corrupt_caught > 0);
    assert_eq!(r.reads.failed, r.corrupt_caught, "every corrupted reply was caught and failed the read");
}

/// Same scenario and seed, the same trace, event for event: 40 swarm seeds of 5 s, each run
/// twice, and any difference is named by its first differing event. (Tracing hashes the
/// JSON of every event: the 200-seed determinism test runs the quorum coordinator.)
#[test]
fn raft_traces_are_identical_across_runs() {
    use faultline::trace::{DigestTracer, first_difference};
    let s = load("raft-swarm.toml", &[("raft.duration_ms", "5000")]);
    let r = raft_run(&s);
    let trace = |seed: u64, keep: bool| {
        let d = DigestTracer::new(keep);
        raft::run_case_traced(&s, &r.config, 0, seed, r.liveness, Some(Box::new(d.clone())));
        d
    };
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 1..=40 {
        let (a, b) = (trace(seed, false), trace(seed, false));
        if a.hex_digest() != b.hex_digest() {
            let (a, b) = (trace(seed, true), trace(seed, true));
            panic!("seed {seed}: {:?}", first_difference(&a.lines(), &b.lines()));
        }
        assert!(a.events() > 1_000, "seed {seed} ran: {} events", a.events());
        distinct.insert(a.hex_digest());
    }
    assert_eq!(distinct.len(), 40, "different seeds give different runs");
}
