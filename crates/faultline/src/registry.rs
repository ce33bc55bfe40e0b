//! The workloads Faultline ships, in one list: the only place that names them all.
//! Adding a protocol is a folder under `protocols/` with a [`Workload`](crate::workload::Workload)
//! implementation, and one line here.
//!
//! The scenario loader takes a registry and names no workload; the shortcuts below
//! ([`Scenario::load`], [`Scenario::parse`], [`Scenario::from_bytes`], [`Scenario::chapter`])
//! load with this one.

use std::path::Path;
use std::sync::OnceLock;

use crate::protocols::{heartbeat::Heartbeat, pbft::Pbft, quorum::Quorum, raft::Raft};
use crate::scenario::{CHAPTER_TOML, Override, Scenario, ScenarioError};
use crate::workload::Registry;

/// Quorum (the default), heartbeat, Raft and PBFT.
pub fn builtin() -> &'static Registry {
    static BUILTIN: OnceLock<Registry> = OnceLock::new();
    BUILTIN.get_or_init(|| Registry::empty().with(&Quorum).with(&Heartbeat).with(&Raft).with(&Pbft))
}

impl Scenario {
    /// Reads and loads a scenario file of a built-in workload (see [`Scenario::load_in`]).
    pub fn load(path: &Path, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        builtin().load(path, overrides)
    }

    /// Loads a scenario of a built-in workload from the bytes of a file.
    pub fn from_bytes(file: &str, bytes: &[u8], overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        Scenario::from_bytes_in(&builtin().loaders(), file, bytes, overrides)
    }

    /// Loads a scenario of a built-in workload from text; `file` names it in errors.
    pub fn parse(file: &str, text: &str, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        builtin().parse(file, text, overrides)
    }

    /// The embedded chapter scenario.
    pub fn chapter() -> Scenario {
        Scenario::parse("scenarios/chapter.toml", CHAPTER_TOML, &[]).expect("the embedded chapter scenario is valid")
    }
}
