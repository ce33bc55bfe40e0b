//! `faultline check` and `faultline run --history` end to end: exit codes, the JSON keys,
//! bad input as one located line, the SVG, and a Raft run's history checked by the same
//! command (a healthy case linearizable, the equivocating-leader case not).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn faultline(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).current_dir(ROOT).args(args).output().expect("the faultline binary runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

const STALE: &str = "{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 0, :type :invoke, :f :write, :value 2}
{:process 0, :type :ok, :f :write, :value 2}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
";

#[test]
fn exit_codes_say_linearizable_not_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.edn");
    std::fs::write(&stale, STALE).unwrap();
    let fine = dir.path().join("fine.jsonl");
    std::fs::write(
        &fine,
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":1}\n",
    )
    .unwrap();
    let (code, out, _) = faultline(&["check", fine.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(": linearizable"), "{out}");

    let svg = dir.path().join("stale.svg");
    let (code, out, err) = faultline(&["check", stale.to_str().unwrap(), "--plot", svg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("a minimal set of operations that cannot be ordered (3 of 3"), "{out}");
    assert!(out.contains("then the next operation to return cannot be placed: line 5 p1 read -> 1"), "{out}");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("read -&gt; 1"), "{drawn}");

    // JSON: the verdict, and for each history its counterexample.
    let (code, out, _) = faultline(&["check", stale.to_str().unwrap(), fine.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["linearizable"], Value::Bool(false));
    assert_eq!(v["histories"][0]["verdict"], "not-linearizable");
    assert_eq!(v["histories"][1]["linearizable"], Value::Bool(true));
    let lines: Vec<u64> = v["histories"][0]["counterexample"]["minimal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [1, 3, 5]);

    // Standard input.
    let mut child = Command::new(BIN)
        .args(["check", "-", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), STALE.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["histories"][0]["file"], "-");

    // Bad input: one located line, exit 2.
    let bad = dir.path().join("bad.edn");
    std::fs::write(
        &bad,
        "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 3, :type :ok, :f :write, :value 1}\n",
    )
    .unwrap();
    let (code, out, err) = faultline(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.edn:2:") && err.contains(":type:") && err.contains("no operation in flight"), "{err}");
    let (code, _, err) = faultline(&["check", stale.to_str().unwrap(), "--model", "kv"]);
    assert_eq!(code, Some(2));
    assert!(err.contains(":f:") && err.contains("--model register"), "{err}");
}

#[test]
fn a_budget_that_runs_out_says_unknown_with_exit_3() {
    // Fifty clients on one register: far more than a millisecond of search.
    use faultline::linear::generate::{Shape, history};
    let h = history(
        &Shape { model: faultline::linear::ModelKind::Register, ops: 3000, clients: 50, keys: 1, info_permille: 0 },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hard.edn");
    std::fs::write(&file, h.to_edn()).unwrap();
    let (code, out, err) = faultline(&["check", file.to_str().unwrap(), "--timeout", "0.001", "--format", "json"]);
    assert_eq!(code, Some(3), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["linearizable"], Value::Null);
    assert_eq!(v["histories"][0]["partitions"][0]["exhausted"], "stopped");
}

#[test]
fn a_raft_run_writes_a_history_that_check_judges() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = dir.path().join("healthy.edn");
    let (code, _, err) = faultline(&[
        "run",
        "scenarios/raft.toml",
        "--seed",
        "7",
        "--case",
        "healthy",
        "--history",
        healthy.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = faultline(&["check", healthy.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(": linearizable"), "{out}");

    // The stale case: Raft's own run reports `linearizable` violated, and check agrees.
    let stale = dir.path().join("stale.edn");
    let (code, out, _) = faultline(&[
        "run",
        "scenarios/raft-byzantine.toml",
        "--seed",
        "7",
        "--case",
        "stale",
        "--history",
        stale.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(out.contains("VIOLATION linearizable at"), "{out}");
    let (code, out, _) = faultline(&["check", stale.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("a minimal set of operations of key 0 that cannot be ordered (3 of"), "{out}");

    // Several cases and no --case: refused before running.
    let (code, _, err) = faultline(&["run", "scenarios/raft.toml", "--history", stale.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--case"), "{err}");
}
