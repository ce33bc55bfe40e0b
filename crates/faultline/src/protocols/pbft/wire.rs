//! PBFT's messages: what they say ([`Body`]), who signed them ([`Signed`]), their bytes on
//! the wire, and what a Byzantine sender may do to them.
//!
//! Every message is one signed body, encoded little-endian with length-prefixed parts;
//! certificates (a view change's checkpoints and prepared certificates, a new view's view
//! changes and pre-prepares) nest signed messages whole, so each part can be checked
//! against its own signer. A message also carries its key header (scheme and key seed):
//! which keys verify it, as a real deployment names a key epoch.
//!
//! The Byzantine hooks ([`Message`]) act as a faulty replica would, with its own key: it
//! signs its own lies. `tamper` rewrites what a message asserts (a pre-prepare's request
//! changed under its client's signature, a vote for the null digest, a wrong read in a
//! reply, a view change that hides what was prepared, a new view of null requests);
//! `equivocate` sends odd-numbered peers a pre-prepare of the null request (a valid request,
//! so the lie is in the ordering, not the content) and the tampered message otherwise;
//! `forge` names another signer and keeps the forger's signature, which a correct receiver
//! rejects; `flip` corrupts the bytes, which the signature catches.

use std::fmt;
use std::rc::Rc;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

use crate::protocol::{Message, NodeId};
use crate::protocols::bytes::Reader;
use crate::rng::SimRng;

/// A SHA-256 digest. [`NULL`] is the null request's.
pub type Digest = [u8; 32];
pub const NULL: Digest = [0; 32];

/// How messages are authenticated.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// HMAC-SHA256 with a key per signer, held by every verifier: the cost of the paper's
    /// MAC authenticators, without their vector of one MAC per receiver.
    Hmac,
    /// Ed25519 signatures (RFC 8032): what the paper's view changes need.
    Ed25519,
}

/// A client operation: a register per key.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Write { key: u32, value: u64 },
    Read { key: u32 },
}

impl Op {
    pub fn key(self) -> u32 {
        match self {
            Op::Write { key, .. } | Op::Read { key } => key,
        }
    }
}

/// A client's request: `ts` orders one client's requests (the paper's timestamp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub client: u32,
    pub ts: u64,
    pub op: Op,
}

/// A prepared certificate: a pre-prepare and the matching prepares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub preprepare: Rc<Signed>,
    pub prepares: Vec<Rc<Signed>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Request(Request),
    /// `request` is the client's signed request, `None` for the null request.
    PrePrepare {
        view: u64,
        seq: u64,
        digest: Digest,
        request: Option<Rc<Signed>>,
    },
    Prepare {
        view: u64,
        seq: u64,
        digest: Digest,
    },
    Commit {
        view: u64,
        seq: u64,
        digest: Digest,
    },
    /// `result` is the value a read returned (`None`: never written, or a write).
    Reply {
        view: u64,
        client: u32,
        ts: u64,
        result: Option<u64>,
    },
    Checkpoint {
        seq: u64,
        state: Digest,
    },
    /// `proof` certifies the checkpoint at `stable` (empty at 0).
    ViewChange {
        view: u64,
        stable: u64,
        proof: Vec<Rc<Signed>>,
        prepared: Vec<Prepared>,
    },
    NewView {
        view: u64,
        changes: Vec<Rc<Signed>>,
        preprepares: Vec<Rc<Signed>>,
    },
}

/// A body and its signer's signature over `(signer, body)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub signer: u32,
    pub body: Body,
    pub sig: Box<[u8]>,
}

impl Signed {
    /// The bytes the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.signer.to_le_bytes());
        put_body(&self.body, &mut out);
        out
    }
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Digest| if *d == NULL { "null".to_owned() } else { format!("{:02x}{:02x}", d[0], d[1]) };
        match &self.body {
            Body::Request(r) => write!(f, "Request c{} ts{} {:?}", r.client, r.ts, r.op),
            Body::PrePrepare { view, seq, digest, .. } => write!(f, "PrePrepare v{view} n{seq} {}", d(digest)),
            Body::Prepare { view, seq, digest } => write!(f, "Prepare v{view} n{seq} {}", d(digest)),
            Body::Commit { view, seq, digest } => write!(f, "Commit v{view} n{seq} {}", d(digest)),
            Body::Reply { view, client, ts, result } => write!(f, "Reply v{view} c{client} ts{ts} {result:?}"),
            Body::Checkpoint { seq, state } => write!(f, "Checkpoint n{seq} {}", d(state)),
            Body::ViewChange { view, stable, prepared, .. } => {
                write!(f, "ViewChange v{view} h{stable} prepared={}", prepared.len())
            }
            Body::NewView { view, changes, preprepares } => {
                write!(f, "NewView v{view} changes={} preprepares={}", changes.len(), preprepares.len())
            }
        }?;
        write!(f, " by {}", self.signer)
    }
}

/// Which keys verify a message: the scheme and the seed they derive from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KeyId {
    pub auth: Auth,
    pub seed: u64,
}

/// A message on the wire. `relayed` marks one passed on for another signer (a NEW-VIEW
/// sent to a replica that missed it): a faulty relay can drop it but not lie in it, since it
/// cannot sign as the signer.
#[derive(Clone, PartialEq, Eq)]
pub struct PbftMsg {
    pub key: KeyId,
    pub signed: Rc<Signed>,
    pub relayed: bool,
}

impl fmt::Debug for PbftMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.signed.fmt(f)
    }
}

/// The digest of a signed client request (what a pre-prepare orders).
pub fn digest(request: &Signed) -> Digest {
    let mut out = Vec::with_capacity(64);
    put_signed(request, &mut out);
    Sha256::digest(&out).into()
}

/// Signer `signer`'s secret: a fixed derivation from the key seed.
fn secret(seed: u64, signer: u32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"faultline/pbft/signer-key/v1");
    h.update(seed.to_le_bytes());
    h.update(signer.to_le_bytes());
    h.finalize().into()
}

fn hmac(key: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

/// Every signer's keys, as the run's configuration: a replica or client holds its own
/// signing key and every verification key. (One value serves every node of a run; each
/// node signs only as itself.)
pub struct Keys {
    pub id: KeyId,
    secrets: Vec<[u8; 32]>,
    signing: Vec<SigningKey>,
    verifying: Vec<VerifyingKey>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys({:?}, {} signers)", self.id, self.secrets.len())
    }
}

impl Keys {
    pub fn new(auth: Auth, seed: u64, signers: usize) -> Keys {
        let secrets: Vec<[u8; 32]> = (0..signers as u32).map(|s| secret(seed, s)).collect();
        let (signing, verifying) = match auth {
            Auth::Hmac => (Vec::new(), Vec::new()),
            Auth::Ed25519 => {
                let signing: Vec<SigningKey> = secrets.iter().map(SigningKey::from_bytes).collect();
                let verifying = signing.iter().map(SigningKey::verifying_key).collect();
                (signing, verifying)
            }
        };
        Keys { id: KeyId { auth, seed }, secrets, signing, verifying }
    }

    /// `body` signed by `signer`.
    pub fn sign(&self, signer: u32, body: Body) -> Rc<Signed> {
        let mut s = Signed { signer, body, sig: Box::new([]) };
        let bytes = s.signing_bytes();
        s.sig = match self.id.auth {
            Auth::Hmac => Box::new(hmac(&self.secrets[signer as usize], &bytes)),
            Auth::Ed25519 => Box::new(self.signing[signer as usize].sign(&bytes).to_bytes()),
        };
        Rc::new(s)
    }

    /// Whether `s` carries its signer's valid signature under these keys.
    pub fn verify(&self, s: &Signed) -> bool {
        let Some(secret) = self.secrets.get(s.signer as usize) else { return false };
        let bytes = s.signing_bytes();
        match self.id.auth {
            Auth::Hmac => s.sig.len() == 32 && hmac(secret, &bytes)[..] == s.sig[..],
            Auth::Ed25519 => ed25519_dalek::Signature::from_slice(&s.sig)
                .is_ok_and(|sig| self.verifying[s.signer as usize].verify(&bytes, &sig).is_ok()),
        }
    }

    pub fn message(&self, signed: Rc<Signed>) -> PbftMsg {
        PbftMsg { key: self.id, signed, relayed: false }
    }
}

/// Signs as a Byzantine sender signs its own lies: with its own key, derived here from
/// the message's key header (the hooks hold no key ring).
fn resign(key: KeyId, signer: u32, body: Body) -> Rc<Signed> {
    let mut s = Signed { signer, body, sig: Box::new([]) };
    let bytes = s.signing_bytes();
    let secret = secret(key.seed, signer);
    s.sig = match key.auth {
        Auth::Hmac => Box::new(hmac(&secret, &bytes)),
        Auth::Ed25519 => Box::new(SigningKey::from_bytes(&secret).sign(&bytes).to_bytes()),
    };
    Rc::new(s)
}

/// A value a read never returns honestly: the tampered reply's.
const LIE: u64 = 0xbad0_0000_0000_0000;

impl PbftMsg {
    /// The message with its body rewritten as its signer's lie, re-signed by it; `None`
    /// when the body has nothing to lie about.
    fn lie(&self, null_preprepare: bool) -> Option<PbftMsg> {
        if self.relayed {
            return None;
        }
        let s = &self.signed;
        let body = match &s.body {
            Body::PrePrepare { view, seq, request: Some(req), .. } => {
                if null_preprepare {
                    Body::PrePrepare { view: *view, seq: *seq, digest: NULL, request: None }
                } else {
                    // The request altered under its client's signature: the primary cannot
                    // re-sign it, so a correct replica rejects it.
                    let Body::Request(r) = &req.body else { return None };
                    let op = match r.op {
                        Op::Write { key, value } => Op::Write { key, value: value ^ LIE },
                        Op::Read { key } => Op::Write { key, value: LIE },
                    };
                    let forged = Rc::new(Signed {
                        signer: req.signer,
                        body: Body::Request(Request { op, ..r.clone() }),
                        sig: req.sig.clone(),
                    });
                    Body::PrePrepare { view: *view, seq: *seq, digest: digest(&forged), request: Some(forged) }
                }
            }
            Body::Prepare { view, seq, digest } if *digest != NULL => {
                Body::Prepare { view: *view, seq: *seq, digest: NULL }
            }
            Body::Commit { view, seq, digest } if *digest != NULL => {
                Body::Commit { view: *view, seq: *seq, digest: NULL }
            }
            Body::Reply { view, client, ts, result } => {
                Body::Reply { view: *view, client: *client, ts: *ts, result: Some(result.map_or(LIE, |v| v ^ LIE)) }
            }
            Body::Checkpoint { seq, state } => {
                let mut state = *state;
                state[0] ^= 0xff;
                Body::Checkpoint { seq: *seq, state }
            }
            Body::ViewChange { view, stable, proof, prepared } if !prepared.is_empty() => {
                Body::ViewChange { view: *view, stable: *stable, proof: proof.clone(), prepared: Vec::new() }
            }
            Body::NewView { view, changes, preprepares } => {
                let nulls: Vec<Rc<Signed>> = preprepares
                    .iter()
                    .map(|p| match &p.body {
                        Body::PrePrepare { view, seq, request: Some(_), .. } => resign(
                            self.key,
                            p.signer,
                            Body::PrePrepare { view: *view, seq: *seq, digest: NULL, request: None },
                        ),
                        _ => Rc::clone(p),
                    })
                    .collect();
                if nulls == *preprepares {
                    return None;
                }
                Body::NewView { view: *view, changes: changes.clone(), preprepares: nulls }
            }
            _ => return None,
        };
        Some(PbftMsg { key: self.key, signed: resign(self.key, s.signer, body), relayed: false })
    }
}

/// What a transport adds to each message (framing, lengths): Raft's sizes count the same.
const FRAMING: usize = 24;

impl Message for PbftMsg {
    fn wire_size(&self) -> usize {
        self.encode().map_or(0, |b| b.len()) + FRAMING
    }

    fn tamper(&mut self, _rng: &mut SimRng) -> bool {
        match self.lie(false) {
            Some(m) => {
                *self = m;
                true
            }
            None => false,
        }
    }

    /// Odd-numbered peers get the null request where the others get the client's, and the
    /// tampered message otherwise: two camps, each told a consistent story.
    fn equivocate(&mut self, to: NodeId, _rng: &mut SimRng) -> bool {
        if to.0.is_multiple_of(2) {
            return false;
        }
        match self.lie(true) {
            Some(m) => {
                *self = m;
                true
            }
            None => false,
        }
    }

    /// A copy claiming `victim` signed it, with the forger's own signature.
    fn forge(&self, victim: NodeId, _rng: &mut SimRng) -> Option<Self> {
        if self.signed.signer == victim.0 {
            return None;
        }
        let forged = Signed { signer: victim.0, body: self.signed.body.clone(), sig: self.signed.sig.clone() };
        Some(PbftMsg { key: self.key, signed: Rc::new(forged), relayed: self.relayed })
    }

    fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(128);
        out.push(match self.key.auth {
            Auth::Hmac => 0,
            Auth::Ed25519 => 1,
        });
        out.extend_from_slice(&self.key.seed.to_le_bytes());
        out.push(u8::from(self.relayed));
        put_signed(&self.signed, &mut out);
        Some(out)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let auth = match r.u8()? {
            0 => Auth::Hmac,
            1 => Auth::Ed25519,
            _ => return None,
        };
        let seed = r.u64()?;
        let relayed = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let signed = get_signed(&mut r, 0)?;
        r.is_empty().then(|| PbftMsg { key: KeyId { auth, seed }, signed: Rc::new(signed), relayed })
    }
}

fn put_u64(v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(v: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_signed(s: &Signed, out: &mut Vec<u8>) {
    put_u32(s.signer, out);
    put_body(&s.body, out);
    put_u32(s.sig.len() as u32, out);
    out.extend_from_slice(&s.sig);
}

fn put_list(items: &[Rc<Signed>], out: &mut Vec<u8>) {
    put_u32(items.len() as u32, out);
    for s in items {
        put_signed(s, out);
    }
}

fn put_op(op: Op, out: &mut Vec<u8>) {
    match op {
        Op::Write { key, value } => {
            out.push(0);
            put_u32(key, out);
            put_u64(value, out);
        }
        Op::Read { key } => {
            out.push(1);
            put_u32(key, out);
        }
    }
}

fn put_body(b: &Body, out: &mut Vec<u8>) {
    match b {
        Body::Request(r) => {
            out.push(0);
            put_u32(r.client, out);
            put_u64(r.ts, out);
            put_op(r.op, out);
        }
        Body::PrePrepare { view, seq, digest, request } => {
            out.push(1);
            put_u64(*view, out);
            put_u64(*seq, out);
            out.extend_from_slice(digest);
            match request {
                None => out.push(0),
                Some(r) => {
                    out.push(1);
                    put_signed(r, out);
                }
            }
        }
        Body::Prepare { view, seq, digest } | Body::Commit { view, seq, digest } => {
            out.push(if matches!(b, Body::Prepare { .. }) { 2 } else { 3 });
            put_u64(*view, out);
            put_u64(*seq, out);
            out.extend_from_slice(digest);
        }
        Body::Reply { view, client, ts, result } => {
            out.push(4);
            put_u64(*view, out);
            put_u32(*client, out);
            put_u64(*ts, out);
            match result {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    put_u64(*v, out);
                }
            }
        }
        Body::Checkpoint { seq, state } => {
            out.push(5);
            put_u64(*seq, out);
            out.extend_from_slice(state);
        }
        Body::ViewChange { view, stable, proof, prepared } => {
            out.push(6);
            put_u64(*view, out);
            put_u64(*stable, out);
            put_list(proof, out);
            put_u32(prepared.len() as u32, out);
            for p in prepared {
                put_signed(&p.preprepare, out);
                put_list(&p.prepares, out);
            }
        }
        Body::NewView { view, changes, preprepares } => {
            out.push(7);
            put_u64(*view, out);
            put_list(changes, out);
            put_list(preprepares, out);
        }
    }
}

/// Nesting deeper than any honest message (a new view's view change's prepared
/// certificate's pre-prepare's request is four) is garbage.
const MAX_DEPTH: u32 = 6;

fn get_signed(r: &mut Reader<'_>, depth: u32) -> Option<Signed> {
    if depth > MAX_DEPTH {
        return None;
    }
    let signer = r.u32()?;
    let body = get_body(r, depth)?;
    let len = r.u32()? as usize;
    let sig = r.take(len)?.into();
    Some(Signed { signer, body, sig })
}

fn get_list(r: &mut Reader<'_>, depth: u32) -> Option<Vec<Rc<Signed>>> {
    let len = r.u32()? as usize;
    // Each signed message takes more than 8 bytes: a longer count is garbage, not a
    // reason to allocate.
    if len > r.0.len() / 8 {
        return None;
    }
    (0..len).map(|_| get_signed(r, depth + 1).map(Rc::new)).collect()
}

fn get_digest(r: &mut Reader<'_>) -> Option<Digest> {
    r.array()
}

fn get_body(r: &mut Reader<'_>, depth: u32) -> Option<Body> {
    Some(match r.u8()? {
        0 => {
            let client = r.u32()?;
            let ts = r.u64()?;
            let op = match r.u8()? {
                0 => Op::Write { key: r.u32()?, value: r.u64()? },
                1 => Op::Read { key: r.u32()? },
                _ => return None,
            };
            Body::Request(Request { client, ts, op })
        }
        1 => {
            let (view, seq, digest) = (r.u64()?, r.u64()?, get_digest(r)?);
            let request = match r.u8()? {
                0 => None,
                1 => Some(Rc::new(get_signed(r, depth + 1)?)),
                _ => return None,
            };
            Body::PrePrepare { view, seq, digest, request }
        }
        2 => Body::Prepare { view: r.u64()?, seq: r.u64()?, digest: get_digest(r)? },
        3 => Body::Commit { view: r.u64()?, seq: r.u64()?, digest: get_digest(r)? },
        4 => {
            let (view, client, ts) = (r.u64()?, r.u32()?, r.u64()?);
            let result = match r.u8()? {
                0 => None,
                1 => Some(r.u64()?),
                _ => return None,
            };
            Body::Reply { view, client, ts, result }
        }
        5 => Body::Checkpoint { seq: r.u64()?, state: get_digest(r)? },
        6 => {
            let (view, stable) = (r.u64()?, r.u64()?);
            let proof = get_list(r, depth)?;
            let len = r.u32()? as usize;
            if len > r.0.len() / 8 {
                return None;
            }
            let prepared = (0..len)
                .map(|_| {
                    let preprepare = Rc::new(get_signed(r, depth + 1)?);
                    Some(Prepared { preprepare, prepares: get_list(r, depth)? })
                })
                .collect::<Option<Vec<_>>>()?;
            Body::ViewChange { view, stable, proof, prepared }
        }
        7 => {
            let view = r.u64()?;
            Body::NewView { view, changes: get_list(r, depth)?, preprepares: get_list(r, depth)? }
        }
        _ => return None,
    })
}
