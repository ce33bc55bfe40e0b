//! Integration tests of the `faultline` command: bad input (a corpus of malformed scenario
//! files and bad `--set` overrides) and the positive paths (demo, run with a trace,
//! violations and their reproduce line, sweeps, the benchmark, usage errors).
//!
//! Every bad input must end the same way: exit code 2, nothing on stdout, and exactly one
//! line on stderr, `error: FILE:LINE:COL: FIELD: message`, where LINE is the line the
//! offending key or value is written on.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
const CHAPTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/chapter.toml");
const QUORUM_ROUNDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/quorum-rounds.toml");
const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
const DETECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/detectors");
const MALFORMED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/malformed");

/// The malformed corpus: file, the line the error must point at, the field it must name.
const MALFORMED: &[(&str, usize, &str)] = &[
    ("syntax-error.toml", 4, "(syntax)"),
    ("unknown-top-level-field.toml", 3, "colour"),
    ("unknown-quorum-field.toml", 6, "quorum.deadline"),
    ("unknown-fault-field.toml", 10, "cases[0].faults[0].colour"),
    ("unknown-latency-field.toml", 5, "network.latency.jitter_ms"),
    ("wrong-type.toml", 5, "quorum.followers"),
    ("wrong-type-probability.toml", 12, "cases[0].faults[0].p"),
    ("negative-duration.toml", 13, "cases[0].faults[0].duration_ms"),
    ("negative-deadline.toml", 6, "quorum.deadline_ms"),
    ("zero-deadline.toml", 6, "quorum.deadline_ms"),
    ("probability-above-one.toml", 13, "cases[0].faults[0].p"),
    ("probability-below-zero.toml", 15, "cases[1].faults[1].p"),
    ("unknown-node.toml", 10, "cases[0].faults[0].node"),
    ("unknown-link-node.toml", 12, "network.links[0].to"),
    ("fault-budget-exceeds-nodes.toml", 3, "fault_budget"),
    ("faulty-nodes-exceed-budget.toml", 15, "cases[1].faults"),
    ("absurd-size.toml", 5, "quorum.followers"),
    ("zero-followers.toml", 5, "quorum.followers"),
    ("unknown-fault-kind.toml", 12, "cases[0].faults[0].kind"),
    ("unknown-latency-dist.toml", 9, "network.latency.dist"),
    ("uniform-max-below-min.toml", 11, "network.latency.max_ms"),
    ("pause-without-duration.toml", 11, "cases[0].faults[0].duration_ms"),
    // A missing table or list has nowhere to point but the top of the file.
    ("missing-quorum.toml", 1, "quorum"),
    ("no-cases.toml", 1, "cases"),
    ("duplicate-case-names.toml", 13, "cases[1].name"),
    ("parameter-of-other-kind.toml", 12, "cases[0].faults[0].p"),
    ("until-before-at.toml", 13, "cases[0].faults[0].until_ms"),
    ("heartbeat-one-node.toml", 6, "heartbeat.nodes"),
    ("heartbeat-unknown-field.toml", 7, "heartbeat.period_ms"),
    ("heartbeat-swim-timeout-too-long.toml", 7, "heartbeat.swim.timeout_ms"),
    ("raft-unknown-read-path.toml", 8, "raft.read"),
    ("raft-bootstrap-not-a-server.toml", 7, "raft.bootstrap_leader"),
    // Durations are judged in the nanoseconds the simulator counts: a positive value that
    // rounds to 0 ns is refused, never read as zero.
    ("raft-heartbeat-rounds-to-zero.toml", 7, "raft.heartbeat_ms"),
    ("raft-duration-rounds-to-zero.toml", 7, "raft.duration_ms"),
    ("raft-liveness-budget-rounds-to-zero.toml", 7, "raft.liveness_budget_ms"),
    ("data-probe-interval-rounds-to-zero.toml", 7, "heartbeat.data_probe.interval_ms"),
    ("retry-rounds-to-zero.toml", 7, "quorum.retry_ms"),
    ("pareto-cap-below-scale.toml", 9, "network.latency.cap_ms"),
    ("max-events-beyond-u64.toml", 8, "limits.max_events"),
    // Forge in a swarm with one node to fault once drew a silent zero-length delay.
    ("swarm-forge-one-server.toml", 10, "cases[0].swarm.kinds[1]"),
];

/// What a finished `faultline` process left behind.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn faultline<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Out {
    let out = Command::new(BIN).args(args).output().expect("the faultline binary runs");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Asserts a clean success and returns stdout.
fn ok(args: &[&str]) -> String {
    let out = faultline(args);
    assert_eq!(out.code, Some(0), "faultline {args:?} should exit 0: {out:?}");
    assert!(out.stderr.is_empty(), "faultline {args:?} wrote to stderr: {out:?}");
    out.stdout
}

/// Asserts the bad-input shape (exit 2, empty stdout, one `error: ` line on stderr, no
/// panic) and returns that line without its newline.
fn one_line_error(out: &Out, what: &str) -> String {
    assert_eq!(out.code, Some(2), "{what}: expected exit code 2: {out:?}");
    assert!(out.stdout.is_empty(), "{what}: expected an empty stdout: {out:?}");
    assert!(!out.stderr.contains("panicked"), "{what}: panicked: {out:?}");
    assert!(out.stderr.ends_with('\n'), "{what}: stderr should be one whole line: {out:?}");
    let line = &out.stderr[..out.stderr.len() - 1];
    assert!(!line.contains('\n') && !line.contains('\r'), "{what}: stderr should be exactly one line: {out:?}");
    assert!(line.starts_with("error: "), "{what}: the line should start with `error: `: {line:?}");
    line.to_owned()
}

/// Checks `error: PATH:LINE:COL: FIELD: message` with the given line and field.
fn assert_located(line: &str, path: &str, want_line: usize, field: &str) {
    let rest = line
        .strip_prefix("error: ")
        .and_then(|l| l.strip_prefix(path))
        .and_then(|l| l.strip_prefix(':'))
        .unwrap_or_else(|| panic!("{path}: the error should start with `error: {path}:`: {line:?}"));
    let mut parts = rest.splitn(3, ':');
    let (l, c, tail) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let got_line: usize = l.parse().unwrap_or_else(|_| panic!("{path}: no line number after the path: {line:?}"));
    let got_col: usize = c.parse().unwrap_or_else(|_| panic!("{path}: no column number after the line: {line:?}"));
    assert!(got_line >= 1 && got_col >= 1, "{path}: line and column count from 1: {line:?}");
    assert_eq!(got_line, want_line, "{path}: the error points at the wrong line: {line:?}");
    let message = tail
        .strip_prefix(&format!(" {field}: "))
        .unwrap_or_else(|| panic!("{path}: the error should name the field `{field}` after `{l}:{c}:`: {line:?}"));
    assert!(!message.trim().is_empty(), "{path}: the error should say what is wrong: {line:?}");
}

/// Whether `text` says `line N` (and not `line N0`, `line N1`, ...).
fn mentions_line(text: &str, n: usize) -> bool {
    let needle = format!("line {n}");
    text.match_indices(&needle).any(|(i, m)| !text[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

#[test]
fn malformed_scenarios_fail_with_one_located_line() {
    let mut failures = Vec::new();
    for &(file, want_line, field) in MALFORMED {
        let path = format!("{MALFORMED_DIR}/{file}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let out = faultline(&["run", path.as_str()]);
        // Collect rather than stop at the first, so one run reports every file that fails.
        let result = std::panic::catch_unwind(|| {
            let first = text.lines().next().unwrap_or("");
            assert!(
                first.starts_with("# ") && first.contains(&format!("`{field}`")) && mentions_line(first, want_line),
                "{file}: the first line should be a comment saying what is wrong, naming `{field}` and line \
                 {want_line}: {first:?}"
            );
            let line = one_line_error(&out, file);
            assert_located(&line, &path, want_line, field);
        });
        if result.is_err() {
            failures.push(file);
        }
    }
    assert!(failures.is_empty(), "malformed files not reported as expected (details above): {failures:?}");
}

#[test]
fn every_malformed_file_is_in_the_table() {
    let mut on_disk: Vec<String> = std::fs::read_dir(MALFORMED_DIR)
        .expect("the malformed corpus exists")
        .map(|e| e.expect("a directory entry").file_name().into_string().expect("a UTF-8 file name"))
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = MALFORMED.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    in_table.sort();
    let mut dedup = in_table.clone();
    dedup.dedup();
    assert_eq!(dedup, in_table, "a file is listed twice in MALFORMED");
    assert_eq!(on_disk, in_table, "the files in tests/malformed/ and the MALFORMED table differ");
    assert!(in_table.len() >= 18, "the corpus should have at least 18 files");
}

#[test]
fn invalid_utf8_is_one_located_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invalid-utf8.toml");
    let mut bytes = b"# Invalid UTF-8: bytes 0xFF 0xFE inside quorum.data (line 6); the error must name `(file)`.\n\
        name = \"invalid-utf8\"\n\n[quorum]\nfollowers = 4\ndata = \"ba"
        .to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b"l\"\ndeadline_ms = 200\n\n[[cases]]\nname = \"healthy\"\n");
    std::fs::write(&path, &bytes).unwrap();
    let path = path.to_str().unwrap();
    let out = faultline(&["run", path]);
    let line = one_line_error(&out, "invalid UTF-8");
    assert_located(&line, path, 6, "(file)");
}

#[test]
fn missing_scenario_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such.toml");
    let path = path.to_str().unwrap();
    let line = one_line_error(&faultline(&["run", path]), "missing file");
    assert!(line.starts_with(&format!("error: {path}: ")), "the error should name the file: {line:?}");
}

#[test]
fn set_with_a_value_of_the_wrong_type_names_the_set_and_the_field() {
    let out = faultline(&["run", CHAPTER, "--set", "quorum.deadline_ms=abc"]);
    let line = one_line_error(&out, "--set quorum.deadline_ms=abc");
    assert!(line.starts_with("error: --set quorum.deadline_ms=abc: "), "should name the --set: {line:?}");
    assert!(line.contains(": quorum.deadline_ms: "), "should name the field: {line:?}");
}

#[test]
fn set_with_an_invalid_value_names_the_field_path() {
    let out = faultline(&["run", CHAPTER, "--set", "cases.3.faults.0.p=1.5"]);
    let line = one_line_error(&out, "--set cases.3.faults.0.p=1.5");
    assert!(line.starts_with("error: --set cases.3.faults.0.p=1.5: "), "should name the --set: {line:?}");
    assert!(line.contains(": cases[3].faults[0].p: "), "should name the field as a path: {line:?}");
}

#[test]
fn set_with_an_index_out_of_range_is_one_line() {
    let out = faultline(&["run", CHAPTER, "--set", "cases.99.name=x"]);
    let line = one_line_error(&out, "--set cases.99.name=x");
    assert!(line.starts_with("error: --set cases.99.name=x: "), "should name the --set: {line:?}");
}

#[test]
fn vary_with_an_invalid_value_is_one_line() {
    let out = faultline(&["sweep", CHAPTER, "--seeds", "1..3", "--vary", "quorum.deadline_ms=5,abc"]);
    let line = one_line_error(&out, "--vary quorum.deadline_ms=5,abc");
    assert!(line.contains("quorum.deadline_ms"), "should name the field: {line:?}");
}

/// Splits a command line as a POSIX shell would: whitespace separates words, except inside
/// single quotes (taken literally) or double quotes; a backslash outside quotes escapes.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

#[test]
fn shell_words_splits_like_a_shell() {
    assert_eq!(
        shell_words("run a.toml --set 'x=1 2'  --case b\\ c"),
        ["run", "a.toml", "--set", "x=1 2", "--case", "b c"]
    );
    assert_eq!(shell_words("'it'\\''s' \"q\\\"\""), ["it's", "q\""]);
}

#[test]
fn demo_prints_the_chapter_rows() {
    let stdout = ok(&["demo"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "a seed line and six rows: {stdout}");
    assert_eq!(lines[0], "seed: 7");
    assert_eq!(lines[1], "healthy      acks=4/4 quorum=3 agreed=1 tampered_seen=0 winning_data=balance=9000");
    let names = ["healthy", "crash-1", "crash-2", "omission", "timing", "byzantine-1"];
    for (line, name) in lines[1..].iter().zip(names) {
        // The chapter's layout: the name padded to 12 columns, then the fields.
        assert_eq!(line.get(..12).map(str::trim_end), Some(name), "row layout: {line:?}");
        assert!(line[12..].starts_with(" acks=") && line.contains(" quorum=3 "), "row layout: {line:?}");
    }
    let expect = [
        ("crash-1", " acks=3/4 quorum=3 agreed=1 "),
        ("crash-2", " acks=2/4 quorum=3 agreed=0 "),
        ("timing", " acks=2/4 quorum=3 agreed=0 "),
        ("byzantine-1", " acks=4/4 quorum=3 agreed=1 tampered_seen=1 winning_data=balance=9000"),
    ];
    for (name, fields) in expect {
        let line = lines.iter().find(|l| l.split_whitespace().next() == Some(name)).unwrap();
        assert!(line.contains(fields), "{name}: expected {fields:?} in {line:?}");
    }
    assert!(lines[2..].iter().all(|l| !l.ends_with("balance=9000_TAMPERED")), "no row may win with tampered data");
    let byzantine = lines.iter().find(|l| l.starts_with("byzantine-1 ")).unwrap();
    assert!(byzantine.ends_with("winning_data=balance=9000"), "{byzantine:?}");
}

#[test]
fn demo_json_has_the_chapter_columns() {
    let stdout = ok(&["demo", "--format", "json"]);
    let json: Value = serde_json::from_str(&stdout).expect("demo --format json prints JSON");
    assert_eq!(json["seed"], 7);
    let rows = json["rows"].as_array().expect("rows is an array");
    assert_eq!(rows.len(), 6);
    let table = ok(&["demo"]);
    for (row, line) in rows.iter().zip(table.lines().skip(1)) {
        let name = row["name"].as_str().expect("name is a string");
        let acks = row["acks"].as_u64().expect("acks is a number");
        let followers = row["followers"].as_u64().expect("followers is a number");
        let quorum = row["quorum"].as_u64().expect("quorum is a number");
        let agreed = row["agreed"].as_bool().expect("agreed is a bool");
        let tampered = row["tampered_seen"].as_bool().expect("tampered_seen is a bool");
        let winning = &row["winning_data"];
        assert!(winning.is_string() || winning.is_null(), "winning_data is a string or null: {row}");
        assert_eq!((followers, quorum), (4, 3), "{row}");
        // The JSON says what the table says.
        let expected = format!(
            "{name:<12} acks={acks}/{followers} quorum={quorum} agreed={} tampered_seen={} winning_data={}",
            agreed as u8,
            tampered as u8,
            winning.as_str().unwrap_or("None")
        );
        assert_eq!(line, expected);
    }
}

#[test]
fn demo_is_deterministic_and_takes_a_seed() {
    let first = ok(&["demo"]);
    let second = ok(&["demo"]);
    assert_eq!(first, second, "two demo runs differ");
    let eight = ok(&["demo", "--seed", "8"]);
    assert_eq!(eight.lines().next(), Some("seed: 8"));
    assert_eq!(eight.lines().count(), 7, "{eight}");
    assert_eq!(eight, ok(&["demo", "--seed", "8"]), "two demo --seed 8 runs differ");
}

#[test]
fn run_of_the_chapter_file_matches_the_demo() {
    assert_eq!(ok(&["run", CHAPTER]), ok(&["demo"]), "the shipped file and the embedded chapter differ");
}

/// The trace as (case name, its events) blocks, checking its framing on the way.
fn trace_blocks(text: &str) -> Vec<(String, Vec<Value>)> {
    let mut blocks: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("trace line {}: not JSON ({e}): {line}", i + 1));
        if v["kind"] == "case" {
            assert_eq!(v["seed"], 7, "case header: {line}");
            blocks.push((v["case"].as_str().expect("a case header names its case").to_owned(), Vec::new()));
        } else {
            let (_, events) = blocks.last_mut().expect("a case header comes first");
            assert_eq!(v["seq"], events.len() as u64, "events are numbered from 0 within their case: {line}");
            events.push(v);
        }
    }
    blocks
}

fn has_cause(event: &Value, word: &str) -> bool {
    event["cause"].as_array().is_some_and(|c| c.iter().any(|c| c.as_str().is_some_and(|s| s.contains(word))))
}

#[test]
fn run_writes_a_deterministic_ndjson_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("t.ndjson"), dir.path().join("u.ndjson"));
    let stdout = ok(&["run", CHAPTER, "--trace", a.to_str().unwrap()]);
    assert_eq!(stdout, ok(&["demo"]), "tracing must not change the result");
    ok(&["run", CHAPTER, "--trace", b.to_str().unwrap()]);
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text.as_bytes(), std::fs::read(&b).unwrap(), "two traces of the same run differ");
    assert!(text.ends_with('\n'), "the trace ends with a whole line");

    let blocks = trace_blocks(&text);
    let names: Vec<&str> = blocks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["healthy", "crash-1", "crash-2", "omission", "timing", "byzantine-1"]);
    for (name, events) in &blocks {
        assert!(!events.is_empty(), "{name}: no events");
    }
    let events = |name: &str| &blocks.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(events("byzantine-1").iter().any(|e| has_cause(e, "tamper")), "byzantine-1: no event caused by a tamper");
    assert!(
        events("crash-1").iter().any(|e| e["kind"] == "drop" && has_cause(e, "crash")),
        "crash-1: no drop caused by a crash"
    );
    assert!(events("healthy").iter().all(|e| e.get("cause").is_none()), "healthy: an event has a cause");
}

#[test]
fn trace_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let path = missing.join("t.ndjson");
    let out = faultline(&["run", CHAPTER, "--trace", path.to_str().unwrap()]);
    one_line_error(&out, "--trace into a missing directory");
    assert!(!missing.exists(), "the missing directory was created");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "something was left behind");
}

#[test]
fn failed_runs_do_not_clobber_an_existing_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.ndjson");
    let trace_arg = trace.to_str().unwrap();
    std::fs::write(&trace, "keep me\n").unwrap();
    let bad_file = format!("{MALFORMED_DIR}/zero-deadline.toml");
    let attempts: [&[&str]; 3] = [
        &["run", &bad_file, "--trace", trace_arg],
        &["run", CHAPTER, "--set", "quorum.deadline_ms=abc", "--trace", trace_arg],
        &["run", CHAPTER, "--case", "no-such-case", "--trace", trace_arg],
    ];
    for args in attempts {
        one_line_error(&faultline(args), &format!("{args:?}"));
        assert_eq!(std::fs::read_to_string(&trace).unwrap(), "keep me\n", "{args:?} changed the trace file");
        let entries: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(entries, std::slice::from_ref(&trace), "{args:?} left something behind");
    }
}

/// Four followers of which three tamper: the naive quorum commits the tampered value.
const TAMPERED_MAJORITY: &str = r#"
name = "tampered-majority"

[quorum]
followers = 4
deadline_ms = 200

[network]
latency = { dist = "constant", ms = 5 }

[[cases]]
name = "healthy"

[[cases]]
name = "byzantine-3"
faults = [
  { node = "f0", kind = "tamper" },
  { node = "f1", kind = "tamper" },
  { node = "f2", kind = "tamper" },
]
"#;

/// Runs `args`, expects a violation of case `case`, and returns the printed reproduce
/// command (without `reproduce: faultline `) and the seed it names.
fn expect_violation(args: &[&str], case: &str) -> (String, u64) {
    let out = faultline(args);
    assert_eq!(out.code, Some(1), "{args:?}: a violated invariant exits 1: {out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one violation and one reproduce line: {out:?}");
    assert!(lines[0].starts_with(&format!("violation: case {case}: ")), "{out:?}");
    let repro = lines[1].strip_prefix("reproduce: faultline ").unwrap_or_else(|| panic!("no reproduce line: {out:?}"));
    let words = shell_words(repro);
    let seed = words
        .iter()
        .position(|w| w == "--seed")
        .and_then(|i| words.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the reproduce line should give --seed N: {repro:?}"));
    assert!(
        out.stdout.starts_with(&format!("seed: {seed}\n")),
        "the printed seed and the reproduce seed differ: {out:?}"
    );
    assert!(out.stdout.contains("winning_data=balance=9000_TAMPERED"), "{out:?}");
    (repro.to_owned(), seed)
}

#[test]
fn violation_prints_a_reproduce_line_that_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered.toml");
    std::fs::write(&path, TAMPERED_MAJORITY).unwrap();
    let path = path.to_str().unwrap();
    // No seed in the file, none on the command line: the reproduce line must carry the one picked.
    let (repro, seed) = expect_violation(&["run", path, "--set", "quorum.deadline_ms=300"], "byzantine-3");
    assert!(repro.starts_with(&format!("run {path} --seed {seed} ")), "{repro:?}");
    assert!(
        shell_words(&repro).windows(2).any(|w| w == ["--set", "quorum.deadline_ms=300"]),
        "the reproduce line keeps the --set: {repro:?}"
    );
    let words = shell_words(&repro);
    let out = faultline(&words);
    assert_eq!(out.code, Some(1), "the reproduce command should violate again: {out:?}");
    assert!(out.stderr.lines().next().is_some_and(|l| l.starts_with("violation: case byzantine-3: ")), "{out:?}");
    assert_eq!(out.stdout.lines().next(), Some(format!("seed: {seed}").as_str()), "{out:?}");
    // And reproducing the reproduction gives the same line again.
    let (again, _) = expect_violation(&words.iter().map(String::as_str).collect::<Vec<_>>(), "byzantine-3");
    assert_eq!(again, repro);
}

#[test]
fn reproduce_line_quotes_paths_and_names_for_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("my scenarios");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("tampered.toml");
    std::fs::write(&path, TAMPERED_MAJORITY.replace("byzantine-3", "three liars")).unwrap();
    let path = path.to_str().unwrap();
    let (repro, seed) =
        expect_violation(&["run", path, "--seed", "11", "--set", "quorum.data=balance=9000"], "three liars");
    assert_eq!(seed, 11);
    let seed = seed.to_string();
    assert_eq!(
        shell_words(&repro),
        ["run", path, "--seed", &seed, "--set", "quorum.data=balance=9000", "--case", "three liars"],
        "pasted into a shell, the reproduce line should give back the same arguments: {repro:?}"
    );
}

fn sweep_json(args: &[&str]) -> (String, Value) {
    let stdout = ok(args);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"));
    (stdout, json)
}

fn sweep_row<'a>(json: &'a Value, case: &str, vary: Option<&str>) -> &'a Value {
    json["rows"]
        .as_array()
        .expect("rows is an array")
        .iter()
        .find(|r| r["case"] == case && r["vary"].as_str() == vary)
        .unwrap_or_else(|| panic!("no sweep row for {case} {vary:?}: {json}"))
}

#[test]
fn sweep_does_not_depend_on_the_thread_count() {
    let base = ["sweep", CHAPTER, "--seeds", "1..51", "--format", "json"];
    let (one, json) = sweep_json(&[&base[..], &["--threads", "1"][..]].concat());
    let (two, _) = sweep_json(&[&base[..], &["--threads", "2"][..]].concat());
    assert_eq!(one, two, "--threads 1 and --threads 2 differ");
    assert_eq!(json["seeds"], serde_json::json!([1, 51]));
    assert_eq!(json["rows"].as_array().unwrap().len(), 6);
    for row in json["rows"].as_array().unwrap() {
        assert_eq!(row["seeds"], 50, "{row}");
    }
    assert_eq!(sweep_row(&json, "healthy", None)["agreed_fraction"], 1.0);
    assert_eq!(sweep_row(&json, "crash-2", None)["agreed_fraction"], 0.0);
}

#[test]
fn sweep_varies_the_deadline() {
    let (_, json) =
        sweep_json(&["sweep", CHAPTER, "--seeds", "1..51", "--vary", "quorum.deadline_ms=5,2000", "--format", "json"]);
    assert_eq!(json["rows"].as_array().unwrap().len(), 12, "six cases times two values");
    // Timing followers answer 510-1210 ms late: never by 5 ms, always by 2000 ms.
    assert_eq!(sweep_row(&json, "timing", Some("quorum.deadline_ms=5"))["agreed_fraction"], 0.0);
    assert_eq!(sweep_row(&json, "timing", Some("quorum.deadline_ms=2000"))["agreed_fraction"], 1.0);
    assert_eq!(sweep_row(&json, "timing", Some("quorum.deadline_ms=2000"))["mean_acks"], 4.0);
}

#[test]
fn bench_reports_rounds_events_and_rates() {
    let stdout = ok(&["bench", QUORUM_ROUNDS, "--rounds", "20000", "--format", "json"]);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    for key in ["rounds", "events", "agreed", "wall_s", "rounds_per_s", "events_per_s"] {
        assert!(json[key].is_number(), "{key} should be a number: {json}");
    }
    assert_eq!(json["rounds"], 20000);
    assert!(json["events"].as_u64().unwrap() > 20000, "{json}");
    let fraction = json["agreed"].as_f64().unwrap() / 20000.0;
    assert!((fraction - 0.60).abs() <= 0.02, "agreed fraction {fraction} should be 0.60 +- 0.02");
}

#[test]
fn usage_errors_exit_2() {
    let cases: [&[&str]; 6] = [
        &["run"],
        &["sweep", "x", "--seeds", "5..1"],
        &["sweep", CHAPTER, "--seeds", "5..5"],
        &["sweep", CHAPTER, "--seeds", "abc"],
        &["no-such-command"],
        &[],
    ];
    for args in cases {
        let out = faultline(args);
        assert_eq!(out.code, Some(2), "faultline {args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "faultline {args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "faultline {args:?}: {out:?}");
    }
}

#[test]
fn the_paths_used_here_exist() {
    for p in [CHAPTER, QUORUM_ROUNDS, MALFORMED_DIR] {
        assert!(Path::new(p).exists(), "{p} is missing");
    }
}

#[test]
fn sweep_with_violations_exits_1_and_reproduces_the_first_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered.toml");
    std::fs::write(&path, TAMPERED_MAJORITY).unwrap();
    let out = faultline(&["sweep", path.to_str().unwrap(), "--seeds", "3..8"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("violating_seeds=5 first=3"), "{out:?}");
    let repro = out.stderr.lines().find_map(|l| l.strip_prefix("reproduce: faultline ")).expect("a reproduce line");
    let words = shell_words(repro);
    assert!(words.windows(2).any(|w| w == ["--seed", "3"]), "{repro}");
    let again = faultline(&words);
    assert_eq!(again.code, Some(1), "{again:?}");
}

#[test]
fn demo_with_a_coordinator_runs_the_extended_table() {
    let naive = faultline(&["demo", "--coordinator", "naive"]);
    assert_eq!(naive.code, Some(0), "{naive:?}");
    let names: Vec<&str> = naive.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(
        names,
        [
            "healthy",
            "crash-1",
            "crash-2",
            "omission",
            "timing",
            "byzantine-1",
            "byzantine-2",
            "flip",
            "equivocate",
            "lie",
            "stale",
            "forge"
        ]
    );
    // The content quorum names the tamperer it outvoted; the naive coordinator names nobody.
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&faultline(args).stdout).expect("json") };
    let cq = json(&["demo", "--coordinator", "content-quorum", "--format", "json"]);
    let byz = cq["rows"].as_array().unwrap().iter().find(|r| r["name"] == "byzantine-1").expect("row");
    assert_eq!(byz["agreed"], true);
    assert!(byz["rejected"].as_array().unwrap().iter().any(|r| r["follower"] == "f0"), "{byz}");
    let nv = json(&["demo", "--coordinator", "naive", "--format", "json"]);
    let byz = nv["rows"].as_array().unwrap().iter().find(|r| r["name"] == "byzantine-1").expect("row");
    assert!(byz["rejected"].as_array().unwrap().is_empty(), "{byz}");
    assert_eq!(faultline(&["demo", "--coordinator", "bogus"]).code, Some(2));
}

fn detectors(file: &str) -> String {
    format!("{DETECTORS}/{file}")
}

/// Fails with exit 2 and one `error:` line on stderr containing `needle`.
fn usage_error(args: &[&str], needle: &str) {
    let out = faultline(args);
    assert_eq!(out.code, Some(2), "faultline {args:?} should exit 2: {out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.starts_with("error: ") && out.stderr.contains(needle), "{needle:?} not in {out:?}");
}

#[test]
fn detect_prints_the_qos_fields_per_detector_and_threshold() {
    let gray = detectors("gray.toml");
    let stdout = ok(&[
        "detect",
        &gray,
        "--seeds",
        "1..3",
        "--threshold",
        "phi=8",
        "--threshold",
        "probe=1,2",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{stdout}");
    for key in ["detector", "threshold", "t_d_ms_p50", "t_d_ms_p99", "t_mr_s", "t_m_ms", "p_a", "false_suspicions"] {
        assert!(rows.iter().all(|r| r.get(key).is_some()), "{key} missing: {stdout}");
    }
    // The gray node answers heartbeats: phi never suspects it. The data-plane probe does,
    // at the first failed request (500 ms timeout).
    let phi = &rows[0];
    assert_eq!((phi["detector"].as_str(), phi["undetected"].as_u64()), (Some("phi"), phi["crashes"].as_u64()));
    assert!(phi["t_d_ms_p50"].is_null());
    let probe = &rows[1];
    assert_eq!((probe["detector"].as_str(), probe["undetected"].as_u64()), (Some("probe"), Some(0)));
    assert_eq!(probe["t_d_ms_p50"].as_f64(), Some(500.0));
    assert_eq!(rows[2]["t_d_ms_p50"].as_f64(), Some(1500.0), "two failed probes in a row: a period later");

    // Same seeds, one thread or two: the same bytes.
    let csv = |threads: &str| {
        ok(&["detect", &gray, "--seeds", "1..5", "--threshold", "swim=1,4", "--format", "csv", "--threads", threads])
    };
    assert_eq!(csv("1"), csv("2"));
}

#[test]
fn detect_draws_an_svg_plot_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("curve.svg");
    let crash = detectors("crash.toml");
    ok(&[
        "detect",
        &crash,
        "--seeds",
        "1..3",
        "--threshold",
        "timeout=1500,3000",
        "--threshold",
        "phi=4,8",
        "--plot",
        svg.to_str().expect("UTF-8 path"),
    ]);
    let text = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{text:.200}");
    assert!(text.contains("timeout (crash)") && text.contains("phi (crash)"), "legend names the curves");
    // Nothing failed in a failure-free-only scenario, so there is nothing to plot: an error,
    // and no file left behind.
    let lossy = detectors("lossy-link.toml");
    let none = dir.path().join("none.svg");
    let out =
        faultline(&["detect", &lossy, "--seeds", "1..2", "--threshold", "phi=8", "--plot", none.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.starts_with("error: --plot: no row has a detection time") && out.stderr.lines().count() == 1);
    assert!(out.stdout.contains("lossy-link     phi"), "the table is printed before the plot fails: {out:?}");
    assert!(!none.exists());
    // Repeating a detector adds thresholds; naming it twice does not double its rows.
    let crash = detectors("crash.toml");
    let stdout = ok(&[
        "detect",
        &crash,
        "--seeds",
        "1..2",
        "--detector",
        "phi,phi",
        "--threshold",
        "phi=4",
        "--threshold",
        "phi=8",
        "--format",
        "csv",
    ]);
    assert_eq!(stdout.lines().count(), 3, "header and two rows: {stdout}");
}

#[test]
fn detect_and_quorum_commands_refuse_each_others_scenarios() {
    let crash = detectors("crash.toml");
    usage_error(&["detect", CHAPTER, "--seeds", "1..2"], "needs protocol = \"heartbeat\"");
    usage_error(&["bench", &crash], "times the quorum coordinator's rounds");
    usage_error(&["detect", &crash, "--threshold", "probe=1"], "no data-plane probes");
    usage_error(&["detect", &crash, "--threshold", "phi=-1"], "phi threshold -1");
    usage_error(&["detect", &crash, "--threshold", "gossip=1"], "no detector \"gossip\"");
    // `run` on a heartbeat scenario measures each detector at its production default.
    let stdout = ok(&["run", &crash, "--seed", "3"]);
    assert!(stdout.contains("seeds: 3..4") && stdout.contains("swim"), "{stdout}");
    // The workload interface gives heartbeats what every workload has: a sweep over one
    // seed pools that seed's run alone, so it prints the same table...
    assert_eq!(ok(&["sweep", &crash, "--seeds", "3..4"]), stdout);
    // ...a sweep over more pools more (every pair, every seed)...
    let pooled = ok(&["sweep", &crash, "--seeds", "3..6", "--format", "json"]);
    let v: Value = serde_json::from_str(&pooled).expect("JSON");
    let one: Value = serde_json::from_str(&ok(&["run", &crash, "--seed", "3", "--format", "json"])).expect("JSON");
    assert_eq!(v["rows"][0]["pairs"].as_u64(), one["rows"][0]["pairs"].as_u64().map(|p| p * 3), "{pooled}");
    // ...and --case and --trace, which a heartbeat run once refused.
    let case = faultline(&["run", &crash, "--seed", "3", "--case", "crash", "--trace", "-"]);
    assert_eq!(case.code, Some(0), "{case:?}");
    let header: Value = serde_json::from_str(case.stdout.lines().next().unwrap_or("")).expect("a trace header");
    assert_eq!((header["kind"].as_str(), header["case"].as_str()), (Some("case"), Some("crash")));
    assert!(case.stdout.lines().count() > 100, "a heartbeat trace has its events");
    assert!(case.stderr.contains("seeds: 3..4"), "the results go to stderr: {case:?}");
}

#[test]
fn a_raft_incident_that_breaks_a_property_exits_1_with_a_reproduce_line() {
    let kapitalkite = format!("{SCENARIOS}/incidents/kapitalkite-timing.toml");
    let out = faultline(&["run", &kapitalkite, "--format", "json"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines[0].starts_with("violation: case gc-pause: no-stale-confirmation at "), "{}", out.stderr);
    assert_eq!(lines[1], format!("reproduce: faultline run {kapitalkite} --seed 1 --case gc-pause"));
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let row = &v["rows"][0];
    for key in ["dual_leader_ms", "stale_confirmations", "failover_ms", "write_unavailable_ms", "availability"] {
        assert!(row.get(key).is_some(), "{key} missing");
    }
    assert!(row["stale_confirmations"].as_u64().unwrap() > 0);
    // The reproduce line replays the same violation.
    let again = faultline(&["run", &kapitalkite, "--seed", "1", "--case", "gc-pause"]);
    assert_eq!(again.code, Some(1));
    assert_eq!(again.stderr.lines().next(), Some(lines[0]));
    // Fenced, the same pause is harmless: exit 0, and a timeline on the terminal.
    let fenced = format!("{SCENARIOS}/incidents/kapitalkite-timing-fenced.toml");
    let stdout = ok(&["run", &fenced]);
    assert!(stdout.contains("stale_confirmations=0") && stdout.contains("s0   |"), "{stdout}");
}

#[test]
fn a_raft_sweep_finds_a_canary_and_names_the_first_seed() {
    let canaries = format!("{SCENARIOS}/raft-canaries.toml");
    let out = faultline(&[
        "sweep",
        &canaries,
        "--seeds",
        "1..4",
        "--set",
        "raft.canary=commit-on-minority",
        "--threads",
        "2",
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("minority-partition     seeds=3 violating_seeds=3"), "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "reproduce: faultline run {canaries} --seed 1 --set raft.canary=commit-on-minority --case minority-partition"
        )),
        "{}",
        out.stderr
    );
    let clean = ok(&["sweep", &canaries, "--seeds", "1..3"]);
    assert!(clean.lines().skip(1).all(|l| l.contains("violating_seeds=0")), "{clean}");
}

// Hostile input and hostile environments: each test here is the regression test of one
// finding of the hardening review (issue 11).

const RAFT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/raft.toml");

/// Whether a process ended by a panic or an abort rather than an exit code of ours.
fn crashed(out: &Out) -> bool {
    out.code.is_none() || out.code == Some(101) || out.code == Some(134) || out.stderr.contains("panicked")
}

#[test]
fn durations_of_a_nanosecond_run_without_panicking() {
    // 1e-10 ms is refused (the malformed corpus); 1 ns is the least duration and is valid.
    // A run shorter than its fault schedule once panicked drawing its timeline.
    let out = faultline(&["run", RAFT, "--set", "raft.duration_ms=0.000001", "--case", "crash-leader"]);
    assert!(!crashed(&out) && out.code == Some(0), "{out:?}");
    let out = faultline(&["run", RAFT, "--set", "raft.liveness_budget_ms=0.000001", "--case", "crash-leader"]);
    assert!(!crashed(&out), "{out:?}");
    if out.code == Some(1) {
        assert!(out.stderr.contains("within 1ns"), "a 1 ns budget must not print as 0.000ms: {}", out.stderr);
    }
    let out = faultline(&["run", CHAPTER, "--set", "quorum.retry_ms=0.0000004"]);
    assert!(one_line_error(&out, "retry_ms").contains("rounds to 0 ns"), "{out:?}");
}

#[test]
fn a_set_key_of_fifty_thousand_segments_is_one_short_line() {
    let key = vec!["a"; 50_000].join(".");
    let out = faultline(&["run", CHAPTER, "--set", &format!("quorum.{key}=1")]);
    let line = one_line_error(&out, "deep --set");
    assert!(line.contains("at most 16"), "{line}");
    assert!(line.len() < 2_000, "the error repeats the key: {} bytes", line.len());
}

#[test]
fn a_huge_value_is_elided_in_the_error() {
    // In a file: a 600 KB fault kind.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let text = std::fs::read_to_string(CHAPTER).unwrap().replacen(
        "kind = \"crash\"",
        &format!("kind = \"{}\"", "x".repeat(600_000)),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let line = one_line_error(&faultline(&["run", path.to_str().unwrap()]), "huge kind");
    assert!(
        line.contains(".kind: unknown fault kind") && line.contains("characters]"),
        "{}",
        &line[..300.min(line.len())]
    );
    assert!(line.len() < 4_000, "the error repeats the value: {} bytes", line.len());
    // On the command line (an argument is at most 128 KiB).
    let value = "x".repeat(100_000);
    let out = faultline(&["run", CHAPTER, "--set", &format!("quorum.coordinator={value}")]);
    let line = one_line_error(&out, "huge --set value");
    assert!(line.contains("quorum.coordinator") && line.contains("characters]"), "{}", &line[..300.min(line.len())]);
    assert!(line.len() < 4_000, "the error repeats the value: {} bytes", line.len());
}

#[test]
fn inputs_are_read_through_a_bounded_reader() {
    // /dev/zero never ends: refused after the first byte past 1 MiB, located.
    let line = one_line_error(&faultline(&["run", "/dev/zero"]), "/dev/zero");
    assert!(line.starts_with("error: /dev/zero:1:1048577: (file): larger than 1048576 bytes"), "{line}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "# padding\n".repeat(200_000)).unwrap();
    let big = big.to_str().unwrap();
    let line = one_line_error(&faultline(&["run", big]), "2 MB file");
    assert!(line.starts_with(&format!("error: {big}:104858:")), "the size error has a line and column: {line}");
    // An OS error is said once.
    let line = one_line_error(&faultline(&["run", dir.path().to_str().unwrap()]), "a directory");
    assert_eq!(line.matches("os error").count(), 1, "{line}");
}

#[test]
fn bounds_on_seeds_threads_and_numbers_name_the_flag() {
    usage_error(&["sweep", CHAPTER, "--seeds", "1..3", "--threads", "100000"], "--threads");
    usage_error(
        &["sweep", CHAPTER, "--seeds", "0..=18446744073709551615"],
        "above the largest seed, 9223372036854775807",
    );
    usage_error(&["sweep", CHAPTER, "--seeds", "0..=9223372036854775807"], "at most 1000000000");
    usage_error(&["run", CHAPTER, "--seed", "9223372036854775808"], "--seed");
    let out = faultline(&["run", CHAPTER, "--set", "limits.max_events=18446744073709551615"]);
    assert!(one_line_error(&out, "max_events").contains("outside the range of a TOML integer"), "{out:?}");
    let values: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    usage_error(
        &["sweep", CHAPTER, "--seeds", "1..2", "--vary", &format!("quorum.rounds={}", values.join(","))],
        "at most 1000",
    );
}

#[test]
fn detect_draws_a_billion_seeds_lazily() {
    // Building the list first would allocate 8 GB at once; the memory budget would stop it
    // with exit 2 within a fraction of a second. Drawn lazily, the run is still going.
    let mut child = Command::new(BIN)
        .args(["detect", &detectors("crash.toml"), "--seeds", "1..1000000001", "--detector", "timeout"])
        .args(["--threshold", "4000", "--memory-mb", "256", "--threads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(status.is_none(), "detect ended early: {status:?} {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_run_too_large_for_its_memory_budget_stops_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft-99x1000.toml");
    std::fs::write(
        &path,
        "name = \"big\"\nprotocol = \"raft\"\n[raft]\nservers = 99\nclients = 1000\nduration_ms = 30_000\n\
         [raft.client]\ninterval_ms = 20\nops = 0\n[[cases]]\nname = \"healthy\"\n",
    )
    .unwrap();
    let out = faultline(&["run", path.to_str().unwrap(), "--memory-mb", "96"]);
    let line = one_line_error(&out, "memory budget");
    assert!(line.contains("memory budget") && line.contains("--memory-mb 96"), "{line}");
}

/// The files in `dir` whose names start with `.tmp`: temporary outputs left behind.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".tmp"))
        .collect()
}

#[test]
fn outputs_to_special_files_links_and_standard_output_are_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    // A symbolic link: its target is replaced, the link stays.
    let target = dir.path().join("real.ndjson");
    std::fs::write(&target, "old\n").unwrap();
    let link = dir.path().join("link.ndjson");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    ok(&["run", CHAPTER, "--case", "healthy", "--trace", link.to_str().unwrap()]);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert!(std::fs::read_to_string(&target).unwrap().starts_with("{\"case\":\"healthy\""));
    // A character device stays one.
    ok(&["run", CHAPTER, "--case", "healthy", "--trace", "/dev/null"]);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    // A FIFO is written into, not replaced.
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    ok(&["run", CHAPTER, "--case", "healthy", "--trace", fifo.to_str().unwrap()]);
    assert!(reader.join().unwrap().lines().count() > 10);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    // `-`: the trace on standard output, the results on standard error.
    let out = faultline(&["run", CHAPTER, "--case", "healthy", "--trace", "-"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "stdout is NDJSON only");
    assert!(out.stderr.starts_with("seed: 7\nhealthy "), "{}", out.stderr);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn an_output_never_overwrites_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("mine.toml");
    std::fs::copy(CHAPTER, &scenario).unwrap();
    let before = std::fs::read(&scenario).unwrap();
    let path = scenario.to_str().unwrap();
    let line = one_line_error(&faultline(&["run", path, "--trace", path]), "trace onto the scenario");
    assert!(line.contains("input of this command"), "{line}");
    // Through a link too.
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&scenario, &link).unwrap();
    one_line_error(&faultline(&["run", path, "--trace", link.to_str().unwrap()]), "trace onto a link to it");
    let gray = detectors("gray.toml");
    let out = faultline(&["detect", &gray, "--seeds", "1..2", "--plot", &gray]);
    one_line_error(&out, "plot onto the scenario");
    assert_eq!(std::fs::read(&scenario).unwrap(), before, "the scenario was changed");
}

#[test]
fn a_trace_past_its_size_limit_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.ndjson");
    let out = faultline(&["run", RAFT, "--case", "healthy", "--trace", trace.to_str().unwrap(), "--trace-max-mb", "1"]);
    let line = one_line_error(&out, "trace limit");
    assert!(line.contains("limit of 1 MiB") && line.contains("--trace-max-mb"), "{line}");
    assert!(!trace.exists());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn sigint_and_sigterm_during_a_trace_leave_no_temporary_file() {
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("t.ndjson");
        let mut child = Command::new(BIN)
            .args(["run", RAFT, "--set", "raft.duration_ms=3600000", "--trace", trace.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the temporary trace exists, then interrupt.
        let started = std::time::Instant::now();
        while leftovers(dir.path()).is_empty() && started.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!leftovers(dir.path()).is_empty(), "no temporary trace appeared");
        assert!(Command::new("kill").arg(signal).arg(child.id().to_string()).status().unwrap().success());
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert!(status.code() == Some(code) || status.signal().is_some(), "{signal}: {status:?}");
        assert!(leftovers(dir.path()).is_empty(), "{signal} left {:?}", leftovers(dir.path()));
        assert!(!trace.exists());
    }
}

#[test]
fn a_full_standard_error_and_a_closed_standard_output_exit_2() {
    let full = std::fs::File::options().write(true).open("/dev/full").unwrap();
    let status = Command::new(BIN).args(["run", "/no/such/file.toml"]).stderr(full).status().unwrap();
    assert_eq!(status.code(), Some(2), "an error that cannot be printed still exits 2");
    let out = Command::new("sh").args(["-c", "exec \"$0\" demo >&-", BIN]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard output is closed"), "{out:?}");
    // /dev/null opened by the shell is a place to write, not a closed output.
    let out = Command::new("sh").args(["-c", "exec \"$0\" demo >/dev/null", BIN]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_liveness_violation_alone_exits_3_and_safety_wins_over_it() {
    // Three of five servers crash for good: nothing unsafe happens, but no write can
    // commit again: eventually-commits fails, a liveness property.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("majority-lost.toml");
    std::fs::write(
        &path,
        "name = \"majority-lost\"\nprotocol = \"raft\"\nseed = 1\n[raft]\nservers = 5\nclients = 2\n\
         bootstrap_leader = \"s0\"\nduration_ms = 20_000\n[raft.client]\ninterval_ms = 20\nops = 0\n\
         [[cases]]\nname = \"crash-majority\"\nfaults = [\n\
         { node = \"s2\", kind = \"crash\", at_ms = 2_000 },\n\
         { node = \"s3\", kind = \"crash\", at_ms = 2_000 },\n\
         { node = \"s4\", kind = \"crash\", at_ms = 2_000 },\n]\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let out = faultline(&["run", path]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.starts_with("violation: case crash-majority: eventually-commits at "), "{}", out.stderr);
    let out = faultline(&["sweep", path, "--seeds", "1..3"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    // A safety violation in the same run makes it exit 1: the stale confirmations of the
    // unfenced KapitalKite pause, with a liveness budget no run can meet.
    let kapitalkite = format!("{SCENARIOS}/incidents/kapitalkite-timing.toml");
    let out = faultline(&["run", &kapitalkite, "--set", "raft.liveness_budget_ms=0.000001"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("eventually-commits") || out.stderr.contains("no-stale-confirmation"),
        "{}",
        out.stderr
    );
    // Every --help that exits names the codes.
    for command in ["run", "sweep", "demo", "detect"] {
        let help = ok(&[command, "--help"]);
        assert!(help.contains("3 only liveness properties were violated"), "{command} --help: {help}");
    }
}
