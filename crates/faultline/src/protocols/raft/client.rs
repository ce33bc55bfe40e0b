//! The clients of a Raft run, and the resource its leaders fence against.
//!
//! A client issues one operation at a time, as Jepsen's clients do: it records `Invoke`,
//! sends the request to the server it believes leads, and records exactly one `Outcome`:
//! `Ok` on a successful reply, `Fail` on a definite failure (a rejected fencing token, a
//! read whose checksum does not match), or `Unknown` when `timeout` passes without an
//! answer (the operation may still take effect). A `NotLeader` reply is no outcome: the
//! client tries the same `(client, seq)` at the named leader at once, or at the next
//! server round robin after `interval` when none is named. After an outcome the client
//! waits `interval` and issues a new `seq`; an unknown outcome also moves its guess of the
//! leader to the next server.

use std::rc::Rc;

use rand::Rng;

use super::wire::{Checksum, RaftMsg, Reply};
use super::{ClientResult, Op, RaftConfig, RaftNode, RaftObs, RaftTimer};
use crate::protocol::{Context, NodeId, TimerId};
use crate::time::Span;

/// Sequence numbers per client stay below this, so that written values are unique.
pub const SEQ_LIMIT: u64 = 1_000_000;

/// The operation in progress.
#[derive(Clone, Debug)]
struct Attempt {
    seq: u64,
    op: Op,
    checksum: Option<Checksum>,
    timeout: TimerId,
    retry: Option<TimerId>,
    /// Redirects followed at once since the last back-off: bounded, so that two servers
    /// with stale ideas of the leader cannot bounce a request between them at wire speed.
    redirects: usize,
}

#[derive(Clone)]
pub struct Client {
    config: Rc<RaftConfig>,
    id: u32,
    seq: u64,
    issued: u64,
    /// The server this client believes leads.
    leader: u32,
    current: Option<Attempt>,
}

impl Client {
    pub(super) fn new(config: Rc<RaftConfig>, id: u32) -> Self {
        Client { config, id, seq: 0, issued: 0, leader: 0, current: None }
    }

    /// Operations issued so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    fn servers(&self) -> u32 {
        self.config.servers as u32
    }

    pub(super) fn on_start(&mut self, ctx: &mut Context<'_, RaftNode>) {
        if self.servers() == 0 {
            return;
        }
        self.leader = (ctx.rng().next_u64() % u64::from(self.servers())) as u32;
        // Start within one interval, so that clients do not move in lock step.
        let interval = self.config.client.interval.as_nanos().max(1);
        let offset = ctx.rng().next_u64() % interval;
        ctx.set_timer(Span::from_nanos(offset), RaftTimer::ClientOp);
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Context<'_, RaftNode>, timer: RaftTimer) {
        match timer {
            RaftTimer::ClientOp => self.issue(ctx),
            RaftTimer::ClientRetry { seq } => {
                if let Some(a) = &mut self.current
                    && a.seq == seq
                {
                    a.retry = None;
                    self.send(ctx);
                }
            }
            RaftTimer::ClientTimeout { seq } if self.current.as_ref().is_some_and(|a| a.seq == seq) => {
                self.leader = (self.leader + 1) % self.servers();
                self.finish(ctx, ClientResult::Unknown);
            }
            _ => {}
        }
    }

    fn issue(&mut self, ctx: &mut Context<'_, RaftNode>) {
        let workload = &self.config.client;
        // Values are `id * 1_000_000 + seq`: a client stops before its seq would overflow
        // into the next client's values.
        if (workload.ops != 0 && self.issued >= workload.ops) || self.seq + 1 >= SEQ_LIMIT {
            return;
        }
        self.issued += 1;
        self.seq += 1;
        let seq = self.seq;
        let key = (ctx.rng().next_u64() % u64::from(workload.keys.max(1))) as u32;
        let coin = (ctx.rng().next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let op = if coin < workload.read_fraction {
            Op::Get { key }
        } else {
            // Unique per (client, seq), so checkers can tell every write apart.
            Op::Put { key, value: u64::from(self.id) * SEQ_LIMIT + seq }
        };
        let checksum = match op {
            Op::Put { key, value } if self.config.checksums => Some(Checksum::of(key, value)),
            _ => None,
        };
        ctx.observe(RaftObs::Invoke { client: self.id, seq, op });
        let timeout = ctx.set_timer(workload.timeout, RaftTimer::ClientTimeout { seq });
        self.current = Some(Attempt { seq, op, checksum, timeout, retry: None, redirects: 0 });
        self.send(ctx);
    }

    fn send(&self, ctx: &mut Context<'_, RaftNode>) {
        let Some(a) = &self.current else { return };
        ctx.send(NodeId(self.leader), RaftMsg::ClientRequest { seq: a.seq, op: a.op, checksum: a.checksum });
    }

    pub(super) fn on_message(&mut self, ctx: &mut Context<'_, RaftNode>, from: NodeId, msg: RaftMsg) {
        let RaftMsg::ClientReply { seq, reply } = msg else { return };
        let Some(a) = &self.current else { return };
        if a.seq != seq {
            return; // an answer to an operation this client already has an outcome for
        }
        match reply {
            // Already backing off: a duplicate, or an answer to an earlier attempt.
            Reply::NotLeader { .. } if a.retry.is_some() => {}
            Reply::NotLeader { hint } => match hint {
                Some(h) if h != from && h.0 < self.servers() && a.redirects < self.config.servers => {
                    self.leader = h.0;
                    if let Some(a) = &mut self.current {
                        a.redirects += 1;
                    }
                    self.send(ctx);
                }
                _ => {
                    // Nobody knows a leader (an election is on): back off, then try the next.
                    self.leader = (from.0 + 1) % self.servers();
                    let retry = ctx.set_timer(self.config.client.interval, RaftTimer::ClientRetry { seq });
                    if let Some(a) = &mut self.current {
                        a.retry = Some(retry);
                        a.redirects = 0;
                    }
                }
            },
            Reply::Ok { value, checksum } => {
                if from.0 < self.servers() {
                    self.leader = from.0;
                }
                let corrupt = self.config.checksums
                    && matches!(a.op, Op::Get { .. })
                    && value.is_some_and(|v| checksum != Some(Checksum::of(a.op.key(), v)));
                if corrupt {
                    ctx.observe(RaftObs::CorruptCaught { client: self.id, seq });
                    self.finish(ctx, ClientResult::Fail);
                } else {
                    let value = if matches!(a.op, Op::Get { .. }) { value } else { None };
                    self.finish(ctx, ClientResult::Ok { value });
                }
            }
            Reply::Fail => self.finish(ctx, ClientResult::Fail),
        }
    }

    fn finish(&mut self, ctx: &mut Context<'_, RaftNode>, result: ClientResult) {
        let Some(a) = self.current.take() else { return };
        ctx.cancel_timer(a.timeout);
        if let Some(r) = a.retry {
            ctx.cancel_timer(r);
        }
        ctx.observe(RaftObs::Outcome { client: self.id, seq: a.seq, result });
        ctx.set_timer(self.config.client.interval, RaftTimer::ClientOp);
    }
}

/// The downstream resource: accepts a fenced request only if its token is at least the
/// highest it has seen (or every one, under the `NoFencing` canary).
#[derive(Clone, Debug)]
pub struct Db {
    accept_all: bool,
    highest: u64,
}

impl Db {
    pub(super) fn new(accept_all: bool) -> Self {
        Db { accept_all, highest: 0 }
    }

    /// The highest token accepted so far.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    pub(super) fn on_message(&mut self, ctx: &mut Context<'_, RaftNode>, from: NodeId, msg: RaftMsg) {
        let RaftMsg::Fence { token, client, seq } = msg else { return };
        let accepted = self.accept_all || token >= self.highest;
        if accepted {
            self.highest = self.highest.max(token);
        }
        ctx.observe(RaftObs::Fenced { token, client, seq, accepted });
        ctx.send(from, RaftMsg::FenceAck { token, client, seq, accepted });
    }
}
