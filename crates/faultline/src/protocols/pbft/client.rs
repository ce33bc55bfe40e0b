//! A PBFT client (§4.1): one request at a time, sent to the primary it believes in;
//! multicast to every replica when no answer comes; done with `f + 1` matching replies.

use std::collections::BTreeMap;
use std::rc::Rc;

use rand::RngExt;

use super::wire::{Body, Keys, Op, PbftMsg, Request, Signed};
use super::{ClientResult, PbftConfig, PbftNode, PbftObs, PbftTimer};
use crate::protocol::{Context, TimerId};

type Ctx<'a> = Context<'a, PbftNode>;

#[derive(Clone)]
struct Current {
    ts: u64,
    request: Rc<Signed>,
    /// Per replica, the result it replied.
    replies: BTreeMap<u32, Option<u64>>,
    retransmit: TimerId,
    give_up: TimerId,
}

#[derive(Clone)]
pub struct Client {
    cfg: Rc<PbftConfig>,
    keys: Rc<Keys>,
    index: u32,
    /// The last view a reply named: whose primary to ask first.
    view: u64,
    ts: u64,
    issued: u64,
    current: Option<Current>,
    /// Signatures made and checked: the cost figure.
    pub auth_ops: u64,
}

impl Client {
    pub fn new(cfg: Rc<PbftConfig>, keys: Rc<Keys>, index: u32) -> Client {
        Client { cfg, keys, index, view: 0, ts: 0, issued: 0, current: None, auth_ops: 0 }
    }

    pub(super) fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        // Clients start a little apart, so their first requests do not arrive as one.
        let jitter = ctx.rng().random_range(0..=self.cfg.client.interval.as_nanos());
        ctx.set_timer(crate::time::Span::from_nanos(jitter), PbftTimer::NextOp);
    }

    fn next_op(&mut self, ctx: &mut Ctx<'_>) {
        let c = &self.cfg.client;
        if c.ops > 0 && self.issued >= c.ops {
            return;
        }
        self.issued += 1;
        self.ts += 1;
        let key = ctx.rng().random_range(0..c.keys);
        let op = if ctx.rng().random_bool(c.read_fraction) {
            Op::Read { key }
        } else {
            // Unique per write: which write a read saw is never in doubt.
            Op::Write { key, value: (u64::from(self.index) + 1) << 32 | self.ts }
        };
        self.auth_ops += 1;
        let request = self
            .keys
            .sign(self.cfg.client_signer(self.index), Body::Request(Request { client: self.index, ts: self.ts, op }));
        ctx.observe(PbftObs::Invoke { client: self.index, ts: self.ts, op });
        let msg = self.keys.message(Rc::clone(&request));
        for node in self.cfg.nodes_of(self.cfg.primary(self.view)) {
            ctx.send(node, msg.clone());
        }
        let retransmit = ctx.set_timer(c.retransmit, PbftTimer::Retransmit { ts: self.ts });
        let give_up = ctx.set_timer(c.timeout, PbftTimer::GiveUp { ts: self.ts });
        self.current = Some(Current { ts: self.ts, request, replies: BTreeMap::new(), retransmit, give_up });
    }

    fn finish(&mut self, ctx: &mut Ctx<'_>, result: ClientResult) {
        let Some(cur) = self.current.take() else { return };
        ctx.cancel_timer(cur.retransmit);
        ctx.cancel_timer(cur.give_up);
        ctx.observe(PbftObs::Outcome { client: self.index, ts: cur.ts, result });
        ctx.set_timer(self.cfg.client.interval, PbftTimer::NextOp);
    }

    pub(super) fn on_message(&mut self, ctx: &mut Ctx<'_>, msg: PbftMsg) {
        if msg.key != self.keys.id {
            return;
        }
        let s = msg.signed;
        let Body::Reply { view, client, ts, result } = s.body else { return };
        let Some(cur) = &mut self.current else { return };
        if client != self.index || ts != cur.ts || s.signer as usize >= self.cfg.replicas {
            return;
        }
        if self.cfg.checks_signatures() {
            self.auth_ops += 1;
            if !self.keys.verify(&s) {
                return;
            }
        }
        cur.replies.insert(s.signer, result);
        let matching = cur.replies.values().filter(|r| **r == result).count();
        if matching >= self.cfg.reply_quorum() {
            self.view = self.view.max(view);
            self.finish(ctx, ClientResult::Ok { value: result });
        }
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Ctx<'_>, timer: PbftTimer) {
        match timer {
            PbftTimer::NextOp => self.next_op(ctx),
            PbftTimer::Retransmit { ts } => {
                let Some(cur) = &mut self.current else { return };
                if cur.ts != ts {
                    return;
                }
                let msg = self.keys.message(Rc::clone(&cur.request));
                cur.retransmit = ctx.set_timer(self.cfg.client.retransmit, PbftTimer::Retransmit { ts });
                for node in 0..(self.cfg.replicas + self.cfg.twins.len()) as u32 {
                    ctx.send(crate::protocol::NodeId(node), msg.clone());
                }
            }
            PbftTimer::GiveUp { ts } => {
                if self.current.as_ref().is_some_and(|c| c.ts == ts) {
                    self.finish(ctx, ClientResult::Unknown);
                }
            }
            PbftTimer::ViewChange { .. } => {}
        }
    }
}
