//! Two-phase commit as a Faultline workload, written against the public API only: the
//! state machines (a coordinator and `n` participants), the `[two-phase]` table, three
//! checkers, the report row and its tables. Registering it (`src/main.rs`) gives it
//! scenario files, `run`, `sweep`, `--trace`, `--case`, `--set`, `--vary`, swarms, exit
//! codes and `reproduce:` lines from Faultline's own command line.
//!
//! The protocol (Gray, 1978), with the crash-recovery discipline that makes it safe: the
//! coordinator sends `Prepare`, each participant durably records its vote and answers; the
//! coordinator commits when every vote is yes (aborts on a no or a timeout), records the
//! decision durably *before* it tells anyone, and resends it until every participant
//! acknowledges. A coordinator that restarts while votes were out aborts (presumed abort);
//! a participant that voted yes and hears nothing asks the coordinator, again and again.
//! That is 2PC's famous weakness: while the coordinator is down, a participant that voted
//! yes can neither commit nor abort. The checkers say so.
//!
//! Properties:
//! - **atomicity** (always): no two nodes decide a transaction differently;
//! - **commit-validity** (always): nobody commits a transaction some participant did not
//!   vote yes on (before the commit);
//! - **eventually-decides** (eventually): once the faults have healed, every participant
//!   that voted yes decides within the liveness budget (participants silenced for good are
//!   excused; see [`eventually_decides`]). A coordinator that crashes for good breaks it:
//!   exit code 3.
//!
//! `heuristic = "commit-on-timeout"` breaks the protocol on purpose: a participant in doubt
//! commits on its own after `timeout_ms` (an XA "heuristic decision"). Lose one decision
//! and atomicity goes: the checkers catch it (exit code 1).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use faultline::check::Violation;
use faultline::fault::{Fault, FaultKind};
use faultline::protocol::{Context, Message, NodeId, Protocol, TimerId};
use faultline::rng::SimRng;
use faultline::scenario::Scenario;
use faultline::scenario::validate::{Check, FieldPath, Invalid, bad, count_or, millis_or};
use faultline::sim::{Observed, StopReason};
use faultline::time::{Span, Time};
use faultline::trace::Tracer;
use faultline::workload::{Merge, Table, Tally, Workload};
use serde::{Deserialize, Serialize};

/// The coordinator is node 0; participant `i` is node `i + 1`.
pub const COORDINATOR: NodeId = NodeId(0);

/// The validated `[two-phase]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub participants: usize,
    pub transactions: u64,
    /// How long the coordinator waits for votes, and a participant in doubt before it asks
    /// again (or, with the heuristic, commits).
    pub timeout: Span,
    /// Participant `i` votes no on transaction `t` when `(t + i) % no_every == 0`; 0: never.
    pub no_every: u64,
    /// The deliberately broken variant: commit on timeout when in doubt.
    pub heuristic_commit: bool,
    /// After the faults heal, a participant in doubt must decide within this.
    pub liveness: Span,
}

#[derive(Clone, Debug)]
pub enum Msg {
    Prepare { t: u64 },
    Vote { t: u64, yes: bool },
    Decision { t: u64, commit: bool },
    Ack { t: u64 },
    Query { t: u64 },
}

impl Message for Msg {
    /// What a Byzantine node can change: a vote or a decision, to its opposite.
    fn tamper(&mut self, _rng: &mut SimRng) -> bool {
        match self {
            Msg::Vote { yes: b, .. } | Msg::Decision { commit: b, .. } => {
                *b = !*b;
                true
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Timer {
    Votes(u64),
    Resend(u64),
    InDoubt(u64),
}

/// What the checkers read.
#[derive(Clone, Debug)]
pub enum Obs {
    Started(u64),
    Voted { t: u64, yes: bool },
    Decided { t: u64, commit: bool },
}

#[derive(Clone)]
pub enum Node {
    Coordinator(Coordinator),
    Participant { index: u64, config: Config },
}

/// The coordinator's state. Its durable log (`log`) is one byte per decided transaction,
/// `C` or `A`, then `?` while a transaction's votes are out.
#[derive(Clone)]
pub struct Coordinator {
    config: Config,
    current: u64,
    votes: Vec<Option<bool>>,
    decisions: Vec<bool>,
    acked: Vec<bool>,
}

impl Coordinator {
    fn broadcast(&self, ctx: &mut Context<'_, Node>, msg: &Msg) {
        for p in 0..self.config.participants {
            ctx.send(NodeId(p as u32 + 1), msg.clone());
        }
    }

    fn log(&self, voting: bool) -> Vec<u8> {
        let mut log: Vec<u8> = self.decisions.iter().map(|&c| if c { b'C' } else { b'A' }).collect();
        if voting {
            log.push(b'?');
        }
        log
    }

    fn start(&mut self, ctx: &mut Context<'_, Node>, t: u64) {
        if t > self.config.transactions {
            return;
        }
        self.current = t;
        self.votes = vec![None; self.config.participants];
        ctx.persist("log", self.log(true));
        ctx.observe(Obs::Started(t));
        self.broadcast(ctx, &Msg::Prepare { t });
        ctx.set_timer(self.config.timeout, Timer::Votes(t));
    }

    /// Records the decision durably, then tells everyone, until everyone has acknowledged.
    fn decide(&mut self, ctx: &mut Context<'_, Node>, commit: bool) {
        let t = self.current;
        self.decisions.push(commit);
        ctx.persist("log", self.log(false));
        ctx.observe(Obs::Decided { t, commit });
        self.acked = vec![false; self.config.participants];
        self.broadcast(ctx, &Msg::Decision { t, commit });
        ctx.set_timer(self.config.timeout, Timer::Resend(t));
    }

    fn voting(&self) -> bool {
        self.current > self.decisions.len() as u64
    }
}

impl Protocol for Node {
    type Msg = Msg;
    type Timer = Timer;
    type Obs = Obs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        let c = match self {
            Node::Coordinator(c) => c,
            Node::Participant { config, .. } => {
                // Restarted with a yes vote on disk and no decision: in doubt again, so
                // ask the coordinator again (its timers died with it).
                for t in 1..=config.transactions {
                    let voted_yes = ctx.read(&format!("vote/{t}")).is_some_and(|v| v == [1]);
                    if voted_yes && ctx.read(&format!("decided/{t}")).is_none() {
                        ctx.set_timer(config.timeout, Timer::InDoubt(t));
                    }
                }
                return;
            }
        };
        let log = ctx.read("log").unwrap_or_default();
        c.decisions = log.iter().filter(|&&b| b != b'?').map(|&b| b == b'C').collect();
        c.current = c.decisions.len() as u64;
        if log.last() == Some(&b'?') {
            // Restarted with votes out: presumed abort.
            c.current += 1;
            c.decide(ctx, false);
        } else if c.current > 0 {
            // Restarted after a decision: make sure everyone heard it.
            c.acked = vec![false; c.config.participants];
            let (t, commit) = (c.current, c.decisions[c.current as usize - 1]);
            c.broadcast(ctx, &Msg::Decision { t, commit });
            ctx.set_timer(c.config.timeout, Timer::Resend(t));
        } else {
            c.start(ctx, 1);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Msg) {
        match self {
            Node::Coordinator(c) => {
                let p = from.index().wrapping_sub(1);
                if p >= c.config.participants {
                    return;
                }
                match msg {
                    Msg::Vote { t, yes } if t == c.current && c.voting() => {
                        c.votes[p] = Some(yes);
                        if !yes {
                            c.decide(ctx, false);
                        } else if c.votes.iter().all(|v| *v == Some(true)) {
                            c.decide(ctx, true);
                        }
                    }
                    Msg::Ack { t } if t == c.current && !c.voting() => {
                        c.acked[p] = true;
                        if c.acked.iter().all(|&a| a) {
                            c.start(ctx, t + 1);
                        }
                    }
                    Msg::Query { t } if t >= 1 && t <= c.decisions.len() as u64 => {
                        ctx.send(from, Msg::Decision { t, commit: c.decisions[t as usize - 1] });
                    }
                    _ => {}
                }
            }
            Node::Participant { index, config } => match msg {
                // A decision can overtake its prepare on the network: then there is nothing
                // left to vote on.
                Msg::Prepare { t } if ctx.read(&format!("decided/{t}")).is_some() => {}
                Msg::Prepare { t } => {
                    let key = format!("vote/{t}");
                    let yes = match ctx.read(&key) {
                        Some(v) => v == [1],
                        None => {
                            let yes = config.no_every == 0 || (t + *index) % config.no_every != 0;
                            ctx.persist(&key, vec![yes as u8]);
                            ctx.observe(Obs::Voted { t, yes });
                            if yes {
                                ctx.set_timer(config.timeout, Timer::InDoubt(t));
                            } else {
                                // A no voter knows the outcome already.
                                ctx.persist(&format!("decided/{t}"), vec![0]);
                                ctx.observe(Obs::Decided { t, commit: false });
                            }
                            yes
                        }
                    };
                    ctx.send(COORDINATOR, Msg::Vote { t, yes });
                }
                Msg::Decision { t, commit } => {
                    let key = format!("decided/{t}");
                    if ctx.read(&key).is_none() {
                        ctx.persist(&key, vec![commit as u8]);
                        ctx.observe(Obs::Decided { t, commit });
                    }
                    ctx.send(COORDINATOR, Msg::Ack { t });
                }
                _ => {}
            },
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, timer: Timer) {
        match (self, timer) {
            (Node::Coordinator(c), Timer::Votes(t)) if t == c.current && c.voting() => c.decide(ctx, false),
            (Node::Coordinator(c), Timer::Resend(t)) if t == c.current && !c.voting() => {
                if c.acked.iter().all(|&a| a) {
                    return;
                }
                let commit = c.decisions[t as usize - 1];
                for (p, _) in c.acked.iter().enumerate().filter(|(_, a)| !**a) {
                    ctx.send(NodeId(p as u32 + 1), Msg::Decision { t, commit });
                }
                ctx.set_timer(c.config.timeout, Timer::Resend(t));
            }
            (Node::Participant { config, .. }, Timer::InDoubt(t)) => {
                let key = format!("decided/{t}");
                if ctx.read(&key).is_some() {
                    return;
                }
                if config.heuristic_commit {
                    ctx.persist(&key, vec![1]);
                    ctx.observe(Obs::Decided { t, commit: true });
                } else {
                    ctx.send(COORDINATOR, Msg::Query { t });
                    ctx.set_timer(config.timeout, Timer::InDoubt(t));
                }
            }
            _ => {}
        }
    }
}

/// Atomicity and commit validity: the first violation of each.
pub fn safety(obs: &[Observed<Obs>], names: &[String]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut first: BTreeMap<u64, (bool, NodeId)> = BTreeMap::new();
    let mut votes: BTreeMap<u64, BTreeMap<NodeId, bool>> = BTreeMap::new();
    let (mut atomicity, mut validity) = (false, false);
    let word = |c: bool| if c { "committed" } else { "aborted" };
    for o in obs {
        match o.obs {
            Obs::Voted { t, yes } => {
                votes.entry(t).or_default().insert(o.node, yes);
            }
            Obs::Decided { t, commit } => {
                let (before, by) = *first.entry(t).or_insert((commit, o.node));
                if before != commit && !atomicity {
                    atomicity = true;
                    let detail = format!(
                        "{} {} transaction {t}, which {} {}",
                        names[o.node.index()],
                        word(commit),
                        names[by.index()],
                        word(before)
                    );
                    found.push(Violation::always("atomicity", o.time, Some(o.node), detail));
                }
                let yes = votes.get(&t).map_or(0, |v| v.values().filter(|&&y| y).count());
                if commit && yes < names.len() - 1 && !validity {
                    validity = true;
                    let detail = format!(
                        "{} committed transaction {t} with {yes} of {} participants' yes votes",
                        names[o.node.index()],
                        names.len() - 1
                    );
                    found.push(Violation::always("commit-validity", o.time, Some(o.node), detail));
                }
            }
            Obs::Started(_) => {}
        }
    }
    found
}

/// Liveness: a participant that voted yes decides within `budget` of its vote, or of the
/// last fault healing if that came later. Participants silenced for good (crashed, paused,
/// half-open, or deaf or cut off from the coordinator with certainty, with no end) are
/// excused; faults that
/// still let messages through some of the time count as healed when they start, since
/// resending gets through them. The first pair that did not decide in time, among those
/// whose deadline the run reached (`end`), or every pair when the run went quiet (`end`
/// is `None`: nothing will ever happen again); `None` if none.
pub fn eventually_decides(
    obs: &[Observed<Obs>],
    faults: &[Fault],
    budget: Span,
    end: Option<Time>,
) -> Option<Violation> {
    let healed = faults.iter().map(|f| f.end.unwrap_or(f.start)).max().unwrap_or(Time::ZERO);
    let gone = |n: NodeId| {
        faults.iter().any(|f| {
            f.node == n
                && f.end.is_none()
                && match &f.kind {
                    FaultKind::Crash | FaultKind::FailStop | FaultKind::Pause | FaultKind::HalfOpen => true,
                    FaultKind::Omit { p, .. } | FaultKind::Gray { p, .. } => *p >= 1.0,
                    // Cut off from the coordinator, the only peer a participant talks to.
                    FaultKind::Partition { p, peers, .. } => *p >= 1.0 && peers.contains(&COORDINATOR),
                    _ => false,
                }
        })
    };
    // (transaction, participant) -> when it voted yes, and when it decided.
    let mut pairs: BTreeMap<(u64, NodeId), (Time, Option<Time>)> = BTreeMap::new();
    for o in obs.iter().filter(|o| o.node != COORDINATOR) {
        match o.obs {
            Obs::Voted { t, yes: true } => {
                pairs.entry((t, o.node)).or_insert((o.time, None));
            }
            Obs::Decided { t, .. } => {
                if let Some((_, decided)) = pairs.get_mut(&(t, o.node)) {
                    decided.get_or_insert(o.time);
                }
            }
            _ => {}
        }
    }
    let ((t, node), due) = pairs
        .into_iter()
        .filter(|((_, n), _)| !gone(*n))
        .map(|(pair, (voted, decided))| (pair, voted.max(healed) + budget, decided))
        .filter(|&(_, due, decided)| match end {
            Some(end) => due <= end && decided.is_none_or(|d| d > due),
            None => decided.is_none_or(|d| d > due),
        })
        .map(|(pair, due, _)| (pair, due))
        .min_by_key(|&(_, due)| due)?;
    let detail = format!(
        "participant {} voted yes on transaction {t} and was still in doubt {budget:?} later (faults healed at {healed:?})",
        node.index() - 1
    );
    Some(Violation::eventually("eventually-decides", due, Some(node), detail))
}

/// One case under one seed.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub case: String,
    pub stop: StopReason,
    pub end_ms: f64,
    /// Transactions the coordinator started, committed and aborted.
    pub started: u64,
    pub committed: u64,
    pub aborted: u64,
    /// (participant, transaction) pairs that voted yes and never decided.
    pub in_doubt: u64,
    pub messages: u64,
    pub violations: Vec<Violation>,
}

/// What a run adds to a sweep row.
pub struct Sums {
    started: u64,
    committed: u64,
    in_doubt: u64,
    messages: u64,
}

impl Merge for Sums {
    fn merge(self, o: Sums) -> Sums {
        Sums {
            started: self.started + o.started,
            committed: self.committed + o.committed,
            in_doubt: self.in_doubt + o.in_doubt,
            messages: self.messages + o.messages,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    #[serde(flatten)]
    pub tally: Tally,
    pub started: u64,
    pub committed_fraction: f64,
    pub in_doubt: u64,
    pub messages_per_transaction: f64,
}

/// The table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTwoPhase {
    pub participants: Option<i64>,
    pub transactions: Option<i64>,
    pub timeout_ms: Option<f64>,
    pub no_every: Option<i64>,
    /// none or commit-on-timeout.
    pub heuristic: Option<String>,
    pub liveness_budget_ms: Option<f64>,
    pub duration_ms: Option<f64>,
}

fn validate(raw: &RawTwoPhase, at: &FieldPath) -> Check<Table<Config>> {
    let timeout = millis_or(raw.timeout_ms, &at.key("timeout_ms"), Span::from_millis(50))?;
    let heuristic_commit = match raw.heuristic.as_deref() {
        None | Some("none") => false,
        Some("commit-on-timeout") => true,
        Some(other) => {
            return bad(
                at.key("heuristic"),
                format!("unknown heuristic {other:?} (expected none or commit-on-timeout)"),
            );
        }
    };
    let config = Config {
        participants: count_or(raw.participants, &at.key("participants"), 1, 64, 3)? as usize,
        transactions: count_or(raw.transactions, &at.key("transactions"), 1, 100_000, 20)?,
        timeout,
        no_every: count_or(raw.no_every, &at.key("no_every"), 0, 1_000_000, 0)?,
        heuristic_commit,
        liveness: millis_or(
            raw.liveness_budget_ms,
            &at.key("liveness_budget_ms"),
            Span::from_nanos(timeout.as_nanos().saturating_mul(20)),
        )?,
    };
    let duration = millis_or(raw.duration_ms, &at.key("duration_ms"), Span::from_secs(10))?;
    Ok(Table { config, duration: Some(duration) })
}

/// Two-phase commit: `protocol = "two-phase"`, its table `[two-phase]`.
pub struct TwoPhase;

impl Workload for TwoPhase {
    const NAME: &'static str = "two-phase";
    const SUMMARY: &'static str = "two-phase commit: a coordinator, n participants, durable votes and decisions";
    type Raw = RawTwoPhase;
    type Config = Config;
    type Row = Row;
    type Sums = Sums;
    type SweepRow = SweepRow;

    fn validate(raw: &RawTwoPhase, at: &FieldPath, _seed: Option<u64>) -> Result<Table<Config>, Invalid> {
        validate(raw, at)
    }

    fn node_names(config: &Config) -> Vec<String> {
        std::iter::once("coord".to_owned()).chain((0..config.participants).map(|i| format!("p{i}"))).collect()
    }

    fn run(
        scenario: &Scenario,
        config: &Config,
        case: usize,
        seed: u64,
        tracer: Option<Box<dyn Tracer>>,
    ) -> (Row, Option<Box<dyn Tracer>>) {
        let coordinator = Node::Coordinator(Coordinator {
            config: config.clone(),
            current: 0,
            votes: vec![],
            decisions: vec![],
            acked: vec![],
        });
        let participants =
            (0..config.participants as u64).map(|index| Node::Participant { index, config: config.clone() });
        let mut sim = scenario.build_with(std::iter::once(coordinator).chain(participants).collect(), case, seed);
        if let Some(t) = tracer {
            sim.set_tracer(t);
        }
        let stop = sim.run();
        let end = sim.now();
        let obs: Vec<Observed<Obs>> = sim.drain_observations().collect();
        let names = Self::node_names(config);
        let mut violations = safety(&obs, &names);
        let quiet = matches!(stop, StopReason::Quiescent);
        let reached = if quiet { None } else { Some(end) };
        violations.extend(eventually_decides(&obs, &scenario.faults(case, seed), config.liveness, reached));
        let by_coordinator = |want: bool| {
            obs.iter()
                .filter(|o| o.node == COORDINATOR && matches!(o.obs, Obs::Decided { commit, .. } if commit == want))
                .count() as u64
        };
        let mut doubt: BTreeMap<(u64, NodeId), bool> = BTreeMap::new();
        for o in obs.iter().filter(|o| o.node != COORDINATOR) {
            match o.obs {
                Obs::Voted { t, yes: true } => {
                    doubt.insert((t, o.node), true);
                }
                Obs::Decided { t, .. } => {
                    doubt.insert((t, o.node), false);
                }
                _ => {}
            }
        }
        let row = Row {
            case: scenario.cases[case].name.clone(),
            stop,
            end_ms: end.as_millis_f64(),
            started: obs.iter().filter(|o| matches!(o.obs, Obs::Started(_))).count() as u64,
            committed: by_coordinator(true),
            aborted: by_coordinator(false),
            in_doubt: doubt.values().filter(|&&d| d).count() as u64,
            messages: sim.stats().sends,
            violations,
        };
        (row, sim.take_tracer())
    }

    fn violations(row: &Row) -> Vec<Violation> {
        row.violations.clone()
    }

    fn table(rows: &[Row]) -> String {
        let mut out = String::new();
        for r in rows {
            let _ = writeln!(
                out,
                "{:<22} started={} committed={} aborted={} in_doubt={} messages={} end={:.1}ms",
                r.case, r.started, r.committed, r.aborted, r.in_doubt, r.messages, r.end_ms
            );
            for v in &r.violations {
                let _ = writeln!(out, "  VIOLATION {} at {:.3} ms: {}", v.property, v.t_ns as f64 / 1e6, v.detail);
            }
        }
        out
    }

    fn sums(row: &Row) -> Sums {
        Sums { started: row.started, committed: row.committed, in_doubt: row.in_doubt, messages: row.messages }
    }

    fn sweep_row(tally: &Tally, s: Sums) -> SweepRow {
        SweepRow {
            tally: tally.clone(),
            started: s.started,
            committed_fraction: s.committed as f64 / s.started.max(1) as f64,
            in_doubt: s.in_doubt,
            messages_per_transaction: s.messages as f64 / s.started.max(1) as f64,
        }
    }

    fn sweep_table(rows: &[SweepRow]) -> String {
        let mut out = String::new();
        for r in rows {
            let t = &r.tally;
            let _ = write!(
                out,
                "{:<22} {}seeds={} committed={:.4} in_doubt={} messages_per_txn={:.1} violating_seeds={}",
                t.case,
                t.vary.as_deref().map_or(String::new(), |v| format!("{v} ")),
                t.seeds,
                r.committed_fraction,
                r.in_doubt,
                r.messages_per_transaction,
                t.violating_seeds
            );
            for (p, n) in &t.by_property {
                let _ = write!(out, " {p}={n}");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, node: u32, obs: Obs) -> Observed<Obs> {
        Observed { time: Time::ZERO + Span::from_millis(ms), node: NodeId(node), obs }
    }

    fn names() -> Vec<String> {
        TwoPhase::node_names(&Config {
            participants: 2,
            transactions: 1,
            timeout: Span::from_millis(10),
            no_every: 0,
            heuristic_commit: false,
            liveness: Span::from_millis(100),
        })
    }

    #[test]
    fn safety_names_a_split_decision_and_a_commit_without_every_yes() {
        let obs = [
            at(1, 1, Obs::Voted { t: 1, yes: true }),
            at(2, 2, Obs::Voted { t: 1, yes: false }),
            at(3, 0, Obs::Decided { t: 1, commit: false }),
            at(4, 1, Obs::Decided { t: 1, commit: true }),
        ];
        let found = safety(&obs, &names());
        let props: Vec<&str> = found.iter().map(|v| v.property).collect();
        assert_eq!(props, ["atomicity", "commit-validity"]);
        assert_eq!(found[0].detail, "p0 committed transaction 1, which coord aborted");
        assert_eq!((found[0].node, found[0].t_ns), (Some(NodeId(1)), 4_000_000));
        // Agreement on abort is fine.
        assert!(safety(&obs[..3], &names()).is_empty());
    }

    #[test]
    fn a_yes_voter_left_in_doubt_past_the_budget_breaks_liveness_unless_the_run_ended_first() {
        let obs = [at(1, 1, Obs::Voted { t: 1, yes: true })];
        let budget = Span::from_millis(100);
        let late = Time::ZERO + Span::from_millis(500);
        let v = eventually_decides(&obs, &[], budget, Some(late)).expect("a violation");
        assert_eq!(
            (v.property, v.class, v.t_ns),
            ("eventually-decides", faultline::check::Class::Eventually, 101_000_000)
        );
        let early = Some(Time::ZERO + Span::from_millis(50));
        assert!(eventually_decides(&obs, &[], budget, early).is_none(), "inconclusive");
        // A run that went quiet early will never decide: not inconclusive.
        assert!(eventually_decides(&obs, &[], budget, None).is_some(), "quiet");
        let decided = [obs[0].clone(), at(90, 1, Obs::Decided { t: 1, commit: true })];
        assert!(eventually_decides(&decided, &[], budget, Some(late)).is_none());
        assert!(eventually_decides(&decided, &[], budget, None).is_none());
        // Deaf for good: excused. Lossy for good: resends get through, so not excused.
        let deaf = |p: f64| Fault {
            node: NodeId(1),
            kind: FaultKind::Omit { direction: faultline::fault::Direction::Receive, p },
            start: Time::ZERO + Span::from_millis(2),
            end: None,
        };
        assert!(eventually_decides(&obs, &[deaf(1.0)], budget, Some(late)).is_none(), "excused");
        assert!(eventually_decides(&obs, &[deaf(0.3)], budget, Some(late)).is_some(), "not excused");
    }
}
