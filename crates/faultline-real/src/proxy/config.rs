//! The proxy's file: a seed, the control API's address, and the routes with the faults each
//! starts with. Read in two stages as scenario files are (a raw serde shape that refuses
//! unknown fields, then validation), and every error is one line,
//! `file:line:col: field: message`, located where the field is written.
//!
//! ```toml
//! seed = 1
//! [control]
//! listen = "127.0.0.1:8474"
//! [[routes]]
//! name = "etcd0-peer"
//! listen = "127.0.0.1:0"
//! upstream = "127.0.0.1:2380"
//! [[routes.faults]]
//! kind = "delay"
//! latency_ms = 50
//! jitter_ms = 10
//! direction = "both"
//! ```

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::spec::FaultSpec;
use super::{RouteSpec, StreamFault};
use faultline::input::{at_offset, one_line, read_bounded};

/// The largest proxy file.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// A proxy file, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyConfig {
    pub seed: Option<u64>,
    pub control: Option<SocketAddr>,
    pub routes: Vec<RouteConfig>,
}

/// A route and the faults it starts with.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteConfig {
    pub spec: RouteSpec,
    pub faults: Vec<StreamFault>,
}

/// A proxy file that cannot be used: one line, `file:line:col: field: message`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    seed: Option<u64>,
    control: Option<RawControl>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    listen: String,
    upstream: String,
    #[serde(default)]
    faults: Vec<FaultSpec>,
}

/// Reads and validates the proxy file at `path`.
pub fn load_config(path: &Path) -> Result<ProxyConfig, ConfigError> {
    let file = path.display().to_string();
    let bytes =
        read_bounded(path, MAX_CONFIG_BYTES, "a proxy file").map_err(|e| ConfigError(one_line(&e.to_string())))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let at = at_offset(&file, &String::from_utf8_lossy(&bytes), e.valid_up_to());
        ConfigError(one_line(&format!("{at}: (file): not valid UTF-8")))
    })?;
    parse_config(&file, text)
}

/// A step of a path into the document, to find where a field is written.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The byte offset where the deepest written part of `path` starts.
fn span_of(doc: &DeTable<'_>, path: &[Seg<'_>]) -> usize {
    let mut best = 0;
    let mut table = Some(doc);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for seg in path {
        let found = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => {
                t.iter().find(|(key, _)| key.get_ref() == k).map(|(key, v)| (key.span().start, v))
            }
            (Seg::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span().start, v)),
            _ => None,
        };
        let Some((start, value)) = found else { break };
        best = start;
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    best
}

/// Parses and validates a proxy file's text; `file` names it in errors.
pub fn parse_config(file: &str, text: &str) -> Result<ProxyConfig, ConfigError> {
    let located = |offset: usize, field: &str, message: &str| {
        ConfigError(one_line(&format!("{}: {field}: {message}", at_offset(file, text, offset))))
    };
    let syntax = |e: &toml::de::Error, field: &str| {
        let field = match e.message().strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
            Some(name) if field.is_empty() || field == "." => name.to_owned(),
            Some(name) if field.ends_with(name) => field.to_owned(),
            Some(name) => format!("{field}.{name}"),
            None if field.is_empty() || field == "." => "(top level)".to_owned(),
            None => field.to_owned(),
        };
        located(e.span().map_or(0, |s| s.start), &field, e.message())
    };
    let doc = DeTable::parse(text).map_err(|e| syntax(&e, "(syntax)"))?;
    let doc = doc.get_ref();
    let de = toml::Deserializer::parse(text).map_err(|e| syntax(&e, "(syntax)"))?;
    let mut track = serde_path_to_error::Track::new();
    let raw: RawConfig = RawConfig::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
        .map_err(|e| syntax(&e, &track.path().to_string()))?;

    let control = match &raw.control {
        None => None,
        Some(c) => Some(c.listen.parse::<SocketAddr>().map_err(|_| {
            let at = span_of(doc, &[Seg::Key("control"), Seg::Key("listen")]);
            located(
                at,
                "control.listen",
                &format!("'{}' is not an IP address and port", faultline::input::elide(&c.listen)),
            )
        })?),
    };
    if raw.routes.is_empty() {
        return Err(located(0, "routes", "missing: at least one [[routes]] with name, listen and upstream"));
    }
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let at = |key: &'static str| span_of(doc, &[Seg::Key("routes"), Seg::Index(i), Seg::Key(key)]);
        let field = |key: &str| format!("routes[{i}].{key}");
        if r.name.trim().is_empty() {
            return Err(located(at("name"), &field("name"), "empty"));
        }
        if raw.routes[..i].iter().any(|o| o.name == r.name) {
            return Err(located(at("name"), &field("name"), &format!("'{}' names two routes", r.name)));
        }
        let listen = r.listen.parse::<SocketAddr>().map_err(|_| {
            located(
                at("listen"),
                &field("listen"),
                &format!(
                    "'{}' is not an IP address and port (127.0.0.1:0 picks a port)",
                    faultline::input::elide(&r.listen)
                ),
            )
        })?;
        let upstream_ok = r.upstream.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
        });
        if !upstream_ok {
            return Err(located(
                at("upstream"),
                &field("upstream"),
                &format!("'{}' is not host:port", faultline::input::elide(&r.upstream)),
            ));
        }
        let mut faults = Vec::with_capacity(r.faults.len());
        for (j, f) in r.faults.iter().enumerate() {
            let fault = f.validate().map_err(|e| {
                let path = [Seg::Key("routes"), Seg::Index(i), Seg::Key("faults"), Seg::Index(j), Seg::Key(&e.field)];
                located(span_of(doc, &path), &format!("routes[{i}].faults[{j}].{}", e.field), &e.message)
            })?;
            faults.push(fault);
        }
        routes.push(RouteConfig {
            spec: RouteSpec { name: r.name.clone(), listen, upstream: r.upstream.clone() },
            faults,
        });
    }
    Ok(ProxyConfig { seed: raw.seed, control, routes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"seed = 3
[control]
listen = "127.0.0.1:0"

[[routes]]
name = "a"
listen = "127.0.0.1:0"
upstream = "localhost:2380"

[[routes.faults]]
kind = "delay"
latency_ms = 50
jitter_ms = 10
direction = "both"
"#;

    #[test]
    fn a_good_file_reads() {
        let c = parse_config("p.toml", GOOD).unwrap();
        assert_eq!(c.seed, Some(3));
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].spec.upstream, "localhost:2380");
        assert_eq!(c.routes[0].faults.len(), 1);
    }

    #[test]
    fn errors_are_located_at_the_field() {
        let bad = GOOD.replace("kind = \"delay\"", "kind = \"equivocate\"");
        let e = parse_config("p.toml", &bad).unwrap_err().0;
        assert!(e.starts_with("p.toml:11:1: routes[0].faults[0].kind: 'equivocate' has no real mechanism"), "{e}");
        let bad = GOOD.replace("upstream = \"localhost:2380\"", "upstream = \"nowhere\"");
        let e = parse_config("p.toml", &bad).unwrap_err().0;
        assert!(e.starts_with("p.toml:8:1: routes[0].upstream: "), "{e}");
        let bad = GOOD.replace("jitter_ms", "jitter");
        let e = parse_config("p.toml", &bad).unwrap_err().0;
        assert!(e.starts_with("p.toml:13:1: routes[0].faults[0].jitter: unknown field"), "{e}");
        let bad = GOOD.replace("latency_ms = 50", "latency_ms = -5");
        let e = parse_config("p.toml", &bad).unwrap_err().0;
        assert!(e.starts_with("p.toml:12:14: routes[0].faults[0].latency_ms: "), "{e}");
        let e = parse_config("p.toml", "seed = [").unwrap_err().0;
        assert!(e.starts_with("p.toml:1:"), "{e}");
        assert!(!e.contains('\n'));
    }
}
