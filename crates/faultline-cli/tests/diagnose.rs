//! `faultline diagnose` through the command line: the chapter's dashboard (PaySetu's
//! wallets at 02:14), the same signals in every format, merged files, `--at`, `--follow`
//! on standard input, and bad input (exit 2, one located line, nothing on stdout).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_faultline");
const PAYSETU: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/signals/paysetu-wallets.csv");

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn faultline(args: &[&str], stdin: Option<&str>) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("faultline runs");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("written");
    }
    let out = child.wait_with_output().expect("faultline ends");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verdicts(json: &Value) -> Vec<(String, String, String)> {
    json["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| {
            (
                r["replica"].as_str().unwrap().to_owned(),
                r["verdict"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn owned(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    v.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect()
}

/// The chapter's three replicas, three failures; the four healthy wallets beside them.
const PAYSETU_VERDICTS: &[(&str, &str, &str)] = &[
    ("wallet-1", "healthy", "-"),
    ("wallet-2", "healthy", "-"),
    ("wallet-3", "crash", "half-open"),
    ("wallet-4", "healthy", "-"),
    ("wallet-5", "byzantine", "stale"),
    ("wallet-6", "healthy", "-"),
    ("wallet-7", "byzantine", "lying-acks"),
];

#[test]
fn the_chapters_dashboard_is_three_different_failures_with_three_different_runbook_steps() {
    let out = faultline(&["diagnose", PAYSETU, "--format", "json"], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(verdicts(&json), owned(PAYSETU_VERDICTS));
    let r = |name: &str| json["replicas"].as_array().unwrap().iter().find(|r| r["replica"] == name).unwrap().clone();
    // wallet-3: silent for 90 s behind a half-open socket: recoverable, restart it.
    let w3 = r("wallet-3");
    assert_eq!(w3["since_s"], 1730407350.0);
    assert!(w3["runbook"].as_str().unwrap().contains("do not remove it"), "{w3}");
    // wallet-5: 11-hour-old data served as fresh: stop its reads.
    let w5 = r("wallet-5");
    assert!(w5["runbook"].as_str().unwrap().contains("stop serving reads"), "{w5}");
    assert!(w5["evidence"].as_array().unwrap().iter().any(|e| e["signal"] == "served_version_age_s"));
    // wallet-7: acks while its WAL has not moved for 6 minutes: fence it, audit since 02:08.
    let w7 = r("wallet-7");
    assert_eq!(w7["since_s"], 1730407080.0, "{w7}");
    assert!(w7["runbook"].as_str().unwrap().contains("audit every write it acked"), "{w7}");
    for key in ["confidence", "evidence", "runbook", "since_s"] {
        assert!(w7.get(key).is_some(), "{key} missing: {w7}");
    }
    // 7 replicas, 3 out: the majority quorum holds with nothing to spare; two Byzantine
    // replicas in a crash-tolerant cluster void its safety.
    let c = &json["cluster"];
    assert_eq!(
        (c["replicas"].as_u64(), c["healthy"].as_u64(), c["crash_absorbs"].as_i64()),
        (Some(7), Some(4), Some(0))
    );
    assert!(c["line"].as_str().unwrap().contains("2 Byzantine replicas in a crash-tolerant protocol"), "{c}");
    // The table says the same.
    let table = faultline(&["diagnose", PAYSETU], None);
    assert_eq!(table.code, Some(0));
    assert!(table.stdout.lines().any(|l| l.starts_with("wallet-3") && l.contains("crash") && l.contains("half-open")));
    assert!(table.stdout.contains("cluster: 7 replicas, 4 healthy"), "{}", table.stdout);
}

#[test]
fn before_the_failures_began_the_dashboard_was_healthy() {
    // At 02:07 wallet-3 was still heard and wallet-7's WAL was still moving; wallet-5 was
    // already 11 hours behind.
    let out = faultline(&["diagnose", PAYSETU, "--format", "json", "--at", "1730407020"], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let v = verdicts(&json);
    assert_eq!(v[2], owned(&[("wallet-3", "healthy", "-")])[0]);
    assert_eq!(v[4], owned(&[("wallet-5", "byzantine", "stale")])[0]);
    assert_eq!(v[6], owned(&[("wallet-7", "healthy", "-")])[0]);
    assert_eq!(json["at_s"], 1730407020.0);
}

/// The PaySetu CSV rewritten in another format.
fn convert(format: &str) -> String {
    let csv = std::fs::read_to_string(PAYSETU).unwrap();
    let mut out = String::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (t, r, s, v) = (f[0], f[1], f[2], f[3]);
        let numeric = v.parse::<f64>().is_ok();
        match format {
            "ndjson" => {
                let value = if numeric { v.to_owned() } else { format!("{v:?}") };
                out.push_str(&format!("{{\"time_s\":{t},\"replica\":\"{r}\",\"signal\":\"{s}\",\"value\":{value}}}\n"));
            }
            "prometheus" => {
                let ms = t.parse::<u64>().unwrap() * 1000;
                match s {
                    "transport" => out.push_str(&format!("{s}{{replica=\"{r}\",state=\"{v}\"}} 1 {ms}\n")),
                    "content_digest" => out.push_str(&format!("{s}{{replica=\"{r}\",digest=\"{v}\"}} 1 {ms}\n")),
                    _ => out.push_str(&format!("faultline_{s}{{replica=\"{r}\"}} {v} {ms}\n")),
                }
            }
            _ => unreachable!(),
        }
    }
    out
}

#[test]
fn every_format_gives_the_same_diagnosis() {
    let dir = tempdir();
    for (format, ext) in [("ndjson", "ndjson"), ("prometheus", "prom")] {
        let path = dir.join(format!("paysetu.{ext}"));
        std::fs::write(&path, convert(format)).unwrap();
        let out = faultline(&["diagnose", path.to_str().unwrap(), "--format", "json"], None);
        assert_eq!(out.code, Some(0), "{format}: {}", out.stderr);
        let json: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(verdicts(&json), owned(PAYSETU_VERDICTS), "{format}");
    }
    // Standard input, its format named.
    let out = faultline(&["diagnose", "-", "--input-format", "ndjson", "--format", "json"], Some(&convert("ndjson")));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(verdicts(&serde_json::from_str(&out.stdout).unwrap()), owned(PAYSETU_VERDICTS));
}

#[test]
fn files_split_by_replica_are_merged_in_time_order() {
    let dir = tempdir();
    let csv = std::fs::read_to_string(PAYSETU).unwrap();
    let (mut a, mut b) = (String::from("time_s,replica,signal,value\n"), String::from("time_s,replica,signal,value\n"));
    for line in csv.lines().skip(1) {
        if line.contains("wallet-3") || line.contains("wallet-7") { &mut a } else { &mut b }
            .push_str(&format!("{line}\n"));
    }
    let (pa, pb) = (dir.join("a.csv"), dir.join("b.csv"));
    std::fs::write(&pa, a).unwrap();
    std::fs::write(&pb, b).unwrap();
    let out = faultline(&["diagnose", pa.to_str().unwrap(), pb.to_str().unwrap(), "--format", "json"], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(verdicts(&serde_json::from_str(&out.stdout).unwrap()), owned(PAYSETU_VERDICTS));
}

#[test]
fn following_standard_input_prints_a_diagnosis_whenever_a_verdict_changes() {
    // The format is sniffed from the first bytes, as without --follow.
    let out =
        faultline(&["diagnose", "--follow", "-", "--format", "json"], Some(&std::fs::read_to_string(PAYSETU).unwrap()));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let reports: Vec<Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    assert!(reports.len() >= 3, "{} reports", reports.len());
    // The last one is the final diagnosis; the first had nobody but wallet-5 at fault.
    assert_eq!(verdicts(reports.last().unwrap()), owned(PAYSETU_VERDICTS));
    let first = verdicts(&reports[0]);
    assert!(first.iter().all(|(r, v, _)| v == "healthy" || r == "wallet-5"), "{first:?}");
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "faultline-diagnose-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Bad input: the file, where, the field and the message, on one line; exit 2.
#[test]
fn bad_signals_are_one_located_line_and_exit_2() {
    let dir = tempdir();
    let header = "time_s,replica,signal,value\n";
    let cases: &[(&str, String, &str)] = &[
        ("bad-header.csv", "time,replica,signal,value\n1,a,data_ok,1\n".into(), ":1:"),
        ("unknown-signal.csv", format!("{header}1,a,heartbeat_age,3\n"), ":2:"),
        ("nan.csv", format!("{header}1,a,heartbeat_age_s,NaN\n"), ":2:"),
        ("negative.csv", format!("{header}1,a,heartbeat_age_s,-4\n"), ":2:"),
        ("unsorted.csv", format!("{header}2,a,data_ok,1\n1,a,data_ok,1\n"), ":3:"),
        ("duplicate.csv", format!("{header}1,a,data_ok,1\n1,a,data_ok,0\n"), ":3:"),
        ("empty.csv", String::new(), ":1:"),
        ("header-only.csv", header.to_owned(), ":1:"),
        ("bad-transport.csv", format!("{header}1,a,transport,ajar\n"), ":2:"),
        (
            "truncated.ndjson",
            "{\"time_s\":1,\"replica\":\"a\",\"signal\":\"data_ok\",\"value\":1}\n{\"time_s\":2,\"repl".into(),
            ":2:",
        ),
        ("bad.prom", "faultline_data_ok{replica=\"a\" 1\n".into(), ":1:"),
        (
            "bad.json",
            "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{}}]}".into(),
            ":1:",
        ),
    ];
    for (name, text, at) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let out = faultline(&["diagnose", p], None);
        assert_eq!(out.code, Some(2), "{name}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{name}: {}", out.stdout);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {}", out.stderr);
        assert!(lines[0].starts_with(&format!("error: {p}{at}")), "{name}: {}", lines[0]);
    }
    let unknown = faultline(&["diagnose", dir.join("unknown-signal.csv").to_str().unwrap()], None);
    assert!(unknown.stderr.contains("heartbeat_age_s, transport"), "the known ones are listed: {}", unknown.stderr);
    let missing = faultline(&["diagnose", dir.join("nope.csv").to_str().unwrap()], None);
    assert_eq!(missing.code, Some(2));
}

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/diagnosis/suite.toml");
const HEARTBEAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/detectors/crash.toml");

#[test]
fn signals_from_a_simulated_run_are_reproducible_and_their_labels_are_kept_apart() {
    let dir = tempdir();
    let (a, b, labels) = (dir.join("a.csv"), dir.join("b.csv"), dir.join("labels.csv"));
    for out in [&a, &b] {
        let run = faultline(
            &[
                "signals",
                SUITE,
                "--case",
                "lie",
                "--seed",
                "3",
                "-o",
                out.to_str().unwrap(),
                "--labels",
                labels.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
    let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(a, b, "same scenario and seed: the same bytes");
    let text = String::from_utf8(a).unwrap();
    assert!(text.starts_with("time_s,replica,signal,value\n"));
    // The ground truth is not among the signals; it is in its own file.
    assert!(!text.contains("lie") && !text.contains("byzantine"));
    let labels = std::fs::read_to_string(&labels).unwrap();
    assert!(labels.starts_with("time_s,replica,model,fault\n"));
    assert!(labels.lines().any(|l| l.ends_with(",s2,byzantine,lie") && l.starts_with("6,")), "{labels:.300}");
    assert!(labels.lines().any(|l| l == "1,s2,healthy,"));
    // The lie shows as acks past a WAL that stopped: the diagnoser names it from the file.
    let path = dir.join("a.csv");
    let out = faultline(&["diagnose", path.to_str().unwrap(), "--at", "9", "--format", "json"], None);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(verdicts(&json).contains(&("s2".to_owned(), "byzantine".to_owned(), "lying-acks".to_owned())), "{json}");
    // A workload without observers is refused, naming those that have them.
    let refused = faultline(&["signals", HEARTBEAT, "-o", dir.join("h.csv").to_str().unwrap()], None);
    assert_eq!(refused.code, Some(2));
    assert!(refused.stderr.contains("it can observe: quorum, raft"), "{}", refused.stderr);
}

#[test]
fn the_evaluation_meets_its_goals_beside_a_baseline_that_does_not_and_threads_change_nothing() {
    let run = |threads: &str| {
        faultline(&["diagnose", "--evaluate", "--seeds", "1..3", "--format", "json", "--threads", threads], None)
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    assert_eq!(one.stdout, two.stdout, "results do not depend on the thread count");
    let json: Value = serde_json::from_str(&one.stdout).unwrap();
    for key in [
        "single_fault_accuracy",
        "mix_accuracy",
        "healthy_false_verdict_rate",
        "median_time_to_verdict_s",
        "baseline_single_fault_accuracy",
        "baseline_mix_accuracy",
        "baseline_healthy_false_verdict_rate",
        "baseline_median_time_to_verdict_s",
        "confusion",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    let f = |k: &str| json[k].as_f64().unwrap();
    assert_eq!(json["runs"], 42);
    assert_eq!(json["swarm"]["runs"], 2, "the swarm case is reported apart");
    // The goals (README): 99 % of single faults, 95 % of two-fault mixes with both named,
    // at most 0.1 % of healthy intervals given a fault verdict.
    assert!(f("single_fault_accuracy") >= 0.99, "{}", f("single_fault_accuracy"));
    assert!(f("mix_accuracy") >= 0.95, "{}", f("mix_accuracy"));
    assert!(f("healthy_false_verdict_rate") <= 0.001, "{}", f("healthy_false_verdict_rate"));
    // The same scoring fails "mark it dead": the measure can tell a poor diagnoser.
    assert!(f("baseline_single_fault_accuracy") < 0.5, "{}", f("baseline_single_fault_accuracy"));
    assert!(f("baseline_mix_accuracy") < 0.5, "{}", f("baseline_mix_accuracy"));
    assert_eq!(json["confusion"]["crash"]["crash"].as_u64().map(|k| k > 0), Some(true), "{}", json["confusion"]);
}

#[test]
fn the_quorum_coordinators_runs_are_observed_too() {
    let dir = tempdir();
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let diagnose = |scenario: &str, extra: &[&str]| {
        let out = dir.join("q.csv");
        let mut args = vec!["signals", scenario, "-o", out.to_str().unwrap(), "--duration-ms", "20000"];
        args.extend(extra);
        let run = faultline(&args, None);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let out = faultline(&["diagnose", out.to_str().unwrap(), "--format", "json"], None);
        verdicts(&serde_json::from_str(&out.stdout).unwrap())
    };
    // The chapter's Byzantine follower tampers with what it serves.
    let v = diagnose(&format!("{scenarios}/chapter.toml"), &["--case", "byzantine-1"]);
    assert!(v.contains(&("f0".to_owned(), "byzantine".to_owned(), "corrupt".to_owned())), "{v:?}");
    assert_eq!(v.iter().filter(|(_, m, _)| m == "healthy").count(), 4, "{v:?}");
    // The benchmark's slow f0 and lossy f1 (its followers keep no WAL: no lying acks read
    // from a disk that was never written).
    let v = diagnose(&format!("{scenarios}/quorum-rounds.toml"), &["--set", "quorum.rounds=200"]);
    let of = |r: &str| v.iter().find(|x| x.0 == r).map(|x| x.1.clone()).unwrap();
    assert_eq!(
        (of("f0"), of("f1"), of("f2"), of("f3"), of("leader")),
        ("timing".into(), "omission".into(), "healthy".into(), "healthy".into(), "healthy".into())
    );
}

#[test]
fn merged_files_may_not_give_the_same_sample_twice() {
    let dir = tempdir();
    let path = dir.join("dup.csv");
    std::fs::write(&path, "time_s,replica,signal,value\n1,a,data_ok,1\n2,a,data_ok,1\n").unwrap();
    let p = path.to_str().unwrap();
    let out = faultline(&["diagnose", p, p], None);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let want = format!("error: {p}:2:1: (sample): duplicate: data_ok of a at time_s 1");
    assert!(out.stderr.starts_with(&want), "{}", out.stderr);
}

#[test]
fn silence_with_nothing_else_failing_is_not_called_dead() {
    let dir = tempdir();
    // r1 is silent to the leader; its kernel answers (transport open) and there is no
    // probe: a cut link, a pause and a crash look alike. Then: healthy to the load
    // balancer and no data probe: a cut link or a gray failure.
    let mut open = String::from("time_s,replica,signal,value\n");
    let mut health = open.clone();
    for t in 0..20 {
        for r in ["r0", "r1", "r2", "r3", "r4"] {
            let age = if r == "r1" && t >= 10 { (t - 9) as f64 * 2.0 } else { 0.2 };
            open.push_str(&format!("{t},{r},heartbeat_age_s,{age}\n{t},{r},transport,open\n"));
            health.push_str(&format!("{t},{r},heartbeat_age_s,{age}\n{t},{r},health_ok,1\n"));
        }
    }
    for (name, text) in [("open.csv", open), ("health.csv", health)] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = faultline(&["diagnose", path.to_str().unwrap(), "--format", "json"], None);
        let json: Value = serde_json::from_str(&out.stdout).unwrap();
        let r1 = json["replicas"].as_array().unwrap().iter().find(|r| r["replica"] == "r1").unwrap().clone();
        assert_eq!(r1["verdict"], "cannot-tell", "{name}: {r1}");
        assert!(!r1["unknown"].as_array().unwrap().is_empty(), "{name}: says which signal would decide: {r1}");
    }
}

#[test]
fn exporters_that_sample_each_replica_at_its_own_offset_are_read_alike() {
    // Five replicas scraped every 15 s, each 0.5 s after the last: r1 crashed for good.
    let dir = tempdir();
    let mut text = String::from("time_s,replica,signal,value\n");
    for k in 0..40 {
        for (i, r) in ["r0", "r1", "r2", "r3", "r4"].iter().enumerate() {
            let t = 1000.0 + k as f64 * 15.0 + i as f64 * 0.5;
            let dead = *r == "r1" && k >= 20;
            let age = if dead { t - 1300.0 } else { 0.3 };
            let (transport, ok) = if dead { ("refused", 0) } else { ("open", 1) };
            text.push_str(&format!(
                "{t},{r},heartbeat_age_s,{age}\n{t},{r},transport,{transport}\n{t},{r},data_ok,{ok}\n"
            ));
        }
    }
    let path = dir.join("offsets.csv");
    std::fs::write(&path, text).unwrap();
    let out = faultline(&["diagnose", path.to_str().unwrap(), "--format", "json"], None);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = verdicts(&serde_json::from_str(&out.stdout).unwrap());
    let models: Vec<&str> = v.iter().map(|x| x.1.as_str()).collect();
    assert_eq!(models, ["healthy", "crash", "healthy", "healthy", "healthy"], "{v:?}");
}

/// The README's tour shows the dashboard's diagnosis; it must be what the tool prints.
#[test]
fn the_readmes_dashboard_diagnosis_is_the_tools() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let command = "$ faultline diagnose examples/signals/paysetu-wallets.csv\n";
    let start = readme.find(command).expect("the README shows the dashboard's diagnosis") + command.len();
    let shown = &readme[start..start + readme[start..].find("```").expect("the block ends")];
    let out = faultline(&["diagnose", PAYSETU], None);
    assert_eq!(shown, out.stdout);
}
