//! Stage one of loading: the scenario file exactly as written. Every table denies unknown
//! fields, so a misspelt key is an error and never silently ignored. Numbers that must be
//! positive are still read as signed or floating types here, so that validation (stage two)
//! can say "must be positive" rather than serde's "expected u64".
//!
//! The top level is read by hand ([`RawSeed`]) because the keys it accepts depend on the
//! workloads registered: each workload's table (`[quorum]`, `[raft]`, ...) is a top-level
//! key, read by the workload itself (see `TableLoader`), and passed over here.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// The top level of a scenario file, without its workload tables.
#[derive(Debug, Default)]
pub struct RawScenario {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    pub protocol: Option<String>,
    pub fault_budget: Option<i64>,
    pub network: Option<RawNetwork>,
    pub limits: Option<RawLimits>,
    pub cases: Vec<RawCase>,
    /// The workload tables the file holds (`quorum`, `raft`, ...), in the order written.
    pub tables: Vec<String>,
}

/// The keys of the top level that every scenario may hold.
pub const FIELDS: [&str; 8] = ["name", "description", "seed", "protocol", "fault_budget", "network", "limits", "cases"];

/// Reads a [`RawScenario`], accepting as tables the workload names in `.0`.
pub struct RawSeed<'a>(pub &'a [&'static str]);

enum Key {
    Field(usize),
    Table(String),
}

struct KeySeed<'a>(&'a [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scenario field")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        if let Some(i) = FIELDS.iter().position(|f| *f == v) {
            return Ok(Key::Field(i));
        }
        if self.0.contains(&v) {
            return Ok(Key::Table(v.to_owned()));
        }
        // serde's wording for an unknown field, so the loader names it the same way.
        let expected: Vec<String> = FIELDS.iter().chain(self.0).map(|f| format!("`{f}`")).collect();
        Err(E::custom(format_args!("unknown field `{v}`, expected one of {}", expected.join(", "))))
    }
}

impl<'de> DeserializeSeed<'de> for RawSeed<'_> {
    type Value = RawScenario;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawScenario, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RawSeed<'_> {
    type Value = RawScenario;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scenario table")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawScenario, A::Error> {
        let mut raw = RawScenario::default();
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            match key {
                Key::Field(0) => raw.name = Some(map.next_value()?),
                Key::Field(1) => raw.description = Some(map.next_value()?),
                Key::Field(2) => raw.seed = Some(map.next_value()?),
                Key::Field(3) => raw.protocol = Some(map.next_value()?),
                Key::Field(4) => raw.fault_budget = Some(map.next_value()?),
                Key::Field(5) => raw.network = Some(map.next_value()?),
                Key::Field(6) => raw.limits = Some(map.next_value()?),
                Key::Field(_) => raw.cases = map.next_value()?,
                Key::Table(name) => {
                    map.next_value::<IgnoredAny>()?;
                    raw.tables.push(name);
                }
            }
        }
        Ok(raw)
    }
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
