//! The custom workload through the real command line: a correct two-phase commit keeps
//! every property over many seeds, the checkers catch the coordinator crash (liveness,
//! exit 3) and the deliberately broken heuristic (safety, exit 1), sweeps and traces work
//! and replay, bad input in the workload's own table is located like any other, and the
//! built-in workloads still run through the same binary.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_faultline-2pc");
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn faultline(args: &[&str]) -> Out {
    let out = Command::new(BIN).args(args).output().expect("the binary runs");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8"),
    }
}

fn scenario(name: &str) -> String {
    format!("{DIR}/{name}")
}

#[test]
fn correct_two_phase_commit_keeps_every_property_over_three_hundred_seeds() {
    let s = scenario("two-phase.toml");
    let run = faultline(&["run", &s, "--format", "json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    for r in rows {
        // Every transaction ran and was decided by everyone; some aborted on a no vote.
        assert_eq!(r["started"], 20, "{r}");
        assert!(r["committed"].as_u64().unwrap() > 0 && r["aborted"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["in_doubt"], 0, "{r}");
    }
    let sweep = faultline(&["sweep", &s, "--seeds", "1..301", "--format", "json"]);
    assert_eq!(sweep.code, Some(0), "{}", sweep.stderr);
    let v: Value = serde_json::from_str(&sweep.stdout).expect("JSON");
    for r in v["rows"].as_array().expect("rows") {
        assert_eq!((r["seeds"].as_u64(), r["violating_seeds"].as_u64()), (Some(300), Some(0)), "{r}");
    }
}

#[test]
fn a_coordinator_crashed_for_good_blocks_its_participants_a_liveness_violation() {
    let s = scenario("two-phase-coordinator-crash.toml");
    let out = faultline(&["run", &s]);
    assert_eq!(out.code, Some(3), "liveness only: exit 3: {}", out.stderr);
    assert!(out.stdout.contains("VIOLATION eventually-decides"), "{}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines[0].starts_with("violation: case coordinator-crash: eventually-decides at "), "{}", out.stderr);
    // The line names the binary that ran, so it can be pasted as it is.
    assert_eq!(lines[1], format!("reproduce: faultline-2pc run {s} --seed 1 --case coordinator-crash"));
    // No safety property breaks: 2PC blocks, it does not lie.
    assert!(!out.stdout.contains("atomicity") && !out.stdout.contains("commit-validity"), "{}", out.stdout);
}

#[test]
fn the_checkers_catch_the_deliberately_broken_heuristic_commit() {
    let s = scenario("two-phase-heuristic.toml");
    let out = faultline(&["run", &s]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("VIOLATION atomicity") && out.stdout.contains("VIOLATION commit-validity"));
    // The same faults against the correct protocol: nothing to report.
    let fixed = faultline(&["run", &s, "--set", "two-phase.heuristic=none"]);
    assert_eq!(fixed.code, Some(0), "{}", fixed.stderr);
    assert!(!fixed.stdout.contains("VIOLATION"), "{}", fixed.stdout);
    // A sweep over both: every broken seed is caught, no correct one is.
    let sweep = faultline(&["sweep", &s, "--seeds", "1..41", "--vary", "two-phase.heuristic=none,commit-on-timeout"]);
    assert_eq!(sweep.code, Some(1), "{}", sweep.stderr);
    let rows: Vec<&str> = sweep.stdout.lines().skip(1).collect();
    assert!(rows[0].contains("heuristic=none seeds=40") && rows[0].contains("violating_seeds=0"), "{rows:?}");
    assert!(rows[1].contains("violating_seeds=40 atomicity=40"), "{rows:?}");
}

#[test]
fn sweeps_do_not_depend_on_the_thread_count() {
    let s = scenario("two-phase.toml");
    let one = faultline(&["sweep", &s, "--seeds", "1..81", "--threads", "1"]);
    let two = faultline(&["sweep", &s, "--seeds", "1..81", "--threads", "2"]);
    assert_eq!(one.code, Some(0));
    assert_eq!(one.stdout, two.stdout);
}

#[test]
fn a_trace_has_every_event_and_replays_byte_for_byte() {
    let s = scenario("two-phase.toml");
    let args = ["run", &s, "--seed", "9", "--case", "coordinator-restarts", "--trace", "-"];
    let a = faultline(&args);
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    let mut lines = a.stdout.lines();
    let header: Value = serde_json::from_str(lines.next().expect("a header")).expect("JSON");
    assert_eq!(header["case"], "coordinator-restarts");
    assert_eq!(header["faults"].as_array().map(Vec::len), Some(1));
    let events: Vec<Value> = lines.map(|l| serde_json::from_str(l).expect("NDJSON")).collect();
    assert!(events.iter().any(|e| e["node"] == "coord" && e["kind"] == "start"), "the restart shows");
    assert!(events.iter().any(|e| e["detail"].as_str().is_some_and(|d| d.starts_with("Decided"))));
    assert!(a.stderr.starts_with("seed: 9\n"), "the results go to stderr: {}", a.stderr);
    assert_eq!(faultline(&args).stdout, a.stdout, "same scenario and seed, same trace");
}

#[test]
fn bad_input_in_the_workloads_table_is_one_located_line() {
    let dir = std::env::temp_dir().join(format!("faultline-2pc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("colour", "colour = 1", 5, "two-phase.colour"),
        ("heuristic", "heuristic = \"sometimes\"", 5, "two-phase.heuristic"),
        ("participants", "participants = 0", 5, "two-phase.participants"),
    ];
    for (name, line, want_line, field) in cases {
        let path = dir.join(format!("{name}.toml"));
        let text =
            format!("name = \"bad\"\nprotocol = \"two-phase\"\n\n[two-phase]\n{line}\n\n[[cases]]\nname = \"c\"\n");
        std::fs::write(&path, text).unwrap();
        let out = faultline(&["run", path.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(out.stdout.is_empty());
        let want = format!("error: {}:{want_line}:", path.display());
        assert!(out.stderr.starts_with(&want) && out.stderr.contains(&format!(" {field}: ")), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_built_in_workloads_run_through_the_same_binary() {
    let chapter = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/chapter.toml");
    let out = faultline(&["run", chapter, "--seed", "7"]);
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("healthy      acks=4/4 quorum=3 agreed=1"), "{}", out.stdout);
    // And an unknown protocol names every registered one, ours included.
    let dir = std::env::temp_dir().join(format!("faultline-2pc-proto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.toml");
    std::fs::write(&path, "protocol = \"paxos\"\n[[cases]]\nname = \"c\"\n").unwrap();
    let out = faultline(&["run", path.to_str().unwrap()]);
    assert!(out.stderr.contains("(expected quorum, heartbeat, raft, pbft or two-phase)"), "{}", out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    let list = faultline(&["workloads"]);
    let names: Vec<&str> = list.stdout.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["quorum", "heartbeat", "raft", "pbft", "two-phase"]);
}
