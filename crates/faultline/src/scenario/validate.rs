//! Stage two of loading: the raw file, checked field by field, becomes a typed
//! [`Scenario`]. Each check that fails says which field (as a path such as
//! `cases[2].faults[0].p`) and why; the loader turns the path into a line and column.

use std::fmt;

use super::raw::{RawCase, RawDist, RawFault, RawScenario};
use super::swarm::Swarm;
use super::{Case, MAX_FAULTS_PER_CASE, Scenario, TableLoader};
use crate::fault::{Direction, Fault, FaultKind, FaultName};
use crate::latency::LatencyDist;
use crate::protocol::NodeId;
use crate::sim::world::Limits;
use crate::time::{Span, Time};

/// A position in the scenario document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub fn key(&self, k: &str) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }
    pub fn index(&self, i: usize) -> FieldPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    /// Parses `a.b[2].c` or `a.b.2.c`.
    pub fn parse(s: &str) -> Option<FieldPath> {
        let mut segs = Vec::new();
        for part in s.replace('[', ".").replace(']', "").split('.') {
            if part.is_empty() {
                return None;
            }
            segs.push(match part.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(part.to_owned()),
            });
        }
        Some(FieldPath(segs))
    }
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A failed check: where, and why.
#[derive(Debug)]
pub struct Invalid {
    pub path: FieldPath,
    pub message: String,
}

/// The result of a check.
pub type Check<T> = Result<T, Invalid>;

pub fn bad<T>(path: FieldPath, message: impl Into<String>) -> Check<T> {
    Err(Invalid { path, message: message.into() })
}

pub fn required<T: Copy>(v: Option<T>, path: FieldPath) -> Check<T> {
    match v {
        Some(v) => Ok(v),
        None => bad(path, "is required"),
    }
}

/// A duration in milliseconds: finite and strictly positive, or (with `allow_zero`) zero.
///
/// Checked after conversion to integer nanoseconds, the form the simulator uses: a positive
/// value that rounds to 0 ns is refused, never read as zero (a zero period would sit at one
/// instant forever, and a zero retry interval means "no retries").
pub fn millis(v: f64, path: &FieldPath, allow_zero: bool) -> Check<Span> {
    if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) {
        let want = if allow_zero { "zero or more" } else { "more than zero" };
        return bad(path.clone(), format!("{v} ms: a duration must be finite and {want}"));
    }
    // A year of virtual time is far beyond any useful run and keeps nanoseconds in u64.
    if v > 365.0 * 24.0 * 3_600_000.0 {
        return bad(path.clone(), format!("{v} ms is longer than a year of virtual time"));
    }
    let span = Span::from_millis_f64(v);
    if span == Span::ZERO && v != 0.0 {
        return bad(
            path.clone(),
            format!("{v} ms rounds to 0 ns; virtual time counts whole nanoseconds (the least is 0.000001 ms)"),
        );
    }
    Ok(span)
}

/// An optional positive duration, `default` when the file leaves it out.
pub fn millis_or(v: Option<f64>, path: &FieldPath, default: Span) -> Check<Span> {
    Ok(v.map(|v| millis(v, path, false)).transpose()?.unwrap_or(default))
}

/// An optional count in `min..=max`, `default` when the file leaves it out.
pub fn count_or(v: Option<i64>, path: &FieldPath, min: i64, max: i64, default: u64) -> Check<u64> {
    Ok(v.map(|v| count(v, path, min, max)).transpose()?.unwrap_or(default))
}

pub fn probability(v: f64, path: &FieldPath) -> Check<f64> {
    if !(0.0..=1.0).contains(&v) {
        return bad(path.clone(), format!("probability {v} is outside [0, 1]"));
    }
    Ok(v)
}

pub fn count(v: i64, path: &FieldPath, min: i64, max: i64) -> Check<u64> {
    if v < min || v > max {
        return bad(path.clone(), format!("{v} is outside the allowed range {min}..={max}"));
    }
    Ok(v as u64)
}

/// Checks that only the fields a variant uses are set.
pub fn only(path: &FieldPath, what: &str, fields: &[(&str, bool)], allowed: &[&str]) -> Check<()> {
    for (name, set) in fields {
        if *set && !allowed.contains(name) {
            return bad(path.key(name), format!("is not a parameter of {what}"));
        }
    }
    Ok(())
}

pub fn dist(raw: &RawDist, path: &FieldPath) -> Check<LatencyDist> {
    let fields = [
        ("ms", raw.ms.is_some()),
        ("min_ms", raw.min_ms.is_some()),
        ("max_ms", raw.max_ms.is_some()),
        ("mean_ms", raw.mean_ms.is_some()),
        ("stddev_ms", raw.stddev_ms.is_some()),
        ("median_ms", raw.median_ms.is_some()),
        ("sigma", raw.sigma.is_some()),
        ("scale_ms", raw.scale_ms.is_some()),
        ("shape", raw.shape.is_some()),
        ("cap_ms", raw.cap_ms.is_some()),
    ];
    let what = format!("dist = \"{}\"", raw.dist);
    let ms = |v: Option<f64>, name: &str, zero: bool| -> Check<Span> {
        millis(required(v, path.key(name))?, &path.key(name), zero)
    };
    let positive = |v: Option<f64>, name: &str| -> Check<f64> {
        let v = required(v, path.key(name))?;
        if !v.is_finite() || v <= 0.0 {
            return bad(path.key(name), format!("{v} must be finite and more than zero"));
        }
        Ok(v)
    };
    Ok(match raw.dist.as_str() {
        "constant" => {
            only(path, &what, &fields, &["ms"])?;
            LatencyDist::Constant(ms(raw.ms, "ms", true)?)
        }
        "uniform" => {
            only(path, &what, &fields, &["min_ms", "max_ms"])?;
            let (min, max) = (ms(raw.min_ms, "min_ms", true)?, ms(raw.max_ms, "max_ms", true)?);
            if min > max {
                return bad(path.key("max_ms"), format!("max_ms {max} is below min_ms {min}"));
            }
            LatencyDist::Uniform { min, max }
        }
        "normal" => {
            only(path, &what, &fields, &["mean_ms", "stddev_ms"])?;
            LatencyDist::Normal {
                mean: ms(raw.mean_ms, "mean_ms", true)?,
                stddev: ms(raw.stddev_ms, "stddev_ms", true)?,
            }
        }
        "lognormal" => {
            only(path, &what, &fields, &["median_ms", "sigma"])?;
            let sigma = positive(raw.sigma, "sigma")?;
            if sigma > 10.0 {
                return bad(path.key("sigma"), format!("sigma {sigma} is absurd (over 10: e^10 times the median)"));
            }
            LatencyDist::LogNormal { median: ms(raw.median_ms, "median_ms", false)?, sigma }
        }
        "pareto" => {
            only(path, &what, &fields, &["scale_ms", "shape", "cap_ms"])?;
            let scale = ms(raw.scale_ms, "scale_ms", false)?;
            let cap = raw.cap_ms.map(|c| millis(c, &path.key("cap_ms"), false)).transpose()?;
            if let Some(cap) = cap
                && cap < scale
            {
                return bad(
                    path.key("cap_ms"),
                    format!("cap_ms {cap} is below scale_ms {scale}, the least value a Pareto latency takes"),
                );
            }
            LatencyDist::Pareto { scale, shape: positive(raw.shape, "shape")?, cap }
        }
        other => {
            return bad(
                path.key("dist"),
                format!("unknown distribution {other:?} (expected constant, uniform, normal, lognormal or pareto)"),
            );
        }
    })
}

pub fn node(name: &str, names: &[String], path: &FieldPath) -> Check<NodeId> {
    match names.iter().position(|n| n == name) {
        Some(i) => Ok(NodeId(i as u32)),
        None => bad(path.clone(), format!("no node named {name:?} (nodes are {})", names.join(", "))),
    }
}

fn fault(raw: &RawFault, names: &[String], path: &FieldPath) -> Check<Fault> {
    let node = node(&raw.node, names, &path.key("node"))?;
    let start = Time::ZERO + raw.at_ms.map(|v| millis(v, &path.key("at_ms"), true)).transpose()?.unwrap_or_default();
    if raw.until_ms.is_some() && raw.duration_ms.is_some() {
        return bad(path.key("duration_ms"), "give until_ms or duration_ms, not both");
    }
    let end = match (raw.until_ms, raw.duration_ms) {
        (Some(u), _) => {
            let end = Time::ZERO + millis(u, &path.key("until_ms"), false)?;
            if end <= start {
                return bad(path.key("until_ms"), format!("the window ends ({end}) before it starts ({start})"));
            }
            Some(end)
        }
        (None, Some(d)) => Some(start + millis(d, &path.key("duration_ms"), false)?),
        (None, None) => None,
    };
    let fields = [
        ("direction", raw.direction.is_some()),
        ("p", raw.p.is_some()),
        ("extra", raw.extra.is_some()),
        ("until_ms", raw.until_ms.is_some()),
        ("duration_ms", raw.duration_ms.is_some()),
        ("n", raw.n.is_some()),
        ("bytes", raw.bytes.is_some()),
        ("peers", raw.peers.is_some()),
        ("offset_ms", raw.offset_ms.is_some()),
        ("drift_ppm", raw.drift_ppm.is_some()),
        ("age_ms", raw.age_ms.is_some()),
        ("bits", raw.bits.is_some()),
        ("victim", raw.victim.is_some()),
    ];
    const WINDOW: [&str; 2] = ["until_ms", "duration_ms"];
    let what = format!("kind = \"{}\"", raw.kind);
    let allow = |extra: &[&str]| -> Check<()> {
        let allowed: Vec<&str> = WINDOW.iter().chain(extra).copied().collect();
        only(path, &what, &fields, &allowed)
    };
    let p = |default: Option<f64>| -> Check<f64> {
        let v = match (raw.p, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => return bad(path.key("p"), "is required"),
        };
        probability(v, &path.key("p"))
    };
    let direction = |default: &str| -> Check<Direction> {
        match raw.direction.as_deref().unwrap_or(default) {
            "send" | "outgoing" => Ok(Direction::Send),
            "receive" | "incoming" => Ok(Direction::Receive),
            "general" | "both" => Ok(Direction::General),
            other => bad(path.key("direction"), format!("{other:?} is not send, receive or general")),
        }
    };
    let extra = || -> Check<LatencyDist> {
        match &raw.extra {
            Some(extra) => dist(extra, &path.key("extra")),
            None => bad(path.key("extra"), "is required"),
        }
    };
    let needs_window = |what: &str| -> Check<()> {
        if end.is_none() {
            return bad(path.key("duration_ms"), format!("{what} needs duration_ms or until_ms"));
        }
        Ok(())
    };
    // The one name outside the catalogue: `omit` with a `direction`, for the three omit-*.
    if raw.kind == "omit" {
        allow(&["direction", "p"])?;
        return Ok(Fault { node, kind: FaultKind::Omit { direction: direction("general")?, p: p(None)? }, start, end });
    }
    let Some(name) = FaultName::parse(&raw.kind) else {
        return bad(
            path.key("kind"),
            format!("unknown fault kind {:?} (`faultline faults` lists them)", crate::input::elide(&raw.kind)),
        );
    };
    let kind = match name {
        FaultName::Crash => {
            only(path, &what, &fields, &[])?;
            FaultKind::Crash
        }
        FaultName::FailStop => {
            only(path, &what, &fields, &[])?;
            FaultKind::FailStop
        }
        FaultName::Restart => {
            allow(&[])?;
            needs_window("a restart (the node is down over the window, then recovers)")?;
            FaultKind::Restart
        }
        FaultName::HalfOpen => {
            allow(&[])?;
            FaultKind::HalfOpen
        }
        FaultName::OmitSend | FaultName::OmitReceive | FaultName::OmitGeneral => {
            allow(&["p"])?;
            let direction = match name {
                FaultName::OmitSend => Direction::Send,
                FaultName::OmitReceive => Direction::Receive,
                _ => Direction::General,
            };
            FaultKind::Omit { direction, p: p(None)? }
        }
        FaultName::OmitEveryNth => {
            allow(&["direction", "n"])?;
            let n = count(required(raw.n, path.key("n"))?, &path.key("n"), 1, i64::MAX)?;
            FaultKind::OmitEveryNth { direction: direction("general")?, n }
        }
        FaultName::OmitLarge => {
            allow(&["direction", "bytes"])?;
            let bytes = count(required(raw.bytes, path.key("bytes"))?, &path.key("bytes"), 0, i64::MAX)? as usize;
            FaultKind::OmitLarge { direction: direction("general")?, bytes }
        }
        FaultName::Partition => {
            allow(&["direction", "peers", "p"])?;
            let Some(peers) = &raw.peers else { return bad(path.key("peers"), "is required") };
            if peers.is_empty() {
                return bad(path.key("peers"), "names no peer");
            }
            let peers = peers
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let id = self::node(name, names, &path.key("peers").index(i))?;
                    if id == node {
                        return bad(path.key("peers").index(i), "a node cannot be partitioned from itself");
                    }
                    Ok(id)
                })
                .collect::<Check<Vec<_>>>()?;
            FaultKind::Partition { peers, direction: direction("general")?, p: p(Some(1.0))? }
        }
        FaultName::Duplicate => {
            allow(&["p"])?;
            FaultKind::Duplicate { p: p(None)? }
        }
        FaultName::Reorder => {
            allow(&["p", "extra"])?;
            FaultKind::Reorder { p: p(None)?, extra: extra()? }
        }
        FaultName::Delay => {
            allow(&["extra"])?;
            FaultKind::Delay { extra: extra()? }
        }
        FaultName::Pause => {
            allow(&[])?;
            needs_window("a pause (an endless pause is a crash)")?;
            FaultKind::Pause
        }
        FaultName::Skew => {
            allow(&["offset_ms", "drift_ppm"])?;
            let offset_ms = raw.offset_ms.unwrap_or(0.0);
            if !offset_ms.is_finite() || offset_ms.abs() > 365.0 * 24.0 * 3_600_000.0 {
                return bad(path.key("offset_ms"), format!("{offset_ms} ms is not a clock offset within a year"));
            }
            let drift_ppm = raw.drift_ppm.unwrap_or(0.0);
            if !drift_ppm.is_finite() || drift_ppm.abs() >= 1e6 {
                return bad(
                    path.key("drift_ppm"),
                    format!("{drift_ppm} ppm: a clock must run forward (|drift| < 1,000,000 ppm)"),
                );
            }
            FaultKind::Skew { offset: (offset_ms * 1e6).round() as i64, drift_ppm }
        }
        FaultName::SlowDisk => {
            allow(&["extra"])?;
            FaultKind::SlowDisk { extra: extra()? }
        }
        FaultName::Tamper => {
            allow(&["p"])?;
            FaultKind::Tamper { p: p(Some(1.0))? }
        }
        FaultName::Equivocate => {
            allow(&["p"])?;
            FaultKind::Equivocate { p: p(Some(1.0))? }
        }
        FaultName::Replay => {
            allow(&["p"])?;
            FaultKind::Replay { p: p(None)? }
        }
        FaultName::Stale => {
            allow(&["age_ms"])?;
            FaultKind::Stale { age: millis(required(raw.age_ms, path.key("age_ms"))?, &path.key("age_ms"), false)? }
        }
        FaultName::Lie => {
            allow(&[])?;
            FaultKind::Lie
        }
        FaultName::Flip => {
            allow(&["p", "bits"])?;
            let bits = count(raw.bits.unwrap_or(1), &path.key("bits"), 1, 64)? as u32;
            FaultKind::Flip { p: p(None)?, bits }
        }
        FaultName::Forge => {
            allow(&["p", "victim"])?;
            let Some(victim) = &raw.victim else { return bad(path.key("victim"), "is required") };
            let victim = self::node(victim, names, &path.key("victim"))?;
            if victim == node {
                return bad(path.key("victim"), "a node forging itself is just sending");
            }
            FaultKind::Forge { victim, p: p(Some(1.0))? }
        }
        FaultName::Gray => {
            allow(&["p", "extra"])?;
            let extra = raw.extra.as_ref().map(|d| dist(d, &path.key("extra"))).transpose()?;
            FaultKind::Gray { p: p(None)?, extra }
        }
    };
    Ok(Fault { node, kind, start, end })
}

/// Case `raw`; `targets` is how many nodes, from the first, a swarm may draw faults on.
fn case(raw: &RawCase, names: &[String], targets: usize, budget: Option<usize>, path: &FieldPath) -> Check<Case> {
    if raw.name.trim().is_empty() {
        return bad(path.key("name"), "must not be empty");
    }
    if raw.faults.len() > MAX_FAULTS_PER_CASE {
        return bad(path.key("faults"), format!("{} faults; at most {MAX_FAULTS_PER_CASE} per case", raw.faults.len()));
    }
    let faults = raw
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| fault(f, names, &path.key("faults").index(i)))
        .collect::<Check<Vec<_>>>()?;
    let mut faulty: Vec<NodeId> = faults.iter().map(|f| f.node).collect();
    faulty.sort();
    faulty.dedup();
    if let Some(f) = budget
        && faulty.len() > f
    {
        return bad(path.key("faults"), format!("{} faulty nodes exceed the fault budget of {f}", faulty.len()));
    }
    let swarm = match &raw.swarm {
        None => None,
        Some(sw) => {
            let sp = path.key("swarm");
            let faults = count(sw.faults, &sp.key("faults"), 1, MAX_FAULTS_PER_CASE as i64)? as usize;
            let kinds = match &sw.kinds {
                // Forging needs a victim other than the forger: with one node to fault,
                // the whole catalogue means every kind but forge.
                None => FaultName::ALL.into_iter().filter(|&k| k != FaultName::Forge || targets > 1).collect(),
                Some(kinds) => {
                    if kinds.is_empty() {
                        return bad(sp.key("kinds"), "names no fault kind");
                    }
                    let mut parsed = Vec::with_capacity(kinds.len());
                    for (i, k) in kinds.iter().enumerate() {
                        let Some(kind) = FaultName::parse(k) else {
                            return bad(
                                sp.key("kinds").index(i),
                                format!(
                                    "unknown fault kind {:?} (`faultline faults` lists them)",
                                    crate::input::elide(k)
                                ),
                            );
                        };
                        if kind == FaultName::Forge && targets < 2 {
                            return bad(
                                sp.key("kinds").index(i),
                                "forge needs a second node to claim to be, and this scenario has one node to fault",
                            );
                        }
                        parsed.push(kind);
                    }
                    parsed
                }
            };
            let window = millis(sw.window_ms.unwrap_or(1_000.0), &sp.key("window_ms"), false)?;
            Some(Swarm { faults, kinds, window })
        }
    };
    Ok(Case { name: raw.name.clone(), description: raw.description.clone(), faults, swarm })
}

/// The workload `raw` selects with `protocol` (the first registered when it says none).
pub fn workload<'a>(raw: &RawScenario, loaders: &[&'a dyn TableLoader]) -> Check<&'a dyn TableLoader> {
    let top = FieldPath::default();
    let Some(&first) = loaders.first() else { return bad(top.key("protocol"), "no workload is registered") };
    let Some(protocol) = raw.protocol.as_deref() else { return Ok(first) };
    match loaders.iter().find(|l| l.name() == protocol) {
        Some(&l) => Ok(l),
        None => {
            let names: Vec<&str> = loaders.iter().map(|l| l.name()).collect();
            let expected = match names.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            bad(
                top.key("protocol"),
                format!("unknown protocol {:?} (expected {expected})", crate::input::elide(protocol)),
            )
        }
    }
}

/// Validates a scenario whose workload is `loader`, its table read as `table` (`None` when
/// the file has none); `tables` are the names of every registered workload.
pub fn scenario(
    raw: &RawScenario,
    loader: &dyn TableLoader,
    table: Option<&dyn std::any::Any>,
    tables: &[&str],
) -> Check<Scenario> {
    let top = FieldPath::default();
    let protocol = loader.name();
    // Another workload's table is a mistake: say which protocol would read it.
    for &other in tables.iter().filter(|&&t| t != protocol) {
        if raw.tables.iter().any(|t| t == other) {
            return bad(
                top.key(other),
                format!("a {protocol} scenario has no [{other}] table (set protocol = \"{other}\")"),
            );
        }
    }
    let Some(table) = table else {
        return bad(top.key(protocol), format!("the [{protocol}] table is required"));
    };
    let validated = loader.validate(table, &top.key(protocol), raw.seed)?;
    let (workload, duration) = (validated.config, validated.duration);
    let names = workload.0.node_names();
    let targets = workload.0.fault_targets();
    let budget = raw
        .fault_budget
        .map(|f| count(f, &top.key("fault_budget"), 0, names.len() as i64))
        .transpose()
        .map_err(|mut e| {
            e.message = format!("{} (the scenario has {} nodes)", e.message, names.len());
            e
        })?
        .map(|f| f as usize);

    let np = top.key("network");
    let (latency, links) = match &raw.network {
        None => (LatencyDist::Constant(Span::ZERO), Vec::new()),
        Some(net) => {
            let latency = match &net.latency {
                Some(d) => dist(d, &np.key("latency"))?,
                None => LatencyDist::Constant(Span::ZERO),
            };
            let links = net
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let lp = np.key("links").index(i);
                    Ok((
                        node(&l.from, &names, &lp.key("from"))?,
                        node(&l.to, &names, &lp.key("to"))?,
                        dist(&l.latency, &lp.key("latency"))?,
                    ))
                })
                .collect::<Check<Vec<_>>>()?;
            (latency, links)
        }
    };

    let lp = top.key("limits");
    let mut defaults = Limits::default();
    if let Some(d) = duration {
        // The heartbeat workload never goes quiet: its duration is when the run stops.
        defaults.max_time = Time::ZERO + d;
    }
    let limits = match &raw.limits {
        None => defaults,
        Some(l) => Limits {
            max_time: l
                .max_time_ms
                .map(|v| millis(v, &lp.key("max_time_ms"), false).map(|s| Time::ZERO + s))
                .transpose()?
                .unwrap_or(defaults.max_time),
            max_events: l
                .max_events
                .map(|v| count(v, &lp.key("max_events"), 1, 10_000_000_000))
                .transpose()?
                .unwrap_or(defaults.max_events),
            inflight_per_link: l
                .inflight_per_link
                .map(|v| count(v, &lp.key("inflight_per_link"), 1, 1 << 24).map(|v| v as u32))
                .transpose()?
                .unwrap_or(defaults.inflight_per_link),
        },
    };

    if raw.cases.is_empty() {
        return bad(top.key("cases"), "a scenario needs at least one [[cases]] entry");
    }
    if raw.cases.len() > super::MAX_CASES {
        return bad(top.key("cases"), format!("{} cases; at most {}", raw.cases.len(), super::MAX_CASES));
    }
    let cases = raw
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| case(c, &names, targets, budget, &top.key("cases").index(i)))
        .collect::<Check<Vec<_>>>()?;
    for (i, c) in cases.iter().enumerate() {
        if cases[..i].iter().any(|d| d.name == c.name) {
            return bad(top.key("cases").index(i).key("name"), format!("case name {:?} is used twice", c.name));
        }
    }
    Ok(Scenario {
        name: raw.name.clone().unwrap_or_else(|| "scenario".to_owned()),
        description: raw.description.clone(),
        seed: raw.seed,
        workload,
        latency,
        links,
        limits,
        fault_budget: budget,
        cases,
    })
}
