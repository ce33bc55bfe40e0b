//! Real-cluster scenarios: the simulated scenarios' `[[cases]]` with `faults = [...]`, in
//! real milliseconds, against etcd members named `m0`..`m4` (or `leader`, resolved when
//! the fault starts). Loaded in two stages like `faultline::scenario`: a raw serde struct
//! with `deny_unknown_fields` (positions kept with `toml::Spanned`), validated into a typed
//! [`Scenario`]; every error is one line, `file:line:col: field: message`.
//!
//! ```toml
//! name = "etcd-linearizable"
//! [cluster]
//! members = 3
//! [workload]
//! clients = 5
//! reads = "linearizable"
//! duration_ms = 15000
//! [[cases]]
//! name = "leader paused past the election timeout"
//! faults = [{ node = "leader", kind = "pause", at_ms = 4000, duration_ms = 3000 }]
//! ```

use std::path::Path;

use faultline::fault::FaultName;
use serde::Deserialize;
use toml::Spanned;

/// Why a scenario could not be loaded: one line, `file:line:col: field: message`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

/// The largest scenario file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    description: Option<String>,
    system: Option<Spanned<String>>,
    seed: Option<Spanned<i64>>,
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    workload: RawWorkload,
    #[serde(default)]
    check: RawCheck,
    #[serde(default)]
    cases: Vec<Spanned<RawCase>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    members: Option<Spanned<i64>>,
    heartbeat_ms: Option<Spanned<i64>>,
    election_ms: Option<Spanned<i64>>,
    start_timeout_ms: Option<Spanned<i64>>,
    probe_interval_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    clients: Option<Spanned<i64>>,
    keys: Option<Spanned<i64>>,
    reads: Option<Spanned<String>>,
    duration_ms: Option<Spanned<i64>>,
    timeout_ms: Option<Spanned<i64>>,
    think_ms: Option<Spanned<i64>>,
    max_ops: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    timeout_s: Option<Spanned<f64>>,
    memory_mb: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    faults: Vec<Spanned<RawFault>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    node: Spanned<String>,
    kind: Spanned<String>,
    at_ms: Option<Spanned<f64>>,
    until_ms: Option<Spanned<f64>>,
    duration_ms: Option<Spanned<f64>>,
    direction: Option<Spanned<String>>,
}

/// How clients read: through Raft's read index (etcd's default), or from whichever
/// member the client reached (`serializable: true`), which may be stale.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reads {
    Linearizable,
    Serializable,
}

/// Which member a fault acts on: a fixed one, or whoever leads when it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Member(usize),
    Leader,
}

/// What a fault does to a real member (see docs/real.md).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGSTOP, then SIGCONT when the window ends.
    Pause,
    /// SIGKILL; started again on the same data directory when the window ends, if it has one.
    Crash,
    /// SIGKILL, started again on the same data directory after `duration_ms`.
    Restart,
    /// SIGKILL, while its routes keep accepting connections and never answer; started again
    /// when the window ends.
    HalfOpen,
    /// Every connection to and from its peer listener cut (both ways).
    Partition,
    /// Only the messages it sends cut: it still hears the others.
    OmitSend,
    /// Only the messages it receives cut: it can still send.
    OmitReceive,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Crash => "crash",
            Action::Restart => "restart",
            Action::HalfOpen => "half-open",
            Action::Partition => "partition",
            Action::OmitSend => "omit-send",
            Action::OmitReceive => "omit-receive",
        }
    }

    /// The failure model the diagnoser should name for it, and the kind (the ground truth).
    pub fn model(self) -> (&'static str, Option<&'static str>) {
        match self {
            Action::Pause => ("timing", Some("pause")),
            Action::Crash | Action::Restart => ("crash", None),
            Action::HalfOpen => ("crash", Some("half-open")),
            Action::Partition => ("omission", Some("partition")),
            Action::OmitSend => ("omission", Some("send")),
            Action::OmitReceive => ("omission", Some("receive")),
        }
    }
}

/// One fault of a case: what, on whom, when (milliseconds from the start of the workload).
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub target: Target,
    pub action: Action,
    pub at_ms: u64,
    /// When it is undone; `None`: never (a crash without a window).
    pub end_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub name: String,
    pub description: Option<String>,
    pub faults: Vec<Fault>,
}

/// A validated real-cluster scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub members: usize,
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    pub start_timeout_ms: u64,
    pub probe_interval_ms: u64,
    pub clients: usize,
    pub keys: usize,
    pub reads: Reads,
    pub duration_ms: u64,
    pub timeout_ms: u64,
    pub think_ms: u64,
    pub max_ops: u64,
    pub check_timeout_s: f64,
    pub check_memory_mb: u64,
    pub cases: Vec<Case>,
}

/// The kinds a real member can be given, for error messages.
const KINDS: &str = "pause, crash, restart, half-open, partition, omit-send, omit-receive, omit-general";

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, field: &str, message: impl Into<String>) -> ScenarioError {
        let (line, column) = line_col(self.text, offset);
        ScenarioError { file: self.file.to_owned(), line, column, field: field.to_owned(), message: message.into() }
    }

    /// An integer within `min..=max`, or `default` when absent.
    fn int(
        &self,
        v: &Option<Spanned<i64>>,
        field: &str,
        min: i64,
        max: i64,
        default: u64,
    ) -> Result<u64, ScenarioError> {
        match v {
            None => Ok(default),
            Some(s) if (min..=max).contains(s.get_ref()) => Ok(*s.get_ref() as u64),
            Some(s) => Err(self.err(s.span().start, field, format!("{} is not within {min}..={max}", s.get_ref()))),
        }
    }

    fn millis(&self, v: &Spanned<f64>, field: &str, allow_zero: bool) -> Result<u64, ScenarioError> {
        let x = *v.get_ref();
        if !x.is_finite() || x < 0.0 || (!allow_zero && x == 0.0) || x > 86_400_000.0 {
            let want = if allow_zero { "zero or more" } else { "more than zero" };
            return Err(self.err(
                v.span().start,
                field,
                format!("{x} is not a time in milliseconds ({want}, at most a day)"),
            ));
        }
        Ok(x.round() as u64)
    }
}

/// Line and column (both from 1, columns in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Scenario {
    /// Reads and validates the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let whole =
            |message: String| ScenarioError { file: file.clone(), line: 1, column: 1, field: "(file)".into(), message };
        let meta = std::fs::metadata(path).map_err(|e| whole(format!("cannot read: {e}")))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(whole(format!("{} bytes; a scenario file holds at most {MAX_FILE_BYTES}", meta.len())));
        }
        let bytes = std::fs::read(path).map_err(|e| whole(format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let ok = String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]).into_owned();
            let (line, column) = line_col(&ok, ok.len());
            ScenarioError {
                file: file.clone(),
                line,
                column,
                field: "(file)".into(),
                message: "not valid UTF-8".into(),
            }
        })?;
        Scenario::parse(&file, &text)
    }

    /// Validates the scenario `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let ctx = Ctx { file, text };
        let raw: RawScenario = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().replace('\n', " ");
            let field = match message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
                Some(name) => format!("{}{name}", section(text, offset)),
                None => key_at(text, offset)
                    .map_or_else(|| "(syntax)".to_owned(), |k| format!("{}{k}", section(text, offset))),
            };
            ctx.err(offset, &field, message.trim().to_owned())
        })?;
        if let Some(system) = &raw.system
            && system.get_ref() != "etcd"
        {
            return Err(ctx.err(
                system.span().start,
                "system",
                format!("{:?}: the one real system is \"etcd\"", system.get_ref()),
            ));
        }
        let c = &raw.cluster;
        let members = ctx.int(&c.members, "cluster.members", 1, 5, 3)? as usize;
        let heartbeat_ms = ctx.int(&c.heartbeat_ms, "cluster.heartbeat_ms", 10, 10_000, 100)?;
        let election_ms = ctx.int(&c.election_ms, "cluster.election_ms", 50, 60_000, 1000)?;
        if election_ms < 5 * heartbeat_ms
            && let Some(e) = &c.election_ms
        {
            // etcd itself refuses an election timeout under five heartbeats.
            return Err(ctx.err(
                e.span().start,
                "cluster.election_ms",
                format!("{election_ms} is under 5 heartbeats ({heartbeat_ms} ms each); etcd refuses it"),
            ));
        }
        let start_timeout_ms = ctx.int(&c.start_timeout_ms, "cluster.start_timeout_ms", 1000, 120_000, 20_000)?;
        let probe_interval_ms = ctx.int(&c.probe_interval_ms, "cluster.probe_interval_ms", 50, 10_000, 200)?;
        let w = &raw.workload;
        let clients = ctx.int(&w.clients, "workload.clients", 1, 64, 5)? as usize;
        let keys = ctx.int(&w.keys, "workload.keys", 1, 64, 3)? as usize;
        let reads = match &w.reads {
            None => Reads::Linearizable,
            Some(r) => match r.get_ref().as_str() {
                "linearizable" => Reads::Linearizable,
                "serializable" => Reads::Serializable,
                other => {
                    return Err(ctx.err(
                        r.span().start,
                        "workload.reads",
                        format!("{other:?} is not linearizable or serializable"),
                    ));
                }
            },
        };
        let duration_ms = ctx.int(&w.duration_ms, "workload.duration_ms", 100, 600_000, 15_000)?;
        let timeout_ms = ctx.int(&w.timeout_ms, "workload.timeout_ms", 10, 60_000, 1000)?;
        let think_ms = ctx.int(&w.think_ms, "workload.think_ms", 0, 60_000, 10)?;
        let max_ops = ctx.int(&w.max_ops, "workload.max_ops", 1, 1_000_000, 20_000)?;
        let check_timeout_s = match &raw.check.timeout_s {
            None => 30.0,
            Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 && *t.get_ref() <= 3600.0 => *t.get_ref(),
            Some(t) => {
                return Err(ctx.err(t.span().start, "check.timeout_s", "must be more than 0 and at most 3600 seconds"));
            }
        };
        let check_memory_mb = ctx.int(&raw.check.memory_mb, "check.memory_mb", 1, 65_536, 1024)?;
        let seed = match &raw.seed {
            None => 1,
            Some(s) if *s.get_ref() >= 0 => *s.get_ref() as u64,
            Some(s) => return Err(ctx.err(s.span().start, "seed", "must not be negative")),
        };
        if raw.cases.is_empty() {
            return Err(ctx.err(0, "cases", "a scenario needs at least one [[cases]]"));
        }
        let mut cases = Vec::new();
        for (i, case) in raw.cases.iter().enumerate() {
            let at = case.span().start;
            let case = case.get_ref();
            if case.name.get_ref().trim().is_empty() {
                return Err(ctx.err(case.name.span().start, &format!("cases[{i}].name"), "must not be empty"));
            }
            if cases.iter().any(|c: &Case| c.name == *case.name.get_ref()) {
                return Err(ctx.err(case.name.span().start, &format!("cases[{i}].name"), "another case has this name"));
            }
            let mut faults = Vec::new();
            for (j, f) in case.faults.iter().enumerate() {
                let path = format!("cases[{i}].faults[{j}]");
                faults.push(fault(&ctx, f, &path, members, duration_ms)?);
            }
            let _ = at;
            cases.push(Case { name: case.name.get_ref().clone(), description: case.description.clone(), faults });
        }
        Ok(Scenario {
            name: raw.name.unwrap_or_else(|| {
                Path::new(file).file_stem().map_or("cluster".into(), |s| s.to_string_lossy().into_owned())
            }),
            description: raw.description,
            seed,
            members,
            heartbeat_ms,
            election_ms,
            start_timeout_ms,
            probe_interval_ms,
            clients,
            keys,
            reads,
            duration_ms,
            timeout_ms,
            think_ms,
            max_ops,
            check_timeout_s,
            check_memory_mb,
            cases,
        })
    }

    /// The index of the case named `name`.
    pub fn case(&self, name: &str) -> Option<usize> {
        self.cases.iter().position(|c| c.name == name)
    }
}

/// The table `offset` lies in, as a field path prefix: `cluster.`, `cases[].`, or nothing.
fn section(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let header = before.lines().rev().map(str::trim).find(|l| l.starts_with('['));
    match header {
        Some(h) if h.starts_with("[[") => format!("{}[].", h.trim_matches(['[', ']']).trim()),
        Some(h) => format!("{}.", h.trim_matches(['[', ']']).trim()),
        None => String::new(),
    }
}

/// The key written at `offset`'s line (`key = ...`), to name the field of a type error.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text.get(..offset.min(text.len()))?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_start_matches('{').trim();
    (!key.is_empty() && !key.contains(['{', '[', ' ', '"'])).then(|| key.to_owned())
}

fn fault(
    ctx: &Ctx<'_>,
    f: &Spanned<RawFault>,
    path: &str,
    members: usize,
    duration_ms: u64,
) -> Result<Fault, ScenarioError> {
    let raw = f.get_ref();
    let field = |name: &str| format!("{path}.{name}");
    let node = raw.node.get_ref();
    let target = if node == "leader" {
        Target::Leader
    } else {
        match node
            .strip_prefix('m')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < members && node == &format!("m{n}"))
        {
            Some(n) => Target::Member(n),
            None => {
                let names: Vec<String> = (0..members).map(|m| format!("m{m}")).collect();
                return Err(ctx.err(
                    raw.node.span().start,
                    &field("node"),
                    format!("{node:?} is not a member ({}) or \"leader\"", names.join(", ")),
                ));
            }
        }
    };
    let kind = raw.kind.get_ref().as_str();
    let kind_err = |message: String| ctx.err(raw.kind.span().start, &field("kind"), message);
    let action = match kind {
        "pause" => Action::Pause,
        "crash" => Action::Crash,
        "restart" => Action::Restart,
        "half-open" => Action::HalfOpen,
        "partition" | "omit-general" => Action::Partition,
        "omit-send" => Action::OmitSend,
        "omit-receive" => Action::OmitReceive,
        "omit" => match raw.direction.as_ref().map(|d| d.get_ref().as_str()).unwrap_or("general") {
            "send" | "outgoing" => Action::OmitSend,
            "receive" | "incoming" => Action::OmitReceive,
            "general" | "both" => Action::Partition,
            other => {
                let d = raw.direction.as_ref().expect("a direction was given");
                return Err(ctx.err(
                    d.span().start,
                    &field("direction"),
                    format!("{other:?} is not send, receive or general"),
                ));
            }
        },
        other => {
            return Err(match FaultName::parse(other) {
                Some(_) => kind_err(format!("{other:?} has no real mechanism in faultline cluster (it has: {KINDS})")),
                None => kind_err(format!("unknown fault kind {other:?} (faultline cluster has: {KINDS})")),
            });
        }
    };
    if let Some(d) = &raw.direction
        && kind != "omit"
    {
        return Err(ctx.err(
            d.span().start,
            &field("direction"),
            format!("kind = {kind:?} takes no direction (only kind = \"omit\")"),
        ));
    }
    let at_ms = match &raw.at_ms {
        Some(a) => ctx.millis(a, &field("at_ms"), true)?,
        None => 0,
    };
    if at_ms >= duration_ms {
        let offset = raw.at_ms.as_ref().map_or(f.span().start, |a| a.span().start);
        return Err(ctx.err(
            offset,
            &field("at_ms"),
            format!("{at_ms} is not before the workload ends (workload.duration_ms = {duration_ms})"),
        ));
    }
    let end_ms = match (&raw.until_ms, &raw.duration_ms) {
        (Some(_), Some(d)) => {
            return Err(ctx.err(d.span().start, &field("duration_ms"), "give until_ms or duration_ms, not both"));
        }
        (Some(u), None) => {
            let end = ctx.millis(u, &field("until_ms"), false)?;
            if end <= at_ms {
                return Err(ctx.err(
                    u.span().start,
                    &field("until_ms"),
                    format!("the window ends ({end} ms) before it starts ({at_ms} ms)"),
                ));
            }
            Some(end)
        }
        (None, Some(d)) => Some(at_ms + ctx.millis(d, &field("duration_ms"), false)?),
        (None, None) => None,
    };
    if end_ms.is_none() && action != Action::Crash {
        return Err(ctx.err(
            f.span().start,
            &field("duration_ms"),
            format!("kind = {kind:?} needs duration_ms or until_ms"),
        ));
    }
    Ok(Fault { target, action, at_ms, end_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
[cluster]
members = 3
[workload]
duration_ms = 5000
[[cases]]
name = "pause"
faults = [{ node = "leader", kind = "pause", at_ms = 1000, duration_ms = 2000 },
          { node = "m2", kind = "omit", direction = "send", at_ms = 100, until_ms = 300 }]
"#;

    #[test]
    fn a_good_scenario_loads() {
        let s = Scenario::parse("t.toml", GOOD).unwrap();
        assert_eq!(s.members, 3);
        let f = &s.cases[0].faults;
        assert_eq!(f[0], Fault { target: Target::Leader, action: Action::Pause, at_ms: 1000, end_ms: Some(3000) });
        assert_eq!(f[1], Fault { target: Target::Member(2), action: Action::OmitSend, at_ms: 100, end_ms: Some(300) });
    }

    fn error(text: &str) -> String {
        Scenario::parse("t.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn bad_input_is_one_located_line() {
        assert_eq!(
            error(&GOOD.replace("\"m2\"", "\"m3\"")),
            "t.toml:10:20: cases[0].faults[1].node: \"m3\" is not a member (m0, m1, m2) or \"leader\""
        );
        assert!(error(&GOOD.replace("kind = \"pause\"", "kind = \"tamper\"")).contains("has no real mechanism"));
        assert!(
            error(&GOOD.replace("kind = \"pause\"", "kind = \"nap\""))
                .starts_with("t.toml:9:37: cases[0].faults[0].kind: unknown")
        );
        assert!(error(&GOOD.replace("members = 3", "members = 9")).starts_with("t.toml:4:11: cluster.members:"));
        assert!(
            error(&GOOD.replace("members = 3", "memberz = 3"))
                .starts_with("t.toml:4:1: cluster.memberz: unknown field")
        );
        assert!(
            error(&GOOD.replace("members = 3", "members = \"x\""))
                .starts_with("t.toml:4:11: cluster.members: invalid type")
        );
        assert!(error(&GOOD.replace("at_ms = 1000", "at_ms = 9000")).contains("not before the workload ends"));
        assert!(error(&GOOD.replace(", duration_ms = 2000", "")).contains("needs duration_ms or until_ms"));
        assert!(error("name = \"x\"\n").contains("cases: a scenario needs at least one"));
        // One proxy carries the traffic: the option to pick another is gone.
        assert!(
            error(&GOOD.replace("members = 3", "proxy = \"routes\""))
                .starts_with("t.toml:4:1: cluster.proxy: unknown field")
        );
        for line in [error("[[cases]\n"), error("\u{0}")] {
            assert!(line.starts_with("t.toml:1:"), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }
}
