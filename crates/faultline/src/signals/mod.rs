//! Signals: what real monitoring exports about each replica, as time-stamped samples.
//!
//! A sample is `(time_s, replica, signal, value)`. The signal names, their units and what
//! observes them are fixed here ([`Signal`]); the file formats that carry them (long CSV,
//! NDJSON, Prometheus text exposition, Prometheus `query_range` JSON) are read by
//! [`parse`]. The diagnoser (`crate::diagnose`) reads samples and nothing else, so a file
//! exported from a real cluster and one derived from a simulated run are read the same way.
//! docs/signals.md is the reference.

pub mod parse;

use std::fmt;

/// A signal an operator can observe of one replica. Each has one unit and one observer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// Seconds since the leader last heard the replica's heartbeat (the leader observes).
    HeartbeatAge,
    /// The replica's TCP endpoint as a connecting peer sees it: a [`Transport`] state.
    Transport,
    /// 1 if a synthetic `/health` probe (a load balancer's checker) succeeded, else 0.
    HealthOk,
    /// How long the health probe took, in milliseconds.
    HealthLatency,
    /// 1 if a real request through the client path succeeded, else 0.
    DataOk,
    /// How long that request took, in milliseconds.
    DataLatency,
    /// How fast the replica acks the leader's appends, in milliseconds (the leader observes).
    AckLatency,
    /// The highest log index the replica has acked (the leader observes).
    AckedIndex,
    /// The highest index in the replica's write-ahead log on disk (its own metrics, or an
    /// audit of its disk).
    DurableIndex,
    /// The leader's commit index (the sample's replica is the leader's name).
    LeaderCommitIndex,
    /// How old the data the replica serves is against the leader's latest, in seconds (a
    /// data-plane prober).
    ServedVersionAge,
    /// The digest of a probe key's value as the replica serves it (a data-plane prober),
    /// compared across replicas.
    ContentDigest,
    /// A counter of retransmissions or sequence gaps on the replica's links.
    Retransmits,
}

/// What kind of value a signal carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A number that is never negative (ages, latencies, indices, counters).
    Number,
    /// 0 or 1.
    Flag,
    /// One of `open`, `half-open`, `closed`, `refused`.
    Transport,
    /// An opaque digest, compared for equality only (any non-empty text without spaces).
    Digest,
}

impl Signal {
    /// Every signal, in the order docs/signals.md lists them.
    pub const ALL: [Signal; 13] = [
        Signal::HeartbeatAge,
        Signal::Transport,
        Signal::HealthOk,
        Signal::HealthLatency,
        Signal::DataOk,
        Signal::DataLatency,
        Signal::AckLatency,
        Signal::AckedIndex,
        Signal::DurableIndex,
        Signal::LeaderCommitIndex,
        Signal::ServedVersionAge,
        Signal::ContentDigest,
        Signal::Retransmits,
    ];

    /// The name files use.
    pub const fn name(self) -> &'static str {
        match self {
            Signal::HeartbeatAge => "heartbeat_age_s",
            Signal::Transport => "transport",
            Signal::HealthOk => "health_ok",
            Signal::HealthLatency => "health_latency_ms",
            Signal::DataOk => "data_ok",
            Signal::DataLatency => "data_latency_ms",
            Signal::AckLatency => "ack_latency_ms",
            Signal::AckedIndex => "acked_index",
            Signal::DurableIndex => "durable_index",
            Signal::LeaderCommitIndex => "leader_commit_index",
            Signal::ServedVersionAge => "served_version_age_s",
            Signal::ContentDigest => "content_digest",
            Signal::Retransmits => "retransmits",
        }
    }

    /// The signal a name stands for, if it is one.
    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }

    pub const fn kind(self) -> ValueKind {
        match self {
            Signal::Transport => ValueKind::Transport,
            Signal::HealthOk | Signal::DataOk => ValueKind::Flag,
            Signal::ContentDigest => ValueKind::Digest,
            _ => ValueKind::Number,
        }
    }

    /// The message for a name that is not a signal: it, and the known ones.
    pub fn unknown(name: &str) -> String {
        let known: Vec<&str> = Signal::ALL.iter().map(|s| s.name()).collect();
        format!("unknown signal {:?} (known: {})", crate::input::elide(name), known.join(", "))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A replica's TCP endpoint as a connecting peer sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// Connections open and data flows.
    Open,
    /// The connection is established and held, but nothing comes back: the kernel is
    /// alive, the application is not.
    HalfOpen,
    /// The connection was closed or reset (a process that died; its kernel said so).
    Closed,
    /// New connections are refused, or time out (nothing listens, or the host is gone).
    Refused,
}

impl Transport {
    pub const ALL: [Transport; 4] = [Transport::Open, Transport::HalfOpen, Transport::Closed, Transport::Refused];

    pub const fn name(self) -> &'static str {
        match self {
            Transport::Open => "open",
            Transport::HalfOpen => "half-open",
            Transport::Closed => "closed",
            Transport::Refused => "refused",
        }
    }

    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// A sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// For [`ValueKind::Number`] and [`ValueKind::Flag`] signals: finite, never negative.
    Number(f64),
    Transport(Transport),
    Digest(String),
}

impl Value {
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Number(x) => Some(*x),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x}"),
            Value::Transport(t) => f.write_str(t.name()),
            Value::Digest(d) => f.write_str(d),
        }
    }
}

/// Checks a value written as text for `signal`, and reads it: the error says what was
/// expected (the caller locates it).
pub fn read_value(signal: Signal, text: &str) -> Result<Value, String> {
    match signal.kind() {
        ValueKind::Number | ValueKind::Flag => {
            let x: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("{signal} needs a number, not {:?}", crate::input::elide(text)))?;
            number(signal, x)
        }
        ValueKind::Transport => Transport::from_name(text.trim()).map(Value::Transport).ok_or_else(|| {
            format!("transport must be open, half-open, closed or refused, not {:?}", crate::input::elide(text))
        }),
        ValueKind::Digest => {
            let d = text.trim();
            if d.is_empty() || d.contains(char::is_whitespace) {
                Err(format!("content_digest must be one word, not {:?}", crate::input::elide(text)))
            } else {
                Ok(Value::Digest(d.to_owned()))
            }
        }
    }
}

/// Checks a numeric value for `signal`: finite, not negative, and 0 or 1 for a flag. A
/// digest may be given as a number too (Prometheus carries only numbers).
pub fn number(signal: Signal, x: f64) -> Result<Value, String> {
    if x.is_nan() {
        return Err(format!("{signal} is NaN"));
    }
    if x.is_infinite() {
        return Err(format!("{signal} is infinite"));
    }
    match signal.kind() {
        ValueKind::Number if x < 0.0 => Err(format!("{signal} is negative ({x}); it counts up from 0")),
        ValueKind::Number => Ok(Value::Number(x)),
        ValueKind::Flag if x == 0.0 || x == 1.0 => Ok(Value::Number(x)),
        ValueKind::Flag => Err(format!("{signal} must be 0 or 1, not {x}")),
        ValueKind::Digest => Ok(Value::Digest(format!("{x}"))),
        ValueKind::Transport => Err(format!(
            "transport must be open, half-open, closed or refused, not the number {x} (in Prometheus, \
             use a state label)"
        )),
    }
}

/// One observation of one signal of one replica.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Seconds, from any origin (the Unix epoch in a real export, the start of the run in a
    /// simulated one). Finite.
    pub time_s: f64,
    pub replica: String,
    pub signal: Signal,
    pub value: Value,
}

/// Why a signals file could not be read. Displays as one line: `file:line:col: field: message`.
#[derive(Debug, thiserror::Error)]
pub enum SignalsError {
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error(transparent)]
    Invalid(#[from] crate::input::Located),
}

impl SignalsError {
    /// An error at `line` and `column` (both from 1) of `file`, about `field`.
    pub fn at(file: &str, line: u64, column: u64, field: &str, message: impl Into<String>) -> SignalsError {
        SignalsError::Invalid(crate::input::Located::at(file, line, column, field, message))
    }
}

/// Writes samples as the long CSV of docs/signals.md (`time_s,replica,signal,value`).
pub fn write_csv<W: std::io::Write>(samples: &[Sample], out: W) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["time_s", "replica", "signal", "value"])?;
    for s in samples {
        w.write_record([s.time_s.to_string(), s.replica.clone(), s.signal.name().to_owned(), s.value.to_string()])?;
    }
    w.flush()
}
