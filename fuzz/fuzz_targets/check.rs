//! What both targets assert about a refusal, as crates/faultline/tests/fuzz_scenarios.rs
//! does: the error is one line, located at `FILE:LINE:COL: FIELD: MESSAGE` (line and column
//! from 1, inside the text) or, for an error an override caused, at `--set `. A panic in
//! the loader is a crash by itself. `FAULTLINE_FUZZ_ALLOW` (comma-separated kinds:
//! multi-line, unlocated, bad-location, blank-field) tolerates a known finding while it is
//! being fixed, so that the fuzzer can look for others.

use std::sync::OnceLock;

/// The file name the targets load under.
pub const FILE: &str = "fuzz.toml";

fn tolerated(kind: &str) -> bool {
    static ALLOW: OnceLock<Vec<String>> = OnceLock::new();
    ALLOW
        .get_or_init(|| {
            std::env::var("FAULTLINE_FUZZ_ALLOW")
                .map(|v| v.split(',').map(|k| k.trim().to_owned()).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|k| k == kind)
}

fn violation(kind: &str, why: &str, error: &str) {
    if !tolerated(kind) {
        panic!("[{kind}] {why}: {error:?}");
    }
}

/// Panics unless `error` (the loader's refusal of `bytes` under `overrides`) is one
/// located line.
pub fn located(bytes: &[u8], with_overrides: bool, error: &str) {
    if let Some(c) =
        error.chars().find(|c| matches!(c, '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}'))
    {
        return violation("multi-line", &format!("the error holds {c:?}"), error);
    }
    if with_overrides && error.starts_with("--set ") {
        if !error.contains(": ") {
            violation("unlocated", "no `: ` after the --set location", error);
        }
        return;
    }
    let Some(rest) = error.strip_prefix(FILE).and_then(|r| r.strip_prefix(':')) else {
        return violation("unlocated", "the error does not start with FILE:", error);
    };
    let mut parts = rest.splitn(3, ':');
    let (Some(line), Some(column), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return violation("unlocated", "no LINE:COL after FILE:", error);
    };
    let (Ok(line), Ok(column)) = (line.parse::<usize>(), column.parse::<usize>()) else {
        return violation("unlocated", "LINE:COL are not numbers", error);
    };
    let Some(rest) = rest.strip_prefix(' ') else {
        return violation("unlocated", "no `: ` after FILE:LINE:COL", error);
    };
    if line == 0 || column == 0 {
        return violation("bad-location", "line and column count from 1", error);
    }
    let text = String::from_utf8_lossy(bytes);
    match text.split('\n').nth(line - 1) {
        None => return violation("bad-location", "the line is past the end of the text", error),
        Some(l) if column > l.chars().count() + 1 => {
            return violation("bad-location", "the column is past the end of the line", error);
        }
        Some(_) => {}
    }
    match rest.split_once(": ") {
        Some((field, message)) if !field.trim().is_empty() && !message.trim().is_empty() => {}
        Some((field, _)) if field.trim().is_empty() => violation("blank-field", "the field name is blank", error),
        _ => violation("unlocated", "no `FIELD: MESSAGE` after the location", error),
    }
}
