//! Stage one of loading: the scenario file exactly as written. Every table denies unknown
//! fields, so a misspelt key is an error and never silently ignored. Numbers that must be
//! positive are still read as signed or floating types here, so that validation (stage two)
//! can say "must be positive" rather than serde's "expected u64".

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    pub protocol: Option<String>,
    pub fault_budget: Option<i64>,
    pub quorum: Option<RawQuorum>,
    pub heartbeat: Option<RawHeartbeat>,
    pub raft: Option<RawRaft>,
    pub network: Option<RawNetwork>,
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub cases: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuorum {
    pub followers: Option<i64>,
    pub deadline_ms: Option<f64>,
    pub rounds: Option<i64>,
    pub index: Option<u64>,
    pub data: Option<String>,
    /// A preset: naive, content-quorum, checksummed, signed or retrying.
    pub coordinator: Option<String>,
    pub content_quorum: Option<bool>,
    /// none, crc32c, sha256 or crc32c+sha256.
    pub checksum: Option<String>,
    /// none, hmac or ed25519.
    pub signature: Option<String>,
    pub retry_ms: Option<f64>,
    pub deadline_max_ms: Option<f64>,
    pub key_seed: Option<u64>,
    pub persist: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    pub nodes: Option<i64>,
    /// A constant heartbeat period, or `interval` for a distribution (not both).
    pub interval_ms: Option<f64>,
    pub interval: Option<RawDist>,
    /// Virtual time the run lasts (sets `limits.max_time_ms` unless that is given).
    pub duration_ms: Option<f64>,
    pub swim: Option<RawSwim>,
    pub data_probe: Option<RawDataProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaft {
    pub servers: Option<i64>,
    pub clients: Option<i64>,
    pub heartbeat_ms: Option<f64>,
    pub election_timeout_ms: Option<f64>,
    /// The election timeout is drawn from [election_timeout_ms, election_timeout_max_ms).
    pub election_timeout_max_ms: Option<f64>,
    pub max_inflight: Option<i64>,
    pub max_batch: Option<i64>,
    pub pre_vote: Option<bool>,
    pub check_quorum: Option<bool>,
    /// log, read-index, lease or local.
    pub read: Option<String>,
    pub fencing: Option<bool>,
    pub checksums: Option<bool>,
    /// A deliberately broken variant: no-term-check, ack-before-fsync, commit-on-minority
    /// or no-fencing.
    pub canary: Option<String>,
    /// A server that campaigns as soon as it first starts, so a scenario knows who leads.
    pub bootstrap_leader: Option<String>,
    /// How long after the last fault heals a new write must commit.
    pub liveness_budget_ms: Option<f64>,
    pub duration_ms: Option<f64>,
    pub client: Option<RawRaftClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaftClient {
    pub interval_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub ops: Option<i64>,
    pub read_fraction: Option<f64>,
    pub keys: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwim {
    pub enabled: Option<bool>,
    pub interval_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub indirect: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataProbe {
    pub interval_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub latency: Option<RawDist>,
    #[serde(default)]
    pub links: Vec<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    pub from: String,
    pub to: String,
    pub latency: RawDist,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDist {
    pub dist: String,
    pub ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub stddev_ms: Option<f64>,
    pub median_ms: Option<f64>,
    pub sigma: Option<f64>,
    pub scale_ms: Option<f64>,
    pub shape: Option<f64>,
    pub cap_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_time_ms: Option<f64>,
    pub max_events: Option<i64>,
    pub inflight_per_link: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCase {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub faults: Vec<RawFault>,
    pub swarm: Option<RawSwarm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSwarm {
    pub faults: i64,
    pub kinds: Option<Vec<String>>,
    pub window_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub node: String,
    pub kind: String,
    pub at_ms: Option<f64>,
    pub until_ms: Option<f64>,
    pub duration_ms: Option<f64>,
    pub direction: Option<String>,
    pub p: Option<f64>,
    pub extra: Option<RawDist>,
    pub n: Option<i64>,
    pub bytes: Option<i64>,
    pub peers: Option<Vec<String>>,
    pub offset_ms: Option<f64>,
    pub drift_ppm: Option<f64>,
    pub age_ms: Option<f64>,
    pub bits: Option<i64>,
    pub victim: Option<String>,
}
