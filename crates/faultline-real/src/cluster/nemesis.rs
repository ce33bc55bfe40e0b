//! The nemesis: a case's faults, applied to the real members on the wall clock, each undone
//! when its window ends (and every one still active undone when the workload ends).
//!
//! Process faults are signals to the member's process group (pause: SIGSTOP then SIGCONT;
//! crash and restart: SIGKILL, then a start on the same data directory); network faults
//! are rules on the cluster's proxy routes, selected by etcd's `X-Server-From` header (see
//! `net`): a partition cuts every connection to and from the member's peer listener, an
//! omission drops only the messages one way, and half-open holds every connection to and
//! from the member, clients' included, while its process and its metrics listener live on.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Shared;
use super::client::Recorder;
use super::net::Effect;
use super::scenario::{Action, Fault, Target};

/// One fault as it happened: the ground truth the diagnosis is scored against.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Applied {
    pub member: String,
    /// The fault's kind as the scenario names it.
    pub kind: &'static str,
    /// Whether the scenario said `leader` (resolved when it started).
    pub was_leader: bool,
    pub start_s: f64,
    pub end_s: Option<f64>,
    /// The model the diagnoser should name, and its kind.
    pub model: &'static str,
    pub model_kind: Option<&'static str>,
    #[serde(skip)]
    rules: Vec<u64>,
    #[serde(skip)]
    index: usize,
    #[serde(skip)]
    action: Option<Action>,
}

/// What the nemesis did: the log's lines and the faults as applied.
#[derive(Default)]
pub struct NemesisLog {
    pub text: String,
    pub applied: Vec<Applied>,
}

fn peer(m: usize) -> String {
    format!("m{m}-peer")
}

/// The `X-Server-From` header of member `m`'s own requests.
fn from(ids: &[String], m: usize) -> String {
    format!("X-Server-From: {}", ids[m])
}

/// Starts a fault on member `m`; returns the proxy rules it added.
fn start(shared: &Shared, action: Action, m: usize, ids: &[String]) -> Result<Vec<u64>, String> {
    let mut inner = shared.lock();
    let n = inner.members.len();
    let mut rules = Vec::new();
    let from_m = from(ids, m);
    let others: Vec<usize> = (0..n).filter(|&o| o != m).collect();
    match action {
        Action::Pause => inner.members[m].signal(Signal::SIGSTOP).map_err(|e| format!("SIGSTOP: {e}"))?,
        Action::Crash | Action::Restart => inner.members[m].kill(),
        Action::HalfOpen => {
            // The application dead behind a live endpoint: every connection to its client
            // and peer listeners, and every one it dialed into the others, is accepted and
            // held, nothing forwarded either way. The process itself runs on, and its
            // metrics listener (not behind the proxy) answers the health check: the kernel
            // and the shallow check alive, the data path dead.
            rules.push(inner.net.add(&format!("m{m}-client"), Effect::Hold, None));
            rules.push(inner.net.add(&peer(m), Effect::Hold, None));
            for &o in &others {
                rules.push(inner.net.add(&peer(o), Effect::Hold, Some(&from_m)));
            }
        }
        Action::Partition => {
            rules.push(inner.net.add(&peer(m), Effect::Cut, None));
            for &o in &others {
                rules.push(inner.net.add(&peer(o), Effect::Cut, Some(&from_m)));
            }
        }
        Action::OmitSend => {
            // Its messages: on the streams the others dialed into it (downstream), and on
            // its own pipeline posts into them (upstream). On the others' routes every
            // connection it dialed loses its upstream, its stream requests too (a stream's
            // upstream carries only its request): it then hears the others through their
            // pipeline posts into it, which nothing drops.
            rules.push(inner.net.add(&peer(m), Effect::DropDown, Some("GET /raft/stream")));
            for &o in &others {
                rules.push(inner.net.add(&peer(o), Effect::DropUp, Some(&from_m)));
            }
        }
        Action::OmitReceive => {
            // Messages to it: the others' posts into it, and its own streams from them (on
            // the others' routes every connection it dialed loses its downstream, the
            // answers to its own posts too: they were delivered, it never learns so).
            rules.push(inner.net.add(&peer(m), Effect::DropUp, Some("POST ")));
            for &o in &others {
                rules.push(inner.net.add(&peer(o), Effect::DropDown, Some(&from_m)));
            }
        }
    }
    Ok(rules)
}

fn end(shared: &Shared, action: Action, m: usize, rules: &[u64]) -> Result<(), String> {
    let mut inner = shared.lock();
    inner.net.remove(rules);
    let etcd = inner.etcd.clone();
    match action {
        Action::Pause => inner.members[m].signal(Signal::SIGCONT).map_err(|e| format!("SIGCONT: {e}"))?,
        Action::Crash | Action::Restart => {
            inner.members[m].start(&etcd).map_err(|e| format!("restarting: {e}"))?;
        }
        Action::HalfOpen | Action::Partition | Action::OmitSend | Action::OmitReceive => {}
    }
    Ok(())
}

/// Runs `faults` against the cluster until `until` (then undoes what is still active).
pub async fn run(
    shared: Shared,
    faults: Vec<Fault>,
    ids: Vec<String>,
    leader: Arc<Mutex<Option<usize>>>,
    history: Arc<Mutex<Recorder>>,
    started: Instant,
    until: Instant,
) -> NemesisLog {
    let mut log = NemesisLog::default();
    // (time, start?, fault index): ends before starts at the same moment.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        events.push((f.at_ms, true, i));
        if let Some(e) = f.end_ms {
            events.push((e, false, i));
        }
    }
    events.sort();
    let mut say = |log: &mut NemesisLog, line: String| {
        let _ = writeln!(log.text, "{:9.3} s  {line}", started.elapsed().as_secs_f64());
    };
    for (at_ms, is_start, i) in events {
        let when = started + Duration::from_millis(at_ms);
        if when >= until {
            break;
        }
        tokio::time::sleep_until(when.into()).await;
        let f = &faults[i];
        if is_start {
            let (m, was_leader) = match f.target {
                Target::Member(m) => (m, false),
                Target::Leader => match *leader.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(m) => (m, true),
                    None => {
                        say(&mut log, format!("skip {} leader: no leader known now", f.action.name()));
                        continue;
                    }
                },
            };
            let name = format!("m{m}");
            match start(&shared, f.action, m, &ids) {
                Ok(rules) => {
                    let what = if was_leader { format!("{name} (the leader)") } else { name.clone() };
                    say(&mut log, format!("start {} {what}", f.action.name()));
                    history.lock().unwrap_or_else(|e| e.into_inner()).nemesis(
                        started,
                        &format!("start-{}", f.action.name()),
                        &name,
                    );
                    let (model, model_kind) = f.action.model();
                    log.applied.push(Applied {
                        member: name,
                        kind: f.action.name(),
                        was_leader,
                        start_s: started.elapsed().as_secs_f64(),
                        end_s: None,
                        model,
                        model_kind,
                        rules,
                        index: i,
                        action: Some(f.action),
                    });
                }
                Err(e) => say(&mut log, format!("could not start {} {name}: {e}", f.action.name())),
            }
        } else {
            finish(&shared, &mut log, Some(i), started, &history, &mut say);
        }
    }
    tokio::time::sleep_until(until.into()).await;
    finish(&shared, &mut log, None, started, &history, &mut say);
    log
}

/// Ends fault `which` (every active one for `None`).
fn finish(
    shared: &Shared,
    log: &mut NemesisLog,
    which: Option<usize>,
    started: Instant,
    history: &Mutex<Recorder>,
    say: &mut impl FnMut(&mut NemesisLog, String),
) {
    let mut lines = Vec::new();
    for a in log.applied.iter_mut().filter(|a| a.end_s.is_none() && which.is_none_or(|w| w == a.index)) {
        let Some(action) = a.action else { continue };
        let m: usize = a.member[1..].parse().expect("members are named m<i>");
        a.end_s = Some(started.elapsed().as_secs_f64());
        match end(shared, action, m, &a.rules) {
            Ok(()) => lines.push(format!("end {} {}", a.kind, a.member)),
            Err(e) => lines.push(format!("could not end {} {}: {e}", a.kind, a.member)),
        }
        history.lock().unwrap_or_else(|e| e.into_inner()).nemesis(started, &format!("stop-{}", a.kind), &a.member);
    }
    for l in lines {
        say(log, l);
    }
}
