//! The concrete protocols, one module (or folder) each, built on the interface in
//! [`crate::protocol`]: the chapter's quorum coordinator, Raft, PBFT, and the heartbeat/detector
//! workload. The simulator knows none of them; checkers and reports sit above them.

mod bytes;
pub mod heartbeat;
pub mod pbft;
pub mod quorum;
pub mod raft;
