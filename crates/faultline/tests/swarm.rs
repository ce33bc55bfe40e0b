//! Property tests over random fault mixes (swarm testing): whatever the mix, a run does not
//! panic, replays byte for byte, names only configured faults as causes, and respects the
//! fault budget.

mod common;

use faultline::scenario::Scenario;
use proptest::prelude::*;
use serde_json::Value;

fn swarm_scenario(followers: usize, faults: usize, budget: Option<usize>, kinds: Option<&str>) -> Scenario {
    let budget = budget.map_or(String::new(), |f| format!("fault_budget = {f}\n"));
    let kinds = kinds.map_or(String::new(), |k| format!(", kinds = [{k}]"));
    let text = format!(
        r#"
{budget}
[quorum]
followers = {followers}
deadline_ms = 50
rounds = 12
[network]
latency = {{ dist = "uniform", min_ms = 1, max_ms = 20 }}
[limits]
max_time_ms = 30_000
max_events = 200_000
[[cases]]
name = "swarm"
swarm = {{ faults = {faults}, window_ms = 500{kinds} }}
"#
    );
    Scenario::parse("swarm.toml", &text, &[]).expect("valid swarm scenario")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_mix_replays_and_names_only_configured_faults(seed in any::<u64>(), followers in 3usize..8, faults in 1usize..10) {
        let s = swarm_scenario(followers, faults, None, None);
        let (a, lines) = common::traced(&s, 0, seed);
        let (b, _) = common::traced(&s, 0, seed);
        prop_assert_eq!(a, b);
        let labels: Vec<String> = s
            .describe_faults(0, seed)
            .iter()
            .map(|d| d.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect();
        prop_assert_eq!(labels.len(), faults);
        for line in &lines {
            let e: Value = serde_json::from_str(line).expect("json");
            for c in e["cause"].as_array().into_iter().flatten() {
                let c = c.as_str().unwrap_or_default();
                prop_assert!(labels.iter().any(|l| l == c), "cause {} is not among {:?}", c, labels);
            }
        }
    }

    #[test]
    fn the_draw_respects_the_fault_budget(seed in any::<u64>(), budget in 1usize..3) {
        let s = swarm_scenario(6, 8, Some(budget), None);
        let mut nodes: Vec<_> = s.faults(0, seed).iter().map(|f| f.node).collect();
        nodes.sort();
        nodes.dedup();
        prop_assert!(nodes.len() <= budget, "{} faulty nodes over a budget of {}", nodes.len(), budget);
    }
}

#[test]
fn every_kind_can_be_drawn_and_runs() {
    // Each kind alone, over a few seeds: the draw covers the whole catalogue.
    for entry in faultline::fault::catalogue() {
        let s = swarm_scenario(4, 3, None, Some(&format!("{:?}", entry.name)));
        for seed in 0..5 {
            let drawn = s.describe_faults(0, seed);
            assert!(drawn.iter().all(|d| d.split_whitespace().nth(1) == Some(entry.name)), "{drawn:?}");
            let (row, _) = faultline::protocols::quorum::report::run_case(&s, 0, seed, None);
            assert!(row.events > 0);
        }
    }
}

#[test]
fn a_seed_draws_the_same_mix_and_other_seeds_differ() {
    let s = swarm_scenario(5, 6, None, None);
    assert_eq!(s.describe_faults(0, 9), s.describe_faults(0, 9));
    let distinct: std::collections::BTreeSet<Vec<String>> = (0..20).map(|seed| s.describe_faults(0, seed)).collect();
    assert_eq!(distinct.len(), 20);
}

#[test]
fn fixed_faults_count_against_the_budget_before_the_draw() {
    let text = r#"
fault_budget = 1
[quorum]
followers = 4
deadline_ms = 50
[[cases]]
name = "mixed"
faults = [{ node = "f0", kind = "crash", at_ms = 10 }]
swarm = { faults = 6 }
"#;
    let s = Scenario::parse("budget.toml", text, &[]).expect("valid");
    for seed in 0..50 {
        assert!(s.faults(0, seed).iter().all(|f| f.node == faultline::protocol::NodeId(1)), "seed {seed}");
    }
}
