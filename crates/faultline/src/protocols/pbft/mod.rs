//! PBFT (Castro and Liskov, OSDI 1999; TOCS 2002) as a Faultline protocol: Byzantine
//! fault tolerance for a replicated register per key, with its clients.
//!
//! A run has `replicas` replicas (`r0`, `r1`, ...), then one twin node per twinned replica
//! (`t0` is `r0`'s twin: Twins, Bano et al. 2021), then `clients` clients (`c0`, ...).
//! The normal case is the paper's: a client sends a signed request to the primary of its
//! view; the primary assigns a sequence number and multicasts PRE-PREPARE; backups
//! multicast PREPARE; a replica is *prepared* with the pre-prepare and `quorum − 1`
//! matching prepares, then multicasts COMMIT; it is *committed-local* with `quorum`
//! matching commits and executes requests in sequence order; the client accepts `f + 1`
//! matching replies. Every `checkpoint_interval` requests replicas multicast CHECKPOINT; a
//! `quorum` of matching ones is a stable certificate that moves the low watermark `h` and
//! garbage-collects the log; the primary assigns only sequence numbers in `(h, h + window]`.
//! A backup whose pending request is not executed within `view_timeout` moves to the next
//! view: VIEW-CHANGE carries its stable certificate and its prepared certificates; the new
//! primary gathers `quorum` of them and multicasts NEW-VIEW with them and the pre-prepares
//! they imply (the latest prepared request per sequence number, else the null request);
//! every replica checks the certificates and recomputes those pre-prepares before it
//! enters the view. Waits double with each view change that fails.
//!
//! `quorum` is `n − f`: the paper's `2f + 1` when `n = 3f + 1`, and what a deployment of
//! `n` replicas that means to tolerate `f` faults must use to stay live with `f` of them
//! silent. Two quorums meet in `n − 2f` replicas, which is `f + 1` (one correct) exactly
//! when `n ≥ 3f + 1`: below that, Byzantine replicas can fill the intersection, which is
//! what the Twins scenario and `faultline tolerance` show. `f` defaults to `⌊(n − 1) / 3⌋`. Every message is signed (HMAC-SHA256 with per-signer keys, standing in
//! for the paper's MAC authenticators, or Ed25519) and encoded as bytes, so `flip`,
//! `tamper`, `equivocate`, `forge` and `replay` act on it as the catalogue says
//! ([`wire`]). [`Canary`] breaks the protocol on purpose, one rule at a time.
//!
//! Left out, and said where it matters: state transfer (a replica that falls behind a
//! stable checkpoint stays behind; safety does not depend on it, and liveness needs only a
//! quorum of up-to-date correct replicas), request batching, and the read-only and
//! tentative-execution optimisations.

pub mod check;
mod client;
mod replica;
pub mod report;
#[cfg(test)]
mod tests;
pub mod wire;
mod workload;

pub use workload::{Pbft, PbftRun, PbftSweepRow, RawPbft};

use std::rc::Rc;

use crate::protocol::{Context, NodeId, Protocol, TimerId};
use crate::time::Span;

pub use client::Client;
pub use replica::Replica;
pub use wire::{Auth, Digest, Keys, Op, PbftMsg};

/// Deliberately broken variants, for showing that checkers catch what they claim to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Canary {
    /// Certificates one message short: prepared with the pre-prepare and `quorum − 2`
    /// prepares (2f in all at n = 3f + 1, not 2f + 1), committed-local with `quorum − 1`
    /// commits. Two such certificates need not share a correct replica.
    SmallCertificates,
    /// A NEW-VIEW is taken on the new primary's word: its view-change certificates are not
    /// checked, its pre-prepares not recomputed, and neither their signatures nor their
    /// requests checked.
    UncheckedNewView,
    /// Clients accept `f` matching replies instead of `f + 1` (at least one).
    FewReplies,
    /// Nobody checks signatures: any message is taken as coming from the signer it names,
    /// and any request as its client's.
    Unsigned,
}

impl Canary {
    pub const ALL: [Canary; 4] =
        [Canary::SmallCertificates, Canary::UncheckedNewView, Canary::FewReplies, Canary::Unsigned];

    pub fn name(self) -> &'static str {
        match self {
            Canary::SmallCertificates => "small-certificates",
            Canary::UncheckedNewView => "unchecked-new-view",
            Canary::FewReplies => "few-replies",
            Canary::Unsigned => "unsigned",
        }
    }
}

/// The clients' workload.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// Between an operation's outcome and the next operation.
    pub interval: Span,
    /// Without `f + 1` matching replies by then, the client multicasts the request to every
    /// replica (and again after as long).
    pub retransmit: Span,
    /// How long a client waits for an answer before recording an unknown outcome.
    pub timeout: Span,
    /// Operations per client; 0 means no limit.
    pub ops: u64,
    pub read_fraction: f64,
    /// Keys are `0..keys`.
    pub keys: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            interval: Span::from_millis(20),
            retransmit: Span::from_millis(300),
            timeout: Span::from_millis(3000),
            ops: 0,
            read_fraction: 0.5,
            keys: 3,
        }
    }
}

/// Parameters of a PBFT run.
#[derive(Clone, Debug, PartialEq)]
pub struct PbftConfig {
    pub replicas: usize,
    /// The faults the quorums are sized for.
    pub f: usize,
    pub clients: usize,
    /// Replicas (by index) that run twice under one identity: Twins' Byzantine replica.
    pub twins: Vec<usize>,
    pub checkpoint_interval: u64,
    /// The log window: the primary assigns sequence numbers in `(h, h + window]`.
    pub window: u64,
    /// A backup waits this long for a pending request before it starts a view change.
    pub view_timeout: Span,
    pub auth: Auth,
    /// Keys are derived from it (a cluster's keys are configuration, not chance).
    pub key_seed: u64,
    pub client: ClientConfig,
    pub canary: Option<Canary>,
}

impl Default for PbftConfig {
    fn default() -> Self {
        PbftConfig {
            replicas: 4,
            f: 1,
            clients: 2,
            twins: Vec::new(),
            checkpoint_interval: 16,
            window: 64,
            view_timeout: Span::from_millis(500),
            auth: Auth::Hmac,
            key_seed: 1,
            client: ClientConfig::default(),
            canary: None,
        }
    }
}

impl PbftConfig {
    /// The most faults `n` replicas tolerate: `⌊(n − 1) / 3⌋`.
    pub fn max_faults(n: usize) -> usize {
        n.saturating_sub(1) / 3
    }

    /// Replicas whose matching messages make a certificate: `n − f`.
    pub fn quorum(&self) -> usize {
        self.replicas - self.f
    }

    /// Matching prepares (besides the pre-prepare) that make a replica prepared.
    pub(crate) fn prepare_quorum(&self) -> usize {
        match self.canary {
            Some(Canary::SmallCertificates) => self.quorum().saturating_sub(2),
            _ => self.quorum() - 1,
        }
    }

    /// Matching commits that make a replica committed-local.
    pub(crate) fn commit_quorum(&self) -> usize {
        match self.canary {
            Some(Canary::SmallCertificates) => self.quorum().saturating_sub(1).max(1),
            _ => self.quorum(),
        }
    }

    /// Matching replies a client accepts.
    pub(crate) fn reply_quorum(&self) -> usize {
        match self.canary {
            Some(Canary::FewReplies) => self.f.max(1),
            _ => self.f + 1,
        }
    }

    pub(crate) fn checks_signatures(&self) -> bool {
        self.canary != Some(Canary::Unsigned)
    }

    pub fn primary(&self, view: u64) -> u32 {
        (view % self.replicas as u64) as u32
    }

    /// `r0..`, the twins `t<i>`, then `c0..`.
    pub fn node_names(&self) -> Vec<String> {
        (0..self.replicas)
            .map(|i| format!("r{i}"))
            .chain(self.twins.iter().map(|i| format!("t{i}")))
            .chain((0..self.clients).map(|i| format!("c{i}")))
            .collect()
    }

    /// The node of client `client`.
    pub fn client_node(&self, client: u32) -> NodeId {
        NodeId((self.replicas + self.twins.len()) as u32 + client)
    }

    /// The replica identity a node runs as (`None` for a client).
    pub fn identity(&self, node: NodeId) -> Option<u32> {
        let i = node.index();
        if i < self.replicas { Some(i as u32) } else { self.twins.get(i - self.replicas).map(|&r| r as u32) }
    }

    /// Whether a node is a twin or has a twin: Byzantine by construction.
    pub fn twinned(&self, node: NodeId) -> bool {
        node.index() >= self.replicas && node.index() < self.replicas + self.twins.len()
            || self.twins.contains(&node.index())
    }

    /// The nodes that receive what is sent to replica `identity`: itself and its twin.
    pub(crate) fn nodes_of(&self, identity: u32) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::once(NodeId(identity)).chain(
            self.twins
                .iter()
                .enumerate()
                .filter(move |&(_, &r)| r as u32 == identity)
                .map(|(k, _)| NodeId((self.replicas + k) as u32)),
        )
    }

    /// Signer identities: replicas `0..n`, then clients `n..n + clients`.
    pub(crate) fn client_signer(&self, client: u32) -> u32 {
        self.replicas as u32 + client
    }

    /// One state machine per node, in the order of [`PbftConfig::node_names`].
    pub fn nodes(&self) -> Vec<PbftNode> {
        let config = Rc::new(self.clone());
        let keys = Rc::new(Keys::new(self.auth, self.key_seed, self.replicas + self.clients));
        (0..self.replicas)
            .chain(self.twins.iter().copied())
            .map(|r| PbftNode::Replica(Box::new(Replica::new(Rc::clone(&config), Rc::clone(&keys), r as u32))))
            .chain(
                (0..self.clients)
                    .map(|c| PbftNode::Client(Client::new(Rc::clone(&config), Rc::clone(&keys), c as u32))),
            )
            .collect()
    }
}

/// An operation's outcome at its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResult {
    /// `f + 1` replicas replied alike; for a read, `value` is what was read.
    Ok { value: Option<u64> },
    /// The client gave up waiting: it may or may not have happened.
    Unknown,
}

/// What PBFT runs report to checkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PbftObs {
    /// A replica executed sequence number `seq`: `request` is `(client, timestamp, op)`,
    /// `None` for the null request.
    Executed { seq: u64, digest: Digest, request: Option<(u32, u64, Op)> },
    /// A replica entered `view` (a NEW-VIEW it accepted, or one it sent).
    View { view: u64 },
    /// A replica's checkpoint at `seq` became stable.
    Stable { seq: u64 },
    /// A client issued a request.
    Invoke { client: u32, ts: u64, op: Op },
    /// Its outcome at the client.
    Outcome { client: u32, ts: u64, result: ClientResult },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PbftTimer {
    /// A backup's wait for its pending requests in `view`, or for the NEW-VIEW of `view`.
    ViewChange {
        view: u64,
    },
    /// Time for a client's next operation.
    NextOp,
    Retransmit {
        ts: u64,
    },
    GiveUp {
        ts: u64,
    },
}

/// A node of a PBFT run.
#[derive(Clone)]
pub enum PbftNode {
    /// Boxed: a replica carries far more state than a client.
    Replica(Box<Replica>),
    Client(Client),
}

impl PbftNode {
    pub fn as_replica(&self) -> Option<&Replica> {
        match self {
            PbftNode::Replica(r) => Some(r),
            PbftNode::Client(_) => None,
        }
    }
}

impl Protocol for PbftNode {
    type Msg = PbftMsg;
    type Timer = PbftTimer;
    type Obs = PbftObs;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        match self {
            PbftNode::Replica(_) => {}
            PbftNode::Client(c) => c.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _from: NodeId, msg: PbftMsg) {
        match self {
            PbftNode::Replica(r) => r.on_message(ctx, msg),
            PbftNode::Client(c) => c.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, timer: PbftTimer) {
        match self {
            PbftNode::Replica(r) => r.on_timer(ctx, timer),
            PbftNode::Client(c) => c.on_timer(ctx, timer),
        }
    }
}
