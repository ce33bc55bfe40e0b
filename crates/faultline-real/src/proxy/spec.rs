//! A fault as written in a proxy file or posted to the control API, and its validation into
//! a [`StreamFault`]. Both sources share one raw shape (`kind` plus the parameters of every
//! kind, each optional), so they accept and refuse exactly the same faults with the same
//! words; an error names the field at fault.

use serde::Deserialize;

use super::{Direction, OmissionMode, PartitionMode, StreamFault, StreamFaultKind};
use crate::faults;

/// The longest `matches` string: it must fit in the prefix a connection is judged by.
const MAX_MATCHES_BYTES: usize = super::PREFIX_BYTES;
/// The longest delay: an hour (a longer one is a partition).
const MAX_LATENCY_MS: u64 = 3_600_000;

/// A fault as written: `kind` and the parameters, unchecked.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: String,
    pub direction: Option<Direction>,
    pub matches: Option<String>,
    pub latency_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    pub mode: Option<String>,
    pub p: Option<f64>,
    pub bytes_per_s: Option<u64>,
}

/// A fault that cannot be: the field at fault and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FaultSpecError {
    pub field: String,
    pub message: String,
}

fn error(field: &str, message: impl Into<String>) -> FaultSpecError {
    FaultSpecError { field: field.to_owned(), message: message.into() }
}

fn probability(p: Option<f64>, default: Option<f64>) -> Result<f64, FaultSpecError> {
    match p.or(default) {
        None => Err(error("p", "missing: the probability per chunk, from 0 to 1")),
        Some(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Some(p) => Err(error("p", format!("{p} is not a probability (from 0 to 1)"))),
    }
}

impl FaultSpec {
    /// The fault this spec describes, or the first field at fault.
    pub fn validate(&self) -> Result<StreamFault, FaultSpecError> {
        if let Some(why) = faults::refuse_on_stream(&self.kind) {
            return Err(error("kind", why));
        }
        // Which parameters the kind takes; any other one written is an error, so a typo'd
        // kind-parameter pairing (`p` on a delay) is not silently ignored.
        let (kind, takes): (StreamFaultKind, &[&str]) = match self.kind.as_str() {
            "delay" => {
                let latency_ms = self.latency_ms.ok_or_else(|| error("latency_ms", "missing: the delay in ms"))?;
                let jitter_ms = self.jitter_ms.unwrap_or(0);
                if latency_ms > MAX_LATENCY_MS {
                    return Err(error("latency_ms", format!("{latency_ms} is over the most, {MAX_LATENCY_MS}")));
                }
                if jitter_ms > MAX_LATENCY_MS {
                    return Err(error("jitter_ms", format!("{jitter_ms} is over the most, {MAX_LATENCY_MS}")));
                }
                (StreamFaultKind::Delay { latency_ms, jitter_ms }, &["latency_ms", "jitter_ms"])
            }
            "partition" => {
                let mode = match self.mode.as_deref().unwrap_or("stall") {
                    "refuse" => PartitionMode::Refuse,
                    "stall" => PartitionMode::Stall,
                    "reset" => PartitionMode::Reset,
                    other => {
                        return Err(error(
                            "mode",
                            format!(
                                "'{}' is not a partition mode: refuse, stall or reset",
                                faultline::input::elide(other)
                            ),
                        ));
                    }
                };
                (StreamFaultKind::Partition { mode }, &["mode"])
            }
            "half-open" => (StreamFaultKind::HalfOpen, &[]),
            "omit-general" => {
                let p = probability(self.p, None)?;
                let mode = match self.mode.as_deref().unwrap_or("reset") {
                    "reset" => OmissionMode::Reset,
                    "stall" => OmissionMode::Stall,
                    other => {
                        return Err(error(
                            "mode",
                            format!("'{}' is not an omission mode: reset or stall", faultline::input::elide(other)),
                        ));
                    }
                };
                (StreamFaultKind::Omission { p, mode }, &["p", "mode"])
            }
            "bandwidth" => {
                let bytes_per_s =
                    self.bytes_per_s.ok_or_else(|| error("bytes_per_s", "missing: the most bytes per second"))?;
                if bytes_per_s == 0 {
                    return Err(error("bytes_per_s", "0 forwards nothing: use a partition with mode = \"stall\""));
                }
                (StreamFaultKind::Bandwidth { bytes_per_s }, &["bytes_per_s"])
            }
            "flip" => (StreamFaultKind::Flip { p: probability(self.p, None)? }, &["p"]),
            // The catalogue's tamper defaults to every message.
            "tamper" => (StreamFaultKind::Tamper { p: probability(self.p, Some(1.0))? }, &["p"]),
            "replay" => (StreamFaultKind::Replay { p: probability(self.p, None)? }, &["p"]),
            other => return Err(error("kind", format!("'{other}' is not a fault on a byte stream"))),
        };
        let written: [(&'static str, bool); 5] = [
            ("latency_ms", self.latency_ms.is_some()),
            ("jitter_ms", self.jitter_ms.is_some()),
            ("mode", self.mode.is_some()),
            ("p", self.p.is_some()),
            ("bytes_per_s", self.bytes_per_s.is_some()),
        ];
        if let Some((field, _)) = written.iter().find(|(name, set)| *set && !takes.contains(name)) {
            let takes = if takes.is_empty() { "none".to_owned() } else { takes.join(", ") };
            return Err(error(field, format!("not a parameter of '{}' (it takes: {takes})", self.kind)));
        }
        let fault =
            StreamFault { kind, direction: self.direction.unwrap_or(Direction::Both), matches: self.matches.clone() };
        check(&fault)?;
        Ok(fault)
    }
}

/// Checks a fault built in code as [`FaultSpec::validate`] checks a written one.
pub(super) fn check(fault: &StreamFault) -> Result<(), FaultSpecError> {
    if let Some(m) = &fault.matches {
        if m.is_empty() {
            return Err(error("matches", "empty: leave it out to match every connection"));
        }
        if m.len() > MAX_MATCHES_BYTES {
            return Err(error(
                "matches",
                format!("longer than {MAX_MATCHES_BYTES} bytes, the prefix a connection is judged by"),
            ));
        }
    }
    match fault.kind {
        StreamFaultKind::Omission { p, .. }
        | StreamFaultKind::Flip { p }
        | StreamFaultKind::Tamper { p }
        | StreamFaultKind::Replay { p }
            if !(0.0..=1.0).contains(&p) =>
        {
            Err(error("p", format!("{p} is not a probability (from 0 to 1)")))
        }
        StreamFaultKind::Bandwidth { bytes_per_s: 0 } => Err(error("bytes_per_s", "0 forwards nothing")),
        StreamFaultKind::Delay { latency_ms, jitter_ms } if latency_ms.max(jitter_ms) > MAX_LATENCY_MS => {
            Err(error("latency_ms", format!("over the most, {MAX_LATENCY_MS}")))
        }
        _ => Ok(()),
    }
}

/// Parses a fault from JSON (the control API's body): errors name the field.
pub fn from_json(body: &[u8]) -> Result<StreamFault, FaultSpecError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let spec: FaultSpec = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde names an unknown field in its message, at the path of the object holding it.
        let unknown = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
        let field = match (unknown, path.as_str()) {
            (Some(name), _) => faultline::input::elide(name),
            (None, "." | "") => "(body)".to_owned(),
            (None, path) => path.to_owned(),
        };
        error(&field, faultline::input::one_line(&message))
    })?;
    spec.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<StreamFault, FaultSpecError> {
        from_json(json.as_bytes())
    }

    #[test]
    fn faults_parse_with_their_defaults() {
        let d = spec(r#"{"kind":"delay","latency_ms":50,"jitter_ms":10,"direction":"upstream"}"#).unwrap();
        assert_eq!(d.kind, StreamFaultKind::Delay { latency_ms: 50, jitter_ms: 10 });
        assert_eq!(d.direction, Direction::Upstream);
        assert_eq!(
            spec(r#"{"kind":"partition"}"#).unwrap().kind,
            StreamFaultKind::Partition { mode: PartitionMode::Stall }
        );
        assert_eq!(spec(r#"{"kind":"tamper"}"#).unwrap().kind, StreamFaultKind::Tamper { p: 1.0 });
        assert_eq!(
            spec(r#"{"kind":"omit-general","p":0.5}"#).unwrap().kind,
            StreamFaultKind::Omission { p: 0.5, mode: OmissionMode::Reset }
        );
    }

    #[test]
    fn bad_faults_name_the_field() {
        assert_eq!(spec(r#"{"kind":"equivocate"}"#).unwrap_err().field, "kind");
        assert!(spec(r#"{"kind":"equivocate"}"#).unwrap_err().message.contains("delay, partition"));
        assert!(spec(r#"{"kind":"crash"}"#).unwrap_err().message.contains("faultline cluster"));
        assert_eq!(spec(r#"{"kind":"flip","p":2}"#).unwrap_err().field, "p");
        assert_eq!(spec(r#"{"kind":"flip"}"#).unwrap_err().field, "p");
        assert_eq!(spec(r#"{"kind":"delay","latency_ms":5,"p":0.1}"#).unwrap_err().field, "p");
        assert_eq!(spec(r#"{"kind":"partition","mode":"drop"}"#).unwrap_err().field, "mode");
        assert_eq!(spec(r#"{"kind":"delay","latency":5}"#).unwrap_err().field, "latency");
        assert_eq!(spec(r#"{"kind":"delay","latency_ms":"x"}"#).unwrap_err().field, "latency_ms");
        assert_eq!(spec("not json").unwrap_err().field, "(body)");
        assert_eq!(spec(r#"{"kind":"half-open","matches":""}"#).unwrap_err().field, "matches");
    }
}
