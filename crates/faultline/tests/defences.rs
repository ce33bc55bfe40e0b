//! The coordinator's defences, each proven against the fault it answers over many seeds,
//! and each with a canary: the naive coordinator on the same seeds, showing that the
//! measurement can fail. The cases are those of `scenarios/chapter-extended.toml`, the
//! table `faultline demo --coordinator <name>` prints.
//!
//! The measured figures are printed (`cargo test --test defences -- --nocapture`).

use faultline::protocol::NodeId;
use faultline::protocols::quorum::report::{Row, SweepRow, run_all, run_case};
use faultline::protocols::quorum::{Coordinator, QuorumConfig, Reason, RoundResult, SignatureScheme};
use faultline::protocols::quorum::{Quorum, QuorumScenario};
use faultline::workload::Variant;

/// The coordinator's sweep rows.
fn sweep(variants: &[Variant], seeds: std::ops::Range<u64>, progress: &(dyn Fn() + Sync)) -> Vec<SweepRow> {
    faultline::workload::sweep::<Quorum>(variants, seeds, progress).into_iter().map(|(_, row)| row).collect()
}
use faultline::scenario::{Override, Scenario};

const EXTENDED: &str = include_str!("../../../scenarios/chapter-extended.toml");
const ADAPTIVE: &str = include_str!("../../../scenarios/adaptive-deadline.toml");

fn set(key: &str, value: &str) -> Override {
    Override { key: key.into(), value: value.into() }
}

/// The extended table against `coordinator`, with further overrides.
fn extended(coordinator: &str, more: &[Override]) -> Scenario {
    let mut overrides = vec![set("quorum.coordinator", &format!("{coordinator:?}"))];
    overrides.extend_from_slice(more);
    Scenario::parse("scenarios/chapter-extended.toml", EXTENDED, &overrides).expect("the extended table is valid")
}

/// `scenario` with only the case named `name`.
fn only(scenario: &Scenario, name: &str) -> Scenario {
    let mut s = scenario.clone();
    s.cases.retain(|c| c.name == name);
    assert_eq!(s.cases.len(), 1, "no case {name}");
    s
}

fn row(scenario: &Scenario, name: &str, seed: u64) -> Row {
    run_case(&only(scenario, name), 0, seed, None).0
}

/// The round results of one run.
fn rounds(scenario: &Scenario, seed: u64) -> Vec<RoundResult> {
    let mut sim = scenario.build(0, seed);
    sim.run();
    sim.observations().iter().map(|o| o.obs.clone()).collect()
}

fn rejected(row: &Row) -> Vec<(String, String, Option<String>)> {
    row.rejected.iter().map(|r| (r.follower.clone(), r.reason.as_str().to_owned(), r.sent_by.clone())).collect()
}

#[test]
fn the_extended_table_starts_with_the_chapters_six_cases_unchanged() {
    let chapter = Scenario::chapter();
    let naive = extended("naive", &[]);
    // The same coordinator, except that followers persist (the lie row needs a log).
    assert!(naive.quorum().persist && !chapter.quorum().persist);
    assert_eq!(QuorumConfig { persist: false, ..naive.quorum().clone() }, *chapter.quorum());
    assert_eq!((&naive.latency, &naive.links, &naive.limits), (&chapter.latency, &chapter.links, &chapter.limits));
    assert_eq!(naive.cases[..6], chapter.cases[..]);
    let names: Vec<&str> = naive.cases[6..].iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["byzantine-2", "flip", "equivocate", "lie", "stale", "forge"]);
    // And the naive coordinator's six rows are the chapter's, seed for seed.
    for seed in [0, 7, 8, 1234] {
        assert_eq!(run_all(&naive, seed)[..6], run_all(&chapter, seed)[..]);
    }
}

#[test]
fn every_coordinator_runs_the_whole_table_without_a_violation() {
    for c in Coordinator::ALL {
        let s = extended(c.name(), &[]);
        for seed in 0..50 {
            for row in run_all(&s, seed) {
                assert!(row.violations.is_empty(), "{} {} seed {seed}: {:?}", c.name(), row.name, row.violations);
                assert_eq!(row.coordinator, c.name());
            }
        }
    }
}

#[test]
fn content_quorum_agrees_on_the_proposal_against_one_tamperer_and_names_it() {
    let s = extended("content-quorum", &[]);
    for seed in 1..=200 {
        let r = row(&s, "byzantine-1", seed);
        assert!(r.agreed, "seed {seed}");
        assert_eq!(r.winning_data.as_deref(), Some("balance=9000"));
        assert_eq!(r.acks, 3, "the tamperer's ack is not counted");
        assert_eq!(rejected(&r), [("f0".to_owned(), "outvoted".to_owned(), None)], "seed {seed}");
        assert_eq!(r.corrupt_counted, 0);
    }
    // The JSON rows carry it.
    let json = serde_json::to_value(row(&s, "byzantine-1", 7)).expect("rows serialise");
    assert_eq!(json["rejected"], serde_json::json!([{ "follower": "f0", "reason": "outvoted" }]));
    // The naive coordinator agrees too (it groups by content, as the chapter's code does)
    // but counts the tampered ack and names nobody.
    let naive = row(&extended("naive", &[]), "byzantine-1", 7);
    assert!(naive.agreed && naive.rejected.is_empty());
    assert_eq!((naive.acks, naive.corrupt_counted), (4, 1));
}

#[test]
fn content_quorum_does_not_agree_with_two_tamperers_out_of_four() {
    // f = 1 for four followers: two tamperers are beyond what 3f + 1 tolerates, and the
    // coordinator must refuse to commit either value rather than pick one.
    let s = extended("content-quorum", &[]);
    for seed in 1..=200 {
        let r = row(&s, "byzantine-2", seed);
        assert!(!r.agreed, "seed {seed}: {r:?}");
        assert!(r.violations.is_empty());
        assert!(r.rejected.is_empty(), "a round that did not agree outvoted nobody");
    }
}

#[test]
fn retrying_agrees_on_the_omission_row_in_at_least_99_percent_of_1000_seeds() {
    let run = |coordinator: &str| {
        let variants = [Variant { label: coordinator.into(), scenario: only(&extended(coordinator, &[]), "omission") }];
        let rows = sweep(&variants, 1..1001, &|| {});
        assert_eq!((rows.len(), rows[0].seeds), (1, 1000));
        rows.into_iter().next().expect("one row")
    };
    let retrying = run("retrying");
    let naive = run("naive");
    println!(
        "omission, seeds 1..=1000: retrying agreed {:.4} ({} of {}), naive agreed {:.4}",
        retrying.agreed_fraction, retrying.agreed_rounds, retrying.rounds, naive.agreed_fraction
    );
    assert!(retrying.agreed_fraction >= 0.99, "retrying agreed only {}", retrying.agreed_fraction);
    // Canary: without retries the row agrees about 1 - 0.4^2 = 84% of the time.
    assert!(naive.agreed_fraction < 0.90, "naive agreed {}", naive.agreed_fraction);
    assert_eq!(retrying.violating_seeds, 0);
}

#[test]
fn retries_are_applied_once_per_key_and_re_acked() {
    // Twenty rounds of the omission row with retries every 20 ms, f0 losing its acks as well
    // as its appends: the leader retries followers that did apply the append, and each
    // follower persists each round at most once, however many copies reach it.
    let more = [set("quorum.rounds", "20"), set("quorum.retry_ms", "20"), set("cases.3.faults.0.direction", "general")];
    let s = only(&extended("retrying", &more), "omission");
    let mut duplicates = 0;
    for seed in 1..=50 {
        let mut sim = s.build(0, seed);
        sim.run();
        for f in 1..=4 {
            let follower = sim.node(NodeId(f)).as_follower().expect("a follower");
            assert!(follower.applied() <= 20, "seed {seed} f{}: applied {}", f - 1, follower.applied());
            assert_eq!(sim.disk(NodeId(f)).writes(), follower.applied(), "one write per key applied");
            duplicates += follower.duplicates();
        }
    }
    assert!(duplicates > 0, "some retries reached a follower that had already applied the key");
}

#[test]
fn checksummed_never_counts_a_corrupted_ack_over_10000_flip_seeds() {
    let run = |coordinator: &str| {
        let variants = [Variant { label: coordinator.into(), scenario: only(&extended(coordinator, &[]), "flip") }];
        sweep(&variants, 1..10_001, &|| {}).into_iter().next().expect("one row")
    };
    let checksummed = run("checksummed");
    let naive = run("naive");
    println!(
        "flip, seeds 1..=10000: checksummed counted {} corrupted acks and rejected {}; naive counted {} corrupted acks",
        checksummed.corrupt_counted, checksummed.rejected, naive.corrupt_counted
    );
    assert_eq!(checksummed.seeds, 10_000);
    assert_eq!(checksummed.corrupt_counted, 0);
    assert!(checksummed.rejected > 0, "the flips were there to be rejected");
    // Canary: the same flips, counted by a coordinator that does not check.
    assert!(naive.corrupt_counted > 1_000, "naive counted only {} corrupted acks", naive.corrupt_counted);
}

/// Every forged ack that reached the leader, over `seeds`: (forged, counted, rejected with
/// "bad signature").
fn forgeries(s: &Scenario, seeds: std::ops::RangeInclusive<u64>) -> (u64, u64, u64) {
    let (mut forged, mut counted, mut bad_signature) = (0, 0, 0);
    for seed in seeds {
        let mut sim = s.build(0, seed);
        sim.run();
        let ledger = sim.node(NodeId(0)).as_leader().expect("the leader").ledger().clone();
        // Ground truth from the injector: the forge fault (#0) fired once per forged ack,
        // and nothing drops any in this case.
        assert_eq!(ledger.impersonations, sim.injector().fired(0), "seed {seed}: every forgery arrived");
        forged += ledger.impersonations;
        counted += ledger.impersonations_counted;
        bad_signature += ledger.impersonations_rejected.get(Reason::BadSignature);
    }
    (forged, counted, bad_signature)
}

#[test]
fn signed_rejects_every_forged_ack_over_1000_seeds() {
    let signed = only(&extended("signed", &[]), "forge");
    // On the chapter's network the forgery always arrives while its round is open, so it
    // is in the row's `rejected`, named for what it claimed and who really sent it.
    for seed in 1..=1000 {
        let r = row(&signed, "forge", seed);
        assert_eq!(rejected(&r), [("f3".to_owned(), "bad signature".to_owned(), Some("f1".to_owned()))], "seed {seed}");
        assert!(r.agreed && r.corrupt_counted == 0, "seed {seed}");
    }
    // With jitter, forgeries race the victim's own ack and sometimes arrive after their
    // round closed; the leader's ledger accounts for those too.
    let jitter = set("network.latency", r#"{ dist = "uniform", min_ms = 1, max_ms = 10 }"#);
    for scheme in ["ed25519", "hmac"] {
        let s = only(&extended("signed", &[jitter.clone(), set("quorum.signature", scheme)]), "forge");
        assert_eq!(s.quorum().defences.signature.map(SignatureScheme::name), Some(scheme));
        let (forged, counted, bad_signature) = forgeries(&s, 1..=1000);
        println!(
            "forge, {scheme}, seeds 1..=1000: {forged} forged acks, {counted} counted, {bad_signature} bad signature"
        );
        assert!(forged >= 1000);
        assert_eq!((counted, bad_signature), (0, forged), "{scheme}");
    }
    // Canary: the naive coordinator counts forgeries whenever they beat the victim's ack.
    let naive = only(&extended("naive", &[jitter]), "forge");
    let (forged, counted, _) = forgeries(&naive, 1..=1000);
    println!("forge, naive, seeds 1..=1000: {forged} forged acks, {counted} counted");
    assert!(counted > 100, "naive counted {counted} of {forged} forged acks");
    assert!(row(&extended("naive", &[]), "forge", 7).corrupt_counted == 1);
}

#[test]
fn lie_acks_what_it_never_made_durable_and_the_durability_check_sees_it() {
    for c in Coordinator::ALL {
        let s = extended(c.name(), &[]);
        for seed in [1, 7, 99] {
            let rows = run_all(&s, seed);
            for r in &rows {
                let expect = u64::from(r.name == "lie");
                assert_eq!(r.acked_not_durable, expect, "{} {} seed {seed}", c.name(), r.name);
            }
            // No defence here sees it: the liar's ack is a perfectly good ack.
            let lie = rows.iter().find(|r| r.name == "lie").expect("lie row");
            assert!(lie.agreed && lie.rejected.is_empty() && lie.violations.is_empty());
        }
    }
    let json = serde_json::to_value(row(&extended("naive", &[]), "lie", 7)).expect("rows serialise");
    assert_eq!(json["acked_not_durable"], 1);
}

#[test]
fn a_stale_follower_answers_its_initial_state_and_then_old_values() {
    // One round: nothing is 1 s old, so f0 answers its initial, empty state.
    let naive = extended("naive", &[]);
    let first = &rounds(&only(&naive, "stale"), 7)[0];
    assert!(first.agreed && first.tampered_seen && first.corrupt_counted == 1);
    assert_eq!(row(&extended("content-quorum", &[]), "stale", 7).rejected[0].reason, Reason::Outvoted);
    assert_eq!(row(&extended("checksummed", &[]), "stale", 7).rejected[0].reason, Reason::DigestMismatch);
    // Many rounds with a 100 ms stale window: the empty answer until f0 has held the value
    // for 100 ms, then the value itself, which is stale but indistinguishable.
    let s = only(&extended("naive", &[set("quorum.rounds", "30"), set("cases.10.faults.0.age_ms", "100")]), "stale");
    let tampered: Vec<bool> = rounds(&s, 7).iter().map(|r| r.tampered_seen).collect();
    let flips = tampered.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(tampered[0] && !tampered[29] && flips == 1, "{tampered:?}");
}

#[test]
fn an_equivocating_leader_never_commits_and_its_followers_diverge() {
    for c in Coordinator::ALL {
        let s = only(&extended(c.name(), &[]), "equivocate");
        let mut sim = s.build(0, 7);
        sim.run();
        let r = &sim.observations()[0].obs;
        assert!(!r.agreed && r.tampered_seen, "{}", c.name());
        let durable: Vec<String> = (1..=4)
            .map(|f| {
                String::from_utf8_lossy(&sim.disk(NodeId(f)).read_durable("entry").expect("persisted")[16..]).into()
            })
            .collect();
        assert_eq!(durable, ["balance=9000", "balance=9000_EQUIVOCATED", "balance=9000", "balance=9000_EQUIVOCATED"]);
    }
    let r = row(&extended("checksummed", &[]), "equivocate", 7);
    let reasons: Vec<_> = rejected(&r).into_iter().map(|(f, reason, _)| format!("{f} {reason}")).collect();
    assert_eq!(reasons, ["f1 digest mismatch", "f3 digest mismatch"]);
}

#[test]
fn the_adaptive_deadline_learns_the_slow_followers_and_timing_stops_failing() {
    let s = Scenario::parse("scenarios/adaptive-deadline.toml", ADAPTIVE, &[]).expect("valid");
    let timing = only(&s, "timing");
    let fixed = Scenario::parse("scenarios/adaptive-deadline.toml", ADAPTIVE, &[set("quorum.deadline_max_ms", "200")])
        .expect("valid");
    for seed in 1..=50 {
        let adaptive = rounds(&timing, seed);
        // The first rounds run at the configured 200 ms and fail, while the slow acks
        // (510-1210 ms) are still on their way; once they have been timed, every round waits
        // long enough for them.
        assert!(!adaptive[0].agreed && adaptive[0].deadline.as_millis_f64() == 200.0);
        let settled = adaptive.iter().position(|r| r.agreed).expect("some round agrees");
        assert!(settled <= 8, "seed {seed}: first agreed round {}", settled + 1);
        assert!(adaptive[settled..].iter().all(|r| r.agreed), "seed {seed}: {adaptive:?}");
        assert!(adaptive.iter().all(|r| r.deadline.as_millis_f64() <= 2000.0));
        // Canary: the same run with a fixed deadline never agrees.
        assert!(rounds(&only(&fixed, "timing"), seed).iter().all(|r| !r.agreed));
    }
    // Healthy followers never stretch the deadline past the configured one.
    for r in rounds(&only(&s, "healthy"), 7) {
        assert!(r.agreed && r.deadline.as_millis_f64() == 200.0);
    }
}

#[test]
fn quorum_options_take_a_preset_and_field_overrides() {
    let s = extended("signed", &[]);
    let d = &s.quorum().defences;
    assert!(d.content_quorum && d.crc32c && d.sha256 && d.retry.is_none());
    assert_eq!(d.signature, Some(SignatureScheme::Ed25519));
    let s = extended(
        "signed",
        &[set("quorum.checksum", "crc32c"), set("quorum.signature", "hmac"), set("quorum.retry_ms", "25")],
    );
    let d = &s.quorum().defences;
    assert!(d.crc32c && !d.sha256);
    assert_eq!(d.signature, Some(SignatureScheme::Hmac));
    assert_eq!(d.retry.map(|r| r.as_millis_f64()), Some(25.0));
    assert_eq!(d.label(), "content-quorum+crc32c+hmac+retry=25ms");
    assert_eq!(extended("retrying", &[set("quorum.retry_ms", "0")]).quorum().defences, Default::default());
    // The key seed defaults to the file's seed.
    assert_eq!(s.quorum().key_seed, 7);
    assert_eq!(extended("naive", &[set("quorum.key_seed", "3")]).quorum().key_seed, 3);
    // Under a content quorum the quorum is the Byzantine one: 5 of 7, where a majority is 4.
    let seven = |c: &str| extended(c, &[set("quorum.followers", "7")]).quorum().quorum();
    assert_eq!((seven("naive"), seven("content-quorum")), (4, 5));
}

#[test]
fn bad_quorum_options_are_named_with_their_field() {
    for (key, value, field, words) in [
        ("quorum.coordinator", "\"paranoid\"", "quorum.coordinator", "unknown coordinator"),
        ("quorum.checksum", "\"md5\"", "quorum.checksum", "unknown checksum"),
        ("quorum.signature", "\"rsa\"", "quorum.signature", "unknown signature"),
        ("quorum.deadline_max_ms", "100", "quorum.deadline_max_ms", "below deadline_ms"),
        ("quorum.retry_ms", "0.001", "quorum.retry_ms", "more than 10000 times"),
        ("quorum.retry_ms", "-5", "quorum.retry_ms", "finite and zero or more"),
        ("quorum.content_quorum", "\"yes\"", "quorum.content_quorum", ""),
    ] {
        let err = Scenario::parse("x.toml", EXTENDED, &[set(key, value)]).expect_err(key).to_string();
        assert!(err.contains(field) && err.contains(words), "{key}={value}: {err}");
    }
}
