//! A Raft server: election (with PreVote and CheckQuorum when configured), replication,
//! commitment, the key-value state machine with client sessions, and the read paths.
//!
//! Replication follows etcd's `Progress`: each follower is in *probe* state (one append
//! outstanding, to find where its log matches the leader's) or *replicate* state (appends
//! pipelined, at most `max_inflight` unacknowledged, each of up to `max_batch` entries).
//! Heartbeats are empty AppendEntries, sent to every follower each `heartbeat`; their
//! answers move a follower from probe to replicate, or expose appends that were lost.
//! Links are not FIFO in the simulator, so a heartbeat sent while appends are in flight
//! names the follower's acknowledged index rather than the leader's optimistic one, and
//! does not get rejected for overtaking them.
//!
//! Every AppendEntries carries the leader's current heartbeat *round*; a reply echoes it.
//! The highest round a majority has echoed confirms leadership as of that round's start,
//! which is what ReadIndex waits for and what a lease counts from.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use rand::Rng;

use super::log::{LOG_LEN_KEY, META_KEY, Meta, encode_entry, encode_len, entry_key, load_log};
use super::wire::{Checksum, RaftMsg, Reply};
use super::{Canary, Command, LogEntry, Op, RaftConfig, RaftNode, RaftObs, RaftTimer, ReadPath};
use crate::protocol::{Context, NodeId, TimerId};
use crate::time::{Span, Time};

type Ctx<'a> = Context<'a, RaftNode>;

/// Heartbeat rounds whose start times a leader remembers, for its lease.
const ROUNDS_KEPT: usize = 64;
/// Client requests a leader keeps waiting at once (proposals, reads, fences, each).
const WAITING_MAX: usize = 4096;
/// A value as the state machine keeps it, with its writer's checksum.
type Stored = (u64, Option<Checksum>);

/// Writes remembered for stale reads: enough for seconds of a busy cluster.
const UNDO_KEPT: usize = 65_536;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking for PreVotes, without having raised its term.
    PreCandidate,
    Candidate,
    Leader,
}

/// What the state machine remembers per client: its last applied `seq` and the result.
#[derive(Clone, Debug, Default)]
struct Session {
    last_seq: u64,
    result: (Option<u64>, Option<Checksum>),
}

/// The leader's view of one follower.
#[derive(Clone, Debug)]
struct Peer {
    next: u64,
    matched: u64,
    /// Probe state: one append at a time until the logs are known to match.
    probe: bool,
    /// In probe state, an append is outstanding.
    paused: bool,
    /// Appends with entries not yet acknowledged: their last index and when they left.
    inflight: VecDeque<(u64, Time)>,
    acked_round: u64,
    last_heard: Option<Time>,
}

impl Peer {
    fn new(next: u64) -> Peer {
        Peer {
            next,
            matched: 0,
            probe: true,
            paused: false,
            inflight: VecDeque::new(),
            acked_round: 0,
            last_heard: None,
        }
    }
}

/// A client request the leader has yet to answer.
#[derive(Clone, Debug)]
struct Waiting {
    client: u32,
    seq: u64,
    op: Op,
    reply_to: NodeId,
}

#[derive(Clone, Debug)]
struct Read {
    waiting: Waiting,
    read_index: u64,
    round: u64,
}

#[derive(Clone, Debug)]
struct Fencing {
    waiting: Waiting,
    value: Option<u64>,
    checksum: Option<Checksum>,
    /// The term it was leader of when it asked.
    token: u64,
    decided: Time,
}

/// What only a leader has.
#[derive(Clone, Debug)]
struct Leadership {
    peers: Vec<Peer>,
    /// The index of this term's no-op: reads must wait until it commits.
    noop_index: u64,
    round: u64,
    round_starts: VecDeque<(u64, Time)>,
    /// Proposed client operations, by log index.
    proposals: Vec<(u64, Waiting)>,
    reads: Vec<Read>,
    heartbeat_timer: Option<TimerId>,
    check_quorum_timer: Option<TimerId>,
    progress_timer: Option<TimerId>,
}

fn term_at(log: &[LogEntry], index: u64) -> u64 {
    if index == 0 { 0 } else { log.get(index as usize - 1).map_or(0, |e| e.term) }
}

fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= WAITING_MAX {
        list.remove(0);
    }
    list.push(item);
}

#[derive(Clone)]
pub struct Server {
    config: Rc<RaftConfig>,
    me: u32,
    // Persistent state (Figure 2).
    term: u64,
    voted_for: Option<u32>,
    log: Vec<LogEntry>,
    // Volatile state.
    role: Role,
    leader: Option<u32>,
    last_leader_contact: Option<Time>,
    commit: u64,
    applied: u64,
    kv: BTreeMap<u32, (u64, Option<Checksum>)>,
    /// Recent writes, `(applied at, key, value before)`, oldest first: what a `stale` fault
    /// answers from (the chapter's wallet-5 serving last week's balance).
    undo: VecDeque<(Time, u32, Option<Stored>)>,
    sessions: Vec<Session>,
    votes: Vec<bool>,
    election_timer: Option<TimerId>,
    /// Appends written but not yet synced (only under the `AckBeforeFsync` canary).
    unsynced: bool,
    lead: Option<Box<Leadership>>,
    /// Answers waiting for the resource to accept this server's token. They outlive its
    /// leadership: once the resource accepted, the operation took effect there.
    fences: Vec<Fencing>,
}

impl Server {
    pub(super) fn new(config: Rc<RaftConfig>) -> Self {
        let (servers, clients) = (config.servers, config.clients);
        Server {
            config,
            me: 0,
            term: 0,
            voted_for: None,
            log: Vec::new(),
            role: Role::Follower,
            leader: None,
            last_leader_contact: None,
            commit: 0,
            applied: 0,
            kv: BTreeMap::new(),
            undo: VecDeque::new(),
            sessions: vec![Session::default(); clients],
            votes: vec![false; servers],
            election_timer: None,
            unsynced: false,
            lead: None,
            fences: Vec::new(),
        }
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn voted_for(&self) -> Option<u32> {
        self.voted_for
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this server knows of in its term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader.map(NodeId)
    }

    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// As leader: the highest index `peer`'s log is known to match (its acks).
    pub fn match_index(&self, peer: NodeId) -> Option<u64> {
        self.lead.as_ref()?.peers.get(peer.index()).map(|p| p.matched)
    }

    /// The state machine's value under `key`.
    pub fn value(&self, key: u32) -> Option<u64> {
        self.kv.get(&key).map(|&(v, _)| v)
    }

    fn last_index(&self) -> u64 {
        self.log.len() as u64
    }

    fn is_server(&self, node: NodeId) -> bool {
        node.index() < self.config.servers && node.0 != self.me
    }

    fn peers(&self) -> impl Iterator<Item = usize> + use<> {
        let me = self.me as usize;
        (0..self.config.servers).filter(move |&p| p != me)
    }

    pub(super) fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.me = ctx.me().0;
        if let Some(meta) = ctx.read(META_KEY).and_then(|b| Meta::decode(&b)) {
            self.term = meta.term;
            self.voted_for = meta.voted_for;
            if meta.led != 0 && meta.led == meta.term {
                // It was leader when it went down; it is not any more.
                ctx.observe(RaftObs::SteppedDown { term: meta.led });
                self.persist_meta(ctx);
                ctx.fsync();
            }
        }
        self.log = load_log(|k| ctx.read(k));
        if self.term == 0 && self.config.bootstrap_leader == Some(self.me as usize) {
            self.start_election(ctx);
        } else {
            self.reset_election_timer(ctx);
        }
    }

    pub(super) fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: RaftMsg) {
        let server = self.is_server(from);
        match msg {
            RaftMsg::RequestVote { term, last_index, last_term, pre_vote } if server => {
                self.on_request_vote(ctx, from, term, (last_term, last_index), pre_vote)
            }
            RaftMsg::Vote { term, granted, pre_vote } if server => self.on_vote(ctx, from, term, granted, pre_vote),
            RaftMsg::AppendEntries { term, prev_index, prev_term, entries, commit, round } if server => {
                self.on_append(ctx, from, term, (prev_index, prev_term), entries, commit, round)
            }
            RaftMsg::AppendReply { term, success, match_index, rejected, hint, last_index, round } if server => {
                self.on_append_reply(ctx, from, term, success, match_index, rejected, hint, last_index, round)
            }
            RaftMsg::ClientRequest { seq, op, checksum } => self.on_client_request(ctx, from, seq, op, checksum),
            RaftMsg::FenceAck { token, client, seq, accepted } if from == self.config.db() => {
                self.on_fence_ack(ctx, token, client, seq, accepted)
            }
            _ => {}
        }
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Ctx<'_>, id: TimerId, timer: RaftTimer) {
        match timer {
            RaftTimer::Election if self.election_timer == Some(id) => {
                self.election_timer = None;
                self.on_election_timeout(ctx);
            }
            RaftTimer::Heartbeat if self.role == Role::Leader => {
                self.start_round(ctx, false);
                let t = ctx.set_timer(self.config.heartbeat, RaftTimer::Heartbeat);
                if let Some(lead) = self.lead.as_deref_mut() {
                    lead.heartbeat_timer = Some(t);
                }
            }
            RaftTimer::CheckQuorum if self.role == Role::Leader => self.check_quorum(ctx),
            RaftTimer::Progress if self.role == Role::Leader => {
                let Some(lead) = self.lead.as_deref_mut() else { return };
                let last = self.log.len() as u64;
                let me = self.me as usize;
                let match_index = lead.peers.iter().enumerate().map(|(i, p)| if i == me { last } else { p.matched });
                ctx.observe(RaftObs::Progress {
                    term: self.term,
                    commit: self.commit,
                    match_index: match_index.collect(),
                });
                let every = Span::from_nanos(self.config.heartbeat.as_nanos().saturating_mul(10));
                lead.progress_timer = Some(ctx.set_timer(every, RaftTimer::Progress));
            }
            _ => {}
        }
    }

    // ----- Persistence -----

    /// Buffers `meta`; the caller fsyncs.
    fn persist_meta(&self, ctx: &mut Ctx<'_>) {
        let led = if self.role == Role::Leader { self.term } else { 0 };
        ctx.write(META_KEY, Meta { term: self.term, voted_for: self.voted_for, led }.encode());
    }

    /// Appends an entry to the leader's own log, durably.
    fn append_local(&mut self, ctx: &mut Ctx<'_>, cmd: Command, checksum: Option<Checksum>) -> u64 {
        self.log.push(LogEntry { term: self.term, cmd, checksum });
        let index = self.last_index();
        ctx.write(&entry_key(index), encode_entry(&self.log[index as usize - 1]));
        ctx.write(LOG_LEN_KEY, encode_len(index));
        ctx.fsync();
        index
    }

    // ----- Elections -----

    fn reset_election_timer(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(t) = self.election_timer.take() {
            ctx.cancel_timer(t);
        }
        let base = self.config.election_timeout.as_nanos().max(1);
        let width = self.config.election_timeout_max.map_or(base, |max| max.as_nanos().saturating_sub(base).max(1));
        let after = Span::from_nanos(base + ctx.rng().next_u64() % width);
        self.election_timer = Some(ctx.set_timer(after, RaftTimer::Election));
    }

    fn on_election_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if self.role == Role::Leader {
            return;
        }
        self.leader = None;
        if self.config.pre_vote {
            self.role = Role::PreCandidate;
            self.campaign(ctx, true);
        } else {
            self.start_election(ctx);
        }
    }

    fn start_election(&mut self, ctx: &mut Ctx<'_>) {
        self.term += 1;
        self.voted_for = Some(self.me);
        self.role = Role::Candidate;
        self.leader = None;
        self.persist_meta(ctx);
        ctx.fsync();
        self.campaign(ctx, false);
    }

    fn campaign(&mut self, ctx: &mut Ctx<'_>, pre_vote: bool) {
        self.votes.iter_mut().for_each(|v| *v = false);
        self.votes[self.me as usize] = true;
        self.reset_election_timer(ctx);
        let term = if pre_vote { self.term + 1 } else { self.term };
        let (last_index, last_term) = (self.last_index(), term_at(&self.log, self.last_index()));
        for p in self.peers() {
            ctx.send(NodeId(p as u32), RaftMsg::RequestVote { term, last_index, last_term, pre_vote });
        }
        self.tally(ctx);
    }

    fn tally(&mut self, ctx: &mut Ctx<'_>) {
        if self.votes.iter().filter(|&&v| v).count() < self.config.majority() {
            return;
        }
        match self.role {
            Role::PreCandidate => self.start_election(ctx),
            Role::Candidate => self.become_leader(ctx),
            _ => {}
        }
    }

    /// Whether this server is, or recently heard from, a leader of its term.
    fn has_leader(&self, now: Time) -> bool {
        self.role == Role::Leader
            || (self.leader.is_some()
                && self.last_leader_contact.is_some_and(|t| now.since(t) < self.config.election_timeout))
    }

    fn on_request_vote(&mut self, ctx: &mut Ctx<'_>, from: NodeId, term: u64, last: (u64, u64), pre_vote: bool) {
        let up_to_date = last >= (term_at(&self.log, self.last_index()), self.last_index());
        let has_leader = self.has_leader(ctx.now());
        if pre_vote {
            // Thesis §9.6: a PreVote changes nothing here, and is granted only to a log at
            // least as up to date, by a server that has not heard from a leader within an
            // election timeout.
            let granted = term > self.term && up_to_date && !has_leader;
            let term = if granted { term } else { self.term };
            ctx.send(from, RaftMsg::Vote { term, granted, pre_vote: true });
            return;
        }
        if term > self.term && self.config.check_quorum && has_leader {
            // etcd's leader stickiness under CheckQuorum: a server that hears from a leader
            // does not help depose it, nor learn the disrupter's term.
            ctx.send(from, RaftMsg::Vote { term: self.term, granted: false, pre_vote: false });
            return;
        }
        if term > self.term {
            self.become_follower(ctx, term);
        }
        let granted = term == self.term && up_to_date && self.voted_for.is_none_or(|v| v == from.0);
        if granted {
            self.voted_for = Some(from.0);
            self.persist_meta(ctx);
            ctx.fsync();
            self.reset_election_timer(ctx);
        }
        ctx.send(from, RaftMsg::Vote { term: self.term, granted, pre_vote: false });
    }

    fn on_vote(&mut self, ctx: &mut Ctx<'_>, from: NodeId, term: u64, granted: bool, pre_vote: bool) {
        if term > self.term && !(pre_vote && granted) {
            self.become_follower(ctx, term);
            return;
        }
        let counts = granted
            && match self.role {
                Role::PreCandidate => pre_vote && term == self.term + 1,
                Role::Candidate => !pre_vote && term == self.term,
                _ => false,
            };
        if counts {
            self.votes[from.index()] = true;
            self.tally(ctx);
        }
    }

    /// Becomes a follower, of `term` if it is higher than the current one.
    fn become_follower(&mut self, ctx: &mut Ctx<'_>, term: u64) {
        let was = self.role;
        self.step_down(ctx);
        let newer = term > self.term;
        if newer {
            self.term = term;
            self.voted_for = None;
            self.leader = None;
        }
        if newer || was == Role::Leader {
            self.persist_meta(ctx);
            ctx.fsync();
        }
        if was != Role::Follower || self.election_timer.is_none() {
            self.reset_election_timer(ctx);
        }
    }

    /// Leaves leadership (or candidacy) in the current term.
    fn step_down(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(lead) = self.lead.take() {
            for t in [lead.heartbeat_timer, lead.check_quorum_timer, lead.progress_timer].into_iter().flatten() {
                ctx.cancel_timer(t);
            }
        }
        if self.role == Role::Leader {
            ctx.observe(RaftObs::SteppedDown { term: self.term });
            self.leader = None;
        }
        self.role = Role::Follower;
    }

    fn become_leader(&mut self, ctx: &mut Ctx<'_>) {
        self.role = Role::Leader;
        self.leader = Some(self.me);
        if let Some(t) = self.election_timer.take() {
            ctx.cancel_timer(t);
        }
        ctx.observe(RaftObs::Leader { term: self.term, log_terms: self.log.iter().map(|e| e.term).collect() });
        let noop_index = self.last_index() + 1;
        let heartbeat_timer = Some(ctx.set_timer(self.config.heartbeat, RaftTimer::Heartbeat));
        let check_quorum_timer =
            self.config.check_quorum.then(|| ctx.set_timer(self.config.election_timeout, RaftTimer::CheckQuorum));
        let every = Span::from_nanos(self.config.heartbeat.as_nanos().saturating_mul(10));
        let progress_timer = Some(ctx.set_timer(every, RaftTimer::Progress));
        self.lead = Some(Box::new(Leadership {
            peers: vec![Peer::new(noop_index); self.config.servers],
            noop_index,
            round: 0,
            round_starts: VecDeque::new(),
            proposals: Vec::new(),
            reads: Vec::new(),
            heartbeat_timer,
            check_quorum_timer,
            progress_timer,
        }));
        if self.config.fences() {
            // Fence at once: the resource learns the new token before any older leader can
            // use its own (a fence that confirms nothing: its ack matches no waiting op).
            ctx.send(self.config.db(), RaftMsg::Fence { token: self.term, client: u32::MAX, seq: 0 });
        }
        // The meta (now naming this term as led) and the no-op go to disk in one fsync.
        self.persist_meta(ctx);
        self.append_local(ctx, Command::Noop, None);
        self.start_round(ctx, true);
        self.advance_commit(ctx);
    }

    fn check_quorum(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        let Some(lead) = self.lead.as_deref_mut() else { return };
        let me = self.me as usize;
        let window = self.config.election_timeout;
        let active = 1 + lead
            .peers
            .iter()
            .enumerate()
            .filter(|&(i, p)| i != me && p.last_heard.is_some_and(|t| now.since(t) <= window))
            .count();
        if active >= self.config.majority() {
            lead.check_quorum_timer = Some(ctx.set_timer(window, RaftTimer::CheckQuorum));
            return;
        }
        self.step_down(ctx);
        self.persist_meta(ctx);
        ctx.fsync();
        self.reset_election_timer(ctx);
    }

    // ----- Replication, leader side -----

    /// Starts a heartbeat round: to every follower an append from its next index
    /// (`with_entries`, when a term begins) or an empty heartbeat.
    fn start_round(&mut self, ctx: &mut Ctx<'_>, with_entries: bool) {
        let now = ctx.now();
        let Some(lead) = self.lead.as_deref_mut() else { return };
        lead.round += 1;
        if lead.round_starts.len() >= ROUNDS_KEPT {
            lead.round_starts.pop_front();
        }
        lead.round_starts.push_back((lead.round, now));
        for p in self.peers() {
            if with_entries {
                self.send_append(ctx, p);
            } else {
                self.send_heartbeat(ctx, p);
            }
        }
        self.serve_reads(ctx);
    }

    fn send_append(&mut self, ctx: &mut Ctx<'_>, p: usize) {
        let now = ctx.now();
        let Some(lead) = self.lead.as_deref_mut() else { return };
        let peer = &mut lead.peers[p];
        let last = self.log.len() as u64;
        let prev = peer.next.saturating_sub(1).min(last);
        let end = last.min(prev + self.config.max_batch.max(1) as u64);
        let entries = self.log[prev as usize..end as usize].to_vec();
        if !entries.is_empty() {
            if peer.probe {
                peer.paused = true;
            } else {
                peer.next = end + 1;
                peer.inflight.push_back((end, now));
            }
        }
        let msg = RaftMsg::AppendEntries {
            term: self.term,
            prev_index: prev,
            prev_term: term_at(&self.log, prev),
            entries,
            commit: self.commit,
            round: lead.round,
        };
        ctx.send(NodeId(p as u32), msg);
    }

    fn send_heartbeat(&mut self, ctx: &mut Ctx<'_>, p: usize) {
        let now = ctx.now();
        let Some(lead) = self.lead.as_deref() else { return };
        let peer = &lead.peers[p];
        // With an append sent within the last heartbeat still unanswered, name the index
        // the follower has acknowledged: naming `next - 1` would be refused if this
        // heartbeat overtook the append. Otherwise `next - 1`, which exposes lost appends.
        let recent = !peer.probe && peer.inflight.back().is_some_and(|&(_, t)| now.since(t) < self.config.heartbeat);
        let prev = if recent { peer.matched } else { peer.next.saturating_sub(1) }.min(self.last_index());
        let msg = RaftMsg::AppendEntries {
            term: self.term,
            prev_index: prev,
            prev_term: term_at(&self.log, prev),
            entries: Vec::new(),
            commit: self.commit,
            round: lead.round,
        };
        ctx.send(NodeId(p as u32), msg);
    }

    /// Sends follower `p` what it may receive now: one probe, or appends up to the cap.
    fn maybe_send(&mut self, ctx: &mut Ctx<'_>, p: usize) {
        loop {
            let Some(lead) = self.lead.as_deref() else { return };
            let peer = &lead.peers[p];
            let room = if peer.probe { !peer.paused } else { peer.inflight.len() < self.config.max_inflight.max(1) };
            if !room || peer.next > self.last_index() {
                return;
            }
            let probe = peer.probe;
            self.send_append(ctx, p);
            if probe {
                return;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_reply(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: NodeId,
        term: u64,
        success: bool,
        match_index: u64,
        rejected: u64,
        hint: u64,
        last_index: u64,
        round: u64,
    ) {
        if term > self.term {
            self.become_follower(ctx, term);
            return;
        }
        let now = ctx.now();
        let Some(lead) = self.lead.as_deref_mut() else { return };
        if term != self.term {
            return; // an answer to an append of an earlier term
        }
        let p = from.index();
        let peer = &mut lead.peers[p];
        peer.last_heard = Some(now);
        peer.acked_round = peer.acked_round.max(round);
        peer.paused = false;
        let mut resend = false;
        if success {
            peer.matched = peer.matched.max(match_index.min(self.log.len() as u64));
            if peer.probe {
                peer.probe = false;
                peer.next = peer.matched + 1;
                peer.inflight.clear();
            } else {
                peer.next = peer.next.max(peer.matched + 1);
                while peer.inflight.front().is_some_and(|&(end, _)| end <= peer.matched) {
                    peer.inflight.pop_front();
                }
            }
        } else if last_index < peer.matched {
            // The follower lost entries it had acknowledged (a lying disk): start again
            // from what it has. The commitment counted on them may already be void.
            peer.matched = last_index;
            peer.next = last_index + 1;
            peer.probe = true;
            peer.inflight.clear();
            resend = true;
        } else if rejected <= peer.matched || (peer.probe && rejected + 1 != peer.next) {
            // Stale: an answer to an append sent before the last reset, or overtaken.
        } else {
            peer.next = (peer.matched + 1).max(rejected.min(hint + 1));
            peer.probe = true;
            peer.inflight.clear();
            resend = true;
        }
        if resend {
            self.send_append(ctx, p);
        }
        if success {
            self.advance_commit(ctx);
            self.maybe_send(ctx, p);
        }
        self.serve_reads(ctx);
    }

    /// Commits the highest index of this term that a commit quorum holds (§5.4.2: entries
    /// of earlier terms only ever commit by being below one of this term).
    fn advance_commit(&mut self, ctx: &mut Ctx<'_>) {
        let Some(lead) = self.lead.as_deref() else { return };
        let last = self.log.len() as u64;
        let me = self.me as usize;
        let mut held: Vec<u64> =
            lead.peers.iter().enumerate().map(|(i, p)| if i == me { last } else { p.matched }).collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        let index = held[self.config.commit_quorum().clamp(1, held.len()) - 1];
        if index > self.commit && term_at(&self.log, index) == self.term {
            self.commit = index;
            self.apply(ctx);
        }
    }

    /// The highest heartbeat round a majority (this leader included) has acknowledged.
    fn quorum_round(&self) -> u64 {
        let Some(lead) = self.lead.as_deref() else { return 0 };
        let me = self.me as usize;
        let mut rounds: Vec<u64> =
            lead.peers.iter().enumerate().map(|(i, p)| if i == me { lead.round } else { p.acked_round }).collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[self.config.majority() - 1]
    }

    /// Whether the leader's lease holds at `now`, by its own clock.
    fn lease_valid(&self, now: Time) -> bool {
        let Some(lead) = self.lead.as_deref() else { return false };
        let round = self.quorum_round();
        lead.round_starts
            .iter()
            .find(|&&(r, _)| r == round)
            .is_some_and(|&(_, start)| now < start + self.config.election_timeout)
    }

    // ----- Replication, follower side -----

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: NodeId,
        term: u64,
        (prev_index, prev_term): (u64, u64),
        entries: Vec<LogEntry>,
        leader_commit: u64,
        round: u64,
    ) {
        let reject = |ctx: &mut Ctx<'_>, reply_term: u64, hint: u64, last_index: u64| {
            let msg = RaftMsg::AppendReply {
                term: reply_term,
                success: false,
                match_index: 0,
                rejected: prev_index,
                hint,
                last_index,
                round,
            };
            ctx.send(from, msg);
        };
        let no_term_check = self.config.canary == Some(Canary::NoTermCheck);
        if no_term_check && self.role == Role::Leader {
            // The canary: a leader pays no attention to another leader's appends, whatever
            // their term, and so does not step down for them.
            return;
        }
        let reply_term = if term < self.term {
            if !no_term_check {
                reject(ctx, self.term, 0, self.last_index());
                return;
            }
            // The canary: obey a deposed leader, and answer in its term so it never learns.
            term
        } else {
            if term > self.term || self.role != Role::Follower {
                self.become_follower(ctx, term);
            }
            self.leader = Some(from.0);
            self.term
        };
        self.last_leader_contact = Some(ctx.now());
        self.reset_election_timer(ctx);

        let last = self.last_index();
        if prev_index > last {
            reject(ctx, reply_term, last, last);
            return;
        }
        let conflict = term_at(&self.log, prev_index);
        if conflict != prev_term {
            // Jump back over the whole conflicting term at once.
            let mut first = prev_index;
            while first > 1 && term_at(&self.log, first - 1) == conflict {
                first -= 1;
            }
            reject(ctx, reply_term, first - 1, last);
            return;
        }
        let count = entries.len() as u64;
        let mut changed = false;
        for (k, entry) in entries.into_iter().enumerate() {
            let index = prev_index + 1 + k as u64;
            if index <= self.last_index() {
                if term_at(&self.log, index) == entry.term {
                    continue; // already there (Log Matching)
                }
                self.log.truncate(index as usize - 1);
            }
            ctx.write(&entry_key(index), encode_entry(&entry));
            self.log.push(entry);
            changed = true;
        }
        if changed {
            ctx.write(LOG_LEN_KEY, encode_len(self.last_index()));
            // Only a canary can truncate below the commit index.
            self.commit = self.commit.min(self.last_index());
            if self.config.canary == Some(Canary::AckBeforeFsync) {
                self.unsynced = true;
            } else {
                ctx.fsync();
            }
        } else if self.unsynced && count == 0 {
            // The canary's lazy fsync, on the next heartbeat.
            ctx.fsync();
            self.unsynced = false;
        }
        let match_index = prev_index + count;
        let commit = leader_commit.min(match_index);
        if commit > self.commit {
            self.commit = commit;
            self.apply(ctx);
        }
        let msg = RaftMsg::AppendReply {
            term: reply_term,
            success: true,
            match_index,
            rejected: 0,
            hint: 0,
            last_index: self.last_index(),
            round,
        };
        ctx.send(from, msg);
    }

    // ----- State machine and clients -----

    fn apply(&mut self, ctx: &mut Ctx<'_>) {
        while self.applied < self.commit {
            let Some(entry) = self.log.get(self.applied as usize).cloned() else { break };
            self.applied += 1;
            let index = self.applied;
            ctx.observe(RaftObs::Applied { index, term: entry.term, cmd: entry.cmd.clone() });
            let Command::Op { client, seq, op } = entry.cmd else { continue };
            let result = self.execute(ctx.now(), client, seq, op, entry.checksum);
            let Some(lead) = self.lead.as_deref_mut() else { continue };
            let Some(pos) = lead.proposals.iter().position(|(i, _)| *i == index) else { continue };
            let (_, waiting) = lead.proposals.remove(pos);
            if let Some((value, checksum)) = result
                && waiting.client == client
                && waiting.seq == seq
            {
                self.respond(ctx, waiting, value, checksum, ctx.now());
            }
        }
        self.serve_reads(ctx);
    }

    /// Applies an operation once per `(client, seq)`; a duplicate gets the first result, a
    /// superseded retry none.
    fn execute(
        &mut self,
        now: Time,
        client: u32,
        seq: u64,
        op: Op,
        checksum: Option<Checksum>,
    ) -> Option<(Option<u64>, Option<Checksum>)> {
        if let Some(s) = self.sessions.get(client as usize) {
            if seq < s.last_seq {
                return None;
            }
            if seq == s.last_seq {
                return Some(s.result);
            }
        }
        let result = match op {
            Op::Put { key, value } => {
                let before = self.kv.insert(key, (value, checksum));
                if self.undo.len() == UNDO_KEPT {
                    self.undo.pop_front();
                }
                self.undo.push_back((now, key, before));
                (None, None)
            }
            Op::Get { key } => self.lookup(key),
        };
        if let Some(s) = self.sessions.get_mut(client as usize) {
            *s = Session { last_seq: seq, result };
        }
        Some(result)
    }

    fn lookup(&self, key: u32) -> (Option<u64>, Option<Checksum>) {
        self.kv.get(&key).map_or((None, None), |&(v, c)| (Some(v), c))
    }

    /// What a read of `key` answers: the current value, or under a `stale` fault the value
    /// as it was `age` ago (as far back as the undo history reaches), reported as current.
    fn read_value(&self, ctx: &mut Ctx<'_>, key: u32) -> (Option<u64>, Option<Checksum>) {
        let Some(age) = ctx.stale() else { return self.lookup(key) };
        let as_of = Time::ZERO + ctx.now().since(Time::ZERO + age);
        let mut value = self.kv.get(&key).copied();
        for &(at, k, before) in self.undo.iter().rev() {
            if at <= as_of {
                break;
            }
            if k == key {
                value = before;
            }
        }
        value.map_or((None, None), |(v, c)| (Some(v), c))
    }

    fn on_client_request(&mut self, ctx: &mut Ctx<'_>, from: NodeId, seq: u64, op: Op, checksum: Option<Checksum>) {
        let servers = self.config.servers as u32;
        if from.0 < servers || from.0 >= servers + self.config.clients as u32 {
            return; // not from a client
        }
        if self.role != Role::Leader {
            ctx.send(from, RaftMsg::ClientReply { seq, reply: Reply::NotLeader { hint: self.leader() } });
            return;
        }
        let waiting = Waiting { client: from.0 - servers, seq, op, reply_to: from };
        match op {
            Op::Get { .. } if self.config.read != ReadPath::Log => self.read(ctx, waiting),
            _ => self.propose(ctx, waiting, checksum),
        }
    }

    fn propose(&mut self, ctx: &mut Ctx<'_>, waiting: Waiting, checksum: Option<Checksum>) {
        let (client, seq, op) = (waiting.client, waiting.seq, waiting.op);
        if let Some(s) = self.sessions.get(client as usize)
            && seq <= s.last_seq
        {
            if seq == s.last_seq {
                let (value, checksum) = s.result;
                self.respond(ctx, waiting, value, checksum, ctx.now());
            }
            return;
        }
        let Some(lead) = self.lead.as_deref_mut() else { return };
        if let Some((_, w)) = lead.proposals.iter_mut().find(|(_, w)| w.client == client && w.seq == seq) {
            w.reply_to = waiting.reply_to; // a retry of a proposal still in flight
            return;
        }
        let index = self.append_local(ctx, Command::Op { client, seq, op }, checksum);
        if let Some(lead) = self.lead.as_deref_mut() {
            push_capped(&mut lead.proposals, (index, waiting));
        }
        for p in self.peers() {
            self.maybe_send(ctx, p);
        }
        self.advance_commit(ctx);
    }

    fn read(&mut self, ctx: &mut Ctx<'_>, waiting: Waiting) {
        let key = waiting.op.key();
        let local = match self.config.read {
            // Local: no check that it still leads (the KapitalKite bug), but like every read
            // path it waits until it has applied an entry of its own term, so a fresh leader
            // never answers from a state machine that is behind its log.
            ReadPath::Local => term_at(&self.log, self.applied) == self.term,
            ReadPath::Lease => self.lease_valid(ctx.now()) && term_at(&self.log, self.commit) == self.term,
            ReadPath::ReadIndex | ReadPath::Log => false,
        };
        if local {
            let (value, checksum) = self.read_value(ctx, key);
            self.respond(ctx, waiting, value, checksum, ctx.now());
            return;
        }
        // ReadIndex (§6.4): the commit index now, but not before this term's no-op
        // commits; confirmed by a heartbeat round that starts now.
        self.start_round(ctx, false);
        let Some(lead) = self.lead.as_deref_mut() else { return };
        let read = Read { waiting, read_index: self.commit.max(lead.noop_index), round: lead.round };
        push_capped(&mut lead.reads, read);
        self.serve_reads(ctx);
    }

    /// Answers the ReadIndex reads whose round a majority confirmed and whose index is applied.
    fn serve_reads(&mut self, ctx: &mut Ctx<'_>) {
        if self.lead.as_deref().is_none_or(|l| l.reads.is_empty()) {
            return;
        }
        let confirmed = self.quorum_round();
        let applied = self.applied;
        let Some(lead) = self.lead.as_deref_mut() else { return };
        let (ready, waiting): (Vec<Read>, Vec<Read>) =
            lead.reads.drain(..).partition(|r| r.round <= confirmed && r.read_index <= applied);
        lead.reads = waiting;
        let started = |round: u64| lead.round_starts.iter().find(|&&(r, _)| r == round).map(|&(_, t)| t);
        let decided: Vec<Option<Time>> = ready.iter().map(|r| started(r.round)).collect();
        for (r, decided) in ready.into_iter().zip(decided) {
            let (value, checksum) = self.read_value(ctx, r.waiting.op.key());
            self.respond(ctx, r.waiting, value, checksum, decided.unwrap_or(ctx.now()));
        }
    }

    /// Answers a client, through the fencing resource when fencing is on.
    /// `decided` is when its authority for the answer was last established (see
    /// [`RaftObs::Confirmed`]).
    fn respond(
        &mut self,
        ctx: &mut Ctx<'_>,
        waiting: Waiting,
        value: Option<u64>,
        checksum: Option<Checksum>,
        decided: Time,
    ) {
        if !self.config.fences() {
            self.confirm(ctx, self.term, waiting, value, checksum, decided);
            return;
        }
        let (client, seq) = (waiting.client, waiting.seq);
        push_capped(&mut self.fences, Fencing { waiting, value, checksum, token: self.term, decided });
        ctx.send(self.config.db(), RaftMsg::Fence { token: self.term, client, seq });
    }

    fn confirm(
        &self,
        ctx: &mut Ctx<'_>,
        term: u64,
        w: Waiting,
        value: Option<u64>,
        checksum: Option<Checksum>,
        decided: Time,
    ) {
        let value = if matches!(w.op, Op::Get { .. }) { value } else { None };
        ctx.observe(RaftObs::Confirmed { term, client: w.client, seq: w.seq, op: w.op, value, decided });
        ctx.send(w.reply_to, RaftMsg::ClientReply { seq: w.seq, reply: Reply::Ok { value, checksum } });
    }

    fn on_fence_ack(&mut self, ctx: &mut Ctx<'_>, token: u64, client: u32, seq: u64, accepted: bool) {
        let Some(pos) =
            self.fences.iter().position(|f| f.token == token && f.waiting.client == client && f.waiting.seq == seq)
        else {
            return;
        };
        let f = self.fences.remove(pos);
        if accepted {
            self.confirm(ctx, f.token, f.waiting, f.value, f.checksum, f.decided);
        } else {
            ctx.send(f.waiting.reply_to, RaftMsg::ClientReply { seq, reply: Reply::Fail });
        }
    }
}
