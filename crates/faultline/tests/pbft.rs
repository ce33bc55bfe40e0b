//! PBFT under the four failure models: correct PBFT keeps every property with one faulty
//! replica in four, whatever the fault; each deliberately broken variant is caught by the
//! fault story built for it; Twins' counterexample breaks n = 3f and not n = 3f + 1; and
//! the tolerance table and the cost figures say what the textbook says.

use faultline::protocols::pbft::report::{self as pbft, PbftRow};
use faultline::protocols::pbft::{Canary, Pbft, PbftRun, PbftSweepRow};
use faultline::scenario::{Override, Scenario};
use faultline::tolerance::{self, Cell, Model, Protocol};
use faultline::workload::Variant;

fn load(file: &str, overrides: &[(&str, &str)]) -> Scenario {
    let path = format!("{}/../../scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let overrides: Vec<Override> =
        overrides.iter().map(|(k, v)| Override { key: (*k).into(), value: (*v).into() }).collect();
    Scenario::load(std::path::Path::new(&path), &overrides).unwrap_or_else(|e| panic!("{e}"))
}

fn pbft_run(s: &Scenario) -> &PbftRun {
    faultline::workload::config::<Pbft>(s).unwrap_or_else(|| panic!("not a PBFT scenario: {}", s.protocol()))
}

fn sweep(s: &Scenario, seeds: std::ops::Range<u64>) -> Vec<PbftSweepRow> {
    let variants = [Variant { label: String::new(), scenario: s.clone() }];
    faultline::workload::sweep::<Pbft>(&variants, seeds, &|| ()).into_iter().map(|(_, row)| row).collect()
}

fn run(s: &Scenario, case: &str, seed: u64) -> PbftRow {
    let r = pbft_run(s);
    let c = s.cases.iter().position(|c| c.name == case).unwrap_or_else(|| panic!("no case {case}"));
    pbft::run_case_traced(s, &r.config, c, seed, r.liveness, None, false).0
}

fn properties(row: &PbftRow) -> Vec<&'static str> {
    row.violations.iter().map(|v| v.property).collect()
}

#[test]
fn correct_pbft_survives_one_fault_in_four_of_every_kind() {
    let s = load("pbft.toml", &[]);
    for row in sweep(&s, 1..6) {
        assert_eq!(row.violating_seeds, 0, "{row:?}");
        assert!(row.ok > 500, "{}: only {} operations succeeded over five seeds", row.case, row.ok);
    }
}

#[test]
fn a_crashed_primary_is_replaced_by_a_view_change() {
    let s = load("pbft.toml", &[]);
    let row = run(&s, "primary-crash", 3);
    assert!(row.violations.is_empty(), "{:?}", row.violations);
    assert!(row.view >= 1, "still in view {}", row.view);
    let healthy = run(&s, "healthy", 3);
    assert_eq!(healthy.view, 0);
    // Checkpoints are stable and the log is collected: nobody is left behind.
    assert!(healthy.behind.is_empty() && healthy.executed > 16 * 10, "{healthy:?}");
}

#[test]
fn each_canary_is_caught_by_its_story_and_correct_pbft_by_none() {
    let seeds = 1..4;
    let correct = load("pbft-canaries.toml", &[]);
    for row in sweep(&correct, seeds.clone()) {
        assert_eq!(row.violating_seeds, 0, "correct PBFT violated something: {row:?}");
    }
    // The least each story catches on seeds 1 to 3. docs/pbft.md states them over 20
    // seeds: every seed, but 17 of 20 for the lying new primary, whose lie lands only when
    // the cut-off replica is still behind when the new view comes.
    let stories = [
        (Canary::SmallCertificates, "equivocating-primary", "agreement", 3),
        (Canary::UncheckedNewView, "lying-new-primary", "agreement", 2),
        (Canary::FewReplies, "lying-replies", "linearizable", 3),
        (Canary::Unsigned, "forged-replies", "linearizable", 3),
        (Canary::Unsigned, "forged-requests", "validity", 3),
    ];
    for (canary, case, property, least) in stories {
        let s = load("pbft-canaries.toml", &[("pbft.canary", canary.name())]);
        let caught = seeds.clone().filter(|&seed| properties(&run(&s, case, seed)).contains(&property)).count();
        assert!(caught >= least, "{} caught on {caught} of 3 seeds by {case} ({property})", canary.name());
    }
}

#[test]
fn twins_break_n_equals_3f_and_not_3f_plus_1() {
    let three = load("pbft-twins.toml", &[]);
    let four = load("pbft-twins.toml", &[("pbft.replicas", "4")]);
    for seed in 1..6 {
        let row = run(&three, "split-primary", seed);
        assert_eq!(properties(&row).first(), Some(&"agreement"), "seed {seed}: {:?}", row.violations);
        assert_eq!(row.correct, ["r1", "r2"]);
        let row = run(&four, "split-primary", seed);
        assert!(row.violations.is_empty(), "seed {seed} at n = 4: {:?}", row.violations);
    }
}

/// The table's boundaries, on a few seeds per cell (the README's table runs 100).
#[test]
fn the_tolerance_table_shows_the_textbook_boundaries() {
    let cells = tolerance::cells(&[Protocol::Raft, Protocol::Pbft], &Model::ALL, &[3, 4, 5, 6, 7]);
    let rows = tolerance::run(&cells, 1..4, &|| ());
    for r in &rows {
        let k = r.faulty;
        let (safe, live) = match (r.protocol, r.model) {
            (Protocol::Raft, Model::Byzantine) => (k == 0, true),
            (Protocol::Pbft, Model::Byzantine) => (r.n > 3 * k, r.n > 3 * k || r.live),
            (_, _) => (true, 2 * k < r.n),
        };
        assert_eq!(r.safe, safe, "{r:?}");
        if !(r.protocol == Protocol::Pbft && r.model == Model::Byzantine) || r.n > 3 * k {
            assert_eq!(r.live, live, "{r:?}");
        }
        if !r.safe || !r.live {
            let line = r.reproduce.as_deref().expect("a reproduce line");
            assert!(line.contains(&format!(
                "--emit {}",
                Cell { protocol: r.protocol, model: r.model, n: r.n, faulty: k }.label()
            )));
        }
    }
    // The chapter's cells: 5 nodes for 2 crash failures, 7 for 2 Byzantine.
    let cell = |p, m, n, k| rows.iter().find(|r| r.protocol == p && r.model == m && r.n == n && r.faulty == k).unwrap();
    assert!(cell(Protocol::Raft, Model::Crash, 5, 2).live && !cell(Protocol::Raft, Model::Crash, 4, 2).live);
    assert!(cell(Protocol::Pbft, Model::Byzantine, 7, 2).safe && !cell(Protocol::Pbft, Model::Byzantine, 6, 2).safe);
}

#[test]
fn an_emitted_cell_is_a_scenario_that_replays_its_seed() {
    let cell = Cell::parse("pbft:byzantine:6:2").unwrap();
    let text = tolerance::scenario_text(&cell, 11);
    let s = Scenario::parse("cell.toml", &text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let row = run(&s, "byzantine-k2", 11);
    let table = tolerance::run(&[cell], 11..12, &|| ());
    assert_eq!(row.violations.iter().any(|v| v.class == faultline::check::Class::Always), !table[0].safe);
    assert!(Cell::parse("pbft:byzantine:6:7").is_err() && Cell::parse("raft:lies:5:1").is_err());
}

#[test]
fn measured_costs_match_the_closed_forms() {
    for n in [4, 7] {
        let raft = tolerance::costs(Protocol::Raft, n, faultline::protocols::pbft::Auth::Hmac);
        let pbft = tolerance::costs(Protocol::Pbft, n, faultline::protocols::pbft::Auth::Hmac);
        assert_eq!((raft.requests, pbft.requests), (tolerance::COST_REQUESTS, tolerance::COST_REQUESTS));
        // PBFT has no background traffic: only checkpoints (n(n−1) every 16 requests) add
        // to the normal case's 2n(n−1).
        let closed = 2.0 * (n * (n - 1)) as f64;
        let checkpoints = (n * (n - 1)) as f64 / 16.0;
        assert!((pbft.replica_messages_per_request - closed - checkpoints).abs() < 0.05 * closed, "{pbft:?}");
        // Raft: 2(n−1) per entry, plus heartbeats and the election.
        assert!(raft.replica_messages_per_request >= 2.0 * (n - 1) as f64, "{raft:?}");
        assert!(raft.replica_messages_per_request < 2.0 * 2.0 * (n - 1) as f64, "{raft:?}");
        assert!(pbft.auth_ops_per_request > 0.0 && raft.auth_ops_per_request == 0.0);
    }
}
