//! The diagnoser: names the failure model each replica is in from signals an operator can
//! observe (`crate::signals`), with its evidence, a confidence, and the chapter's runbook
//! step; and says how many more failures of each model the cluster can absorb.
//!
//! It reads samples in time order and keeps, per replica and signal, the last value and a
//! short history (the last [`HISTORY`] samples), so memory is bounded by the number of
//! replicas whatever the length of the file. [`Diagnoser::report`] applies the decision tree
//! of docs/diagnosis.md to what it has read so far, so a followed file can be diagnosed again
//! after every batch.
//!
//! Every threshold is relative to the cluster (a replica is slow against the median of its
//! peers, silent against their heartbeat ages) with an absolute floor, so the same tree reads
//! a simulated run sampled every 100 ms and a production export sampled every 15 s.

mod tree;

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::signals::{Sample, Signal, Transport, Value};

pub use tree::{Thresholds, diagnose_replica};

/// How many recent samples of each signal a replica keeps.
pub const HISTORY: usize = 32;

/// A signal is current when its last sample is among the last this many timestamps read.
pub const CURRENT_TIMESTAMPS: usize = 4;

/// The failure model a verdict names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    Healthy,
    Crash,
    Omission,
    Timing,
    Byzantine,
    Gray,
    CannotTell,
}

impl Model {
    pub const ALL: [Model; 7] = [
        Model::Healthy,
        Model::Crash,
        Model::Omission,
        Model::Timing,
        Model::Byzantine,
        Model::Gray,
        Model::CannotTell,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Model::Healthy => "healthy",
            Model::Crash => "crash",
            Model::Omission => "omission",
            Model::Timing => "timing",
            Model::Byzantine => "byzantine",
            Model::Gray => "gray",
            Model::CannotTell => "cannot-tell",
        }
    }

    /// Which verdict is the headline when a replica shows several: the one whose mitigation
    /// is most urgent (a liar is fenced now; a crashed replica waits for a restart).
    pub const fn urgency(self) -> u8 {
        match self {
            Model::Byzantine => 6,
            Model::Crash => 5,
            Model::Timing => 4,
            Model::Omission => 3,
            Model::Gray => 2,
            Model::CannotTell => 1,
            Model::Healthy => 0,
        }
    }
}

/// What observed fact a verdict rests on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    pub signal: &'static str,
    /// The value observed (a number, a transport state, a digest, or a summary such as
    /// `"9 of 32 failed"`).
    pub value: String,
    /// What it was compared with (`"> 2.5 s"`, `"majority digest 7f3a"`).
    pub threshold: String,
    /// Since when the value has held, in the file's seconds, when known.
    pub since_s: Option<f64>,
}

/// One model a replica shows, with its kind and evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub verdict: Model,
    /// `half-open`, `send`, `receive`, `general`, `pause`, `slow`, `stale`, `lying-acks`,
    /// `corrupt`, `equivocation`, or none.
    pub kind: Option<&'static str>,
    pub since_s: Option<f64>,
    /// How sure, from 0 to 1: a heuristic that grows with the number of independent
    /// signals that agree and the margin over the threshold; not a probability.
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
}

/// The verdict on one replica.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReplicaVerdict {
    pub replica: String,
    pub verdict: Model,
    pub kind: Option<&'static str>,
    pub since_s: Option<f64>,
    pub confidence: f64,
    pub evidence: Vec<Evidence>,
    /// The chapter's mitigation for the headline verdict.
    pub runbook: String,
    /// Other models the replica shows at the same time (timing and omission in one
    /// replica, say), most urgent first.
    pub also: Vec<Finding>,
    /// What the signals could not tell, and which signal would (`"lying acks: needs
    /// durable_index"`).
    pub unknown: Vec<String>,
}

/// How many more failures the cluster can absorb, given the verdicts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    pub replicas: usize,
    pub healthy: usize,
    /// Replicas per non-healthy headline verdict.
    pub faulty: BTreeMap<&'static str, usize>,
    /// A majority quorum (2f+1) tolerates this many crash, omission or timing failures.
    pub crash_f: usize,
    /// How many more it absorbs now (negative: the quorum is already lost).
    pub crash_absorbs: i64,
    /// A Byzantine quorum (3f+1) tolerates this many Byzantine failures.
    pub byzantine_f: usize,
    pub byzantine_absorbs: i64,
    /// The line the table prints.
    pub line: String,
}

/// Everything `faultline diagnose` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The time the diagnosis is as of (the last sample read, or `--at`).
    pub at_s: Option<f64>,
    pub replicas: Vec<ReplicaVerdict>,
    pub cluster: Cluster,
}

/// The last samples of one signal of one replica, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub recent: VecDeque<(f64, Value)>,
    /// When the current value was first seen (the start of its run of equal values).
    pub unchanged_since: Option<f64>,
}

impl Series {
    fn push(&mut self, t: f64, v: Value) {
        if self.recent.back().is_none_or(|(_, last)| *last != v) {
            self.unchanged_since = Some(t);
        }
        if self.recent.len() == HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back((t, v));
    }

    pub fn last(&self) -> Option<&(f64, Value)> {
        self.recent.back()
    }

    /// Whether the series is still being reported at `now`: its last sample is within
    /// three of its own sampling periods of `now` (exports sample each target at its own
    /// offset, so "the same timestamp" cannot be asked). A series of one sample is current
    /// when that sample is no older than `fallback` (the diagnoser's last few timestamps).
    pub fn is_current(&self, now: f64, fallback: f64) -> bool {
        let Some(&(last, _)) = self.recent.back() else { return false };
        let first = self.recent.front().map_or(last, |&(t, _)| t);
        let n = self.recent.len();
        if n < 2 || last <= first {
            return last >= fallback;
        }
        let period = (last - first) / (n - 1) as f64;
        last >= now - 3.0 * period - 1e-9
    }

    pub fn last_number(&self) -> Option<f64> {
        self.last().and_then(|(_, v)| v.number())
    }

    pub fn numbers(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.recent.iter().filter_map(|(t, v)| v.number().map(|x| (*t, x)))
    }
}

/// What the diagnoser knows of one replica.
#[derive(Clone, Debug, Default)]
pub struct ReplicaState {
    pub series: BTreeMap<Signal, Series>,
    /// Heartbeat gaps that ended (the replica was silent past the threshold, then heard
    /// again), the signature of a pause: when each ended and its peak age, the last
    /// [`HISTORY`] of them, oldest first.
    pub gaps: VecDeque<(f64, f64)>,
    /// The peak heartbeat age of the gap in progress (0 when heard).
    gap_peak_s: f64,
    /// Digest comparisons against the majority, most recent last: `Some(true)` matched,
    /// `Some(false)` differed; the digest it served each time.
    pub digest_checks: VecDeque<(bool, Value)>,
}

impl ReplicaState {
    pub fn get(&self, s: Signal) -> Option<&Series> {
        self.series.get(&s)
    }
}

/// Reads samples in time order; reports on what it has read.
#[derive(Clone, Debug)]
pub struct Diagnoser {
    pub thresholds: Thresholds,
    pub replicas: BTreeMap<String, ReplicaState>,
    /// The time of the last sample read.
    pub now: Option<f64>,
    /// The last few distinct timestamps read, oldest first: a signal whose last sample is
    /// older than all of them has stopped being reported.
    pub recent_times: VecDeque<f64>,
    /// The majority's recent digests, oldest first: a replica a little behind serves one of
    /// them, which is lag, not corruption.
    recent_majorities: VecDeque<Value>,
    /// Replicas whose digest changed at the current timestamp: compared with the majority
    /// once the timestamp is complete.
    pending_digests: Vec<String>,
    /// [`Diagnoser::silent_after`] as of the last complete timestamp.
    silent_after: f64,
}

impl Default for Diagnoser {
    fn default() -> Self {
        Diagnoser::new(Thresholds::default())
    }
}

impl Diagnoser {
    pub fn new(thresholds: Thresholds) -> Diagnoser {
        Diagnoser {
            thresholds,
            replicas: BTreeMap::new(),
            now: None,
            recent_times: VecDeque::new(),
            recent_majorities: VecDeque::new(),
            pending_digests: Vec::new(),
            silent_after: f64::INFINITY,
        }
    }

    /// Reads one sample. Samples must come in nondecreasing time (the readers of
    /// `crate::signals::parse` see to it).
    pub fn push(&mut self, s: &Sample) {
        self.push_owned(s.clone());
    }

    /// [`Diagnoser::push`], taking the sample (no copy of its strings).
    pub fn push_owned(&mut self, s: Sample) {
        if self.now.is_some_and(|now| s.time_s > now) {
            self.settle_digests();
            // Once per timestamp: the silence threshold over every replica's latest age.
            self.silent_after = self.silent_after();
        }
        if self.recent_times.back() != Some(&s.time_s) {
            if self.recent_times.len() == CURRENT_TIMESTAMPS {
                self.recent_times.pop_front();
            }
            self.recent_times.push_back(s.time_s);
        }
        self.now = Some(s.time_s);
        let silent_after = self.silent_after;
        if !self.replicas.contains_key(&s.replica) {
            self.replicas.insert(s.replica.clone(), ReplicaState::default());
        }
        let state = self.replicas.get_mut(&s.replica).expect("inserted");
        if s.signal == Signal::HeartbeatAge
            && let Some(age) = s.value.number()
        {
            if age > silent_after {
                state.gap_peak_s = state.gap_peak_s.max(age);
            } else if state.gap_peak_s > 0.0 {
                if state.gaps.len() == HISTORY {
                    state.gaps.pop_front();
                }
                state.gaps.push_back((s.time_s, state.gap_peak_s));
                state.gap_peak_s = 0.0;
            }
        }
        state.series.entry(s.signal).or_default().push(s.time_s, s.value);
        if s.signal == Signal::ContentDigest {
            self.pending_digests.push(s.replica);
        }
    }

    /// Compares the digests served at the last timestamp with the majority of every
    /// replica's latest digest.
    fn settle_digests(&mut self) {
        if self.pending_digests.is_empty() {
            return;
        }
        let now = self.now.unwrap_or(f64::NEG_INFINITY);
        let since = self.recent_times.front().copied().unwrap_or(f64::NEG_INFINITY);
        // Only digests still being reported vote: a crashed replica's last one does not.
        let latest: Vec<&Value> = self
            .replicas
            .values()
            .filter_map(|r| r.get(Signal::ContentDigest).filter(|s| s.is_current(now, since)))
            .filter_map(|s| s.last().map(|(_, v)| v))
            .collect();
        let majority = majority(&latest).cloned();
        let pending = std::mem::take(&mut self.pending_digests);
        let Some(majority) = majority else { return };
        // A replica that served this digest a moment before the majority did was ahead,
        // not wrong (a new version reaches replicas one by one).
        for state in self.replicas.values_mut() {
            if let Some((right, served)) = state.digest_checks.back_mut()
                && !*right
                && *served == majority
            {
                *right = true;
            }
        }
        if self.recent_majorities.back() != Some(&majority) {
            if self.recent_majorities.len() == HISTORY {
                self.recent_majorities.pop_front();
            }
            self.recent_majorities.push_back(majority.clone());
        }
        for name in pending {
            let Some(state) = self.replicas.get_mut(&name) else { continue };
            let Some((_, served)) = state.get(Signal::ContentDigest).and_then(Series::last).cloned() else {
                continue;
            };
            if state.digest_checks.len() == HISTORY {
                state.digest_checks.pop_front();
            }
            // Behind the majority by a version or two is lag: what a correct replica that
            // has not caught up serves. Only a digest no majority ever held is wrong.
            let right = served == majority || self.recent_majorities.contains(&served);
            state.digest_checks.push_back((right, served));
        }
    }

    /// The heartbeat age past which a replica counts as not heard: [`Thresholds::silent_factor`]
    /// times the median of the replicas' latest ages, at least [`Thresholds::silent_floor_s`].
    pub fn silent_after(&self) -> f64 {
        let ages: Vec<f64> =
            self.replicas.values().filter_map(|r| r.get(Signal::HeartbeatAge).and_then(Series::last_number)).collect();
        (median(ages).unwrap_or(0.0) * self.thresholds.silent_factor).max(self.thresholds.silent_floor_s)
    }

    /// The verdicts on every replica as of what has been read, and the cluster line.
    pub fn report(&mut self) -> Report {
        self.settle_digests();
        let peers = tree::Peers::of(self);
        let replicas: Vec<ReplicaVerdict> =
            self.replicas.iter().map(|(name, state)| diagnose_replica(name, state, &peers, &self.thresholds)).collect();
        let cluster = cluster(&replicas);
        Report { at_s: self.now, replicas, cluster }
    }
}

impl Report {
    /// The table `faultline diagnose` prints: a line per replica, its evidence and runbook
    /// step under it, what could not be told, and the cluster line.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if let Some(t) = self.at_s {
            let _ = writeln!(out, "as of t = {t:.3} s");
        }
        let _ = writeln!(out, "{:<12} {:<11} {:<12} {:>14} {:>5}", "replica", "verdict", "kind", "since_s", "conf");
        let secs = |t: Option<f64>| t.map_or("-".to_owned(), |t| format!("{t:.3}"));
        // What no replica's signals could tell is said once, at the end.
        let everywhere: Vec<&String> = self.replicas.first().map_or(Vec::new(), |first| {
            first.unknown.iter().filter(|u| self.replicas.iter().all(|r| r.unknown.contains(u))).collect()
        });
        for r in &self.replicas {
            let _ = writeln!(
                out,
                "{:<12} {:<11} {:<12} {:>14} {:>5.2}",
                r.replica,
                r.verdict.name(),
                r.kind.unwrap_or("-"),
                secs(r.since_s),
                r.confidence
            );
            for e in &r.evidence {
                let since = e.since_s.map_or(String::new(), |t| format!(" since {t:.3} s"));
                let _ = writeln!(out, "  evidence: {} = {} (against: {}){since}", e.signal, e.value, e.threshold);
            }
            for f in &r.also {
                let _ = writeln!(
                    out,
                    "  also: {}{} (conf {:.2}): {}",
                    f.verdict.name(),
                    f.kind.map_or(String::new(), |k| format!(" {k}")),
                    f.confidence,
                    f.evidence.iter().map(|e| format!("{} = {}", e.signal, e.value)).collect::<Vec<_>>().join("; ")
                );
            }
            if r.verdict != Model::Healthy {
                let _ = writeln!(out, "  runbook: {}", r.runbook);
            }
            for u in r.unknown.iter().filter(|u| !everywhere.contains(u)) {
                let _ = writeln!(out, "  could not tell: {u}");
            }
        }
        for u in everywhere {
            let _ = writeln!(out, "could not tell (any replica): {u}");
        }
        let _ = writeln!(out, "cluster: {}", self.cluster.line);
        out
    }

    /// The verdicts alone (replica, verdict, kind), to tell when a followed diagnosis changed.
    pub fn verdicts(&self) -> Vec<(String, Model, Option<&'static str>)> {
        self.replicas.iter().map(|r| (r.replica.clone(), r.verdict, r.kind)).collect()
    }
}

/// The value most replicas hold, if more than half hold it.
pub fn majority<'a, T: PartialEq>(values: &[&'a T]) -> Option<&'a T> {
    // Boyer-Moore vote, then a count: linear, and no ordering or hashing needed.
    let mut candidate: Option<&'a T> = None;
    let mut count = 0usize;
    for &v in values {
        match candidate {
            Some(c) if c == v => count += 1,
            _ if count == 0 => {
                candidate = Some(v);
                count = 1;
            }
            _ => count -= 1,
        }
    }
    let c = candidate?;
    (values.iter().filter(|&&v| v == c).count() * 2 > values.len()).then_some(c)
}

/// The median of `xs` (the mean of the middle two for an even count); `None` if empty.
pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 })
}

/// The 2f+1 and 3f+1 arithmetic over the verdicts. A replica that cannot be told counts
/// as faulty: the quorum cannot lean on it.
pub fn cluster(replicas: &[ReplicaVerdict]) -> Cluster {
    let n = replicas.len();
    let mut faulty: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in replicas.iter().filter(|r| r.verdict != Model::Healthy) {
        *faulty.entry(r.verdict.name()).or_default() += 1;
    }
    let down: usize = faulty.values().sum();
    let healthy = n - down;
    let crash_f = n.saturating_sub(1) / 2;
    let byzantine_f = n.saturating_sub(1) / 3;
    let crash_absorbs = crash_f as i64 - down as i64;
    let byzantine_absorbs = byzantine_f as i64 - down as i64;
    let listed: Vec<String> = faulty.iter().map(|(m, k)| format!("{k} {m}")).collect();
    let mut line = format!("{n} replicas, {healthy} healthy");
    if !listed.is_empty() {
        line.push_str(&format!(" ({})", listed.join(", ")));
    }
    let majority = n / 2 + 1;
    if crash_absorbs >= 0 {
        line.push_str(&format!(
            "; a majority quorum ({majority} of {n}, 2f+1 with f={crash_f}) holds and absorbs {crash_absorbs} more \
             crash, omission or timing failure{}",
            if crash_absorbs == 1 { "" } else { "s" }
        ));
    } else {
        line.push_str(&format!("; a majority quorum ({majority} of {n}) is lost: {down} replicas are out"));
    }
    let byzantine = faulty.get("byzantine").copied().unwrap_or(0);
    if byzantine_absorbs >= 0 {
        line.push_str(&format!("; a Byzantine quorum (3f+1 with f={byzantine_f}) absorbs {byzantine_absorbs} more"));
    } else {
        line.push_str(&format!("; past what 3f+1 tolerates (f={byzantine_f} for {n} replicas)"));
    }
    if byzantine > 0 {
        line.push_str(&format!(
            "; {byzantine} Byzantine replica{} in a crash-tolerant protocol void its safety: fence first",
            if byzantine == 1 { "" } else { "s" }
        ));
    }
    Cluster { replicas: n, healthy, faulty, crash_f, crash_absorbs, byzantine_f, byzantine_absorbs, line }
}

/// The transport state a replica's last sample says, if any.
pub fn transport(state: &ReplicaState) -> Option<Transport> {
    match state.get(Signal::Transport).and_then(Series::last) {
        Some((_, Value::Transport(t))) => Some(*t),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
