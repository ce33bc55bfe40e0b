//! The decision tree (docs/diagnosis.md writes it out): first, is the replica answering at
//! all; then, what does its data plane say, does its WAL keep up with its acks, does its
//! content agree with its peers'; then its latency, its lag and its losses.

use super::{Diagnoser, Evidence, Finding, Model, ReplicaState, ReplicaVerdict, Series, median, transport};
use crate::signals::{Signal, Transport, Value};

/// The knobs of the tree. Each relative threshold compares a replica with the median of
/// its peers; each has an absolute floor so that a quiet cluster does not make noise
/// look like a fault.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Not heard: heartbeat age above this many times the median age...
    pub silent_factor: f64,
    /// ...and above this many seconds.
    pub silent_floor_s: f64,
    /// Slow: a median latency above this many times the peers' median...
    pub slow_factor: f64,
    /// ...and above this many milliseconds.
    pub slow_floor_ms: f64,
    /// Stale: data older than this many times the peers' median age...
    pub stale_factor: f64,
    /// ...and older than this many seconds.
    pub stale_floor_s: f64,
    /// Omission: at least this fraction of recent requests failed (and not all of them).
    pub loss_min: f64,
    /// Omission: retransmissions per second above this many times the peers' median...
    pub retransmit_factor: f64,
    /// ...and above this many per second.
    pub retransmit_floor: f64,
    /// A WAL or an ack index counts as frozen after this many samples without moving.
    pub frozen_samples: usize,
    /// Losses, latencies and digest comparisons are judged over this many recent samples.
    pub window: usize,
    /// This many failed probes in a row are an outage (a crash or a pause, over once it
    /// ends), not losses.
    pub outage_samples: usize,
    /// A replica whose acks trail the leader's commit index by more entries than this is
    /// behind: old data it serves is lag, not staleness.
    pub behind_entries: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            silent_factor: 10.0,
            silent_floor_s: 1.0,
            slow_factor: 5.0,
            slow_floor_ms: 20.0,
            stale_factor: 10.0,
            stale_floor_s: 1.0,
            loss_min: 0.05,
            retransmit_factor: 5.0,
            retransmit_floor: 1.0,
            frozen_samples: 3,
            window: 10,
            outage_samples: 10,
            behind_entries: 64.0,
        }
    }
}

/// What the tree compares a replica with: its peers' medians and the leader's progress.
pub struct Peers {
    silent_after: f64,
    /// The last time read, and the fourth most recent timestamp (for series of one sample).
    now: f64,
    current_since: f64,
    latency: [Option<f64>; 3],
    served_age: Option<f64>,
    retransmit_rate: Option<f64>,
    /// The leader's commit index: its last value and whether it moved over the recent
    /// samples.
    commit: Option<(f64, bool)>,
}

const LATENCIES: [Signal; 3] = [Signal::AckLatency, Signal::DataLatency, Signal::HealthLatency];

impl Peers {
    pub fn of(d: &Diagnoser) -> Peers {
        let window = d.thresholds.window;
        let each = |f: &dyn Fn(&ReplicaState) -> Option<f64>| median(d.replicas.values().filter_map(f).collect());
        let latency = LATENCIES.map(|s| each(&|r| r.get(s).and_then(|x| median_of(x, window))));
        let current_since = d.recent_times.front().copied().unwrap_or(f64::NEG_INFINITY);
        // The leader now: whoever reported a commit index last (leaders change), if recently.
        let commit = d
            .replicas
            .values()
            .filter_map(|r| r.get(Signal::LeaderCommitIndex))
            .filter_map(|s| s.last().map(|(t, _)| (*t, s)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(_, s)| s.is_current(d.now.unwrap_or(f64::NEG_INFINITY), current_since))
            .and_then(|(_, s)| {
                let last = s.last_number()?;
                let first = s.numbers().next()?.1;
                Some((last, last > first))
            });
        Peers {
            silent_after: d.silent_after(),
            current_since,
            now: d.now.unwrap_or(f64::NEG_INFINITY),
            latency,
            served_age: each(&|r| r.get(Signal::ServedVersionAge).and_then(Series::last_number)),
            retransmit_rate: each(&|r| r.get(Signal::Retransmits).and_then(rate)),
            commit,
        }
    }
}

/// The median of the last `window` samples.
fn median_of(s: &Series, window: usize) -> Option<f64> {
    let xs: Vec<f64> = s.numbers().map(|(_, x)| x).collect();
    median(xs[xs.len().saturating_sub(window)..].to_vec())
}

/// A counter's rate per second over the recent samples (a decrease is a reset: counted
/// from 0).
fn rate(s: &Series) -> Option<f64> {
    let mut it = s.numbers();
    let (t0, mut prev) = it.next()?;
    let (mut t1, mut total) = (t0, 0.0);
    for (t, x) in it {
        total += if x >= prev { x - prev } else { x };
        prev = x;
        t1 = t;
    }
    (t1 > t0).then(|| total / (t1 - t0))
}

/// The fraction of recent 0s of a 0/1 signal that came singly or in short runs (fewer than
/// `outage` in a row), and how many samples. A longer run is an outage (a crash or a pause
/// that ended), which the history would otherwise blame on losses for a while after.
fn failures(s: Option<&Series>, outage: usize, window: usize) -> Option<(f64, usize)> {
    let all: Vec<f64> = s?.numbers().map(|(_, x)| x).collect();
    let xs = &all[all.len().saturating_sub(window)..];
    if xs.is_empty() {
        return None;
    }
    let (mut lost, mut run) = (0usize, 0usize);
    for &x in xs.iter().chain(std::iter::once(&1.0)) {
        if x == 0.0 {
            run += 1;
        } else {
            if run < outage {
                lost += run;
            }
            run = 0;
        }
    }
    Some((lost as f64 / xs.len() as f64, xs.len()))
}

/// Whether the last `k` samples (or all, if fewer) of a 0/1 signal are 0.
fn all_failing(s: Option<&Series>, k: usize) -> bool {
    s.is_some_and(|s| {
        let xs: Vec<f64> = s.numbers().map(|(_, x)| x).collect();
        let n = xs.len().min(k);
        n > 0 && xs[xs.len() - n..].iter().all(|&x| x == 0.0)
    })
}

/// Whether the series' last value has held over its last `k` samples.
fn frozen(s: &Series, k: usize) -> bool {
    s.recent.len() >= k && s.recent.iter().rev().take(k).all(|(_, v)| Some(v) == s.last().map(|(_, v)| v))
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:.3}") }
}

fn ev(signal: Signal, value: String, threshold: String, since_s: Option<f64>) -> Evidence {
    Evidence { signal: signal.name(), value, threshold, since_s }
}

fn finding(
    verdict: Model,
    kind: Option<&'static str>,
    since_s: Option<f64>,
    base: f64,
    evidence: Vec<Evidence>,
) -> Finding {
    // More independent signals agreeing: more sure. Never certain.
    let confidence = (base + 0.1 * evidence.len().saturating_sub(1) as f64).min(0.99);
    Finding { verdict, kind, since_s, confidence: (confidence * 100.0).round() / 100.0, evidence }
}

/// Applies the tree to one replica.
pub fn diagnose_replica(name: &str, r: &ReplicaState, peers: &Peers, th: &Thresholds) -> ReplicaVerdict {
    let mut found: Vec<Finding> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let has = |s: Signal| r.get(s).is_some_and(|x| !x.recent.is_empty());

    // 1. Is it answering at all? Only current samples count: a series that stopped
    // (a replica that became the leader is no longer heard by one) says nothing of now.
    let current = |s: Signal| r.get(s).filter(|x| x.is_current(peers.now, peers.current_since));
    let hb = current(Signal::HeartbeatAge).and_then(|s| s.last().map(|(t, v)| (*t, v.number().unwrap_or(0.0))));
    let silent = hb.is_some_and(|(_, age)| age > peers.silent_after);
    let health = current(Signal::HealthOk);
    let data = current(Signal::DataOk);
    let probes_dead =
        all_failing(data, th.frozen_samples) && (health.is_none() || all_failing(health, th.frozen_samples));
    let health_up = health.and_then(Series::last_number) == Some(1.0);
    let health_down = health.is_some() && !health_up;
    // Probes failing while the leader still hears it and its kernel says nothing is wrong
    // are losses, not a dead process.
    let transport_now = current(Signal::Transport).and(transport(r));
    let transport_open = transport_now == Some(Transport::Open);
    // A fresh heartbeat says the process lives: without a transport signal, failing probes
    // beside it are losses too.
    let heard = hb.is_some_and(|(_, age)| age <= peers.silent_after);
    let data_dead = all_failing(data, th.frozen_samples);
    let dead_plane =
        probes_dead && data.is_some() && (silent || !(transport_open || (transport_now.is_none() && heard)));
    // The data plane dead while the health probe passes: the observers disagree.
    // Gray needs a health probe that has not failed once in the whole history: a lossy
    // link fails it now and then, a gray failure never does.
    let health_clean = failures(health, usize::MAX, super::HISTORY).is_some_and(|(f, _)| f == 0.0);
    let disagree = data_dead && health_up && health_clean;
    if silent || dead_plane || disagree {
        let mut e = Vec::new();
        let since = hb.filter(|_| silent).map(|(t, age)| t - age);
        if let Some((_, age)) = hb.filter(|_| silent) {
            e.push(ev(
                Signal::HeartbeatAge,
                format!("{} s", fmt_num(age)),
                format!("> {:.3} s", peers.silent_after),
                since,
            ));
        }
        if dead_plane || disagree {
            e.push(ev(Signal::DataOk, "0".into(), "1".into(), data.and_then(|s| s.unchanged_since)));
        }
        let since = since.or_else(|| data.filter(|_| dead_plane || disagree).and_then(|s| s.unchanged_since));
        let transport_state = current(Signal::Transport).and(transport(r));
        if let Some(t) = transport_state {
            let since_t = r.get(Signal::Transport).and_then(|s| s.unchanged_since);
            e.push(ev(Signal::Transport, t.name().into(), "open".into(), since_t));
        }
        let health_ev =
            |up: bool| ev(Signal::HealthOk, if up { "1" } else { "0" }.into(), "what its data plane says".into(), None);
        // Gaps that ended within the heartbeat history: an old one (a leader change hours
        // ago) says nothing of this silence.
        let window_start =
            r.get(Signal::HeartbeatAge).and_then(|s| s.recent.front()).map_or(f64::INFINITY, |(t, _)| *t);
        let recent_gaps: Vec<&(f64, f64)> = r.gaps.iter().filter(|(end, _)| *end >= window_start).collect();
        let paused_before = !recent_gaps.is_empty();
        let gaps = || {
            let k = recent_gaps.len() as u32;
            let longest = recent_gaps.iter().map(|(_, peak)| *peak).fold(0.0, f64::max);
            ev(
                Signal::HeartbeatAge,
                format!("{k} earlier gap{} up to {longest:.3} s, recovered", plural(k)),
                "no recovered gaps".into(),
                recent_gaps.last().map(|(end, _)| *end),
            )
        };
        match transport_state {
            // The kernel holds its sockets. Its transport answering the health probe while
            // the application does not is a half-open crash; a process frozen whole answers
            // nothing: a pause.
            Some(Transport::HalfOpen) if health_down => {
                e.push(health_ev(false));
                if paused_before {
                    e.push(gaps());
                }
                found.push(finding(Model::Timing, Some("pause"), since, 0.6, e));
            }
            Some(Transport::HalfOpen) => {
                if health_up {
                    e.push(health_ev(true));
                } else {
                    unknown.push("a half-open crash or a pause: needs health_ok".into());
                }
                found.push(finding(Model::Crash, Some("half-open"), since, 0.7, e));
            }
            Some(Transport::Closed | Transport::Refused) => found.push(finding(Model::Crash, None, since, 0.7, e)),
            Some(Transport::Open) | None
                if health_up
                    && silent
                    && !dead_plane
                    && failures(data, usize::MAX, th.window).is_some_and(|(f, _)| f < th.loss_min) =>
            {
                // The leader hears nothing while the load balancer and the clients are
                // served: its links to its peers are cut, not the process.
                e.push(health_ev(true));
                e.push(ev(Signal::DataOk, "answering".into(), "failing with the leader's link".into(), None));
                found.push(finding(Model::Omission, Some("partition"), since, 0.6, e));
            }
            Some(Transport::Open) | None if health_up && data.is_some() => {
                e.push(health_ev(true));
                found.push(finding(Model::Gray, None, since, 0.6, e));
            }
            Some(Transport::Open) | None if health_up => {
                // Silent to the leader, healthy to the load balancer, and no data probe to
                // say whether clients are served: a cut link or a gray failure.
                e.push(health_ev(true));
                unknown.push("a cut link or a gray failure: needs data_ok".into());
                found.push(finding(Model::CannotTell, None, since, 0.3, e));
            }
            Some(Transport::Open) if dead_plane || health_down => {
                found.push(finding(Model::Crash, None, since, 0.5, e));
            }
            Some(Transport::Open) => {
                // Its kernel answers and nothing else says it is down.
                unknown.push("crash, pause or a cut link: needs health_ok or data_ok".into());
                found.push(finding(Model::CannotTell, None, since, 0.3, e));
            }
            None if paused_before && (health_down || dead_plane) => {
                e.push(gaps());
                unknown.push("a pause or a crash: needs transport".into());
                found.push(finding(Model::Timing, Some("pause"), since, 0.5, e));
            }
            None if dead_plane || health_down => {
                unknown.push("half-open or closed: needs transport".into());
                found.push(finding(Model::Crash, None, since, 0.5, e));
            }
            None => {
                unknown.push(
                    "crash, pause or a cut link: needs transport, health_ok or data_ok (heartbeats alone look alike)"
                        .into(),
                );
                found.push(finding(Model::CannotTell, None, since, 0.3, e));
            }
        }
    }
    let answering = !silent && !dead_plane && !disagree;

    // 2. Does what it says hold? (Byzantine: checked even when it has gone quiet since.)
    // What it acknowledged: its acks as the leader saw them; for the leader itself, its
    // commit index (a leader counts its own log toward the quorum, so it may not commit
    // past its own WAL either).
    let acks_signal = if has(Signal::AckedIndex) { Signal::AckedIndex } else { Signal::LeaderCommitIndex };
    let acks = r.get(acks_signal);
    if let (Some(acked), Some(durable)) = (acks, r.get(Signal::DurableIndex)) {
        if let (Some(a), Some(d)) = (acked.last_number(), durable.last_number())
            && a > d
            && frozen(durable, th.frozen_samples)
            && acked.unchanged_since > durable.unchanged_since
        {
            let since = durable.unchanged_since;
            let e = vec![
                ev(acks_signal, fmt_num(a), format!("<= durable_index {}", fmt_num(d)), acked.unchanged_since),
                ev(
                    Signal::DurableIndex,
                    format!("{} (not moved)", fmt_num(d)),
                    "advancing with its acks".into(),
                    since,
                ),
            ];
            found.push(finding(Model::Byzantine, Some("lying-acks"), since, 0.8, e));
        }
    } else if acks.is_none() || !has(Signal::DurableIndex) {
        unknown.push("lying acks: needs acked_index and durable_index".into());
    }
    if let Some(s) = r.get(Signal::ServedVersionAge)
        && let (Some((t, _)), Some(age)) = (s.last(), s.last_number())
    {
        let limit = (peers.served_age.unwrap_or(0.0) * th.stale_factor).max(th.stale_floor_s);
        let served = data.and_then(Series::last_number) != Some(0.0);
        // A replica whose log is behind serves old data because it has not received the
        // new: that is lag (omission), not a lie. A stale one is up to date and serves old.
        let behind = match (r.get(Signal::AckedIndex).and_then(Series::last_number), peers.commit) {
            (Some(a), Some((commit, _))) => a + th.behind_entries < commit,
            _ => false,
        };
        if age > limit && served && !behind {
            let mut e = vec![ev(
                Signal::ServedVersionAge,
                format!("{} s", fmt_num(age)),
                format!("> {limit:.3} s"),
                Some(t - age),
            )];
            if data.and_then(Series::last_number) == Some(1.0) {
                e.push(ev(
                    Signal::DataOk,
                    "1 (served as fresh)".into(),
                    "0 for data it cannot serve fresh".into(),
                    None,
                ));
            }
            found.push(finding(Model::Byzantine, Some("stale"), Some(t - age), 0.8, e));
        }
    } else {
        unknown.push("stale reads: needs served_version_age_s".into());
    }
    let checks: Vec<&(bool, Value)> =
        r.digest_checks.iter().skip(r.digest_checks.len().saturating_sub(th.window)).collect();
    if !checks.is_empty() {
        let wrong: Vec<&Value> = checks.iter().filter(|(ok, _)| !ok).map(|(_, v)| v).collect();
        let right = checks.len() - wrong.len();
        let since = r.get(Signal::ContentDigest).and_then(|s| s.unchanged_since);
        // Two wrong at least: one alone may be a replica a version ahead of the majority,
        // which the next comparison clears.
        if wrong.len() >= 2 {
            let mut distinct: Vec<&Value> = Vec::new();
            for v in &wrong {
                if !distinct.contains(v) {
                    distinct.push(v);
                }
            }
            // Right to some askers, wrong to others: it tells different askers different
            // things. Always wrong: its content is corrupt.
            let kind = if right > 0 { "equivocation" } else { "corrupt" };
            let e = ev(
                Signal::ContentDigest,
                format!("{} of {} differed from the majority ({} distinct)", wrong.len(), checks.len(), distinct.len()),
                "the majority's digest".into(),
                since,
            );
            // Old data has an old digest: staleness explains the difference.
            match found.iter_mut().find(|f| f.kind == Some("stale")) {
                Some(stale) => stale.evidence.push(e),
                None => found.push(finding(Model::Byzantine, Some(kind), since, 0.75, vec![e])),
            }
        }
    } else if !has(Signal::ContentDigest) {
        unknown.push("corrupt content: needs content_digest".into());
    }

    // 3. When it answers: how fast, how far behind, how lossy.
    if answering {
        let mut slow = Vec::new();
        let mut health_slow = false;
        let mut data_slow = false;
        for (i, s) in LATENCIES.iter().enumerate() {
            let (Some(series), Some(peer)) = (r.get(*s), peers.latency[i]) else { continue };
            let Some(mine) = median_of(series, th.window) else { continue };
            let limit = (peer * th.slow_factor).max(th.slow_floor_ms);
            if mine > limit {
                health_slow |= *s == Signal::HealthLatency;
                data_slow |= *s == Signal::DataLatency;
                slow.push(ev(*s, format!("median {} ms", fmt_num(mine)), format!("> {limit:.3} ms"), None));
            }
        }
        if LATENCIES.iter().all(|s| !has(*s)) {
            unknown.push("slowness: needs ack_latency_ms, data_latency_ms or health_latency_ms".into());
        }

        let mut lossy = Vec::new();
        let mut kind = "general";
        if let (Some(acked), Some((commit, moving))) = (current(Signal::AckedIndex), peers.commit)
            && let Some(a) = acked.last_number()
            && moving
            && a < commit
            && frozen(acked, th.frozen_samples)
        {
            lossy.push(ev(
                Signal::AckedIndex,
                format!("{} (stuck)", fmt_num(a)),
                format!("following leader_commit_index {}", fmt_num(commit)),
                acked.unchanged_since,
            ));
            if let Some(durable) = r.get(Signal::DurableIndex)
                && let Some(d) = durable.last_number()
            {
                // Its WAL moves while its acks do not reach the leader: its sends are lost.
                // Both stuck: what it should receive does not arrive.
                kind = if !frozen(durable, th.frozen_samples) && d > a { "send" } else { "receive" };
                lossy.push(ev(
                    Signal::DurableIndex,
                    fmt_num(d),
                    if kind == "send" { "moving while acks are stuck".into() } else { "stuck with its acks".into() },
                    durable.unchanged_since,
                ));
            }
        }
        let data_loss = failures(data, th.outage_samples, th.window);
        let health_loss = failures(health, th.outage_samples, th.window);
        let lossy_data = data_loss.is_some_and(|(f, _)| f >= th.loss_min);
        if let Some(rate_now) = r.get(Signal::Retransmits).and_then(rate) {
            let limit = (peers.retransmit_rate.unwrap_or(0.0) * th.retransmit_factor).max(th.retransmit_floor);
            if rate_now > limit {
                lossy.push(ev(Signal::Retransmits, format!("{rate_now:.3}/s"), format!("> {limit:.3}/s"), None));
            }
        }
        let failed = |signal: Signal, (f, n): (f64, usize)| {
            ev(signal, format!("{:.0} % of {n} failed", f * 100.0), format!(">= {:.0} %", th.loss_min * 100.0), None)
        };
        if lossy_data && health_clean && !health_slow {
            // Data failing while the health probe passes, fast: the observers disagree.
            // What else the lost data shows (acks behind, retransmissions) is its evidence.
            let mut e = vec![failed(Signal::DataOk, data_loss.unwrap_or_default())];
            e.extend(slow.iter().filter(|x| x.signal == Signal::DataLatency.name()).cloned());
            e.push(ev(Signal::HealthOk, "all passed".into(), "failing with the data plane".into(), None));
            e.extend(lossy);
            found.push(finding(Model::Gray, None, None, 0.7, e));
        } else {
            for (signal, loss) in [(Signal::DataOk, data_loss), (Signal::HealthOk, health_loss)] {
                if let Some(l) = loss.filter(|(f, _)| *f >= th.loss_min) {
                    lossy.push(failed(signal, l));
                }
            }
            // The leader times an ack from its first unanswered send, so lost messages make
            // acks look slow: ack latency alone, beside losses, is the losses.
            let lost = lossy.iter().any(|e| e.signal != Signal::Retransmits.name());
            if !slow.is_empty() && (health_slow || data_slow || !lost) {
                found.push(finding(Model::Timing, Some("slow"), None, 0.65, slow));
            }
            // Retransmissions alone do not name a replica: its peers' counters rise with
            // its own (the leader's with any lossy follower's). They support other evidence.
            if lossy.iter().any(|e| e.signal != Signal::Retransmits.name()) {
                let since = lossy.iter().filter_map(|e| e.since_s).reduce(f64::min);
                found.push(finding(Model::Omission, Some(kind), since, 0.6, lossy));
            }
        }
    }

    // The leader, seen only through its commit index: healthy while it commits.
    if found.is_empty()
        && r.series.keys().all(|s| *s == Signal::LeaderCommitIndex)
        && peers.commit.is_some_and(|(_, moving)| !moving)
    {
        unknown.push("a leader whose commit index does not move: needs its heartbeat or data signals".into());
        found.push(finding(Model::CannotTell, None, None, 0.3, Vec::new()));
    }

    found.sort_by_key(|f| std::cmp::Reverse(f.verdict.urgency()));
    let mut found = found.into_iter();
    let head = found.next();
    let also: Vec<Finding> = found.collect();
    match head {
        Some(f) => ReplicaVerdict {
            replica: name.to_owned(),
            runbook: runbook(f.verdict, f.kind, &f.evidence),
            verdict: f.verdict,
            kind: f.kind,
            since_s: f.since_s,
            confidence: f.confidence,
            evidence: f.evidence,
            also,
            unknown,
        },
        None => {
            // Healthy: as sure as the signals that could have shown otherwise are many.
            let checked = [
                Signal::HeartbeatAge,
                Signal::DataOk,
                Signal::DurableIndex,
                Signal::ContentDigest,
                Signal::ServedVersionAge,
            ]
            .iter()
            .filter(|s| has(**s))
            .count();
            ReplicaVerdict {
                replica: name.to_owned(),
                verdict: Model::Healthy,
                kind: None,
                since_s: None,
                confidence: ((0.5 + 0.1 * checked as f64).min(0.99) * 100.0).round() / 100.0,
                evidence: Vec::new(),
                runbook: runbook(Model::Healthy, None, &[]),
                also,
                unknown,
            }
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The chapter's mitigation for a verdict.
pub fn runbook(model: Model, kind: Option<&str>, evidence: &[Evidence]) -> String {
    match (model, kind) {
        (Model::Healthy, _) => "nothing to do".into(),
        (Model::Crash, Some("half-open")) => "crashed, recoverable: the kernel holds the socket half-open but the process is gone; \
             restart it, do not remove it from the cluster"
            .into(),
        (Model::Crash, _) => "crashed, recoverable: restart it; do not remove it from the cluster".into(),
        (Model::Byzantine, Some("lying-acks")) => {
            let frozen = evidence
                .iter()
                .find(|e| e.signal == Signal::DurableIndex.name())
                .and_then(|e| e.since_s)
                .map_or(String::new(), |t| format!(" (its WAL froze at {t:.3} s)"));
            format!(
                "lying: fence it and remove it from the quorum now; audit every write it acked since its WAL froze{frozen}"
            )
        }
        (Model::Byzantine, Some("stale")) => {
            "stale: stop serving reads from it now (take it out of the read path); then find why it stopped applying".into()
        }
        (Model::Byzantine, Some("equivocation")) => {
            "equivocating: fence it and remove it from the quorum now; its peers and clients were told different things, \
             so reconcile what each acted on"
                .into()
        }
        (Model::Byzantine, _) => "corrupt: fence it and remove it from the quorum now; rebuild its data from a replica \
             whose checksums agree with the majority"
            .into(),
        (Model::Omission, _) => "omitting: it is one topology change from costing the quorum; check its NIC and links \
             (retransmits, drops) before restarting or upgrading any peer"
            .into(),
        (Model::Timing, Some("pause")) => "pausing: do not fail it over faster than its pauses (election timeout above its \
             longest gap); fence it (fencing tokens) so it cannot act on a stale term when it wakes"
            .into(),
        (Model::Timing, _) => "slow: do not fail it over faster than its latency; fence it (fencing tokens) and find the \
             slow resource (GC, disk, CPU)"
            .into(),
        (Model::Gray, _) => "gray: its health check passes while its data plane fails; trust the data plane, take it out \
             of the load balancer, and fix the check to probe the real path"
            .into(),
        (Model::CannotTell, _) => "cannot tell: collect the signal named below before acting; do not mark it dead".into(),
    }
}
