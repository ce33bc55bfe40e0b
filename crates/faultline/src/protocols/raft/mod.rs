//! Raft (Ongaro and Ousterhout, USENIX ATC 2014; Ongaro's thesis, 2014) as a Faultline
//! protocol, with the clients that use it and the downstream resource its leaders write to.
//!
//! A run has three kinds of node, in this order: `servers` Raft servers (`s0`, `s1`, ...),
//! `clients` client nodes (`c0`, `c1`, ...) and one resource node (`db`). The servers follow
//! the paper's Figure 2 with etcd's refinements: PreVote (thesis §9.6), CheckQuorum with
//! leader stickiness (etcd), a no-op entry at the start of each term (§8), pipelined
//! AppendEntries with a per-follower cap and probe/replicate states (etcd's `Progress`),
//! and three ways to serve reads besides the log: ReadIndex, leases, and the unsafe local
//! read of the chapter's KapitalKite incident. The state machine is a key-value map;
//! clients deduplicate retries by `(client, seq)` sessions (thesis §6.3).
//!
//! Two defences from the chapter are optional: fencing tokens (every confirmation must be
//! accepted by the `db` resource under the leader's term; Kleppmann's fencing) against the
//! KapitalKite split brain, and end-to-end SHA-256 checksums over every value against the
//! BharatBazaar memory corruption. [`Canary`] breaks the protocol on purpose, one rule at a
//! time, so that checkers can be shown to catch each break.
//!
//! Everything a checker needs is reported as a [`RaftObs`]; the durable state a server
//! leaves on its disk is decoded by [`durable_log`] and [`durable_term`] (the format is in
//! [`log`]).

pub mod check;
mod client;
pub mod log;
pub mod report;
mod server;
#[cfg(test)]
mod tests;
mod wire;
mod workload;

pub use workload::{Raft, RaftRun, RawRaft};

use std::rc::Rc;

use crate::protocol::{Context, NodeId, Protocol, TimerId};
use crate::time::{Span, Time};

pub use client::{Client, Db};
pub use log::{durable_log, durable_term, durable_vote};
pub use server::{Role, Server};
pub use wire::{Checksum, RaftMsg, Reply};

/// How a leader serves a `Get`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ReadPath {
    /// Reads are log entries: linearizable, one replication round and an fsync per read.
    #[default]
    Log,
    /// The leader records its commit index, confirms it is still leader with a heartbeat
    /// round acknowledged by a majority, and answers once it has applied that index (§6.4).
    ReadIndex,
    /// The leader answers locally while its lease holds: the start of the last heartbeat
    /// round a majority acknowledged plus the election timeout, by its own clock. Falls back
    /// to ReadIndex when the lease has lapsed. Safe only with `check_quorum` (followers then
    /// refuse to vote while they hear from a leader) and clocks that do not drift.
    Lease,
    /// UNSAFE: the leader answers from its state machine without any check. A deposed
    /// leader that has not yet heard of its successor serves stale reads (KapitalKite).
    Local,
}

/// Deliberately broken variants, for showing that checkers catch what they claim to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Canary {
    /// Nobody checks the term of AppendEntries. Followers and candidates accept appends of
    /// any term: a lower-term append is processed as if it came from the current leader
    /// (its conflicting entries overwrite theirs) and answered in the sender's term, so its
    /// sender never learns it was deposed. A leader ignores other leaders' appends, and so
    /// does not step down for them. A deposed leader that resumes keeps leading alongside
    /// its successor until an election deposes it (KapitalKite without the 800 ms bound).
    NoTermCheck,
    /// Followers acknowledge appends before making them durable, and fsync them only when
    /// the next heartbeat (an empty AppendEntries) arrives.
    AckBeforeFsync,
    /// The leader commits an entry of its term once any one follower has it: two of five,
    /// a minority.
    CommitOnMinority,
    /// Fencing is on, but the resource accepts every token.
    NoFencing,
}

/// The clients' workload.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// Between an operation's outcome and the next operation.
    pub interval: Span,
    /// How long a client waits for an answer before recording an unknown outcome.
    pub timeout: Span,
    /// Operations per client; 0 means no limit.
    pub ops: u64,
    /// The probability that an operation is a `Get`.
    pub read_fraction: f64,
    /// Keys are `0..keys`.
    pub keys: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            interval: Span::from_millis(50),
            timeout: Span::from_millis(1000),
            ops: 1000,
            read_fraction: 0.5,
            keys: 4,
        }
    }
}

/// Parameters of a Raft run. The defaults are etcd's (heartbeat 100 ms, election timeout
/// ten heartbeats, 64 appends in flight), without PreVote or CheckQuorum.
#[derive(Clone, Debug, PartialEq)]
pub struct RaftConfig {
    pub servers: usize,
    pub clients: usize,
    /// Between two heartbeat rounds of a leader.
    pub heartbeat: Span,
    /// The base election timeout `ET`: each wait is drawn uniformly from `[ET, 2 ET)`, or
    /// from `[ET, election_timeout_max)` when that is set.
    pub election_timeout: Span,
    pub election_timeout_max: Option<Span>,
    /// AppendEntries carrying entries that may be unacknowledged per follower.
    pub max_inflight: usize,
    /// Entries per AppendEntries.
    pub max_batch: usize,
    /// A server whose election timer fires first asks whether it could win, without
    /// raising its term; it starts a real election only if a majority says yes.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a majority within an election
    /// timeout; followers that heard from a leader within one refuse to vote.
    pub check_quorum: bool,
    pub read: ReadPath,
    /// Leaders confirm nothing (writes, reads) until the `db` resource accepted it under
    /// their term as fencing token.
    pub fencing: bool,
    /// Values carry a SHA-256 over `(key, value)` from the writing client to the reading
    /// client, which rejects a mismatch.
    pub checksums: bool,
    pub client: ClientConfig,
    pub canary: Option<Canary>,
    /// A server that campaigns the moment it first starts (term 0), as etcd's examples
    /// have node 1 do, so that a scenario knows who leads before its faults strike.
    pub bootstrap_leader: Option<usize>,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            servers: 5,
            clients: 2,
            heartbeat: Span::from_millis(100),
            election_timeout: Span::from_millis(1000),
            election_timeout_max: None,
            max_inflight: 64,
            max_batch: 64,
            pre_vote: false,
            check_quorum: false,
            read: ReadPath::Log,
            fencing: false,
            checksums: false,
            client: ClientConfig::default(),
            canary: None,
            bootstrap_leader: None,
        }
    }
}

impl RaftConfig {
    /// `s0..`, `c0..`, then `db`.
    pub fn node_names(&self) -> Vec<String> {
        (0..self.servers)
            .map(|i| format!("s{i}"))
            .chain((0..self.clients).map(|i| format!("c{i}")))
            .chain(std::iter::once("db".to_owned()))
            .collect()
    }

    /// One state machine per node, in the order of [`RaftConfig::node_names`].
    pub fn nodes(&self) -> Vec<RaftNode> {
        let config = Rc::new(self.clone());
        (0..self.servers)
            .map(|_| RaftNode::Server(Box::new(Server::new(Rc::clone(&config)))))
            .chain((0..self.clients).map(|i| RaftNode::Client(Client::new(Rc::clone(&config), i as u32))))
            .chain(std::iter::once(RaftNode::Db(Db::new(self.canary == Some(Canary::NoFencing)))))
            .collect()
    }

    /// The node of client `client` (its index among the clients).
    pub fn client_node(&self, client: u32) -> NodeId {
        NodeId((self.servers + client as usize) as u32)
    }

    /// The resource node.
    pub fn db(&self) -> NodeId {
        NodeId((self.servers + self.clients) as u32)
    }

    /// Servers that must hold an entry for the leader to commit it, itself included.
    pub fn commit_quorum(&self) -> usize {
        match self.canary {
            Some(Canary::CommitOnMinority) => self.servers.min(2),
            _ => self.majority(),
        }
    }

    pub fn majority(&self) -> usize {
        self.servers / 2 + 1
    }

    /// Whether leaders fence: `fencing`, or the `NoFencing` canary (which fences against a
    /// resource that accepts everything).
    pub fn fences(&self) -> bool {
        self.fencing || self.canary == Some(Canary::NoFencing)
    }
}

/// A client operation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put { key: u32, value: u64 },
    Get { key: u32 },
}

impl Op {
    pub fn key(self) -> u32 {
        match self {
            Op::Put { key, .. } | Op::Get { key } => key,
        }
    }
}

/// What a log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The entry a leader appends when its term begins (§8).
    Noop,
    Op {
        client: u32,
        seq: u64,
        op: Op,
    },
}

/// One log entry. `checksum` is the writing client's SHA-256 over `(key, value)` of a
/// `Put`, when checksums are on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub term: u64,
    pub cmd: Command,
    pub checksum: Option<Checksum>,
}

/// An operation's outcome at its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResult {
    /// It happened; for a `Get`, `value` is what was read (`None`: the key was never written).
    Ok { value: Option<u64> },
    /// Definite: it did not and will not happen.
    Fail,
    /// The client gave up waiting: it may or may not have happened.
    Unknown,
}

/// What Raft runs report to checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftObs {
    /// A server became leader of `term`. `log_terms[i]` is the term of entry i+1 of its log
    /// (before it appends its no-op).
    Leader { term: u64, log_terms: Vec<u64> },
    /// A leader stepped down (saw a higher term, CheckQuorum failed, or restarted).
    SteppedDown { term: u64 },
    /// A server applied log entry `index` (from `term`) to its state machine.
    Applied { index: u64, term: u64, cmd: Command },
    /// A leader of `term` sent a client a successful reply to (client, seq). For reads,
    /// `value` is what it returned. `decided` is the last instant its authority for the
    /// answer was established: now for an answer from its own state or the log, the start
    /// of the heartbeat round a majority confirmed for a ReadIndex read.
    Confirmed { term: u64, client: u32, seq: u64, op: Op, value: Option<u64>, decided: Time },
    /// A client issued an operation (one per (client, seq)).
    Invoke { client: u32, seq: u64, op: Op },
    /// The outcome at the client.
    Outcome { client: u32, seq: u64, result: ClientResult },
    /// A client rejected a read reply whose checksum did not match (BharatBazaar defence).
    CorruptCaught { client: u32, seq: u64 },
    /// The db resource accepted or rejected a fenced request.
    Fenced { token: u64, client: u32, seq: u64, accepted: bool },
    /// Sampled by the leader every ten heartbeats: each server's match index (the leader's
    /// own last index for itself) and the commit index.
    Progress { term: u64, commit: u64, match_index: Vec<u64> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftTimer {
    Election,
    Heartbeat,
    CheckQuorum,
    Progress,
    /// Time for a client's next operation.
    ClientOp,
    /// A client retries `seq` after a `NotLeader` that named no other leader.
    ClientRetry {
        seq: u64,
    },
    /// A client gives up on `seq`.
    ClientTimeout {
        seq: u64,
    },
}

/// A node of a Raft run.
#[derive(Clone)]
pub enum RaftNode {
    /// Boxed: a server carries far more state than a client.
    Server(Box<Server>),
    Client(Client),
    Db(Db),
}

impl RaftNode {
    pub fn as_server(&self) -> Option<&Server> {
        match self {
            RaftNode::Server(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_client(&self) -> Option<&Client> {
        match self {
            RaftNode::Client(c) => Some(c),
            _ => None,
        }
    }
}

impl Protocol for RaftNode {
    type Msg = RaftMsg;
    type Timer = RaftTimer;
    type Obs = RaftObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            RaftNode::Server(s) => s.on_start(ctx),
            RaftNode::Client(c) => c.on_start(ctx),
            RaftNode::Db(_) => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: RaftMsg) {
        match self {
            RaftNode::Server(s) => s.on_message(ctx, from, msg),
            RaftNode::Client(c) => c.on_message(ctx, from, msg),
            RaftNode::Db(d) => d.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, id: TimerId, timer: RaftTimer) {
        match self {
            RaftNode::Server(s) => s.on_timer(ctx, id, timer),
            RaftNode::Client(c) => c.on_timer(ctx, timer),
            RaftNode::Db(_) => {}
        }
    }
}
