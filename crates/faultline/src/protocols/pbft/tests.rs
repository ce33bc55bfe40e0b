//! PBFT's messages and authentication, on their own: bytes round-trip, signatures bind
//! the signer and the content, and each Byzantine hook does what the catalogue says and
//! no more. The protocol's runs are tested in `tests/pbft.rs`.

use std::rc::Rc;

use super::wire::{Body, KeyId, Keys, NULL, Op, PbftMsg, Prepared, Request, digest};
use super::*;
use crate::protocol::Message;
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
