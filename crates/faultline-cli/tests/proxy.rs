//! `faultline proxy`: a bad proxy file ends as every bad input does (exit 2, nothing on
//! stdout, one line `error: FILE:LINE:COL: FIELD: message` on stderr), a fault name without
//! a real mechanism is refused naming those with one, and a good file runs a proxy that
//! forwards bytes and stops cleanly on Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_faultline");

const GOOD: &str = r#"seed = 1

[control]
listen = "127.0.0.1:0"

[[routes]]
name = "a"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"

[[routes.faults]]
kind = "delay"
latency_ms = 1
direction = "both"
"#;

/// Runs `faultline proxy` on `text` written to a file; returns the file's path, the exit
/// code, stdout and stderr.
fn run_file(text: &str) -> (String, Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(BIN).arg("proxy").arg(&path).output().expect("run");
    let shown = path.display().to_string();
    (shown, out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Asserts the bad-input shape and returns the line after `error: FILE:`.
fn located_error(text: &str, what: &str) -> String {
    let (path, code, stdout, stderr) = run_file(text);
    assert_eq!(code, Some(2), "{what}: exit code: {stderr}");
    assert!(stdout.is_empty(), "{what}: stdout: {stdout}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    let line = stderr.strip_suffix('\n').unwrap_or_else(|| panic!("{what}: not one whole line: {stderr:?}"));
    assert!(!line.contains('\n'), "{what}: more than one line: {stderr:?}");
    line.strip_prefix(&format!("error: {path}:"))
        .unwrap_or_else(|| panic!("{what}: should start with `error: {path}:`: {line}"))
        .to_owned()
}

#[test]
fn names_without_a_real_mechanism_are_refused_naming_those_with_one() {
    for name in ["equivocate", "forge", "lie", "stale", "skew", "slow-disk", "duplicate", "reorder"] {
        let text = GOOD.replace("kind = \"delay\"\nlatency_ms = 1\n", &format!("kind = \"{name}\"\n"));
        let rest = located_error(&text, name);
        assert!(
            rest.starts_with(&format!("12:1: routes[0].faults[0].kind: '{name}' has no real mechanism on a byte stream; these do: delay, partition, half-open")),
            "{name}: {rest}"
        );
        assert!(rest.contains("crash, restart, pause") && rest.contains("faultline cluster"), "{name}: {rest}");
    }
    for name in ["crash", "restart", "pause"] {
        let text = GOOD.replace("kind = \"delay\"\nlatency_ms = 1\n", &format!("kind = \"{name}\"\n"));
        let rest = located_error(&text, name);
        assert!(
            rest.starts_with(&format!("12:1: routes[0].faults[0].kind: '{name}' acts on processes")),
            "{name}: {rest}"
        );
        assert!(rest.contains("faultline cluster"), "{name}: {rest}");
    }
}

#[test]
fn bad_files_are_one_located_line_and_exit_2() {
    let cases: &[(&str, &str, &str)] = &[
        ("latency_ms = 1", "latency_ms = \"soon\"", "13:14: routes[0].faults[0].latency_ms: "),
        ("latency_ms = 1", "latency = 1", "13:1: routes[0].faults[0].latency: unknown field"),
        ("direction = \"both\"", "direction = \"sideways\"", "14:13: routes[0].faults[0].direction: "),
        ("upstream = \"127.0.0.1:9\"", "upstream = \"no port\"", "9:1: routes[0].upstream: "),
        ("listen = \"127.0.0.1:0\"\nupstream", "listen = \"here\"\nupstream", "8:1: routes[0].listen: "),
        ("seed = 1", "seed = [", "4:1: (syntax): "),
        ("seed = 1", "colour = 1", "1:1: colour: unknown field"),
        ("latency_ms = 1", "latency_ms = 1\np = 0.5", "14:1: routes[0].faults[0].p: not a parameter of 'delay'"),
    ];
    for (from, to, want) in cases {
        let text = GOOD.replace(from, to);
        assert_ne!(text, GOOD, "{from}");
        let rest = located_error(&text, to);
        assert!(rest.starts_with(want), "{to}: want `{want}`, got: {rest}");
    }
    let rest = located_error("seed = 1\n", "no routes");
    assert!(rest.contains("routes: missing"), "{rest}");
}

#[test]
fn a_good_file_runs_a_proxy_that_forwards_and_stops_on_ctrl_c() {
    // An echo server on a thread, one connection.
    let upstream = TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream_addr = upstream.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = upstream.accept() {
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, GOOD.replace("127.0.0.1:9", &upstream_addr.to_string())).expect("write");
    let mut child = Command::new(BIN).arg("proxy").arg(&path).stdout(Stdio::piped()).spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("read") == 0 {
            break;
        }
        lines.push(line.trim_end().to_owned());
    }
    assert_eq!(lines.first().map(String::as_str), Some("seed 1"), "{lines:?}");
    let route = lines.get(1).cloned().unwrap_or_default();
    let listen = route
        .strip_prefix("route a: ")
        .and_then(|r| r.strip_suffix(&format!(" -> {upstream_addr}")))
        .unwrap_or_else(|| panic!("route line: {route:?}"));
    assert!(lines.get(2).is_some_and(|l| l.starts_with("control: http://127.0.0.1:")), "{lines:?}");

    let mut s = TcpStream::connect(listen).expect("connect through the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(b"hello").expect("write");
    let mut back = [0u8; 5];
    s.read_exact(&mut back).expect("echo");
    assert_eq!(&back, b"hello");

    let interrupted = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().expect("kill");
    assert!(interrupted.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the proxy did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "a clean shutdown exits 0");
}
