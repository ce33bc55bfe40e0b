//! The coordinator's messages as bytes: a hand-written little-endian frame (documented on
//! [`QuorumMsg`]), the Byzantine hooks that rewrite messages (`tamper`, `equivocate`,
//! `forge`), and the `Debug` form the trace records.

use std::fmt;
use std::rc::Rc;

use rand::Rng;

use super::{EQUIVOCATE_SUFFIX, Name, TAMPER_SUFFIX, sha256};
use crate::protocol::{Message, NodeId};
use crate::protocols::bytes::Reader;
use crate::rng::SimRng;

/// The coordinator's messages. Both encode to a little-endian binary frame:
///
/// ```text
/// tag u8 (1 append, 2 ack) | flags u8 | round u64 | index u64 | node u32
/// append: attempt u32 | data length u32 | data (UTF-8)
/// ack:    data length u32 | data (UTF-8)
///         | sha256 [32]          if flags & 1
///         | sig length u8 | sig  if flags & 2  (signs every byte before it)
///         | crc32c u32           if flags & 4  (covers every byte before it)
/// ```
///
/// `node` is the addressee of an append (with `round`, its idempotency key) and the claimed
/// sender of an ack. An append has no flags. Decoding rejects anything else: an unknown tag
/// or flag, a short buffer, data that is not UTF-8, trailing bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum QuorumMsg {
    Append(Append),
    Ack(Ack),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Append {
    pub round: u64,
    pub index: u64,
    /// The addressee: with `round`, the append's idempotency key.
    pub follower: NodeId,
    /// 0 for the first send, then 1, 2, ... for retries.
    pub attempt: u32,
    pub data: Rc<str>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Ack {
    pub round: u64,
    pub index: u64,
    /// The follower the ack claims to come from.
    pub voter: NodeId,
    pub data: Rc<str>,
    /// Checksums and signature, when the coordinator asks for any (never an empty proof).
    pub proof: Option<Box<Proof>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proof {
    pub sha256: Option<[u8; 32]>,
    pub signature: Option<Box<[u8]>>,
    pub crc32c: Option<u32>,
}

const TAG_APPEND: u8 = 1;
const TAG_ACK: u8 = 2;
const FLAG_SHA256: u8 = 1;
const FLAG_SIGNATURE: u8 = 2;
const FLAG_CRC32C: u8 = 4;
/// tag, flags, round, index, node.
const HEADER_LEN: usize = 1 + 1 + 8 + 8 + 4;

fn put_header(out: &mut Vec<u8>, tag: u8, flags: u8, round: u64, index: u64, node: NodeId) {
    out.push(tag);
    out.push(flags);
    out.extend_from_slice(&round.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&node.0.to_le_bytes());
}

fn put_data(out: &mut Vec<u8>, data: &str) {
    let len = u32::try_from(data.len()).expect("message data fits a u32 length");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(data.as_bytes());
}

impl Append {
    fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 + 4 + self.data.len()
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        put_header(out, TAG_APPEND, 0, self.round, self.index, self.follower);
        out.extend_from_slice(&self.attempt.to_le_bytes());
        put_data(out, &self.data);
    }
}

impl Ack {
    fn flags(&self) -> u8 {
        self.proof.as_ref().map_or(0, |p| {
            (p.sha256.is_some() as u8 * FLAG_SHA256)
                | (p.signature.is_some() as u8 * FLAG_SIGNATURE)
                | (p.crc32c.is_some() as u8 * FLAG_CRC32C)
        })
    }

    fn encoded_len(&self) -> usize {
        let proof = self.proof.as_ref().map_or(0, |p| {
            p.sha256.map_or(0, |_| 32) + p.signature.as_ref().map_or(0, |s| 1 + s.len()) + p.crc32c.map_or(0, |_| 4)
        });
        HEADER_LEN + 4 + self.data.len() + proof
    }

    /// Writes the frame to `out` (from its start) and returns where the signed bytes end
    /// and where the checksummed bytes end.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) -> (usize, usize) {
        out.clear();
        put_header(out, TAG_ACK, self.flags(), self.round, self.index, self.voter);
        put_data(out, &self.data);
        let proof = self.proof.as_deref();
        if let Some(digest) = proof.and_then(|p| p.sha256.as_ref()) {
            out.extend_from_slice(digest);
        }
        let signed_end = out.len();
        if let Some(sig) = proof.and_then(|p| p.signature.as_deref()) {
            assert!(sig.len() <= u8::MAX as usize, "a signature fits a u8 length");
            out.push(sig.len() as u8);
            out.extend_from_slice(sig);
        }
        let checksummed_end = out.len();
        if let Some(crc) = proof.and_then(|p| p.crc32c) {
            out.extend_from_slice(&crc.to_le_bytes());
        }
        (signed_end, checksummed_end)
    }

    /// Recomputes the digest and the CRC after the data changed, as anyone may: neither
    /// needs a key. The signature is left as it was.
    pub(super) fn reseal(&mut self, scratch: &mut Vec<u8>) {
        let data = Rc::clone(&self.data);
        let Some(proof) = self.proof.as_mut() else { return };
        if proof.sha256.is_some() {
            proof.sha256 = Some(sha256(&data));
        }
        if proof.crc32c.is_some() {
            let (_, end) = self.encode_into(scratch);
            let crc = crc32c::crc32c(&scratch[..end]);
            self.proof.as_mut().expect("checked above").crc32c = Some(crc);
        }
    }

    /// The ack with its data changed to `data`, digest and CRC recomputed.
    pub(super) fn rewritten(&self, data: Rc<str>) -> Ack {
        let mut ack = Ack { data, ..self.clone() };
        ack.reseal(&mut Vec::new());
        ack
    }
}

fn decode(bytes: &[u8]) -> Option<QuorumMsg> {
    let mut r = Reader(bytes);
    let (tag, flags) = (r.u8()?, r.u8()?);
    let (round, index, node) = (r.u64()?, r.u64()?, NodeId(r.u32()?));
    let msg = match tag {
        TAG_APPEND if flags == 0 => {
            let attempt = r.u32()?;
            QuorumMsg::Append(Append { round, index, follower: node, attempt, data: r.str()? })
        }
        TAG_ACK if flags & !(FLAG_SHA256 | FLAG_SIGNATURE | FLAG_CRC32C) == 0 => {
            let data = r.str()?;
            let sha256 = if flags & FLAG_SHA256 != 0 { Some(r.array::<32>()?) } else { None };
            let signature = if flags & FLAG_SIGNATURE != 0 {
                let len = r.u8()? as usize;
                Some(Box::from(r.take(len)?))
            } else {
                None
            };
            let crc32c = if flags & FLAG_CRC32C != 0 { Some(r.u32()?) } else { None };
            let proof = (flags != 0).then(|| Box::new(Proof { sha256, signature, crc32c }));
            QuorumMsg::Ack(Ack { round, index, voter: node, data, proof })
        }
        _ => return None,
    };
    r.is_empty().then_some(msg)
}

impl Message for QuorumMsg {
    fn wire_size(&self) -> usize {
        match self {
            QuorumMsg::Append(a) => a.encoded_len(),
            QuorumMsg::Ack(a) => a.encoded_len(),
        }
    }

    /// A tamperer may change the data of an ack (the chapter's Byzantine follower); it
    /// leaves the round and index alone, so the tampered ack still counts for its round. It
    /// recomputes the digest and CRC, which anyone can, but cannot re-sign: the signature no
    /// longer matches.
    fn tamper(&mut self, _rng: &mut SimRng) -> bool {
        match self {
            QuorumMsg::Ack(ack) => {
                *ack = ack.rewritten(Rc::from(format!("{}{TAMPER_SUFFIX}", ack.data)));
                true
            }
            QuorumMsg::Append(_) => false,
        }
    }

    /// An equivocating leader proposes a different value to the odd-numbered followers
    /// (`f1`, `f3`, ...) than to the others. An ack has one destination, so a follower's
    /// equivocation is the default: tamper with what goes to odd-numbered nodes.
    fn equivocate(&mut self, to: NodeId, rng: &mut SimRng) -> bool {
        match self {
            QuorumMsg::Append(append) if to.0 >= 1 && (to.0 - 1) % 2 == 1 => {
                append.data = Rc::from(format!("{}{EQUIVOCATE_SUFFIX}", append.data));
                true
            }
            QuorumMsg::Append(_) => false,
            QuorumMsg::Ack(_) => to.0 % 2 == 1 && self.tamper(rng),
        }
    }

    /// A forger copies its own ack, claims `victim` sent it, and tampers with the data. It
    /// can recompute checksums but not the victim's signature: it fills the signature with
    /// random bytes of the right length.
    fn forge(&self, victim: NodeId, rng: &mut SimRng) -> Option<Self> {
        let QuorumMsg::Ack(ack) = self else { return None };
        let mut forged = Ack { voter: victim, ..ack.clone() };
        if let Some(sig) = forged.proof.as_mut().and_then(|p| p.signature.as_mut()) {
            rng.fill_bytes(sig);
        }
        let forged = forged.rewritten(Rc::from(format!("{}{TAMPER_SUFFIX}", ack.data)));
        Some(QuorumMsg::Ack(forged))
    }

    fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.wire_size());
        match self {
            QuorumMsg::Append(a) => a.encode_into(&mut out),
            QuorumMsg::Ack(a) => {
                a.encode_into(&mut out);
            }
        }
        Some(out)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        decode(bytes)
    }
}

/// Four bytes of a digest or signature in hex, enough to tell two apart in a trace.
struct Short<'a>(&'a [u8]);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 4 { f.write_str("…") } else { Ok(()) }
    }
}

impl fmt::Debug for Append {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Append {{ round: {}, index: {}, follower: {}", self.round, self.index, Name(self.follower))?;
        if self.attempt > 0 {
            write!(f, ", attempt: {}", self.attempt)?;
        }
        write!(f, ", data: {:?} }}", self.data)
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ack {{ round: {}, index: {}, voter: {}, data: {:?}",
            self.round,
            self.index,
            Name(self.voter),
            self.data
        )?;
        if let Some(p) = &self.proof {
            if let Some(d) = &p.sha256 {
                write!(f, ", sha256: {}", Short(d))?;
            }
            if let Some(s) = &p.signature {
                write!(f, ", sig: {}", Short(s))?;
            }
            if let Some(c) = p.crc32c {
                write!(f, ", crc32c: {c:08x}")?;
            }
        }
        f.write_str(" }")
    }
}

impl fmt::Debug for QuorumMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumMsg::Append(a) => a.fmt(f),
            QuorumMsg::Ack(a) => a.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};
    use proptest::prelude::*;

    fn rng() -> SimRng {
        stream(1, Stream::Setup(0))
    }

    fn ack(data: &str) -> Ack {
        Ack { round: 3, index: 42, voter: NodeId(2), data: Rc::from(data), proof: None }
    }

    fn arb_msg() -> impl Strategy<Value = QuorumMsg> {
        let data = "\\PC{0,24}";
        let append = (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>(), data).prop_map(
            |(round, index, to, attempt, data)| {
                QuorumMsg::Append(Append { round, index, follower: NodeId(to), attempt, data: Rc::from(data) })
            },
        );
        let proof = proptest::option::of((
            proptest::option::of(any::<[u8; 32]>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=80)),
            proptest::option::of(any::<u32>()),
        ))
        .prop_filter_map("a proof is never empty", |p| match p {
            None => Some(None),
            Some((None, None, None)) => None,
            Some((sha256, signature, crc32c)) => {
                Some(Some(Box::new(Proof { sha256, signature: signature.map(Into::into), crc32c })))
            }
        });
        let ack =
            (any::<u64>(), any::<u64>(), any::<u32>(), data, proof).prop_map(|(round, index, voter, data, proof)| {
                QuorumMsg::Ack(Ack { round, index, voter: NodeId(voter), data: Rc::from(data), proof })
            });
        prop_oneof![append, ack]
    }

    proptest! {
        #[test]
        fn every_message_round_trips_through_its_encoding(msg in arb_msg()) {
            let bytes = msg.encode().expect("quorum messages encode");
            prop_assert_eq!(bytes.len(), msg.wire_size());
            prop_assert_eq!(QuorumMsg::decode(&bytes), Some(msg));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(msg) = QuorumMsg::decode(&bytes) {
                // Whatever decodes, encodes back to the same bytes: the layout has one
                // spelling per message.
                prop_assert_eq!(msg.encode().expect("encodes"), bytes);
            }
        }

    }

    #[test]
    fn decode_rejects_malformed_frames() {
        let good = QuorumMsg::Ack(ack("x")).encode().expect("encodes");
        assert!(QuorumMsg::decode(&good).is_some());
        let mut bad_tag = good.clone();
        bad_tag[0] = 9;
        let mut unknown_flag = good.clone();
        unknown_flag[1] = 0x80;
        let mut flagged_append =
            QuorumMsg::Append(Append { round: 1, index: 2, follower: NodeId(1), attempt: 0, data: Rc::from("x") })
                .encode()
                .expect("encodes");
        flagged_append[1] = FLAG_CRC32C;
        let mut not_utf8 = good.clone();
        *not_utf8.last_mut().expect("has data") = 0xFF;
        let mut long_length = good.clone();
        long_length[HEADER_LEN] = 200;
        let mut trailing = good.clone();
        trailing.push(0);
        for (what, bytes) in [
            ("empty", &[][..]),
            ("short header", &good[..HEADER_LEN - 1]),
            ("short data", &good[..good.len() - 1]),
            ("bad tag", &bad_tag[..]),
            ("unknown flag", &unknown_flag[..]),
            ("append with flags", &flagged_append[..]),
            ("not UTF-8", &not_utf8[..]),
            ("length beyond the buffer", &long_length[..]),
            ("trailing bytes", &trailing[..]),
        ] {
            assert_eq!(QuorumMsg::decode(bytes), None, "{what}");
        }
    }

    #[test]
    fn an_equivocating_leader_changes_what_odd_numbered_followers_get() {
        let append = |to: u32| {
            QuorumMsg::Append(Append { round: 1, index: 42, follower: NodeId(to), attempt: 0, data: Rc::from("v") })
        };
        let changed: Vec<u32> = (1..=4)
            .filter(|&to| {
                let mut m = append(to);
                m.equivocate(NodeId(to), &mut rng())
            })
            .collect();
        assert_eq!(changed, [2, 4], "f1 and f3 are told something else");
        let mut m = append(2);
        m.equivocate(NodeId(2), &mut rng());
        let QuorumMsg::Append(a) = m else { unreachable!() };
        assert_eq!(&*a.data, "v_EQUIVOCATED");
        assert!(!append(1).tamper(&mut rng()), "a tamperer leaves appends alone");
    }
}
