//! A real etcd cluster under the scenarios of scenarios/real/ (docs/real.md). These tests
//! need `etcd` on PATH (scripts/setup installs it) and fail without it: a missing etcd is a
//! broken test environment, not a reason to pass.
//!
//! They run one at a time (a lock): each starts three etcd members, and two clusters at
//! once on two cores would make both slow enough to change what they test. Each run is
//! bounded by its scenario (10 to 26 s of workload); after every run the test checks that
//! no etcd process it started is left, that the members' ports can be bound again, and
//! that the temporary directory is gone.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use faultline_real::cluster::{self, Options, Report, Scenario};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scenario(file: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/real").join(file);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh directory for one test's output and temporary files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faultline-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    dir
}

fn options(root: &Path) -> Options {
    Options { out_dir: root.join("out"), keep: false, seed: None, temp_root: Some(root.join("tmp")) }
}

/// The pids of live processes whose command line mentions `dir` (zombies have none).
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

/// The loopback ports in `--listen-*-urls` flags of these command lines.
fn ports_of(processes: &[(u32, String)]) -> Vec<u16> {
    let mut ports = Vec::new();
    for (_, cmdline) in processes {
        let mut words = cmdline.split(' ');
        while let Some(w) = words.next() {
            if w.starts_with("--listen-") && w.ends_with("-urls") {
                let url = words.next().unwrap_or_default();
                ports.extend(url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
            }
        }
    }
    ports
}

/// Nothing of the run is left: no process, no bound port, no temporary directory.
fn assert_cleaned(root: &Path, ports: &[u16]) {
    let left = processes_under(&root.join("tmp"));
    assert!(left.is_empty(), "etcd processes left behind: {left:?}");
    for &port in ports {
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} is still bound");
    }
    let entries: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(entries.is_empty(), "temporary directories left behind: {entries:?}");
}

fn endpoint_ports(report: &Report) -> Vec<u16> {
    let mut ports = Vec::new();
    for e in &report.endpoints {
        ports.extend([e.client_port, e.peer_port, e.metrics_port]);
        for route in [&e.client_route, &e.peer_route] {
            ports.extend(route.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
        }
    }
    ports
}

fn run_case(s: &Scenario, case: usize, name: &str) -> Report {
    let root = scratch(name);
    let report =
        cluster::run_blocking(s, case, &options(&root)).unwrap_or_else(|e| panic!("{}: {e}", s.cases[case].name));
    eprintln!("{}", report.text());
    assert_cleaned(&root, &endpoint_ports(&report));
    for file in ["history.edn", "nemesis.log", "signals.csv", "report.json", "report.txt", "members/m0.log"] {
        assert!(root.join("out").join(file).is_file(), "{file} was not written");
    }
    let _ = std::fs::remove_dir_all(&root);
    report
}

#[test]
fn linearizable_reads_check_linearizable_under_a_leader_pause_a_minority_partition_and_a_leader_crash() {
    let _serial = serial();
    let s = scenario("etcd-linearizable.toml");
    for case in 0..s.cases.len() {
        let r = run_case(&s, case, &format!("linearizable-{case}"));
        assert_eq!(r.linearizable, Some(true), "{}: {:?}", r.case, r.counterexample);
        assert_eq!(r.faults.len(), 1, "{}: the fault was applied once", r.case);
        assert!(r.ok > 100, "{}: the workload ran ({} ok)", r.case, r.ok);
        // Sometimes-properties: the fault really happened. A paused or crashed leader is
        // replaced; a partitioned follower costs nothing.
        if r.faults[0].was_leader {
            assert!(r.leader_changes >= 1, "{}: no leader change seen", r.case);
        }
    }
}

#[test]
fn serializable_reads_under_a_partition_that_isolates_a_member_are_not_linearizable() {
    let _serial = serial();
    let s = scenario("etcd-serializable.toml");
    let r = run_case(&s, 0, "serializable");
    assert_eq!(r.linearizable, Some(false));
    let c = r.counterexample.as_deref().expect("a counterexample");
    assert!(c.contains("cannot be ordered") && c.contains("read"), "{c}");
}

#[test]
fn the_diagnoser_names_real_faults() {
    let _serial = serial();
    let s = scenario("etcd-diagnose.toml");
    let r = run_case(&s, 0, "diagnose");
    let by_kind = |kind: &str| r.diagnosis.iter().find(|d| d.fault == kind).unwrap_or_else(|| panic!("no {kind}"));
    // Named right most of the time once settled, and within a few seconds.
    for kind in ["pause", "crash", "omit-send"] {
        let d = by_kind(kind);
        assert!(d.accuracy.unwrap_or(0.0) >= 0.5, "{kind}: {d:?}");
        assert!(d.time_to_verdict_s.is_some_and(|t| t <= 5.0), "{kind}: {d:?}");
    }
    // A half-open member (its data path accepts and answers nothing, its health check,
    // on the metrics listener outside the proxy, passes) is a crash of the half-open kind,
    // not a pause (which fails the health check too).
    let half_open = by_kind("half-open");
    assert!(half_open.accuracy_with_kind.unwrap_or(0.0) >= 0.5, "{half_open:?}");
    assert!(half_open.time_to_verdict_s.is_some_and(|t| t <= 5.0), "{half_open:?}");
    assert!(r.healthy.given_a_fault_verdict * 5 <= r.healthy.rounds, "{:?}", r.healthy);
}

#[test]
fn a_panic_mid_run_leaves_no_member_behind() {
    let _serial = serial();
    let s = scenario("etcd-linearizable.toml");
    let root = scratch("panic");
    let options = options(&root);
    let seen = Mutex::new(Vec::new());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            // Borrowed by the select, so the run is still alive (and running) when the
            // panic strikes, and is dropped by the unwinding, as a failed assertion would.
            let run = cluster::run(&s, 0, &options);
            tokio::pin!(run);
            tokio::select! {
                r = &mut run => panic!("the run ended before the injected panic: {:?}", r.map(|r| r.ok)),
                () = tokio::time::sleep(Duration::from_secs(5)) => {
                    // The check below must be able to see the members it says are gone.
                    let running = processes_under(&root.join("tmp"));
                    *seen.lock().unwrap() = running;
                    panic!("an injected failure in the middle of a run");
                }
            }
        })
    }));
    drop(runtime);
    assert!(result.is_err());
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), s.members, "the members were running before the panic: {seen:?}");
    assert_cleaned(&root, &ports_of(&seen));
    let _ = std::fs::remove_dir_all(&root);
}
