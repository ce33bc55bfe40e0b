//! PBFT's messages and authentication, on their own: bytes round-trip, signatures bind
//! the signer and the content, and each Byzantine hook does what the catalogue says and
//! no more. The protocol's runs are tested in `tests/pbft.rs`.

use std::rc::Rc;

use super::wire::{Body, KeyId, Keys, NULL, Op, PbftMsg, Prepared, Request, digest};
use super::*;
use crate::protocol::Message;
use crate::protocol::{Context, Protocol, TimerId};
use crate::rng::{Stream, stream};

fn keys(auth: Auth) -> Keys {
    Keys::new(auth, 7, 6)
}

/// One message of every kind, signed as the protocol would sign it.
fn every_kind(k: &Keys) -> Vec<PbftMsg> {
    let request = k.sign(4, Body::Request(Request { client: 0, ts: 3, op: Op::Write { key: 1, value: 99 } }));
    let d = digest(&request);
    let pp = k.sign(0, Body::PrePrepare { view: 0, seq: 5, digest: d, request: Some(Rc::clone(&request)) });
    let prepares: Vec<_> = (1..3).map(|r| k.sign(r, Body::Prepare { view: 0, seq: 5, digest: d })).collect();
    let checkpoint = k.sign(2, Body::Checkpoint { seq: 4, state: [9; 32] });
    let vc = k.sign(
        1,
        Body::ViewChange {
            view: 1,
            stable: 4,
            proof: vec![Rc::clone(&checkpoint)],
            prepared: vec![Prepared { preprepare: Rc::clone(&pp), prepares: prepares.clone() }],
        },
    );
    let npp = k.sign(1, Body::PrePrepare { view: 1, seq: 5, digest: d, request: Some(Rc::clone(&request)) });
    [
        request,
        pp,
        Rc::clone(&prepares[0]),
        k.sign(3, Body::Commit { view: 0, seq: 5, digest: d }),
        k.sign(2, Body::Reply { view: 0, client: 0, ts: 3, result: Some(99) }),
        checkpoint,
        Rc::clone(&vc),
        k.sign(1, Body::NewView { view: 1, changes: vec![vc], preprepares: vec![npp] }),
    ]
    .into_iter()
    .map(|s| k.message(s))
    .collect()
}

#[test]
fn every_message_round_trips_through_its_bytes_and_verifies() {
    for auth in [Auth::Hmac, Auth::Ed25519] {
        let k = keys(auth);
        for m in every_kind(&k) {
            let bytes = m.encode().expect("PBFT encodes");
            let back = PbftMsg::decode(&bytes).expect("decodes");
            assert_eq!(back, m);
            assert!(k.verify(&back.signed), "{m:?} verifies after the round trip");
            // Every byte of the message is covered: a truncated one never decodes.
            assert!(PbftMsg::decode(&bytes[..bytes.len() - 1]).is_none());
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_is_caught_by_the_signature_or_the_decoder() {
    let k = keys(Auth::Hmac);
    for m in every_kind(&k) {
        let bytes = m.encode().expect("PBFT encodes");
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            if let Some(corrupt) = PbftMsg::decode(&b) {
                // The transport's relay flag is not signed, and changes nothing a receiver
                // acts on: the signed message is the same.
                if corrupt.signed == m.signed && corrupt.key == m.key {
                    assert_ne!(corrupt.relayed, m.relayed);
                    continue;
                }
                assert!(
                    corrupt.key != k.id || !k.verify(&corrupt.signed),
                    "bit {bit} of {m:?} changed the message and it still verified"
                );
            }
        }
    }
}

#[test]
fn a_signature_binds_its_signer() {
    let k = keys(Auth::Ed25519);
    let s = k.sign(2, Body::Prepare { view: 0, seq: 1, digest: [1; 32] });
    let claimed = wire::Signed { signer: 3, body: s.body.clone(), sig: s.sig.clone() };
    assert!(k.verify(&s));
    assert!(!k.verify(&claimed));
    // Another run's keys (another key seed) verify nothing of this one's.
    assert!(!Keys::new(Auth::Ed25519, 8, 6).verify(&s));
}

#[test]
fn the_byzantine_hooks_lie_with_the_liars_own_key() {
    let k = keys(Auth::Hmac);
    let mut rng = stream(1, Stream::Node(0));
    let msgs = every_kind(&k);
    // tamper: the primary's pre-prepare carries an altered request that its client did
    // not sign; the primary's own signature over it is valid.
    let mut pp = msgs[1].clone();
    assert!(pp.tamper(&mut rng));
    let wire::Body::PrePrepare { request: Some(req), digest: d, .. } = &pp.signed.body else { panic!("{pp:?}") };
    assert!(k.verify(&pp.signed), "the liar signs its own lie");
    assert!(!k.verify(req), "the client never signed the altered request");
    assert_eq!(*d, digest(req), "the digest matches the altered request");
    // A vote for the null request; a reply with a value nobody wrote.
    let mut commit = msgs[3].clone();
    assert!(commit.tamper(&mut rng));
    assert!(matches!(commit.signed.body, wire::Body::Commit { digest: NULL, .. }) && k.verify(&commit.signed));
    let mut reply = msgs[4].clone();
    assert!(reply.tamper(&mut rng));
    assert!(matches!(reply.signed.body, wire::Body::Reply { result: Some(v), .. } if v != 99));
    // A client's request is not the replica's to re-sign: tamper leaves it.
    assert!(!msgs[0].clone().tamper(&mut rng));
    // equivocate: even-numbered peers get the truth, odd ones the null request.
    let mut even = msgs[1].clone();
    assert!(!even.equivocate(crate::protocol::NodeId(2), &mut rng));
    assert_eq!(even, msgs[1]);
    let mut odd = msgs[1].clone();
    assert!(odd.equivocate(crate::protocol::NodeId(3), &mut rng));
    assert!(matches!(odd.signed.body, wire::Body::PrePrepare { digest: NULL, request: None, .. }));
    assert!(k.verify(&odd.signed));
    // forge: another signer's name, the forger's signature: rejected.
    let forged = msgs[2].forge(crate::protocol::NodeId(3), &mut rng).expect("a prepare names its signer");
    assert_eq!(forged.signed.signer, 3);
    assert!(!k.verify(&forged.signed));
    // The new view's lie: every re-proposed request becomes the null request.
    let mut nv = msgs[7].clone();
    assert!(nv.tamper(&mut rng));
    let wire::Body::NewView { preprepares, .. } = &nv.signed.body else { panic!() };
    assert!(preprepares.iter().all(|p| matches!(p.body, wire::Body::PrePrepare { digest: NULL, .. }) && k.verify(p)));
}

#[test]
fn quorums_meet_in_a_correct_replica_exactly_from_3f_plus_1() {
    for n in 1..=13usize {
        for f in 0..n {
            let c = PbftConfig { replicas: n, f, ..PbftConfig::default() };
            let q = c.quorum();
            assert_eq!(q, n - f);
            // Two quorums share 2q - n replicas; f of them may lie.
            let meet = (2 * q).saturating_sub(n);
            assert_eq!(meet > f, n > 3 * f, "n={n} f={f} q={q}");
        }
    }
    let c = PbftConfig { replicas: 4, f: 1, ..PbftConfig::default() };
    assert_eq!((c.quorum(), c.prepare_quorum(), c.commit_quorum(), c.reply_quorum()), (3, 2, 3, 2));
    let small = PbftConfig { canary: Some(Canary::SmallCertificates), ..c.clone() };
    assert_eq!((small.prepare_quorum(), small.commit_quorum()), (1, 2));
    assert_eq!(PbftConfig { canary: Some(Canary::FewReplies), ..c }.reply_quorum(), 1);
}

#[test]
fn twins_share_an_identity_and_receive_what_is_sent_to_it() {
    let c = PbftConfig { replicas: 3, f: 1, clients: 2, twins: vec![0], ..PbftConfig::default() };
    assert_eq!(c.node_names(), ["r0", "r1", "r2", "t0", "c0", "c1"]);
    let id = |i: u32| c.identity(crate::protocol::NodeId(i));
    assert_eq!((id(0), id(3), id(4)), (Some(0), Some(0), None));
    assert_eq!(c.nodes_of(0).map(|n| n.0).collect::<Vec<_>>(), [0, 3]);
    assert_eq!(c.nodes_of(1).map(|n| n.0).collect::<Vec<_>>(), [1]);
    assert!(c.twinned(crate::protocol::NodeId(0)) && c.twinned(crate::protocol::NodeId(3)));
    assert!(!c.twinned(crate::protocol::NodeId(1)));
    let _ = KeyId { auth: Auth::Hmac, seed: 0 };
}

/// Records what a replica's handlers emit (the simulator's effects, without a network).
struct Recorder {
    rng: crate::rng::SimRng,
    sent: Vec<(u32, PbftMsg)>,
    timers: u64,
}

impl crate::protocol::Runtime<PbftNode> for Recorder {
    fn rng(&mut self, _me: crate::protocol::NodeId) -> &mut crate::rng::SimRng {
        &mut self.rng
    }
    fn send(&mut self, _from: crate::protocol::NodeId, to: crate::protocol::NodeId, msg: PbftMsg) {
        self.sent.push((to.0, msg));
    }
    fn set_timer(&mut self, _me: crate::protocol::NodeId, _after: crate::time::Span, _t: PbftTimer) -> TimerId {
        self.timers += 1;
        TimerId(self.timers)
    }
    fn cancel_timer(&mut self, _me: crate::protocol::NodeId, _id: TimerId) {}
    fn observe(&mut self, _me: crate::protocol::NodeId, _obs: PbftObs) {}
    fn write(&mut self, _me: crate::protocol::NodeId, _key: &str, _value: Vec<u8>) {}
    fn fsync(&mut self, _me: crate::protocol::NodeId) {}
    fn read(&mut self, _me: crate::protocol::NodeId, _key: &str) -> Option<Vec<u8>> {
        None
    }
    fn stale(&mut self, _me: crate::protocol::NodeId) -> Option<crate::time::Span> {
        None
    }
}

impl Recorder {
    fn new() -> Recorder {
        Recorder { rng: stream(1, Stream::Node(0)), sent: Vec::new(), timers: 0 }
    }
    fn deliver(&mut self, node: &mut PbftNode, me: u32, msg: PbftMsg) {
        self.sent.clear();
        let mut ctx = Context::new(crate::protocol::NodeId(me), crate::time::Time::ZERO, self);
        node.on_message(&mut ctx, crate::protocol::NodeId(0), msg);
    }
    fn fire(&mut self, node: &mut PbftNode, me: u32, timer: PbftTimer) {
        self.sent.clear();
        let mut ctx = Context::new(crate::protocol::NodeId(me), crate::time::Time::ZERO, self);
        node.on_timer(&mut ctx, TimerId(0), timer);
    }
    fn commits(&self) -> usize {
        self.sent.iter().filter(|(_, m)| matches!(m.signed.body, Body::Commit { .. })).count()
    }
}

/// Replica `r` of n = 4 (f = 1), and the keys every node of its run signs with.
fn replica(r: usize) -> (PbftNode, Keys) {
    let config = PbftConfig { replicas: 4, f: 1, clients: 1, ..PbftConfig::default() };
    let k = Keys::new(config.auth, config.key_seed, 5);
    (config.nodes().swap_remove(r), k)
}

fn request_and_preprepare(k: &Keys, view: u64, seq: u64, value: u64) -> (wire::Digest, PbftMsg) {
    let request = k.sign(4, Body::Request(Request { client: 0, ts: seq, op: Op::Write { key: 0, value } }));
    let d = digest(&request);
    let primary = (view % 4) as u32;
    (d, k.message(k.sign(primary, Body::PrePrepare { view, seq, digest: d, request: Some(request) })))
}

#[test]
fn votes_of_the_old_view_count_for_nothing_once_a_view_change_is_sent() {
    let (mut node, k) = replica(1);
    let mut rec = Recorder::new();
    let (d, pp) = request_and_preprepare(&k, 0, 1, 7);
    rec.deliver(&mut node, 1, pp);
    assert!(rec.sent.iter().any(|(_, m)| matches!(m.signed.body, Body::Prepare { .. })), "r1 prepares");
    // r1's wait runs out before the other prepares arrive: it asks for view 1, with no
    // prepared certificate for sequence number 1.
    rec.fire(&mut node, 1, PbftTimer::ViewChange { view: 0 });
    let vc = rec.sent.iter().find_map(|(_, m)| match &m.signed.body {
        Body::ViewChange { prepared, .. } => Some(prepared.len()),
        _ => None,
    });
    assert_eq!(vc, Some(0));
    // The late prepare from r2 would make it prepared in view 0: it must not commit there.
    rec.deliver(&mut node, 1, k.message(k.sign(2, Body::Prepare { view: 0, seq: 1, digest: d })));
    assert_eq!(rec.commits(), 0, "committed in a view it had left: {:?}", rec.sent);
    // Before the view change, the same prepare does make it prepared (the test can fail).
    let (mut fresh, _) = replica(1);
    let (_, pp) = request_and_preprepare(&k, 0, 1, 7);
    rec.deliver(&mut fresh, 1, pp);
    rec.deliver(&mut fresh, 1, k.message(k.sign(2, Body::Prepare { view: 0, seq: 1, digest: d })));
    assert_eq!(rec.commits(), 3, "prepared with r1's and r2's prepares: a commit to each other replica");
}

#[test]
fn a_new_view_orders_nothing_at_or_below_its_checkpoint_again() {
    // r3 enters view 1 from a NEW-VIEW whose checkpoint is 16, with nothing executed
    // itself. The new primary then pre-prepares sequence number 5 afresh: refused.
    let (mut node, k) = replica(3);
    let mut rec = Recorder::new();
    let proof: Vec<_> = (0..3).map(|r| k.sign(r, Body::Checkpoint { seq: 16, state: [3; 32] })).collect();
    let changes: Vec<_> = (0..3)
        .map(|r| k.sign(r, Body::ViewChange { view: 1, stable: 16, proof: proof.clone(), prepared: Vec::new() }))
        .collect();
    let nv = k.message(k.sign(1, Body::NewView { view: 1, changes, preprepares: Vec::new() }));
    rec.deliver(&mut node, 3, nv);
    assert_eq!(node.as_replica().map(Replica::view), Some(1), "the new view is valid: {:?}", rec.sent);
    let (_, stale) = request_and_preprepare(&k, 1, 5, 8);
    rec.deliver(&mut node, 3, stale);
    assert!(rec.sent.is_empty(), "sequence number 5 ordered again in view 1: {:?}", rec.sent);
    let (_, fresh) = request_and_preprepare(&k, 1, 17, 9);
    rec.deliver(&mut node, 3, fresh);
    assert!(rec.sent.iter().any(|(_, m)| matches!(m.signed.body, Body::Prepare { seq: 17, .. })));
}

#[test]
fn a_faulty_relay_cannot_rewrite_what_it_relays() {
    let k = keys(Auth::Hmac);
    let mut rng = stream(1, Stream::Node(0));
    let nv = every_kind(&k).swap_remove(7);
    let mut relayed = PbftMsg { relayed: true, ..nv.clone() };
    assert!(!relayed.tamper(&mut rng) && !relayed.equivocate(crate::protocol::NodeId(1), &mut rng));
    assert_eq!(PbftMsg::decode(&relayed.encode().expect("encodes")), Some(relayed));
    let mut own = nv;
    assert!(own.tamper(&mut rng), "its own messages it can rewrite");
}
