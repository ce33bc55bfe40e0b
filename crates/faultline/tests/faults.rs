//! Every fault does what it says, shows up in the trace as ground truth, and names only
//! faults that were configured. "Sometimes" properties: each fault really fired.

mod common;

use faultline::protocol::NodeId;
use faultline::protocols::quorum::QuorumScenario;
use faultline::protocols::quorum::check::agreement_on_proposal;
use faultline::protocols::quorum::report::run_case;
use faultline::scenario::{Override, Scenario};
use faultline::sim::StopReason;
use serde_json::Value;

fn events(lines: &[String]) -> Vec<Value> {
    lines.iter().map(|l| serde_json::from_str(l).expect("trace lines are JSON")).collect()
}

fn causes(e: &Value) -> Vec<String> {
    e["cause"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

fn labels(s: &Scenario, case: usize) -> Vec<String> {
    let names = s.node_names();
    s.cases[case]
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| format!("#{i} {} @{}", f.kind.name(), names[f.node.index()]))
        .collect()
}

#[test]
fn trace_causes_name_only_configured_faults_and_every_fault_fires() {
    let s = common::mixed();
    let labels = labels(&s, 0);
    let mut seen = vec![0usize; labels.len()];
    for seed in 0..50 {
        let (_, lines) = common::traced(&s, 0, seed);
        for e in events(&lines) {
            for c in causes(&e) {
                let i =
                    labels.iter().position(|l| *l == c).unwrap_or_else(|| panic!("unconfigured cause {c:?} in {e}"));
                seen[i] += 1;
            }
        }
        // The quiet case has no faults: nothing in its trace may name one.
        let (_, quiet) = common::traced(&s, 1, seed);
        assert!(events(&quiet).iter().all(|e| causes(e).is_empty()));
    }
    for (label, n) in labels.iter().zip(&seen) {
        assert!(*n > 0, "fault {label} never showed up in 50 seeds");
    }
}

#[test]
fn injector_counts_every_fault_as_fired() {
    let s = common::mixed();
    let mut sim = s.build(0, 3);
    sim.run();
    for id in 0..s.cases[0].faults.len() {
        assert!(sim.injector().fired(id as u16) > 0, "fault #{id} did not fire");
    }
}

fn scenario(extra: &str) -> Scenario {
    let text = format!(
        r#"
[quorum]
followers = 4
deadline_ms = 200
rounds = 1
[network]
latency = {{ dist = "constant", ms = 5 }}
{extra}
"#
    );
    Scenario::parse("test.toml", &text, &[]).expect("valid test scenario")
}

#[test]
fn pause_holds_messages_and_timers_until_it_ends() {
    // The leader pauses from 1 ms to 500 ms: the acks (due at 10 ms) and its 200 ms
    // deadline wait, then are handled at 500 ms in arrival order: the four acks first
    // (they arrived first), so the round closes with all four acks at 500 ms.
    let s = scenario(
        r#"[[cases]]
name = "gc"
faults = [{ node = "leader", kind = "pause", at_ms = 1, duration_ms = 499 }]"#,
    );
    let (_, lines) = common::traced(&s, 0, 1);
    let evs = events(&lines);
    let defers: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "defer").collect();
    assert_eq!(defers.len(), 5, "4 acks and the deadline timer were held: {lines:#?}");
    assert!(defers.iter().all(|e| causes(e) == ["#0 pause @leader"]));
    let handled: Vec<&Value> =
        evs.iter().filter(|e| e["node"] == "leader" && (e["kind"] == "deliver" || e["kind"] == "timer")).collect();
    assert_eq!(handled.len(), 4, "the round closed on the 4th ack; the cancelled deadline never fires");
    assert!(handled.iter().all(|e| e["t_ns"] == 500_000_000));
    let (row, _) = run_case(&s, 0, 1, None);
    assert_eq!((row.acks, row.agreed), (4, true));
}

#[test]
fn a_crashed_nodes_messages_in_flight_still_arrive() {
    // f0's ack leaves at 5 ms with 100 ms of extra delay; f0 crashes at 50 ms. The ack is
    // on the wire and arrives at 110 ms.
    let s = scenario(
        r#"[[cases]]
name = "late-then-dead"
faults = [
  { node = "f0", kind = "delay", extra = { dist = "constant", ms = 100 } },
  { node = "f0", kind = "crash", at_ms = 50 },
]"#,
    );
    let (row, _) = run_case(&s, 0, 1, None);
    assert_eq!(row.acks, 4);
    let (_, lines) = common::traced(&s, 0, 1);
    let evs = events(&lines);
    let ack = evs.iter().find(|e| e["kind"] == "deliver" && e["peer"] == "f0").expect("f0's ack delivered");
    assert_eq!(ack["t_ns"], 110_000_000);
    assert_eq!(causes(ack), ["#0 delay @f0"]);
}

#[test]
fn a_crashed_node_receives_nothing_and_never_starts_when_crashed_at_zero() {
    let s = scenario(
        r#"[[cases]]
name = "dead"
faults = [{ node = "f1", kind = "crash" }]"#,
    );
    let (_, lines) = common::traced(&s, 0, 1);
    let evs = events(&lines);
    assert!(!evs.iter().any(|e| e["node"] == "f1" && (e["kind"] == "start" || e["kind"] == "send")));
    let drop =
        evs.iter().find(|e| e["kind"] == "drop" && e["node"] == "f1" && e["peer"] == "leader").expect("append dropped");
    assert_eq!(causes(drop), ["#0 crash @f1"]);
}

#[test]
fn omission_directions_drop_the_right_messages() {
    let s = scenario(
        r#"[[cases]]
name = "send"
faults = [{ node = "f0", kind = "omit", direction = "send", p = 1.0 }]
[[cases]]
name = "receive"
faults = [{ node = "f0", kind = "omit", direction = "receive", p = 1.0 }]
[[cases]]
name = "general"
faults = [{ node = "f0", kind = "omit", direction = "general", p = 1.0 }]"#,
    );
    for (case, dropped_sender, name) in
        [(0, "f0", "omit-send"), (1, "leader", "omit-receive"), (2, "leader", "omit-general")]
    {
        let (_, lines) = common::traced(&s, case, 1);
        let drops: Vec<Value> = events(&lines).into_iter().filter(|e| e["kind"] == "drop").collect();
        assert_eq!(drops.len(), 1, "{name}: {lines:#?}");
        assert_eq!(drops[0]["node"], dropped_sender, "{name}");
        assert_eq!(causes(&drops[0]), [format!("#0 {name} @f0")]);
        let (row, _) = run_case(&s, case, 1, None);
        assert_eq!(row.acks, 3, "{name}");
    }
}

#[test]
fn omission_probability_is_honoured() {
    // 40% receive-omission on one of four followers, 2000 rounds: the loss rate is within
    // 3 standard deviations (about 3.3 points) of 40%.
    let s = Scenario::parse(
        "t.toml",
        r#"
[quorum]
followers = 4
deadline_ms = 50
rounds = 2000
[network]
latency = { dist = "uniform", min_ms = 1, max_ms = 10 }
[[cases]]
name = "lossy"
faults = [{ node = "f1", kind = "omit", direction = "receive", p = 0.4 }]
"#,
        &[],
    )
    .expect("valid");
    let mut sim = s.build(0, 9);
    sim.run();
    let lost = sim.injector().fired(0) as f64 / 2000.0;
    assert!((lost - 0.4).abs() < 0.033, "lost {lost}");
}

#[test]
fn tamper_changes_content_and_is_seen_and_outvoted() {
    let s = Scenario::chapter();
    let i = s.cases.iter().position(|c| c.name == "byzantine-1").expect("case");
    let (row, _) = run_case(&s, i, 7, None);
    assert!(row.tampered_seen && row.agreed);
    assert_eq!(row.winning_data.as_deref(), Some("balance=9000"));
    let (_, lines) = common::traced(&s, i, 7);
    let tampered =
        events(&lines).into_iter().find(|e| e["kind"] == "send" && e["node"] == "f0").expect("f0 sent its ack");
    assert!(tampered["detail"].as_str().unwrap_or_default().contains("balance=9000_TAMPERED"));
    assert_eq!(causes(&tampered), ["#0 tamper @f0"]);
}

#[test]
fn agreement_checker_catches_a_tampering_quorum_and_passes_honest_runs() {
    // Canary: three of four followers tamper, so the naive coordinator agrees on a value
    // the leader never proposed. The checker must flag it on every seed.
    let s = scenario(
        r#"[[cases]]
name = "byzantine-3"
faults = [
  { node = "f0", kind = "tamper" },
  { node = "f1", kind = "tamper" },
  { node = "f2", kind = "tamper" },
]"#,
    );
    for seed in 0..100 {
        let (row, _) = run_case(&s, 0, seed, None);
        assert_eq!(row.violations.len(), 1, "seed {seed}");
        assert_eq!(row.violations[0].violation.property, "agreement-on-proposal");
    }
    // The chapter's cases never violate it.
    let chapter = Scenario::chapter();
    for seed in 0..200 {
        for c in 0..chapter.cases.len() {
            assert!(run_case(&chapter, c, seed, None).0.violations.is_empty());
        }
    }
    // And the checker itself judges a forged observation, not just what runs happen to give.
    let mut sim = s.build(0, 1);
    sim.run();
    let obs = &sim.observations()[0];
    assert!(agreement_on_proposal(obs).is_some());
    assert_eq!(obs.node, NodeId(0));
}

#[test]
fn limits_stop_runs() {
    let s = Scenario::parse(
        "t.toml",
        r#"
[quorum]
followers = 4
deadline_ms = 20
rounds = 1000
[network]
latency = { dist = "constant", ms = 5 }
[limits]
max_time_ms = 1000
[[cases]]
name = "time"
[[cases]]
name = "overflow"
faults = [{ node = "f0", kind = "delay", extra = { dist = "constant", ms = 100 } }]
"#,
        &[Override { key: "limits.inflight_per_link".into(), value: "2".into() }],
    )
    .expect("valid");
    let (row, _) = run_case(&s, 0, 1, None);
    assert_eq!(row.stop, StopReason::MaxTime);
    assert!(row.end_ns <= 1_000_000_000);
    // f0's acks take 105 ms while rounds last 20 ms: its link to the leader fills up.
    let (row, _) = run_case(&s, 1, 1, None);
    assert!(row.stats.overflows > 0);
    let capped = Scenario::parse("t.toml", &s_text_with_max_events(), &[]).expect("valid");
    let (row, _) = run_case(&capped, 0, 1, None);
    assert_eq!((row.stop, row.events), (StopReason::MaxEvents, 50));
}

fn s_text_with_max_events() -> String {
    r#"
[quorum]
followers = 4
deadline_ms = 20
rounds = 1000
[limits]
max_events = 50
[[cases]]
name = "events"
"#
    .to_owned()
}

#[test]
fn quorum_rounds_agreed_fraction_is_sixty_percent_over_a_million_rounds() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/quorum-rounds.toml");
    let s = Scenario::load(
        std::path::Path::new(path),
        &[Override { key: "quorum.rounds".into(), value: "1000000".into() }],
    )
    .expect("loads");
    let (row, _) = run_case(&s, 0, 1, None);
    assert_eq!(row.rounds, 1_000_000);
    let fraction = row.agreed_rounds as f64 / row.rounds as f64;
    assert!((fraction - 0.60).abs() <= 0.01, "agreed fraction {fraction}");
    // Events: 3.6 appends delivered and 3.6 acks per round, plus the deadline.
    let per_round = row.events as f64 / row.rounds as f64;
    assert!((per_round - 8.2).abs() < 0.05, "{per_round} events per round");
}
