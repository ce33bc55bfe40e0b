//! Per-node keys for signed acks. Node `i`'s 32-byte secret is a fixed derivation from the
//! scenario's key seed, so every run of a scenario has the same keys (a cluster's PKI is
//! configuration, not chance); it is an HMAC-SHA256 key, or the seed of an Ed25519 key pair
//! (RFC 8032). The leader holds every follower's HMAC key or Ed25519 public key.

use std::rc::Rc;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::SignatureScheme;
use crate::protocol::NodeId;

/// Node `node`'s secret: a fixed derivation from the key seed, so keys are deterministic.
fn node_secret(key_seed: u64, node: NodeId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"faultline/quorum/node-key/v1");
    h.update(key_seed.to_le_bytes());
    h.update(node.0.to_le_bytes());
    h.finalize().into()
}

/// Every follower's signing key, and the leader's key ring to verify them (follower `i` is
/// node `i + 1`).
pub(super) fn set_up(scheme: SignatureScheme, key_seed: u64, followers: usize) -> (Vec<NodeSigner>, KeyRing) {
    let secrets: Vec<[u8; 32]> = (1..=followers).map(|i| node_secret(key_seed, NodeId(i as u32))).collect();
    match scheme {
        SignatureScheme::Hmac => {
            (secrets.iter().map(|s| NodeSigner::Hmac(*s)).collect(), KeyRing::Hmac(secrets.into()))
        }
        SignatureScheme::Ed25519 => {
            let keys: Vec<SigningKey> = secrets.iter().map(SigningKey::from_bytes).collect();
            let public: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
            (keys.into_iter().map(|k| NodeSigner::Ed25519(Rc::new(k))).collect(), KeyRing::Ed25519(public.into()))
        }
    }
}

/// A follower's signing key.
#[derive(Clone)]
pub(super) enum NodeSigner {
    Hmac([u8; 32]),
    Ed25519(Rc<SigningKey>),
}

impl NodeSigner {
    pub(super) fn scheme(&self) -> SignatureScheme {
        match self {
            NodeSigner::Hmac(_) => SignatureScheme::Hmac,
            NodeSigner::Ed25519(_) => SignatureScheme::Ed25519,
        }
    }

    pub(super) fn sign(&self, body: &[u8]) -> Box<[u8]> {
        match self {
            NodeSigner::Hmac(key) => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
                mac.update(body);
                mac.finalize().into_bytes().to_vec().into()
            }
            NodeSigner::Ed25519(key) => key.sign(body).to_bytes().to_vec().into(),
        }
    }
}

/// What the leader verifies signatures with, per follower slot.
#[derive(Clone)]
pub(super) enum KeyRing {
    Hmac(Rc<[[u8; 32]]>),
    Ed25519(Rc<[VerifyingKey]>),
}

impl KeyRing {
    pub(super) fn verify(&self, slot: usize, body: &[u8], signature: &[u8]) -> bool {
        match self {
            KeyRing::Hmac(keys) => {
                let mut mac =
                    <Hmac<Sha256> as KeyInit>::new_from_slice(&keys[slot]).expect("HMAC takes keys of any length");
                mac.update(body);
                mac.verify_slice(signature).is_ok()
            }
            KeyRing::Ed25519(keys) => {
                Signature::from_slice(signature).is_ok_and(|s| keys[slot].verify_strict(body, &s).is_ok())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_the_key_seed_and_the_node() {
        assert_ne!(node_secret(7, NodeId(1)), node_secret(7, NodeId(2)));
        assert_ne!(node_secret(7, NodeId(1)), node_secret(8, NodeId(1)));
        assert_eq!(node_secret(7, NodeId(1)), node_secret(7, NodeId(1)));
    }
}
