//! `faultline cluster` as a user runs it: the JSON report's keys and the exit codes, bad
//! input, a missing etcd, and Ctrl-C in the middle of a run (no member, port or directory
//! left). Needs `etcd` on PATH (scripts/setup); fails without it. The runs take the lock:
//! two clusters at once on two cores would slow each other down.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_faultline");

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-cli-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    dir
}

/// Three members, a short workload; `faults` is the case's fault list.
fn short_scenario(dir: &Path, duration_ms: u64, faults: &str) -> PathBuf {
    let path = dir.join("short.toml");
    let text = format!(
        "name = \"short\"\n[cluster]\nmembers = 3\n[workload]\nclients = 3\nduration_ms = {duration_ms}\n\
         [[cases]]\nname = \"quiet\"\nfaults = [{faults}]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

#[test]
fn the_json_report_has_the_documented_keys_and_a_linearizable_run_exits_0_and_keep_keeps_the_data() {
    let _serial = serial();
    let dir = scratch("json");
    let scenario = short_scenario(&dir, 3000, "");
    let out = Command::new(BIN)
        .args(["cluster", "--format", "json", "--keep", "--out"])
        .arg(dir.join("out"))
        .arg(&scenario)
        .env("TMPDIR", dir.join("tmp"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "ops",
        "ok",
        "failed",
        "info",
        "availability",
        "latency_ms_p50",
        "latency_ms_p99",
        "leader_changes",
        "linearizable",
    ] {
        assert!(report.get(key).is_some(), "no {key} in {stdout}");
    }
    assert_eq!(report["linearizable"], serde_json::Value::Bool(true));
    assert!(report["ok"].as_u64().unwrap() > 0);
    let case = dir.join("out/short/quiet");
    for file in ["history.edn", "nemesis.log", "signals.csv", "report.json", "members/m2.log"] {
        assert!(case.join(file).is_file(), "{file}");
    }
    // The history reads back with `faultline check`, with the same verdict.
    let check = Command::new(BIN).arg("check").arg(case.join("history.edn")).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stdout));
    assert!(processes_under(&dir.join("tmp")).is_empty());
    // --keep: the members' data directories stay (the members do not).
    let temp = PathBuf::from(report["temp_dir"].as_str().unwrap());
    assert!(temp.starts_with(dir.join("tmp")), "{temp:?}");
    for m in ["m0", "m1", "m2"] {
        assert!(temp.join(m).join("member").is_dir(), "{m}'s data directory was not kept");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_in_the_middle_of_a_run_leaves_no_member_port_or_directory_behind() {
    let _serial = serial();
    let dir = scratch("sigint");
    let scenario =
        short_scenario(&dir, 60_000, "{ node = \"m1\", kind = \"pause\", at_ms = 1000, duration_ms = 30000 }");
    let mut child = Command::new(BIN)
        .args(["cluster", "--out"])
        .arg(dir.join("out"))
        .arg(&scenario)
        .env("TMPDIR", dir.join("tmp"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the members run and one of them is paused (a stopped process must be
    // killed too), then interrupt.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut members = Vec::new();
    while Instant::now() < deadline {
        members = processes_under(&dir.join("tmp"));
        let stopped = members
            .iter()
            .any(|(pid, _)| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") T ")));
        if members.len() == 3 && stopped {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(members.len(), 3, "the members did not start: {members:?}");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    let left = processes_under(&dir.join("tmp"));
    assert!(left.is_empty(), "left behind: {left:?}");
    for (pid, cmdline) in &members {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "member {pid} still exists");
        let mut words = cmdline.split(' ');
        while let Some(w) = words.next() {
            if w.starts_with("--listen-") && w.ends_with("-urls") {
                let port: u16 = words.next().unwrap().rsplit(':').next().unwrap().parse().unwrap();
                assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} still bound");
            }
        }
    }
    let entries: Vec<_> = std::fs::read_dir(dir.join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(entries.is_empty(), "temporary directories left: {entries:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(args: &[&str], path_env: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bad_scenario_is_one_located_line_and_exit_2() {
    let dir = scratch("bad");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[cluster]\nmembers = 3\n[[cases]]\nname = \"x\"\nfaults = [{ node = \"m7\", kind = \"pause\", duration_ms = 5 }]\n")
        .unwrap();
    let (code, stderr) = run(&["cluster", path.to_str().unwrap()], None);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.toml:5:20: cases[0].faults[0].node: \"m7\" is not a member"), "{stderr}");
    let (code, stderr) = run(&["cluster", "--case", "nope", "../../scenarios/real/etcd-linearizable.toml"], None);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no case named \"nope\""), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_etcd_the_cluster_cannot_run_and_says_why() {
    let dir = scratch("noetcd");
    let scenario = short_scenario(&dir, 1000, "");
    let out = dir.join("out");
    let (code, stderr) =
        run(&["cluster", "--out", out.to_str().unwrap(), scenario.to_str().unwrap()], Some("/nonexistent"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("etcd is not on PATH"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory holding an executable `etcd` that runs `body` (a shell script).
fn fake_etcd(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("etcd");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn a_member_that_exits_at_start_is_exit_2_with_its_last_words() {
    let dir = scratch("exits");
    let bin = fake_etcd(&dir, "echo 'fake etcd: cannot bind' >&2; exit 1");
    let scenario = short_scenario(&dir, 1000, "");
    let out = Command::new(BIN)
        .args(["cluster", "--out"])
        .arg(dir.join("out"))
        .arg(&scenario)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("TMPDIR", dir.join("tmp"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exited") && stderr.contains("fake etcd: cannot bind"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn members_that_never_answer_are_exit_2_and_are_killed() {
    let dir = scratch("silent");
    // Runs until killed, with the data directory on its command line (as etcd has).
    let bin = fake_etcd(&dir, "while :; do sleep 1; done");
    let scenario = dir.join("slow.toml");
    std::fs::write(
        &scenario,
        "[cluster]\nmembers = 3\nstart_timeout_ms = 1000\n[workload]\nduration_ms = 1000\n[[cases]]\nname = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["cluster", "--out"])
        .arg(dir.join("out"))
        .arg(&scenario)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("TMPDIR", dir.join("tmp"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did not all answer within 1000 ms"), "{stderr}");
    assert_eq!(stderr.lines().count(), 2, "a progress line and the error: {stderr}");
    let left = processes_under(&dir.join("tmp"));
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
