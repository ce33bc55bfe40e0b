//! Golden outputs: what the shipped commands print, byte for byte, for every shipped
//! scenario. Each command's exit code, standard output and standard error are hashed
//! (SHA-256) and compared with `tests/golden/outputs.txt`, recorded before the workloads
//! became plug-ins; the port onto one workload interface had to leave every byte alone.
//!
//! A mismatch writes what the command printed to `target/golden-actual/NAME` so it can be
//! read and diffed. When an output changes on purpose, re-record with
//! `FAULTLINE_BLESS=1 cargo test -p faultline-cli --test golden` and say why in the commit.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/outputs.txt");

/// The commands, each with a name and its arguments (paths relative to the repository).
fn commands() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: String, args: &[&str]| out.push((name, args.iter().map(|s| s.to_string()).collect()));
    add("demo".into(), &["demo"]);
    add("demo-json".into(), &["demo", "--format", "json"]);
    add("demo-seed-3".into(), &["demo", "--seed", "3"]);
    for c in ["naive", "content-quorum", "checksummed", "signed", "retrying"] {
        add(format!("demo-{c}"), &["demo", "--coordinator", c]);
    }
    add("demo-signed-json".into(), &["demo", "--coordinator", "signed", "--format", "json"]);
    let mut files: Vec<String> = Vec::new();
    for dir in ["scenarios", "scenarios/incidents", "scenarios/detectors"] {
        let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    for f in &files {
        let stem = f.trim_start_matches("scenarios/").trim_end_matches(".toml").replace('/', "-");
        add(format!("run-{stem}"), &["run", f, "--seed", "7"]);
        add(format!("run-{stem}-json"), &["run", f, "--seed", "7", "--format", "json"]);
    }
    // Traces, for the workloads that took one before the port.
    for f in ["scenarios/chapter.toml", "scenarios/raft-canaries.toml", "scenarios/incidents/kapitalkite-timing.toml"] {
        let stem = f.trim_start_matches("scenarios/").trim_end_matches(".toml").replace('/', "-");
        add(format!("trace-{stem}"), &["run", f, "--seed", "11", "--trace", "-"]);
    }
    add("run-chapter-case".into(), &["run", "scenarios/chapter.toml", "--seed", "7", "--case", "byzantine-1"]);
    add(
        "run-raft-set".into(),
        &["run", "scenarios/raft.toml", "--seed", "5", "--set", "raft.servers=5", "--set", "raft.read=\"lease\""],
    );
    add("sweep-chapter".into(), &["sweep", "scenarios/chapter.toml", "--seeds", "1..41"]);
    add("sweep-chapter-json".into(), &["sweep", "scenarios/chapter.toml", "--seeds", "1..41", "--format", "json"]);
    add(
        "sweep-adaptive-vary".into(),
        &["sweep", "scenarios/adaptive-deadline.toml", "--seeds", "1..11", "--vary", "quorum.deadline_ms=50,100,400"],
    );
    add("sweep-extended".into(), &["sweep", "scenarios/chapter-extended.toml", "--seeds", "0..=20"]);
    add("sweep-raft-canaries".into(), &["sweep", "scenarios/raft-canaries.toml", "--seeds", "1..6"]);
    add(
        "sweep-raft-canaries-json".into(),
        &["sweep", "scenarios/raft-canaries.toml", "--seeds", "1..6", "--format", "json"],
    );
    add(
        "sweep-raft-vary".into(),
        &["sweep", "scenarios/raft-swarm.toml", "--seeds", "1..5", "--vary", "raft.servers=3,5"],
    );
    add("sweep-kapitalkite".into(), &["sweep", "scenarios/incidents/kapitalkite-timing.toml", "--seeds", "1..11"]);
    for fmt in ["table", "json", "csv"] {
        add(
            format!("detect-crash-{fmt}"),
            &["detect", "scenarios/detectors/crash.toml", "--seeds", "1..4", "--format", fmt],
        );
    }
    add(
        "detect-gray-probe".into(),
        &[
            "detect",
            "scenarios/detectors/gray.toml",
            "--seeds",
            "1..3",
            "--detector",
            "timeout,probe",
            "--threshold",
            "timeout=2000,3000",
        ],
    );
    add("faults".into(), &["faults"]);
    add("faults-json".into(), &["faults", "--format", "json"]);
    out
}

fn digest(args: &[String]) -> (String, Vec<u8>) {
    let out = Command::new(BIN).current_dir(ROOT).args(args).output().expect("the faultline binary runs");
    let mut all = format!("exit: {:?}\n--- stdout\n", out.status.code()).into_bytes();
    all.extend_from_slice(&out.stdout);
    all.extend_from_slice(b"--- stderr\n");
    all.extend_from_slice(&out.stderr);
    let hex: String = Sha256::digest(&all).iter().map(|b| format!("{b:02x}")).collect();
    (hex, all)
}

#[test]
fn every_command_prints_what_it_printed_before_the_port() {
    let commands = commands();
    let bless = std::env::var_os("FAULTLINE_BLESS").is_some();
    let recorded = std::fs::read_to_string(TABLE).unwrap_or_default();
    let recorded: std::collections::BTreeMap<&str, &str> = recorded
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(' ').map(|(hash, name)| (name.split(' ').next().unwrap_or(""), hash)))
        .collect();
    let mut table = String::from("# sha256 name args: see tests/golden.rs\n");
    let mut changed = Vec::new();
    for (name, args) in &commands {
        let (hex, all) = digest(args);
        table.push_str(&format!("{hex} {name} {}\n", args.join(" ")));
        if recorded.get(name.as_str()) != Some(&hex.as_str()) {
            let dir = Path::new(ROOT).join("target/golden-actual");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), &all).unwrap();
            changed.push(format!("{name} (faultline {})", args.join(" ")));
        }
    }
    if bless {
        std::fs::write(TABLE, table).unwrap();
        return;
    }
    assert_eq!(recorded.len(), commands.len(), "tests/golden/outputs.txt and the command list differ in length");
    assert!(
        changed.is_empty(),
        "outputs changed (what they print now is in target/golden-actual/):\n{}",
        changed.join("\n")
    );
}
