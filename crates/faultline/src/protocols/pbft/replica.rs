//! A PBFT replica: the normal case, checkpoints and watermarks, and view changes (the
//! module documentation of [`super`] gives the protocol; the paper's section numbers are
//! cited where a rule comes from).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sha2::{Digest as _, Sha256};

use super::wire::{Body, Digest, Keys, NULL, Op, PbftMsg, Prepared, Request, Signed, digest};
use super::{Canary, PbftConfig, PbftNode, PbftObs, PbftTimer};
use crate::protocol::{Context, TimerId};
use crate::time::Span;

type Ctx<'a, 'b> = Context<'a, PbftNode>;

/// One sequence number's messages in the view its pre-prepare belongs to.
#[derive(Clone, Default)]
struct Slot {
    /// The view of the accepted pre-prepare (`None`: votes arrived before it).
    view: Option<u64>,
    digest: Digest,
    preprepare: Option<Rc<Signed>>,
    request: Option<Rc<Signed>>,
    /// Votes by (view, replica): every view's, so that early votes count once the
    /// pre-prepare arrives.
    prepares: BTreeMap<(u64, u32), (Digest, Rc<Signed>)>,
    commits: BTreeMap<(u64, u32), Digest>,
    /// This view's progress.
    sent_commit: bool,
    committed: bool,
}

#[derive(Clone)]
pub struct Replica {
    cfg: Rc<PbftConfig>,
    keys: Rc<Keys>,
    id: u32,
    view: u64,
    /// Between sending VIEW-CHANGE for `view` and accepting its NEW-VIEW.
    changing: bool,
    timer: Option<TimerId>,
    /// View changes in a row that found no new view: each waits twice as long (§4.5.2).
    failed_changes: u32,
    /// The primary's last assigned sequence number.
    next_seq: u64,
    assigned: BTreeSet<(u32, u64)>,
    slots: BTreeMap<u64, Slot>,
    /// Per sequence number, the certificate it was last prepared with.
    certs: BTreeMap<u64, (u64, Prepared)>,
    last_exec: u64,
    /// The low watermark: the last stable checkpoint, and its certificate.
    h: u64,
    stable_proof: Vec<Rc<Signed>>,
    checkpoints: BTreeMap<u64, BTreeMap<u32, Rc<Signed>>>,
    state: BTreeMap<u32, u64>,
    /// Per client, the last executed timestamp and its reply.
    replies: BTreeMap<u32, (u64, Rc<Signed>)>,
    /// Requests known and not yet executed.
    pending: BTreeMap<(u32, u64), Rc<Signed>>,
    view_changes: BTreeMap<u64, BTreeMap<u32, Rc<Signed>>>,
    /// Pre-prepares for a view this replica has not entered yet (they can overtake the
    /// NEW-VIEW on the wire): taken up when it enters that view.
    early: Vec<Rc<Signed>>,
    /// The NEW-VIEW this replica entered its view by, and who has been sent it since.
    new_view: Option<Rc<Signed>>,
    told: BTreeSet<(u32, u64)>,
    /// The highest checkpoint known to be stable, whether or not this replica got there.
    stable_seen: u64,
    /// The checkpoint the current view started from (its NEW-VIEW's `min_s`): nothing at or
    /// below it is ordered again in this view, even before this replica holds its proof.
    floor: u64,
    /// Signatures made and checked: the cost figure.
    pub auth_ops: u64,
}

/// Pre-prepares kept for views not yet entered, at most.
const EARLY_MAX: usize = 4096;

impl Replica {
    pub fn new(cfg: Rc<PbftConfig>, keys: Rc<Keys>, id: u32) -> Replica {
        Replica {
            cfg,
            keys,
            id,
            view: 0,
            changing: false,
            timer: None,
            failed_changes: 0,
            next_seq: 0,
            assigned: BTreeSet::new(),
            slots: BTreeMap::new(),
            certs: BTreeMap::new(),
            last_exec: 0,
            h: 0,
            stable_proof: Vec::new(),
            checkpoints: BTreeMap::new(),
            state: BTreeMap::new(),
            replies: BTreeMap::new(),
            pending: BTreeMap::new(),
            view_changes: BTreeMap::new(),
            early: Vec::new(),
            new_view: None,
            told: BTreeSet::new(),
            stable_seen: 0,
            floor: 0,
            auth_ops: 0,
        }
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    pub fn last_executed(&self) -> u64 {
        self.last_exec
    }

    /// Whether a stable checkpoint went past what this replica executed: without state
    /// transfer it stays behind.
    pub fn behind(&self) -> bool {
        self.stable_seen > self.last_exec
    }

    fn is_primary(&self) -> bool {
        self.cfg.primary(self.view) == self.id
    }

    fn verify(&mut self, s: &Signed) -> bool {
        if !self.cfg.checks_signatures() {
            return true;
        }
        self.auth_ops += 1;
        self.keys.verify(s)
    }

    fn sign(&mut self, body: Body) -> Rc<Signed> {
        self.auth_ops += 1;
        self.keys.sign(self.id, body)
    }

    /// Sends to every other replica identity (and their twins).
    fn multicast(&self, ctx: &mut Ctx<'_, '_>, s: &Rc<Signed>) {
        let msg = self.keys.message(Rc::clone(s));
        for r in 0..self.cfg.replicas as u32 {
            if r != self.id {
                for node in self.cfg.nodes_of(r) {
                    ctx.send(node, msg.clone());
                }
            }
        }
    }

    fn send_to(&self, ctx: &mut Ctx<'_, '_>, replica: u32, s: &Rc<Signed>) {
        for node in self.cfg.nodes_of(replica) {
            ctx.send(node, self.keys.message(Rc::clone(s)));
        }
    }

    /// The low end of the window: the stable checkpoint, or the view's starting one.
    fn low(&self) -> u64 {
        self.h.max(self.floor)
    }

    fn in_window(&self, seq: u64) -> bool {
        seq > self.low() && seq <= self.low() + self.cfg.window
    }

    pub(super) fn on_message(&mut self, ctx: &mut Ctx<'_, '_>, msg: PbftMsg) {
        if msg.key != self.keys.id {
            return;
        }
        let s = msg.signed;
        if !self.verify(&s) {
            return;
        }
        let is_replica = (s.signer as usize) < self.cfg.replicas;
        if is_replica {
            self.tell_stale(ctx, &s);
        }
        match &s.body {
            Body::Request(r) if self.signed_by_client(&s, r) => self.on_request(ctx, &s),
            _ if !is_replica => {}
            Body::PrePrepare { view, .. } if *view == self.view && !self.changing => self.on_preprepare(ctx, &s),
            Body::PrePrepare { view, .. }
                if *view >= self.view && s.signer == self.cfg.primary(*view) && self.early.len() < EARLY_MAX =>
            {
                self.early.push(Rc::clone(&s))
            }
            Body::Prepare { view, seq, digest } if s.signer != self.cfg.primary(*view) && self.in_window(*seq) => {
                let slot = self.slots.entry(*seq).or_default();
                slot.prepares.entry((*view, s.signer)).or_insert((*digest, Rc::clone(&s)));
                self.progress(ctx, *seq);
            }
            Body::Commit { view, seq, digest } if self.in_window(*seq) => {
                let slot = self.slots.entry(*seq).or_default();
                slot.commits.entry((*view, s.signer)).or_insert(*digest);
                self.progress(ctx, *seq);
            }
            Body::Checkpoint { .. } => self.on_checkpoint(ctx, &s),
            Body::ViewChange { view, .. } if *view > self.view || *view == self.view && self.changing => {
                self.on_view_change(ctx, &s)
            }
            Body::NewView { view, .. } if *view > self.view || *view == self.view && self.changing => {
                self.on_new_view(ctx, &s)
            }
            _ => {}
        }
    }

    /// A replica still working in an older view missed the NEW-VIEW (a partition, a
    /// pause): send it the one this replica entered by, once per replica and view. PBFT
    /// leaves retransmission to the implementation; without it a replica cut off during
    /// a view change would never rejoin.
    fn tell_stale(&mut self, ctx: &mut Ctx<'_, '_>, s: &Signed) {
        let view = match &s.body {
            Body::PrePrepare { view, .. } | Body::Prepare { view, .. } | Body::Commit { view, .. } => *view,
            Body::ViewChange { view, .. } => view.saturating_sub(1),
            _ => return,
        };
        if view >= self.view || self.changing {
            return;
        }
        if let Some(nv) = self.new_view.clone()
            && self.told.insert((s.signer, self.view))
        {
            // Relayed, so a faulty relay can only drop it: it cannot sign as the primary.
            for node in self.cfg.nodes_of(s.signer) {
                ctx.send(node, PbftMsg { relayed: true, ..self.keys.message(Rc::clone(&nv)) });
            }
        }
    }

    fn signed_by_client(&self, s: &Signed, r: &Request) -> bool {
        (r.client as usize) < self.cfg.clients && s.signer == self.cfg.client_signer(r.client)
    }

    /// A client's request, directly or forwarded by a backup (§4.2, §4.4).
    fn on_request(&mut self, ctx: &mut Ctx<'_, '_>, s: &Rc<Signed>) {
        let Body::Request(r) = &s.body else { return };
        if let Some((ts, reply)) = self.replies.get(&r.client) {
            if *ts == r.ts {
                ctx.send(self.cfg.client_node(r.client), self.keys.message(Rc::clone(reply)));
            }
            if *ts >= r.ts {
                return;
            }
        }
        let fresh = self.pending.insert((r.client, r.ts), Rc::clone(s)).is_none();
        if self.is_primary() {
            if !self.changing {
                self.propose_pending(ctx);
            }
        } else {
            if fresh {
                let primary = self.cfg.primary(self.view);
                self.send_to(ctx, primary, s);
            }
            self.arm_timer(ctx);
        }
    }

    /// The primary assigns sequence numbers to pending requests, in the window.
    fn propose_pending(&mut self, ctx: &mut Ctx<'_, '_>) {
        let todo: Vec<Rc<Signed>> =
            self.pending.iter().filter(|(k, _)| !self.assigned.contains(k)).map(|(_, s)| Rc::clone(s)).collect();
        for req in todo {
            if self.next_seq + 1 > self.low() + self.cfg.window {
                break;
            }
            let Body::Request(r) = &req.body else { continue };
            self.assigned.insert((r.client, r.ts));
            self.next_seq += 1;
            let pp = self.sign(Body::PrePrepare {
                view: self.view,
                seq: self.next_seq,
                digest: digest(&req),
                request: Some(req),
            });
            self.multicast(ctx, &pp);
            self.accept_preprepare(ctx, &pp);
        }
    }

    fn on_preprepare(&mut self, ctx: &mut Ctx<'_, '_>, s: &Rc<Signed>) {
        let Body::PrePrepare { view, seq, .. } = &s.body else { return };
        if s.signer != self.cfg.primary(*view) || !self.in_window(*seq) || !self.valid_preprepare(s) {
            return;
        }
        self.accept_preprepare(ctx, s);
    }

    /// Whether a pre-prepare's request is its client's and matches its digest.
    fn valid_preprepare(&mut self, s: &Signed) -> bool {
        let Body::PrePrepare { digest: d, request, .. } = &s.body else { return false };
        match request {
            None => *d == NULL,
            Some(req) => {
                let Body::Request(r) = &req.body else { return false };
                self.signed_by_client(req, r) && digest(req) == *d && self.verify(req)
            }
        }
    }

    /// Logs a pre-prepare (unless another for its view and number was taken: an
    /// equivocating primary is refused) and prepares it.
    fn accept_preprepare(&mut self, ctx: &mut Ctx<'_, '_>, s: &Rc<Signed>) {
        let Body::PrePrepare { view, seq, digest: d, request } = &s.body else { return };
        let slot = self.slots.entry(*seq).or_default();
        if let Some(v) = slot.view {
            if v == *view {
                return;
            }
            if v > *view {
                return;
            }
        }
        slot.view = Some(*view);
        slot.digest = *d;
        slot.preprepare = Some(Rc::clone(s));
        slot.request = request.clone();
        slot.sent_commit = false;
        slot.committed = false;
        if let Some(req) = request
            && let Body::Request(r) = &req.body
            && self.replies.get(&r.client).is_none_or(|(ts, _)| *ts < r.ts)
        {
            self.pending.entry((r.client, r.ts)).or_insert_with(|| Rc::clone(req));
        }
        if self.cfg.primary(*view) != self.id {
            let p = self.sign(Body::Prepare { view: *view, seq: *seq, digest: *d });
            self.slots.entry(*seq).or_default().prepares.insert((*view, self.id), (*d, Rc::clone(&p)));
            self.multicast(ctx, &p);
            self.arm_timer(ctx);
        }
        self.progress(ctx, *seq);
    }

    /// Prepared → multicast COMMIT; committed-local → execute what is in order.
    fn progress(&mut self, ctx: &mut Ctx<'_, '_>, seq: u64) {
        let (prepare_q, commit_q) = (self.cfg.prepare_quorum(), self.cfg.commit_quorum());
        let Some(slot) = self.slots.get(&seq) else { return };
        let Some(view) = slot.view else { return };
        // Votes count only in the view this replica is working in: once it has sent
        // VIEW-CHANGE it must not become prepared or commit in the old view, or a
        // certificate its view change did not carry could decide a request (§4.4).
        if self.changing || view != self.view {
            return;
        }
        let d = slot.digest;
        let primary = self.cfg.primary(view);
        if !slot.sent_commit {
            let prepares: Vec<Rc<Signed>> = slot
                .prepares
                .range((view, 0)..=(view, u32::MAX))
                .filter(|((_, r), (pd, _))| *pd == d && *r != primary)
                .map(|(_, (_, p))| Rc::clone(p))
                .collect();
            if prepares.len() < prepare_q {
                return;
            }
            let preprepare = slot.preprepare.clone().expect("a slot with a view has its pre-prepare");
            self.certs.insert(seq, (view, Prepared { preprepare, prepares }));
            let c = self.sign(Body::Commit { view, seq, digest: d });
            let slot = self.slots.get_mut(&seq).expect("looked up above");
            slot.sent_commit = true;
            slot.commits.insert((view, self.id), d);
            self.multicast(ctx, &c);
        }
        let slot = self.slots.get_mut(&seq).expect("looked up above");
        let commits = slot.commits.range((view, 0)..=(view, u32::MAX)).filter(|(_, cd)| **cd == d).count();
        if !slot.committed && commits >= commit_q {
            slot.committed = true;
            self.execute_ready(ctx);
        }
    }

    fn execute_ready(&mut self, ctx: &mut Ctx<'_, '_>) {
        let before = self.last_exec;
        while let Some(slot) = self.slots.get(&(self.last_exec + 1)) {
            if !slot.committed {
                break;
            }
            let (d, request) = (slot.digest, slot.request.clone());
            self.last_exec += 1;
            let seq = self.last_exec;
            let executed = request.as_ref().and_then(|req| match &req.body {
                Body::Request(r) => Some((r.client, r.ts, r.op, Rc::clone(req))),
                _ => None,
            });
            ctx.observe(PbftObs::Executed { seq, digest: d, request: executed.as_ref().map(|e| (e.0, e.1, e.2)) });
            if let Some((client, ts, op, _)) = executed {
                self.pending.remove(&(client, ts));
                if self.replies.get(&client).is_none_or(|(last, _)| *last < ts) {
                    let result = match op {
                        Op::Write { key, value } => {
                            self.state.insert(key, value);
                            None
                        }
                        Op::Read { key } => self.state.get(&key).copied(),
                    };
                    let reply = self.sign(Body::Reply { view: self.view, client, ts, result });
                    ctx.send(self.cfg.client_node(client), self.keys.message(Rc::clone(&reply)));
                    self.replies.insert(client, (ts, reply));
                }
            }
            if seq.is_multiple_of(self.cfg.checkpoint_interval) {
                let c = self.sign(Body::Checkpoint { seq, state: self.state_digest() });
                self.checkpoints.entry(seq).or_default().insert(self.id, Rc::clone(&c));
                self.multicast(ctx, &c);
                self.try_stabilise(ctx, seq);
            }
        }
        if self.last_exec > before && !self.changing {
            // Progress was made: the wait for the rest starts again (§4.5.2).
            self.cancel_timer(ctx);
            self.arm_timer(ctx);
        }
        if self.is_primary() && !self.changing {
            self.propose_pending(ctx);
        }
    }

    /// The digest of the service state: the registers and the last reply per client.
    fn state_digest(&self) -> Digest {
        let mut h = Sha256::new();
        h.update(self.last_exec.to_le_bytes());
        for (k, v) in &self.state {
            h.update(k.to_le_bytes());
            h.update(v.to_le_bytes());
        }
        for (c, (ts, _)) in &self.replies {
            h.update(c.to_le_bytes());
            h.update(ts.to_le_bytes());
        }
        h.finalize().into()
    }

    fn on_checkpoint(&mut self, ctx: &mut Ctx<'_, '_>, s: &Rc<Signed>) {
        let Body::Checkpoint { seq, .. } = &s.body else { return };
        if *seq <= self.h {
            return;
        }
        self.checkpoints.entry(*seq).or_default().insert(s.signer, Rc::clone(s));
        self.try_stabilise(ctx, *seq);
    }

    /// A quorum of matching checkpoints at `seq` is a stable certificate: the low
    /// watermark moves and the log below it goes (§4.3).
    fn try_stabilise(&mut self, ctx: &mut Ctx<'_, '_>, seq: u64) {
        let Some(all) = self.checkpoints.get(&seq) else { return };
        let mut by_digest: BTreeMap<Digest, Vec<Rc<Signed>>> = BTreeMap::new();
        for c in all.values() {
            if let Body::Checkpoint { state, .. } = &c.body {
                by_digest.entry(*state).or_default().push(Rc::clone(c));
            }
        }
        let Some(proof) = by_digest.into_values().find(|p| p.len() >= self.cfg.quorum()) else { return };
        self.stable_seen = self.stable_seen.max(seq);
        if seq > self.last_exec {
            // Not there yet: stable for this replica once it executes `seq` itself.
            return;
        }
        self.h = seq;
        self.stable_proof = proof;
        self.slots = self.slots.split_off(&(seq + 1));
        self.certs = self.certs.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&seq);
        ctx.observe(PbftObs::Stable { seq });
        if self.is_primary() && !self.changing {
            self.propose_pending(ctx);
        }
    }

    /// Starts the wait for pending requests (or for a new view), unless one runs.
    fn arm_timer(&mut self, ctx: &mut Ctx<'_, '_>) {
        if self.timer.is_some() || self.pending.is_empty() && !self.changing || self.is_primary() && !self.changing {
            return;
        }
        let wait = Span::from_nanos(self.cfg.view_timeout.as_nanos().saturating_mul(1 << self.failed_changes.min(16)));
        self.timer = Some(ctx.set_timer(wait, PbftTimer::ViewChange { view: self.view }));
    }

    fn cancel_timer(&mut self, ctx: &mut Ctx<'_, '_>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
    }

    pub(super) fn on_timer(&mut self, ctx: &mut Ctx<'_, '_>, timer: PbftTimer) {
        let PbftTimer::ViewChange { view } = timer else { return };
        self.timer = None;
        if view == self.view {
            if self.changing {
                self.failed_changes += 1;
            }
            self.start_view_change(ctx, view + 1);
        }
    }

    /// Moves to `view`: multicast VIEW-CHANGE with the stable certificate and every
    /// prepared certificate above it (§4.4).
    fn start_view_change(&mut self, ctx: &mut Ctx<'_, '_>, view: u64) {
        self.cancel_timer(ctx);
        self.view = view;
        self.changing = true;
        let prepared: Vec<Prepared> = self.certs.range(self.h + 1..).map(|(_, (_, p))| p.clone()).collect();
        let vc = self.sign(Body::ViewChange { view, stable: self.h, proof: self.stable_proof.clone(), prepared });
        self.view_changes.entry(view).or_default().insert(self.id, Rc::clone(&vc));
        self.multicast(ctx, &vc);
        self.arm_timer(ctx);
        self.try_new_view(ctx);
    }

    fn on_view_change(&mut self, ctx: &mut Ctx<'_, '_>, s: &Rc<Signed>) {
        let Body::ViewChange { view, .. } = &s.body else { return };
        let view = *view;
        self.view_changes.entry(view).or_default().insert(s.signer, Rc::clone(s));
        // f + 1 replicas ask for views above ours: at least one is correct, so join the
        // smallest of them rather than wait for our own timer (§4.5.2).
        let mut askers: BTreeMap<u32, u64> = BTreeMap::new();
        for (&v, by) in self.view_changes.range(self.view + 1..) {
            for &r in by.keys() {
                askers.entry(r).or_insert(v);
            }
        }
        if askers.len() > self.cfg.f
            && let Some(&smallest) = askers.values().min()
        {
            self.start_view_change(ctx, smallest);
            return;
        }
        if view == self.view {
            self.try_new_view(ctx);
        }
    }

    /// The new primary, with a quorum of valid view changes, sends NEW-VIEW.
    fn try_new_view(&mut self, ctx: &mut Ctx<'_, '_>) {
        if !self.changing || !self.is_primary() {
            return;
        }
        let view = self.view;
        let candidates: Vec<Rc<Signed>> =
            self.view_changes.get(&view).map(|m| m.values().cloned().collect()).unwrap_or_default();
        let mut valid = Vec::new();
        for vc in candidates {
            if self.valid_view_change(&vc, view) {
                valid.push(vc);
            }
        }
        if valid.len() < self.cfg.quorum() {
            return;
        }
        valid.truncate(self.cfg.quorum());
        let (min_s, plan) = new_view_plan(&valid);
        let preprepares: Vec<Rc<Signed>> = plan
            .into_iter()
            .map(|(seq, d, request)| self.sign(Body::PrePrepare { view, seq, digest: d, request }))
            .collect();
        let valid_changes = valid.clone();
        let nv = self.sign(Body::NewView { view, changes: valid, preprepares: preprepares.clone() });
        self.multicast(ctx, &nv);
        self.new_view = Some(nv);
        self.enter_view(ctx, view, min_s, &valid_changes, &preprepares);
    }

    /// A view change for `view`: signed, its checkpoint certificate and every prepared
    /// certificate valid.
    fn valid_view_change(&mut self, vc: &Signed, view: u64) -> bool {
        let Body::ViewChange { view: v, stable, proof, prepared } = &vc.body else { return false };
        if *v != view || vc.signer as usize >= self.cfg.replicas || !self.verify(vc) {
            return false;
        }
        if *stable > 0 {
            let mut signers = BTreeSet::new();
            let mut state = None;
            for c in proof {
                let Body::Checkpoint { seq, state: d } = &c.body else { return false };
                if *seq != *stable || state.is_some_and(|s| s != *d) || !self.verify(c) {
                    return false;
                }
                state = Some(*d);
                signers.insert(c.signer);
            }
            if signers.len() < self.cfg.quorum() {
                return false;
            }
        }
        for p in prepared {
            let Body::PrePrepare { view: pv, seq, digest: d, .. } = &p.preprepare.body else { return false };
            let primary = self.cfg.primary(*pv);
            if *pv >= view
                || *seq <= *stable
                || p.preprepare.signer != primary
                || !self.verify(&p.preprepare)
                || !self.valid_preprepare(&p.preprepare)
            {
                return false;
            }
            let mut signers = BTreeSet::new();
            for q in &p.prepares {
                let matches =
                    matches!(&q.body, Body::Prepare { view, seq: s, digest } if view == pv && s == seq && digest == d);
                if !matches || q.signer == primary || q.signer as usize >= self.cfg.replicas || !self.verify(q) {
                    return false;
                }
                signers.insert(q.signer);
            }
            if signers.len() < self.cfg.prepare_quorum() {
                return false;
            }
        }
        true
    }

    fn on_new_view(&mut self, ctx: &mut Ctx<'_, '_>, s: &Rc<Signed>) {
        let Body::NewView { view, changes, preprepares } = &s.body else { return };
        let view = *view;
        if s.signer != self.cfg.primary(view) {
            return;
        }
        let min_s = if self.cfg.canary == Some(Canary::UncheckedNewView) {
            // Taken on the primary's word: whatever pre-prepares it sent.
            changes
                .iter()
                .filter_map(|c| match &c.body {
                    Body::ViewChange { stable, .. } => Some(*stable),
                    _ => None,
                })
                .max()
                .unwrap_or(0)
        } else {
            let mut signers = BTreeSet::new();
            for vc in changes {
                if !self.valid_view_change(vc, view) {
                    return;
                }
                signers.insert(vc.signer);
            }
            if signers.len() < self.cfg.quorum() {
                return;
            }
            let (min_s, plan) = new_view_plan(changes);
            let sent: Vec<(u64, Digest)> = preprepares
                .iter()
                .filter_map(|p| match &p.body {
                    Body::PrePrepare { view: v, seq, digest, .. } if *v == view && p.signer == s.signer => {
                        Some((*seq, *digest))
                    }
                    _ => None,
                })
                .collect();
            let expected: Vec<(u64, Digest)> = plan.iter().map(|(seq, d, _)| (*seq, *d)).collect();
            if sent != expected || sent.len() != preprepares.len() {
                return;
            }
            for p in preprepares {
                if !self.verify(p) || !self.valid_preprepare(p) {
                    return;
                }
            }
            min_s
        };
        self.new_view = Some(Rc::clone(s));
        self.enter_view(ctx, view, min_s, changes, preprepares);
    }

    /// Enters `view` with the new view's pre-prepares: prepare each again, in the new view.
    fn enter_view(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        view: u64,
        min_s: u64,
        changes: &[Rc<Signed>],
        preprepares: &[Rc<Signed>],
    ) {
        self.cancel_timer(ctx);
        self.view = view;
        self.changing = false;
        self.failed_changes = 0;
        self.view_changes = self.view_changes.split_off(&(view + 1));
        ctx.observe(PbftObs::View { view });
        self.stable_seen = self.stable_seen.max(min_s);
        // The new view starts from checkpoint `min_s`: adopt it (its proof is in a view
        // change) when this replica has executed that far, and order nothing at or below
        // it again either way.
        self.floor = self.floor.max(min_s);
        if min_s > self.h && self.last_exec >= min_s {
            let proof = changes.iter().find_map(|c| match &c.body {
                Body::ViewChange { stable, proof, .. } if *stable == min_s => Some(proof.clone()),
                _ => None,
            });
            if let Some(proof) = proof {
                self.h = min_s;
                self.stable_proof = proof;
                self.slots = self.slots.split_off(&(min_s + 1));
                self.certs = self.certs.split_off(&(min_s + 1));
                self.checkpoints = self.checkpoints.split_off(&min_s);
            }
        }
        let mut max_seq = min_s.max(self.h);
        self.assigned.clear();
        for pp in preprepares {
            let Body::PrePrepare { seq, request, .. } = &pp.body else { continue };
            max_seq = max_seq.max(*seq);
            if let Some(req) = request
                && let Body::Request(r) = &req.body
            {
                self.assigned.insert((r.client, r.ts));
            }
            if self.in_window(*seq) {
                self.accept_preprepare(ctx, pp);
            }
        }
        self.next_seq = max_seq;
        let early = std::mem::take(&mut self.early);
        for pp in early {
            match &pp.body {
                Body::PrePrepare { view: v, .. } if *v == view => self.on_preprepare(ctx, &pp),
                Body::PrePrepare { view: v, .. } if *v > view => self.early.push(pp),
                _ => {}
            }
        }
        if self.is_primary() {
            self.propose_pending(ctx);
        } else {
            // Requests this backup waits for go to the new primary.
            let primary = self.cfg.primary(view);
            let pending: Vec<Rc<Signed>> = self.pending.values().cloned().collect();
            for req in &pending {
                self.send_to(ctx, primary, req);
            }
            self.arm_timer(ctx);
        }
    }
}

/// What a new view must re-propose, from its view changes (§4.4): the highest stable
/// checkpoint `min_s`, and for every sequence number above it up to the highest prepared
/// one, the request prepared in the latest view, else the null request.
/// A new view's re-proposals: sequence number, digest, request (`None`: null).
type Plan = Vec<(u64, Digest, Option<Rc<Signed>>)>;

fn new_view_plan(changes: &[Rc<Signed>]) -> (u64, Plan) {
    let mut min_s = 0;
    let mut best: BTreeMap<u64, (u64, Digest, Option<Rc<Signed>>)> = BTreeMap::new();
    for vc in changes {
        let Body::ViewChange { stable, prepared, .. } = &vc.body else { continue };
        min_s = min_s.max(*stable);
        for p in prepared {
            if let Body::PrePrepare { view, seq, digest, request } = &p.preprepare.body
                && best.get(seq).is_none_or(|(v, _, _)| *v < *view)
            {
                best.insert(*seq, (*view, *digest, request.clone()));
            }
        }
    }
    let max_s = best.keys().next_back().copied().unwrap_or(min_s).max(min_s);
    let plan = (min_s + 1..=max_s)
        .map(|seq| match best.get(&seq) {
            Some((_, d, request)) => (seq, *d, request.clone()),
            None => (seq, NULL, None),
        })
        .collect();
    (min_s, plan)
}
