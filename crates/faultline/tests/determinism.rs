//! Determinism is the product: the same scenario and seed give a byte-identical trace.
//! These tests run every case of the chapter scenario and of a scenario with every fault
//! kind, over hundreds of seeds, twice, and compare SHA-256 digests of the traces; on a
//! mismatch they name the first event that differs.

mod common;

use faultline::protocols::quorum::report::run_all;
use faultline::protocols::quorum::{Quorum, QuorumScenario};
use faultline::scenario::Scenario;
use faultline::trace::first_difference;
use faultline::workload::{Variant, sweep};

fn assert_replays(scenario: &Scenario, seeds: std::ops::Range<u64>) -> usize {
    let mut events = 0;
    for seed in seeds {
        for case in 0..scenario.cases.len() {
            let (a, lines_a) = common::traced(scenario, case, seed);
            let (b, lines_b) = common::traced(scenario, case, seed);
            if a != b {
                panic!(
                    "{} case {} seed {seed}: trace digests differ: {}",
                    scenario.name,
                    scenario.cases[case].name,
                    first_difference(&lines_a, &lines_b).unwrap_or_default()
                );
            }
            events += lines_a.len();
        }
    }
    events
}

#[test]
fn chapter_scenario_replays_byte_for_byte_over_200_seeds() {
    let events = assert_replays(&Scenario::chapter(), 0..200);
    assert!(events > 200 * 6 * 10, "the traces are not trivially empty ({events} events)");
}

#[test]
fn every_fault_kind_replays_byte_for_byte_over_200_seeds() {
    let events = assert_replays(&common::mixed(), 1_000..1_200);
    assert!(events > 200 * 100, "the traces are not trivially empty ({events} events)");
}

#[test]
fn different_seeds_give_different_traces() {
    // The other half of the property: the seed matters. Omission and latency draws make
    // the mixed scenario's traces differ across seeds.
    let s = common::mixed();
    let digests: std::collections::BTreeSet<String> = (0..20).map(|seed| common::traced(&s, 0, seed).0).collect();
    assert_eq!(digests.len(), 20);
}

#[test]
fn first_difference_names_the_event() {
    let a = vec!["x".to_owned(), "y".to_owned(), "z".to_owned()];
    let b = vec!["x".to_owned(), "Y".to_owned(), "z".to_owned()];
    let msg = first_difference(&a, &b).expect("they differ");
    assert!(msg.starts_with("event 1 differs"), "{msg}");
    assert!(msg.contains("y") && msg.contains("Y"));
    assert_eq!(first_difference(&a, &a), None);
    assert!(first_difference(&a, &a[..2]).expect("lengths differ").contains("agree for 2 events"));
}

/// Golden digests: a change to any of these means recorded seeds no longer replay the
/// same way. That may be intended (a new trace field, a semantic fix); then update the
/// digests in the same commit and say why.
#[test]
fn golden_trace_digests() {
    let chapter = Scenario::chapter();
    let golden =
        [("healthy", 7, GOLDEN_HEALTHY_7), ("omission", 7, GOLDEN_OMISSION_7), ("byzantine-1", 7, GOLDEN_BYZANTINE_7)];
    for (case, seed, want) in golden {
        let i = chapter.cases.iter().position(|c| c.name == case).expect("case exists");
        let (got, _) = common::traced(&chapter, i, seed);
        assert_eq!(got, want, "golden digest of chapter/{case} seed {seed}");
    }
    let (got, _) = common::traced(&common::mixed(), 0, 42);
    assert_eq!(got, GOLDEN_MIXED_42, "golden digest of mixed/everything seed 42");
}

const GOLDEN_HEALTHY_7: &str = "e0b67af206734184c31aca34a90d55df5268a16f0b4b13727e780c314d43a215";
const GOLDEN_OMISSION_7: &str = "068aa5b0bed742de11ab284c908b9c2ea94d7b39d8263f5cfbe8026fc131c792";
const GOLDEN_BYZANTINE_7: &str = "017b9429c39d8b135724706879155eea8e4b193936afe512aa0af26b7b34b0e6";
const GOLDEN_MIXED_42: &str = "5c475cac36ce1f1d2a6d6f45f2050b570345fa48b16b8c9dccc185049bede23d";

#[test]
fn interleaved_runs_do_not_disturb_each_other() {
    // No global state: stepping two simulations in lockstep gives each the trace it has
    // alone.
    let s = common::mixed();
    let (alone, _) = common::traced(&s, 0, 5);
    let d1 = faultline::trace::DigestTracer::new(false);
    let d2 = faultline::trace::DigestTracer::new(false);
    let mut a = s.build(0, 5);
    let mut b = s.build(0, 6);
    a.set_tracer(Box::new(d1.clone()));
    b.set_tracer(Box::new(d2.clone()));
    loop {
        let (x, y) = (a.step(), b.step());
        if x.is_some() && y.is_some() {
            break;
        }
    }
    assert_eq!(d1.hex_digest(), alone);
    assert_eq!(d2.hex_digest(), common::traced(&s, 0, 6).0);
}

#[test]
fn sweep_results_do_not_depend_on_thread_count() {
    let variants = vec![
        Variant { label: String::new(), scenario: common::mixed() },
        Variant { label: "chapter".into(), scenario: Scenario::chapter() },
    ];
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
        pool.install(|| sweep::<Quorum>(&variants, 0..150, &|| {}))
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    assert_eq!(one.len(), 2 + 6);
}

#[test]
fn run_all_is_a_pure_function_of_scenario_and_seed() {
    let s = Scenario::chapter();
    for seed in [0, 7, u64::MAX] {
        assert_eq!(run_all(&s, seed), run_all(&s, seed));
    }
}
