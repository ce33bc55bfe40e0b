//! Reading operation histories: Jepsen's EDN (one operation map per line, as `history.edn`
//! holds them) and the same maps as JSON lines.
//!
//! ```text
//! {:process 0, :type :invoke, :f :write, :value 4}
//! {:process 0, :type :ok, :f :write, :value 4}
//! {"process":1,"type":"invoke","f":"cas","value":[4,5]}
//! ```
//!
//! Jepsen's semantics: an `:invoke` starts an operation on a client process (a process has
//! one in flight at a time); `:ok` completes it (a read's value is the completion's); a
//! `:fail` did not happen and is dropped; an `:info` may or may not have happened, and its
//! process never invokes again (Jepsen gives the crashed client a new process number). An
//! invocation still in flight when the file ends is read as an `:info`. Lines whose
//! `:process` is not an integer (`:nemesis`) are not client operations and are skipped; keys
//! other than `:process`, `:type`, `:f`, `:value` and `:key` are ignored.
//!
//! Every error is one line, `file:line:column: field: message` (columns count characters,
//! from 1); the field is the key as written (`:value` in EDN, `value` in JSON), or `(line)`
//! for a line that does not read at all.
//!
//! The EDN reader is our own: Rust has no well-kept EDN crate, and a history line needs only
//! a small part of EDN. It streams over the top-level map's entries, builds values only for
//! the keys above (borrowing strings from the line unless they hold escapes), bounds nesting
//! at [`MAX_DEPTH`], and never panics on any input.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use super::{Call, History, ModelKind, Operation, Val};
use crate::input::elide;

/// The largest history file read: 1 GiB.
pub const MAX_HISTORY_BYTES: usize = 1 << 30;

/// The deepest nesting of EDN collections (and tags, and `#_` discards) a line may hold.
pub const MAX_DEPTH: usize = 64;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file format that carries histories.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Jepsen's EDN: one map per line, `{:process 0, :type :invoke, :f :write, :value 4}`.
    Edn,
    /// One JSON object per line: `{"process":0,"type":"invoke","f":"write","value":4}`.
    Jsonl,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Edn, Format::Jsonl];

    pub fn name(self) -> &'static str {
        match self {
            Format::Edn => "edn",
            Format::Jsonl => "jsonl",
        }
    }

    /// `edn`, or `jsonl` (also spelt `json`, `ndjson`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "edn" => Some(Format::Edn),
            "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// The format of `file_name` by its extension (`.edn`; `.jsonl`, `.ndjson`, `.json`),
    /// else by `head`, the file's first bytes: a first character (past blank lines and `;`
    /// comments) `{` followed, after white space, by `"` is JSON lines; anything else EDN.
    pub fn detect(file_name: &str, head: &[u8]) -> Format {
        let extension = Path::new(file_name).extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("edn") => return Format::Edn,
            Some("jsonl" | "ndjson" | "json") => return Format::Jsonl,
            _ => {}
        }
        let head = head.strip_prefix(BOM).unwrap_or(head);
        for line in head.split(|&b| b == b'\n') {
            let line = line.trim_ascii_start();
            match line.first() {
                None | Some(b';') => continue,
                Some(b'{') => {
                    let rest = line.get(1..).unwrap_or_default().trim_ascii_start();
                    return if rest.first() == Some(&b'"') { Format::Jsonl } else { Format::Edn };
                }
                Some(_) => return Format::Edn,
            }
        }
        Format::Edn
    }
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error(transparent)]
    Invalid(#[from] crate::input::Located),
}

impl HistoryError {
    /// An error at `line` and `column` (both from 1) of `file`, about `field`.
    pub fn at(file: &str, line: u64, column: u64, field: &str, message: impl Into<String>) -> HistoryError {
        HistoryError::Invalid(crate::input::Located::at(file, line, column, field, message))
    }
}

/// Reads the history at `path` (at most [`MAX_HISTORY_BYTES`]), in `format`, or the format
/// [`Format::detect`] finds. `-` is not special here.
pub fn read_path(path: &Path, format: Option<Format>, model: ModelKind) -> Result<History, HistoryError> {
    let bytes = crate::input::read_bounded(path, MAX_HISTORY_BYTES, "a history")?;
    let file = path.display().to_string();
    let format = format.unwrap_or_else(|| Format::detect(&file, &bytes));
    parse(&file, &bytes, format, model)
}

/// Parses the history `text` of `file` (named in errors) against `model`'s operations.
pub fn parse(file: &str, text: &[u8], format: Format, model: ModelKind) -> Result<History, HistoryError> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let mut builder = Builder { model, ops: Vec::new(), processes: BTreeMap::new(), failed: 0, events: 0 };
    for (number, raw) in (1u64..).zip(text.split(|&b| b == b'\n')) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line_text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                let valid = raw.get(..e.valid_up_to()).unwrap_or_default();
                let column = String::from_utf8_lossy(valid).chars().count() as u64 + 1;
                return Err(HistoryError::at(file, number, column, "(line)", "not valid UTF-8"));
            }
        };
        let line = Line { file, number, text: line_text, format };
        match format {
            Format::Edn => {
                let fields = match edn_fields(line_text) {
                    Ok(Some(fields)) => fields,
                    Ok(None) => continue,
                    Err(e) => return Err(HistoryError::at(file, number, line.column_at(e.pos), e.field, e.message)),
                };
                builder.event(&line, &fields)?;
            }
            Format::Jsonl => {
                let open = line_text.len() - line_text.trim_start().len();
                if open == line_text.len() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(line_text).map_err(|e| {
                    let column = line.column_at(e.column().saturating_sub(1));
                    HistoryError::at(file, number, column, "(line)", json_message(&e))
                })?;
                let serde_json::Value::Object(object) = &value else {
                    let message = r#"expected a JSON object, like {"process":0,"type":"invoke","f":"write","value":4}"#;
                    return Err(HistoryError::at(file, number, line.column_at(open), "(line)", message));
                };
                let slot = |key: &str| object.get(key).map(|v| Slot { datum: json_datum(v), pos: open });
                let fields = Fields {
                    process: slot("process"),
                    kind: slot("type"),
                    f: slot("f"),
                    value: slot("value"),
                    key: slot("key"),
                    open,
                };
                builder.event(&line, &fields)?;
            }
        }
    }
    Ok(History { ops: builder.ops.into_iter().flatten().collect(), failed: builder.failed, events: builder.events })
}

/// A serde_json error's message, without the ` at line L column C` it ends with.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

// ---------------------------------------------------------------------------------------
// What a line says, in either format.

/// A value as read from a line: the EDN (or JSON) forms a history needs told apart; the
/// rest are only named in errors.
#[derive(Clone, Debug, PartialEq)]
enum Datum<'a> {
    Nil,
    Bool,
    /// An integer (any that fits 128 bits).
    Int(i128),
    /// An integer too large for 128 bits.
    BigInt,
    /// A float, a ratio, a BigDecimal, `##Inf`: numbers that are not integers.
    Float,
    Str(Cow<'a, str>),
    /// A keyword's name, without its colon.
    Keyword(&'a str),
    Symbol,
    Char,
    Vector(Vec<Datum<'a>>),
    List(Vec<Datum<'a>>),
    Set,
    Map,
    /// A value read but not kept (under a key the history does not use).
    Skipped,
}

impl Datum<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Datum::Nil => "nil",
            Datum::Bool => "a boolean",
            Datum::Int(_) => "an integer",
            Datum::BigInt => "an integer too large for 128 bits",
            Datum::Float => "a number that is not an integer",
            Datum::Str(_) => "a string",
            Datum::Keyword(_) => "a keyword",
            Datum::Symbol => "a symbol",
            Datum::Char => "a character",
            Datum::Vector(_) => "a vector",
            Datum::List(_) => "a list",
            Datum::Set => "a set",
            Datum::Map => "a map",
            Datum::Skipped => "a value",
        }
    }

    /// The name a keyword or string spells (a string's leading `:` dropped).
    fn name(&self) -> Option<&str> {
        match self {
            Datum::Keyword(name) => Some(name),
            Datum::Str(s) => Some(s.strip_prefix(':').unwrap_or(s)),
            _ => None,
        }
    }
}

/// A value under one of the keys a history uses, and the byte of the line where it starts
/// (EDN; JSON lines locate it only for an error).
struct Slot<'a> {
    datum: Datum<'a>,
    pos: usize,
}

/// The keys of one operation map that a history uses.
struct Fields<'a> {
    process: Option<Slot<'a>>,
    kind: Option<Slot<'a>>,
    f: Option<Slot<'a>>,
    value: Option<Slot<'a>>,
    key: Option<Slot<'a>>,
    /// The byte where the map opens.
    open: usize,
}

impl<'a> Fields<'a> {
    fn new(open: usize) -> Fields<'a> {
        Fields { process: None, kind: None, f: None, value: None, key: None, open }
    }

    fn get(&self, field: Field) -> Option<&Slot<'a>> {
        match field {
            Field::Process => self.process.as_ref(),
            Field::Type => self.kind.as_ref(),
            Field::F => self.f.as_ref(),
            Field::Value => self.value.as_ref(),
            Field::Key => self.key.as_ref(),
        }
    }

    /// The slot of a key the history uses (`name` without its colon).
    fn slot_mut(&mut self, name: &str) -> Option<(Field, &mut Option<Slot<'a>>)> {
        match name {
            "process" => Some((Field::Process, &mut self.process)),
            "type" => Some((Field::Type, &mut self.kind)),
            "f" => Some((Field::F, &mut self.f)),
            "value" => Some((Field::Value, &mut self.value)),
            "key" => Some((Field::Key, &mut self.key)),
            _ => None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Field {
    Process,
    Type,
    F,
    Value,
    Key,
}

impl Field {
    /// The key as the format writes it.
    fn name(self, format: Format) -> &'static str {
        match (format, self) {
            (Format::Edn, Field::Process) => ":process",
            (Format::Edn, Field::Type) => ":type",
            (Format::Edn, Field::F) => ":f",
            (Format::Edn, Field::Value) => ":value",
            (Format::Edn, Field::Key) => ":key",
            (Format::Jsonl, Field::Process) => "process",
            (Format::Jsonl, Field::Type) => "type",
            (Format::Jsonl, Field::F) => "f",
            (Format::Jsonl, Field::Value) => "value",
            (Format::Jsonl, Field::Key) => "key",
        }
    }
}

/// The line being read, to locate errors.
struct Line<'t> {
    file: &'t str,
    number: u64,
    text: &'t str,
    format: Format,
}

impl Line<'_> {
    /// The column (characters, from 1) of byte `byte`.
    fn column_at(&self, byte: usize) -> u64 {
        let mut byte = byte.min(self.text.len());
        while !self.text.is_char_boundary(byte) {
            byte -= 1;
        }
        self.text.get(..byte).map_or(0, |t| t.chars().count()) as u64 + 1
    }

    /// An error about `field`, at its value (at the map when the line lacks it).
    fn error(&self, fields: &Fields, field: Field, message: impl Into<String>) -> HistoryError {
        let byte = match self.format {
            Format::Edn => fields.get(field).map_or(fields.open, |s| s.pos),
            Format::Jsonl => json_value_offset(self.text, field.name(Format::Jsonl)).unwrap_or(fields.open),
        };
        HistoryError::at(self.file, self.number, self.column_at(byte), field.name(self.format), message)
    }
}

// ---------------------------------------------------------------------------------------
// Jepsen's semantics.

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl Kind {
    fn keyword(self) -> &'static str {
        match self {
            Kind::Invoke => ":invoke",
            Kind::Ok => ":ok",
            Kind::Fail => ":fail",
            Kind::Info => ":info",
        }
    }
}

/// What a client process is doing.
enum Process {
    /// Its operation in `ops[slot]`, invoked on `line`, is in flight.
    InFlight { slot: usize, line: u64, f: &'static str },
    /// It crashed (`:info` on `line`): it issues nothing more.
    Crashed { line: u64 },
}

struct Builder {
    model: ModelKind,
    /// Operations in invocation order; a `:fail`'s slot is emptied.
    ops: Vec<Option<Operation>>,
    processes: BTreeMap<u64, Process>,
    failed: u64,
    events: u64,
}

impl Builder {
    /// Takes one operation map.
    fn event(&mut self, line: &Line, fields: &Fields) -> Result<(), HistoryError> {
        let err = |field: Field, message: String| line.error(fields, field, message);
        let Some(process) = &fields.process else {
            return Err(err(Field::Process, "missing: every operation names its :process, :type and :f".into()));
        };
        let process = match &process.datum {
            Datum::Int(n) if *n < 0 => {
                return Err(err(Field::Process, format!("a client process is a number from 0, not {n}")));
            }
            Datum::Int(n) => match u64::try_from(*n) {
                Ok(p) => p,
                Err(_) => return Err(err(Field::Process, format!("process {n} does not fit in 64 bits"))),
            },
            Datum::BigInt => return Err(err(Field::Process, "the process number does not fit in 64 bits".into())),
            // `:nemesis` and the like: not a client.
            Datum::Keyword(_) | Datum::Str(_) | Datum::Symbol => return Ok(()),
            other => {
                let message = format!(
                    "expected a client's process number, or a name like :nemesis for another process; not {}",
                    other.describe()
                );
                return Err(err(Field::Process, message));
            }
        };
        let Some(kind) = &fields.kind else {
            return Err(err(Field::Type, "missing: every operation names its :process, :type and :f".into()));
        };
        let kind = match kind.datum.name() {
            Some("invoke") => Kind::Invoke,
            Some("ok") => Kind::Ok,
            Some("fail") => Kind::Fail,
            Some("info") => Kind::Info,
            Some(other) => {
                let message = format!("unknown type `{}`; expected :invoke, :ok, :fail or :info", elide(other));
                return Err(err(Field::Type, message));
            }
            None => {
                let message = format!("expected :invoke, :ok, :fail or :info, not {}", kind.datum.describe());
                return Err(err(Field::Type, message));
            }
        };
        let Some(f) = &fields.f else {
            return Err(err(Field::F, "missing: every operation names its :process, :type and :f".into()));
        };
        let Some(name) = f.datum.name() else {
            let functions = self.model.functions().join(" or :");
            let message = format!("expected an operation like :{functions}, not {}", f.datum.describe());
            return Err(err(Field::F, message));
        };
        let Some(f) = self.model.functions().iter().copied().find(|g| *g == name) else {
            let message = match ModelKind::of_function(name) {
                Some(other) => format!(
                    "`{name}` is an operation of the {} model, not the {} model; use --model {}",
                    other.name(),
                    self.model.name(),
                    other.name()
                ),
                None => format!(
                    "unknown operation `{}`; the {} model's operations are {}",
                    elide(name),
                    self.model.name(),
                    self.model.functions().join(", ")
                ),
            };
            return Err(err(Field::F, message));
        };
        let key = match &fields.key {
            None => None,
            Some(slot) => Some(key_val(&slot.datum).map_err(|m| err(Field::Key, m))?),
        };
        let event = self.events;
        match kind {
            Kind::Invoke => {
                match self.processes.get(&process) {
                    Some(Process::InFlight { line: first, f: other, .. }) => {
                        let message = format!(
                            "process {process} invokes `{f}` while its `{other}` of line {first} is still in flight \
                             (a process has one operation at a time)"
                        );
                        return Err(err(Field::Process, message));
                    }
                    Some(Process::Crashed { line: crashed }) => {
                        let message = format!(
                            "process {process} crashed (`:info` on line {crashed}) and may invoke nothing more \
                             (Jepsen gives a crashed client a new process number)"
                        );
                        return Err(err(Field::Process, message));
                    }
                    None => {}
                }
                if self.model == ModelKind::Kv && key.is_none() {
                    return Err(err(Field::Key, "missing: every operation of the kv model names its :key".into()));
                }
                let value = fields.value.as_ref().map(|s| &s.datum);
                let missing = |what: &str| err(Field::Value, format!("missing: a {f} carries {what}"));
                let call = match f {
                    "read" => Call::Read,
                    "get" => Call::Get,
                    "write" => Call::Write(
                        register_val(value.ok_or_else(|| missing("the value it writes"))?)
                            .map_err(|m| err(Field::Value, m))?,
                    ),
                    "cas" => cas(value.ok_or_else(|| missing("[old new]"))?).map_err(|m| err(Field::Value, m))?,
                    "put" => Call::Put(
                        kv_val(value.ok_or_else(|| missing("the string it writes"))?, f)
                            .map_err(|m| err(Field::Value, m))?,
                    ),
                    _ => Call::Append(
                        kv_val(value.ok_or_else(|| missing("the string it appends"))?, f)
                            .map_err(|m| err(Field::Value, m))?,
                    ),
                };
                let slot = self.ops.len();
                self.ops.push(Some(Operation {
                    process,
                    key,
                    call,
                    output: None,
                    invoke: event,
                    complete: None,
                    line: line.number,
                    complete_line: None,
                }));
                self.processes.insert(process, Process::InFlight { slot, line: line.number, f });
            }
            Kind::Ok | Kind::Fail | Kind::Info => {
                let no_op = |why: String| {
                    let message =
                        format!("`{}` on process {process}, which has no operation in flight{why}", kind.keyword());
                    err(Field::Type, message)
                };
                let (slot, invoked) = match self.processes.get(&process) {
                    None => return Err(no_op(String::new())),
                    Some(Process::Crashed { line: crashed }) => {
                        return Err(no_op(format!(" (it crashed: `:info` on line {crashed})")));
                    }
                    Some(Process::InFlight { slot, line: invoked, f: other }) => {
                        if *other != f {
                            let message = format!(
                                "`{}` of a `{f}`, but process {process}'s operation in flight is a `{other}` \
                                 (line {invoked})",
                                kind.keyword()
                            );
                            return Err(err(Field::F, message));
                        }
                        (*slot, *invoked)
                    }
                };
                let Some(Some(op)) = self.ops.get_mut(slot) else {
                    return Err(no_op(String::new()));
                };
                if let Some(k) = &key
                    && op.key.as_ref() != Some(k)
                {
                    let theirs = op.key.as_ref().map_or_else(|| "none".to_owned(), |v| elide(&v.to_string()));
                    let message = format!(
                        "key {} differs from its invocation's ({theirs}, line {invoked})",
                        elide(&k.to_string())
                    );
                    return Err(err(Field::Key, message));
                }
                match kind {
                    Kind::Ok => {
                        if op.call.is_read() {
                            let Some(value) = &fields.value else {
                                return Err(err(Field::Value, format!("missing: an `:ok` {f} carries the value read")));
                            };
                            let output = match self.model {
                                ModelKind::Register => register_val(&value.datum),
                                ModelKind::Kv => kv_output(&value.datum),
                            }
                            .map_err(|m| err(Field::Value, m))?;
                            op.output = Some(output);
                        }
                        op.complete = Some(event);
                        op.complete_line = Some(line.number);
                        self.processes.remove(&process);
                    }
                    Kind::Fail => {
                        if let Some(s) = self.ops.get_mut(slot) {
                            *s = None;
                        }
                        self.failed += 1;
                        self.processes.remove(&process);
                    }
                    _ => {
                        op.complete_line = Some(line.number);
                        self.processes.insert(process, Process::Crashed { line: line.number });
                    }
                }
            }
        }
        self.events += 1;
        Ok(())
    }
}

/// A register's value: an integer, a string (or keyword), nil.
fn register_val(d: &Datum) -> Result<Val, String> {
    match d {
        Datum::Nil => Ok(Val::Nil),
        Datum::Int(n) => i64::try_from(*n).map(Val::Int).map_err(|_| format!("{n} does not fit in 64 bits")),
        Datum::BigInt => Err("the integer does not fit in 64 bits".to_owned()),
        Datum::Str(s) => Ok(Val::Str(Box::from(s.as_ref()))),
        Datum::Keyword(k) => Ok(Val::Str(Box::from(*k))),
        other => Err(format!("expected an integer, a string or nil, not {}", other.describe())),
    }
}

/// A put's or append's value: a string (or keyword).
fn kv_val(d: &Datum, f: &str) -> Result<Val, String> {
    match d {
        Datum::Str(s) => Ok(Val::Str(Box::from(s.as_ref()))),
        Datum::Keyword(k) => Ok(Val::Str(Box::from(*k))),
        Datum::Int(_) | Datum::BigInt | Datum::Float => {
            Err("the kv model's values are strings, not numbers (quote them: \"4\")".to_owned())
        }
        other => Err(format!("a {f} carries a string, not {}", other.describe())),
    }
}

/// What a get read: a string, or nil for a key never written.
fn kv_output(d: &Datum) -> Result<Val, String> {
    match d {
        Datum::Nil => Ok(Val::Nil),
        other => kv_val(other, "get"),
    }
}

/// A key: a string, an integer, or a keyword (as the string of its name).
fn key_val(d: &Datum) -> Result<Val, String> {
    match d {
        Datum::Str(s) => Ok(Val::Str(Box::from(s.as_ref()))),
        Datum::Keyword(k) => Ok(Val::Str(Box::from(*k))),
        Datum::Int(n) => i64::try_from(*n).map(Val::Int).map_err(|_| format!("key {n} does not fit in 64 bits")),
        Datum::BigInt => Err("the key does not fit in 64 bits".to_owned()),
        other => Err(format!("a key is a string, an integer or a keyword, not {}", other.describe())),
    }
}

/// A cas's `[old new]`.
fn cas(d: &Datum) -> Result<Call, String> {
    match d {
        Datum::Vector(items) | Datum::List(items) => match items.as_slice() {
            [old, new] => Ok(Call::Cas { old: register_val(old)?, new: register_val(new)? }),
            _ => Err(format!("a cas carries [old new], two values, not {}", items.len())),
        },
        other => Err(format!("a cas carries [old new], a vector of two values, not {}", other.describe())),
    }
}

// ---------------------------------------------------------------------------------------
// JSON lines.

fn json_datum(v: &serde_json::Value) -> Datum<'_> {
    use serde_json::Value;
    match v {
        Value::Null => Datum::Nil,
        Value::Bool(_) => Datum::Bool,
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Datum::Int(i128::from(i)),
            (None, Some(u)) => Datum::Int(i128::from(u)),
            (None, None) => Datum::Float,
        },
        Value::String(s) => Datum::Str(Cow::Borrowed(s)),
        // serde_json bounds nesting (128), so this recursion is bounded too.
        Value::Array(items) => Datum::Vector(items.iter().map(json_datum).collect()),
        Value::Object(_) => Datum::Map,
    }
}

/// The byte where the value of the top-level `key` of the JSON object `line` starts (to
/// point an error at it). `line` is valid JSON already.
fn json_value_offset(line: &str, key: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while let Some(&c) = bytes.get(j) {
                    match c {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                let name = line.get(start..j);
                i = j;
                if depth == 1 && name == Some(key) {
                    let mut k = j + 1;
                    while bytes.get(k).is_some_and(u8::is_ascii_whitespace) {
                        k += 1;
                    }
                    if bytes.get(k) == Some(&b':') {
                        k += 1;
                        while bytes.get(k).is_some_and(u8::is_ascii_whitespace) {
                            k += 1;
                        }
                        return Some(k);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

// ---------------------------------------------------------------------------------------
// EDN.

/// An EDN syntax error: where (a byte of the line), about what, and why.
#[derive(Debug)]
struct EdnError {
    pos: usize,
    field: &'static str,
    message: String,
}

fn syntax<T>(pos: usize, message: impl Into<String>) -> Result<T, EdnError> {
    Err(EdnError { pos, field: "(line)", message: message.into() })
}

/// Reads the operation map of one EDN line: `None` for a blank or comment-only line.
fn edn_fields(text: &str) -> Result<Option<Fields<'_>>, EdnError> {
    let mut r = Reader { text, pos: 0 };
    r.skip_ws(0)?;
    if r.pos >= text.len() {
        return Ok(None);
    }
    // A tag before the map, `#jepsen.history.Op{...}`: skipped.
    while r.peek() == Some(b'#') && r.byte(r.pos + 1).is_some_and(|b| b.is_ascii_alphabetic()) {
        r.pos = r.token_end(r.pos + 1);
        r.skip_ws(0)?;
    }
    let open = r.pos;
    if r.peek() != Some(b'{') {
        return syntax(open, "expected a map, like {:process 0, :type :invoke, :f :write, :value 4}");
    }
    r.pos += 1;
    let mut fields = Fields::new(open);
    let unclosed = "this map is not closed before the line ends (one operation per line)";
    loop {
        r.skip_ws(1)?;
        match r.peek() {
            None => return syntax(open, unclosed),
            Some(b'}') => {
                r.pos += 1;
                break;
            }
            Some(_) => {}
        }
        let key_pos = r.pos;
        let key = r.read(1, true)?;
        r.skip_ws(1)?;
        match r.peek() {
            None => return syntax(open, unclosed),
            Some(b'}') => return syntax(key_pos, "this key has no value"),
            Some(_) => {}
        }
        let value_pos = r.pos;
        let slot = match &key {
            Datum::Keyword(name) => fields.slot_mut(name),
            _ => None,
        };
        match slot {
            Some((field, slot)) => {
                if slot.is_some() {
                    let field = field.name(Format::Edn);
                    return Err(EdnError { pos: key_pos, field, message: "duplicate key".to_owned() });
                }
                *slot = Some(Slot { datum: r.read(1, true)?, pos: value_pos });
            }
            None => {
                r.read(1, false)?;
            }
        }
    }
    r.skip_ws(0)?;
    if r.pos < text.len() {
        return syntax(r.pos, "unexpected text after the map (one operation per line)");
    }
    Ok(Some(fields))
}

struct Reader<'a> {
    text: &'a str,
    /// The next byte to read (always at a character boundary).
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn peek(&self) -> Option<u8> {
        self.byte(self.pos)
    }

    /// Skips white space (commas are white space), `;` comments and `#_` discarded forms.
    fn skip_ws(&mut self, depth: usize) -> Result<(), EdnError> {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' | b',' | 0x0b | 0x0c => self.pos += 1,
                b';' => self.pos = self.text.len(),
                b'#' if self.byte(self.pos + 1) == Some(b'_') => {
                    let at = self.pos;
                    if depth >= MAX_DEPTH {
                        return syntax(at, format!("nested more than {MAX_DEPTH} deep"));
                    }
                    self.pos += 2;
                    self.read(depth + 1, false)?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// The end of the token (symbol, keyword, number, character name) starting at `from`.
    fn token_end(&self, from: usize) -> usize {
        let bytes = self.text.as_bytes();
        let mut i = from;
        while let Some(&b) = bytes.get(i) {
            if b.is_ascii_whitespace()
                || matches!(b, b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';' | 0x0b | 0x0c)
            {
                break;
            }
            i += 1;
        }
        i
    }

    /// Reads one form (after white space) nested in `depth` others; keeps its contents only
    /// when `build`.
    fn read(&mut self, depth: usize, build: bool) -> Result<Datum<'a>, EdnError> {
        self.skip_ws(depth)?;
        let start = self.pos;
        if depth > MAX_DEPTH {
            return syntax(start, format!("nested more than {MAX_DEPTH} deep"));
        }
        let Some(b) = self.peek() else {
            return syntax(start, "the line ends where a value should be");
        };
        match b {
            b'{' => {
                self.pos += 1;
                let count = self.read_seq(depth, b'}', start, false, &mut Vec::new())?;
                if count % 2 == 1 {
                    return syntax(start, "a map needs a value for each key (it holds an odd number of forms)");
                }
                Ok(if build { Datum::Map } else { Datum::Skipped })
            }
            b'[' | b'(' => {
                self.pos += 1;
                let close = if b == b'[' { b']' } else { b')' };
                let mut items = Vec::new();
                self.read_seq(depth, close, start, build, &mut items)?;
                Ok(match (build, b) {
                    (false, _) => Datum::Skipped,
                    (true, b'[') => Datum::Vector(items),
                    (true, _) => Datum::List(items),
                })
            }
            b'"' => self.read_string(build),
            b'\\' => self.read_char(),
            b')' | b']' | b'}' => syntax(start, format!("unexpected `{}` (nothing open to close)", char::from(b))),
            b'#' => self.read_dispatch(depth, build),
            _ => {
                let end = self.token_end(start);
                let token = self.text.get(start..end).unwrap_or_default();
                if let Some((i, c)) = token.char_indices().find(|(_, c)| c.is_control()) {
                    return syntax(start + i, format!("unexpected character {:?}", c));
                }
                if token.is_empty() {
                    return syntax(start, "unexpected character");
                }
                self.pos = end;
                let bytes = token.as_bytes();
                let numeric = match bytes {
                    [d, ..] if d.is_ascii_digit() => true,
                    [b'+' | b'-', d, ..] => d.is_ascii_digit(),
                    _ => false,
                };
                if numeric {
                    return number(token).ok_or_else(|| EdnError {
                        pos: start,
                        field: "(line)",
                        message: format!("`{}` is not a number", elide(token)),
                    });
                }
                Ok(match token {
                    "nil" => Datum::Nil,
                    "true" | "false" => Datum::Bool,
                    _ => match token.strip_prefix(':') {
                        Some("") => return syntax(start, "a keyword needs a name after `:`"),
                        Some(name) => Datum::Keyword(name),
                        None => Datum::Symbol,
                    },
                })
            }
        }
    }

    /// Reads the forms of a collection opened at `open` (its opening already read) up to
    /// `close`; returns how many there were, and pushes them on `items` when `build`.
    fn read_seq(
        &mut self,
        depth: usize,
        close: u8,
        open: usize,
        build: bool,
        items: &mut Vec<Datum<'a>>,
    ) -> Result<usize, EdnError> {
        let mut count = 0usize;
        loop {
            self.skip_ws(depth + 1)?;
            match self.peek() {
                None => {
                    let what = match close {
                        b'}' => "map or set",
                        b']' => "vector",
                        _ => "list",
                    };
                    return syntax(open, format!("this {what} is not closed before the line ends"));
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(count);
                }
                Some(_) => {
                    let item = self.read(depth + 1, build)?;
                    count += 1;
                    if build {
                        items.push(item);
                    }
                }
            }
        }
    }

    /// `#{...}` (a set), `##Inf`, or a tagged form `#tag form` (the tag is ignored).
    fn read_dispatch(&mut self, depth: usize, build: bool) -> Result<Datum<'a>, EdnError> {
        let start = self.pos;
        match self.byte(start + 1) {
            Some(b'{') => {
                self.pos += 2;
                self.read_seq(depth, b'}', start, false, &mut Vec::new())?;
                Ok(if build { Datum::Set } else { Datum::Skipped })
            }
            Some(b'#') => {
                let end = self.token_end(start + 2);
                match self.text.get(start + 2..end) {
                    Some("Inf" | "-Inf" | "NaN") => {
                        self.pos = end;
                        Ok(Datum::Float)
                    }
                    _ => syntax(start, "unknown symbolic value (EDN has ##Inf, ##-Inf and ##NaN)"),
                }
            }
            Some(b) if b.is_ascii_alphabetic() => {
                self.pos = self.token_end(start + 1);
                if depth >= MAX_DEPTH {
                    return syntax(start, format!("nested more than {MAX_DEPTH} deep"));
                }
                self.read(depth + 1, build)
            }
            _ => {
                let next = self.text.get(start + 1..).and_then(|t| t.chars().next());
                let shown = next.map_or_else(String::new, |c| c.escape_default().to_string());
                syntax(start, format!("unknown dispatch `#{shown}` (EDN has #{{...}}, #_ and #tag)"))
            }
        }
    }

    /// A string, its escapes resolved; borrowed from the line when it has none.
    fn read_string(&mut self, build: bool) -> Result<Datum<'a>, EdnError> {
        let open = self.pos;
        let bytes = self.text.as_bytes();
        let body = open + 1;
        let unclosed = "this string is not closed before the line ends";
        let run_end = |from: usize| {
            let mut i = from;
            while let Some(&c) = bytes.get(i) {
                if c == b'"' || c == b'\\' {
                    break;
                }
                i += 1;
            }
            i
        };
        let mut i = run_end(body);
        if bytes.get(i) == Some(&b'"') {
            self.pos = i + 1;
            let s = self.text.get(body..i).unwrap_or_default();
            return Ok(if build { Datum::Str(Cow::Borrowed(s)) } else { Datum::Skipped });
        }
        let mut out = String::new();
        if build {
            out.push_str(self.text.get(body..i).unwrap_or_default());
        }
        loop {
            match bytes.get(i) {
                None => return syntax(open, unclosed),
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(if build { Datum::Str(Cow::Owned(out)) } else { Datum::Skipped });
                }
                Some(_) => {
                    // A backslash.
                    let (c, next) = self.escape(i, open)?;
                    if build {
                        out.push(c);
                    }
                    let end = run_end(next);
                    if build {
                        out.push_str(self.text.get(next..end).unwrap_or_default());
                    }
                    i = end;
                }
            }
        }
    }

    /// The escape at `at` (a backslash) of the string opened at `open`: its character and
    /// the byte after it.
    fn escape(&self, at: usize, open: usize) -> Result<(char, usize), EdnError> {
        let simple = |c: char| Ok((c, at + 2));
        match self.byte(at + 1) {
            None => syntax(open, "this string is not closed before the line ends"),
            Some(b'"') => simple('"'),
            Some(b'\\') => simple('\\'),
            Some(b'n') => simple('\n'),
            Some(b't') => simple('\t'),
            Some(b'r') => simple('\r'),
            Some(b'b') => simple('\u{8}'),
            Some(b'f') => simple('\u{c}'),
            Some(b'u') => {
                let bad = "`\\u` needs four hex digits naming a character";
                let Some(unit) = self.hex4(at + 2) else { return syntax(at, bad) };
                match unit {
                    0xD800..=0xDBFF => {
                        // A UTF-16 surrogate pair, as Clojure (Java) strings spell characters
                        // past U+FFFF.
                        let low = (self.byte(at + 6) == Some(b'\\') && self.byte(at + 7) == Some(b'u'))
                            .then(|| self.hex4(at + 8))
                            .flatten()
                            .filter(|low| (0xDC00..=0xDFFF).contains(low));
                        let Some(low) = low else {
                            return syntax(at, "a lone UTF-16 surrogate (`\\uD800` to `\\uDBFF` needs its pair)");
                        };
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(c).map(|c| (c, at + 12)).map_or_else(|| syntax(at, bad), Ok)
                    }
                    _ => char::from_u32(unit).map(|c| (c, at + 6)).map_or_else(|| syntax(at, bad), Ok),
                }
            }
            Some(_) => {
                let c = self.text.get(at + 1..).and_then(|t| t.chars().next()).unwrap_or('?');
                syntax(at, format!("unknown escape `\\{}` in a string", c.escape_default()))
            }
        }
    }

    /// Four hex digits at `at`, as a number.
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.text.as_bytes().get(at..at + 4)?;
        digits.iter().try_fold(0u32, |acc, &d| Some(acc * 16 + char::from(d).to_digit(16)?))
    }

    /// A character literal: `\a`, `\newline`, `\u0041`... (read and ignored).
    fn read_char(&mut self) -> Result<Datum<'a>, EdnError> {
        let start = self.pos;
        let first = self.text.get(start + 1..).and_then(|t| t.chars().next());
        let Some(first) = first.filter(|c| !c.is_whitespace() && !c.is_control()) else {
            return syntax(start, "a character literal needs a character after `\\`");
        };
        let end = self.token_end(start + 1 + first.len_utf8());
        let name = self.text.get(start + 1..end).unwrap_or_default();
        let known = name.chars().count() == 1
            || matches!(name, "newline" | "return" | "space" | "tab" | "formfeed" | "backspace")
            || (name.len() == 5 && name.starts_with('u') && name.bytes().skip(1).all(|b| b.is_ascii_hexdigit()))
            || (name.len() > 1
                && name.len() <= 4
                && name.starts_with('o')
                && name.bytes().skip(1).all(|b| matches!(b, b'0'..=b'7')));
        if !known {
            return syntax(start, format!("unknown character `\\{}`", elide(name)));
        }
        self.pos = end;
        Ok(Datum::Char)
    }
}

/// A numeric token: an integer (optional sign, optional `N`), or a float, ratio or
/// BigDecimal (read as [`Datum::Float`]); `None` when it is none of these.
fn number(token: &str) -> Option<Datum<'static>> {
    let bytes = token.as_bytes();
    let (negative, body) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, bytes),
    };
    let int_len = body.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int, rest) = body.split_at_checked(int_len)?;
    if int.is_empty() || (int.len() > 1 && int.first() == Some(&b'0')) {
        return None;
    }
    if rest.is_empty() || rest == b"N" {
        let mut magnitude: u128 = 0;
        for &d in int {
            match magnitude.checked_mul(10).and_then(|m| m.checked_add(u128::from(d - b'0'))) {
                Some(m) => magnitude = m,
                None => return Some(Datum::BigInt),
            }
        }
        let Ok(value) = i128::try_from(magnitude) else { return Some(Datum::BigInt) };
        return Some(Datum::Int(if negative { -value } else { value }));
    }
    // A ratio, `1/2`.
    if let Some(denominator) = rest.strip_prefix(b"/") {
        return (!denominator.is_empty() && denominator.iter().all(u8::is_ascii_digit)).then_some(Datum::Float);
    }
    // A float: `.digits`, then an exponent, then `M` (BigDecimal), each optional.
    let rest = rest.strip_suffix(b"M").unwrap_or(rest);
    let mut i = 0;
    if rest.first() == Some(&b'.') {
        i = 1 + rest.iter().skip(1).take_while(|b| b.is_ascii_digit()).count();
    }
    if matches!(rest.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(rest.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits = rest.iter().skip(i).take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        i += digits;
    }
    (i == rest.len()).then_some(Datum::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edn(text: &str, model: ModelKind) -> Result<History, HistoryError> {
        parse("h.edn", text.as_bytes(), Format::Edn, model)
    }

    fn jsonl(text: &str, model: ModelKind) -> Result<History, HistoryError> {
        parse("h.jsonl", text.as_bytes(), Format::Jsonl, model)
    }

    fn edn_err(text: &str, model: ModelKind) -> String {
        match edn(text, model) {
            Ok(h) => panic!("expected an error for {text:?}, got {h:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn jsonl_err(text: &str, model: ModelKind) -> String {
        match jsonl(text, model) {
            Ok(h) => panic!("expected an error for {text:?}, got {h:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn s(text: &str) -> Val {
        Val::Str(Box::from(text))
    }

    const REGISTER: &str = "\
{:process 0, :type :invoke, :f :write, :value 4}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value 4}
; a comment line

{:process 1, :type :ok, :f :read, :value 4}
{:process 2, :type :invoke, :f :cas, :value [4 5]}
{:process 3, :type :invoke, :f :write, :value 7}
{:process 2, :type :fail, :f :cas, :value [4 5]}
{:process 3, :type :info, :f :write, :value 7}
{:process 4, :type :invoke, :f :cas, :value [4 \"x\"], :time 12345, :index 10}
{:process 5, :type :invoke, :f :read, :value nil}
{:process 5, :type :ok, :f :read, :value nil}
{:process 2, :type :invoke, :f :write, :value nil}
";

    #[test]
    fn a_register_history() {
        let h = edn(REGISTER, ModelKind::Register).unwrap();
        assert_eq!(h.failed, 1);
        assert_eq!(h.events, 12);
        let op = |process, call, output, invoke, complete, line, complete_line| Operation {
            process,
            key: None,
            call,
            output,
            invoke,
            complete,
            line,
            complete_line,
        };
        let expected = vec![
            op(0, Call::Write(Val::Int(4)), None, 0, Some(2), 1, Some(3)),
            op(1, Call::Read, Some(Val::Int(4)), 1, Some(3), 2, Some(6)),
            op(3, Call::Write(Val::Int(7)), None, 5, None, 8, Some(10)),
            op(4, Call::Cas { old: Val::Int(4), new: s("x") }, None, 8, None, 11, None),
            op(5, Call::Read, Some(Val::Nil), 9, Some(10), 12, Some(13)),
            op(2, Call::Write(Val::Nil), None, 11, None, 14, None),
        ];
        assert_eq!(h.ops, expected);
        assert!(h.ops.windows(2).all(|w| w[0].invoke < w[1].invoke));
    }

    #[test]
    fn a_kv_history() {
        let text = "\
{:process 0, :type :invoke, :f :put, :key \"x\", :value \"a\"}
{:process 0, :type :ok, :f :put, :key \"x\", :value \"a\"}
{:process 1, :type :invoke, :f :append, :key :y, :value \"b\"}
{:process 2, :type :invoke, :f :get, :key 7, :value nil}
{:process 1, :type :ok, :f :append, :key :y, :value \"b\"}
{:process 2, :type :ok, :f :get, :key 7, :value nil}
{:process 0, :type :invoke, :f :get, :key \"x\"}
{:process 0, :type :ok, :f :get, :key \"x\", :value \"a\"}
";
        let h = edn(text, ModelKind::Kv).unwrap();
        assert_eq!(h.events, 8);
        let calls: Vec<(Option<Val>, Call, Option<Val>)> =
            h.ops.iter().map(|o| (o.key.clone(), o.call.clone(), o.output.clone())).collect();
        assert_eq!(
            calls,
            vec![
                (Some(s("x")), Call::Put(s("a")), None),
                (Some(s("y")), Call::Append(s("b")), None),
                (Some(Val::Int(7)), Call::Get, Some(Val::Nil)),
                (Some(s("x")), Call::Get, Some(s("a"))),
            ]
        );
    }

    #[test]
    fn edn_and_jsonl_read_the_same() {
        let json = r#"{"process":0,"type":"invoke","f":"write","value":4}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":0,"type":"ok","f":"write","value":4}

{"process":1, "type":":ok", "f":":read", "value":4}
{"process":2,"type":"invoke","f":"cas","value":[4,5]}
{"process":3,"type":"invoke","f":"write","value":7}
{"process":2,"type":"fail","f":"cas","value":[4,5]}
{"process":3,"type":"info","f":"write","value":7}
{"process":4,"type":"invoke","f":"cas","value":[4,"x"],"time":12345,"index":10}
{"process":5,"type":"invoke","f":"read","value":null}
{"process":5,"type":"ok","f":"read","value":null}
{"process":2,"type":"invoke","f":"write","value":null}
"#;
        // Line numbers differ by one (the EDN has a comment line and a blank one, the JSON
        // a blank one), so compare with the EDN's comment line removed.
        let edn_text = REGISTER.replace("; a comment line\n", "");
        assert_eq!(jsonl(json, ModelKind::Register).unwrap(), edn(&edn_text, ModelKind::Register).unwrap());
        let kv_edn = "{:process 0, :type :invoke, :f :put, :key \"x\", :value \"a\"}\n\
                      {:process 0, :type :ok, :f :put, :key \"x\", :value \"a\"}\n\
                      {:process 1, :type :invoke, :f :get, :key 3}\n{:process 1, :type :ok, :f :get, :key 3, :value \"a\"}\n";
        let kv_json = "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":\"a\"}\n\
                       {\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"x\",\"value\":\"a\"}\n\
                       {\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":3}\n{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"key\":3,\"value\":\"a\"}\n";
        assert_eq!(jsonl(kv_json, ModelKind::Kv).unwrap(), edn(kv_edn, ModelKind::Kv).unwrap());
    }

    #[test]
    fn nemesis_lines_are_skipped_but_must_read() {
        let text = "\
{:process :nemesis, :type :info, :f :start-partition, :value nil}
{:process 0, :type :invoke, :f :write, :value 1}
{:process :nemesis, :type :info, :f :start-partition, :value [:isolated {\"n1\" #{\"n2\" \"n3\"}}]}
{:process 0, :type :ok, :f :write, :value 1}
";
        let h = edn(text, ModelKind::Register).unwrap();
        assert_eq!((h.ops.len(), h.events), (1, 2));
        assert_eq!(h.ops[0].invoke, 0);
        assert_eq!(h.ops[0].complete, Some(1));
        let json = "{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"kill\"}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n";
        assert_eq!(jsonl(json, ModelKind::Register).unwrap().events, 1);
        let broken = "{:process :nemesis, :type :info, :f :start, :value [1 2}\n";
        assert!(edn_err(broken, ModelKind::Register).starts_with("h.edn:1:"));
    }

    #[test]
    fn edn_reads_tags_and_the_rest_of_its_syntax() {
        let text = "\
#jepsen.history.Op{:index 0, :time 1, :type :invoke, :process 0, :f :write, :value 4N}
#jepsen.history.Op {:process 0 :type :ok :f :write :value 4 :error nil}
{:process 1, :type :invoke, :f :write, :value \"a\\\"b\\\\c\\n\\t\\r\\u00e9\\ud83d\\ude00\", :extra (1 2.5 -3e4 1/2 7M ##Inf \\a \\newline \\u0041 sym/bol true false #inst \"2020\" #_ ignored {:a [#{}]})} ; trailing
{:process 1 :type :ok :f :write :value -0 :k #_#_ 1 2 :v}
{:process 2, :type :invoke, :f :write, :value +5}
{:process 3, :type :invoke, :f :write, :value :kw}
";
        let h = edn(text, ModelKind::Register).unwrap();
        let calls: Vec<Call> = h.ops.iter().map(|o| o.call.clone()).collect();
        assert_eq!(
            calls,
            vec![
                Call::Write(Val::Int(4)),
                Call::Write(s("a\"b\\c\n\t\ré😀")),
                Call::Write(Val::Int(5)),
                Call::Write(s("kw")),
            ]
        );
        assert_eq!(h.ops[0].complete_line, Some(2));
    }

    #[test]
    fn keys_partition_a_register_history() {
        let text = "{:process 0, :type :invoke, :f :write, :key 1, :value 4}\n\
                    {:process 0, :type :ok, :f :write, :key 1, :value 4}\n";
        let h = edn(text, ModelKind::Register).unwrap();
        assert_eq!(h.ops[0].key, Some(Val::Int(1)));
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        use ModelKind::{Kv, Register};
        let cases: &[(&str, ModelKind, &str)] = &[
            // The completion finds nothing in flight.
            (
                "{:process 3, :type :ok, :f :write, :value 4}",
                Register,
                "h.edn:1:20: :type: `:ok` on process 3, which has no operation in flight",
            ),
            // Two invocations in flight on one process.
            (
                "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :invoke, :f :read}",
                Register,
                "h.edn:2:11: :process: process 0 invokes `read` while its `write` of line 1 is still in flight",
            ),
            // An invocation after a crash.
            (
                "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :info, :f :write}\n{:process 0, :type :invoke, :f :read}",
                Register,
                "h.edn:3:11: :process: process 0 crashed (`:info` on line 2)",
            ),
            (
                "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :info, :f :write}\n{:process 0, :type :ok, :f :write}",
                Register,
                "h.edn:3:20: :type: `:ok` on process 0, which has no operation in flight (it crashed: `:info` on line 2)",
            ),
            // The completion's :f differs.
            (
                "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :read, :value 1}",
                Register,
                "h.edn:2:28: :f: `:ok` of a `read`, but process 0's operation in flight is a `write` (line 1)",
            ),
            ("{:type :invoke, :f :read}", Register, "h.edn:1:1: :process: missing"),
            ("  {:process 0, :f :read}", Register, "h.edn:1:3: :type: missing"),
            ("{:process 0, :type :invoke}", Register, "h.edn:1:1: :f: missing"),
            ("{:process 0, :type :invoke, :f :write}", Register, "h.edn:1:1: :value: missing: a write carries"),
            (
                "{:process 0, :type :invoke, :f :cas, :value [1]}",
                Register,
                "h.edn:1:45: :value: a cas carries [old new]",
            ),
            ("{:process 0, :type :invoke, :f :cas, :value 1}", Register, "h.edn:1:45: :value: a cas carries [old new]"),
            ("{:process 0, :type :invoke, :f :write, :value [1]}", Register, "h.edn:1:47: :value: expected an integer"),
            (
                "{:process 0, :type :invoke, :f :write, :value 9223372036854775808}",
                Register,
                "h.edn:1:47: :value: 9223372036854775808 does not fit in 64 bits",
            ),
            ("{:process 0, :type :begin, :f :read}", Register, "h.edn:1:20: :type: unknown type `begin`"),
            ("{:process 0, :type 1, :f :read}", Register, "h.edn:1:20: :type: expected :invoke"),
            (
                "{:process -1, :type :invoke, :f :read}",
                Register,
                "h.edn:1:11: :process: a client process is a number from 0",
            ),
            (
                "{:process 18446744073709551616, :type :invoke, :f :read}",
                Register,
                "h.edn:1:11: :process: process 18446744073709551616 does not fit in 64 bits",
            ),
            (
                "{:process 99999999999999999999999999999999999999999, :type :invoke, :f :read}",
                Register,
                "h.edn:1:11: :process: the process number does not fit in 64 bits",
            ),
            ("{:process 1.5, :type :invoke, :f :read}", Register, "h.edn:1:11: :process: expected a client's process"),
            (
                "{:process 0, :type :invoke, :f :put, :key \"x\", :value \"a\"}",
                Register,
                "h.edn:1:32: :f: `put` is an operation of the kv model, not the register model; use --model kv",
            ),
            (
                "{:process 0, :type :invoke, :f :read}",
                Kv,
                "h.edn:1:32: :f: `read` is an operation of the register model, not the kv model; use --model register",
            ),
            (
                "{:process 0, :type :invoke, :f :frob}",
                Register,
                "h.edn:1:32: :f: unknown operation `frob`; the register model's operations are read, write, cas",
            ),
            ("{:process 0, :type :invoke, :f :get}", Kv, "h.edn:1:1: :key: missing"),
            (
                "{:process 0, :type :invoke, :f :put, :key \"x\", :value 4}",
                Kv,
                "h.edn:1:55: :value: the kv model's values are strings",
            ),
            ("{:process 0, :type :invoke, :f :put, :key [1], :value \"a\"}", Kv, "h.edn:1:43: :key: a key is a string"),
            (
                "{:process 0, :type :invoke, :f :get, :key \"x\"}\n{:process 0, :type :ok, :f :get, :key \"x\", :value 3}",
                Kv,
                "h.edn:2:51: :value: the kv model's values are strings",
            ),
            (
                "{:process 0, :type :invoke, :f :get, :key \"x\"}\n{:process 0, :type :ok, :f :get, :key \"y\", :value nil}",
                Kv,
                "h.edn:2:39: :key: key \"y\" differs from its invocation's (\"x\", line 1)",
            ),
            (
                "{:process 0, :type :invoke, :f :read}\n{:process 0, :type :ok, :f :read}",
                Register,
                "h.edn:2:1: :value: missing: an `:ok` read carries",
            ),
            ("{:process 0, :process 1}", Register, "h.edn:1:14: :process: duplicate key"),
            // Syntax.
            ("{:process 0, :type :invoke", Register, "h.edn:1:1: (line): this map is not closed"),
            ("{:process 0 :type}", Register, "h.edn:1:13: (line): this key has no value"),
            ("[:process 0]", Register, "h.edn:1:1: (line): expected a map"),
            ("{:process 0} {}", Register, "h.edn:1:14: (line): unexpected text after the map"),
            ("{:value \"abc}", Register, "h.edn:1:9: (line): this string is not closed"),
            ("{:value \"a\\qb\"}", Register, "h.edn:1:11: (line): unknown escape `\\q`"),
            ("{:value \"\\ud800x\"}", Register, "h.edn:1:10: (line): a lone UTF-16 surrogate"),
            ("{:value \"\\u12\"}", Register, "h.edn:1:10: (line): `\\u` needs four hex digits"),
            ("{:value [1 2)}", Register, "h.edn:1:13: (line): unexpected `)`"),
            ("{:value 12abc}", Register, "h.edn:1:9: (line): `12abc` is not a number"),
            ("{:value 007}", Register, "h.edn:1:9: (line): `007` is not a number"),
            ("{:value \\foo}", Register, "h.edn:1:9: (line): unknown character `\\foo`"),
            ("{:value \\ }", Register, "h.edn:1:9: (line): a character literal needs"),
            ("{:value #\"re\"}", Register, "h.edn:1:9: (line): unknown dispatch `#\\\"`"),
            ("{:value {:a}}", Register, "h.edn:1:9: (line): a map needs a value for each key"),
            ("{: 1}", Register, "h.edn:1:2: (line): a keyword needs a name"),
            ("{:é \"ü\" :value \u{1}}", Register, "h.edn:1:16: (line): unexpected character"),
            (
                "{:process 0, :type :invoke, :f :write, :value 1}\n{:value \"\u{e9}",
                Register,
                "h.edn:2:9: (line): this string",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .map(|(text, model, prefix)| (text, edn_err(text, *model), prefix))
            .filter(|(_, message, prefix)| !message.starts_with(*prefix))
            .map(|(text, message, prefix)| format!("for {text:?}\n  got  {message}\n  want {prefix}"))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        let invalid = b"{:process 0, :value \"\xC3\xA9\xFF\"}";
        let message = parse("h.edn", invalid, Format::Edn, ModelKind::Register).unwrap_err().to_string();
        assert_eq!(message, "h.edn:1:23: (line): not valid UTF-8");
    }

    #[test]
    fn jsonl_errors_name_the_json_key() {
        use ModelKind::{Kv, Register};
        let cases: &[(&str, ModelKind, &str)] = &[
            (r#"{"process":3,"type":"ok","f":"write","value":4}"#, Register, "h.jsonl:1:21: type: `:ok` on process 3"),
            (r#"{"type":"invoke","f":"read"}"#, Register, "h.jsonl:1:1: process: missing"),
            (r#" {"process":-2,"type":"invoke","f":"read"}"#, Register, "h.jsonl:1:13: process: a client process"),
            (r#"{"process":1.5,"type":"invoke","f":"read"}"#, Register, "h.jsonl:1:12: process: expected a client's"),
            (
                r#"{"process":0,"type":"invoke","f":"put","key":"x","value":"a"}"#,
                Register,
                "h.jsonl:1:34: f: `put` is an operation of the kv model",
            ),
            (
                r#"{"process":0,"type":"invoke","f":"put","key":"x","value":4}"#,
                Kv,
                "h.jsonl:1:58: value: the kv model's values are strings",
            ),
            (r#"{"process":0,"type":"invoke","f":"cas","value":[1,2,3]}"#, Register, "h.jsonl:1:48: value: a cas"),
            (
                r#"{"process":0,"type":"invoke","f":"write","value":{"process":1}}"#,
                Register,
                "h.jsonl:1:50: value: expected an integer",
            ),
            (r#"{"process":0,"type":"invoke","f":"get"}"#, Kv, "h.jsonl:1:1: key: missing"),
            (r#"{"process":0,"type":"invoke","f":"write","value":4"#, Register, "h.jsonl:1:50: (line): EOF while"),
            (r#"[1,2]"#, Register, "h.jsonl:1:1: (line): expected a JSON object"),
            (r#"{"process":0,"type":"invoke","f":"write","value":4} x"#, Register, "h.jsonl:1:53: (line): trailing"),
        ];
        for (text, model, prefix) in cases {
            let message = jsonl_err(text, *model);
            assert!(message.starts_with(prefix), "for {text:?}\n  got  {message}\n  want {prefix}");
        }
    }

    #[test]
    fn formats_are_named_and_detected() {
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::from_name("ndjson"), Some(Format::Jsonl));
        assert_eq!(Format::from_name("json"), Some(Format::Jsonl));
        assert_eq!(Format::from_name("csv"), None);
        assert_eq!(Format::detect("h.EDN", b"{\"process\":0}"), Format::Edn);
        assert_eq!(Format::detect("h.json", b"{:process 0}"), Format::Jsonl);
        assert_eq!(Format::detect("h.ndjson", b""), Format::Jsonl);
        assert_eq!(Format::detect("history", b"\xEF\xBB\xBF\n; comment\n  {  \"process\":0}"), Format::Jsonl);
        assert_eq!(Format::detect("history", b"{:process 0}"), Format::Edn);
        assert_eq!(Format::detect("history", b"#jepsen.history.Op{:process 0}"), Format::Edn);
        assert_eq!(Format::detect("history.txt", b""), Format::Edn);
    }

    #[test]
    fn read_path_detects_and_reads() {
        let dir = std::env::temp_dir().join(format!("faultline-parse-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history");
        std::fs::write(&path, "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n").unwrap();
        let h = read_path(&path, None, ModelKind::Register).unwrap();
        assert_eq!(h.ops.len(), 1);
        let err = read_path(&path, Some(Format::Edn), ModelKind::Register).unwrap_err().to_string();
        assert!(err.contains(":1:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = read_path(&dir.join("nothing"), None, ModelKind::Register).unwrap_err().to_string();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn hostile_input_is_an_error_never_a_panic() {
        let line = "{:process 0, :type :invoke, :f :cas, :key \"k\\u00e9\", :value [1 2], :time #inst \"x\"}";
        // Every truncation of a valid line.
        for (end, _) in line.char_indices().skip(1) {
            let cut = &line[..end];
            assert!(edn(cut, ModelKind::Register).is_err(), "{cut:?}");
        }
        let json = r#"{"process":0,"type":"invoke","f":"cas","key":"k\u00e9","value":[1,2]}"#;
        for (end, _) in json.char_indices().skip(1) {
            assert!(jsonl(&json[..end], ModelKind::Register).is_err(), "{:?}", &json[..end]);
        }
        // Deep nesting of every kind.
        let n = 100_000;
        for (open, close) in [("[", "]"), ("(", ")"), ("{:a ", "}"), ("#{", "}"), ("#t ", ""), ("#_ ", "")] {
            let deep = format!("{{:process 0, :value {}1{}}}", open.repeat(n), close.repeat(n));
            let message = edn(&deep, ModelKind::Register).unwrap_err().to_string();
            assert!(message.contains("nested more than 64 deep"), "{open}: {message}");
        }
        let deep = format!("{}{}", "#t ".repeat(n), "{:process 0}");
        assert!(edn(&deep, ModelKind::Register).is_err());
        let deep_json = format!("{{\"process\":0,\"value\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(jsonl(&deep_json, ModelKind::Register).is_err());
        // Huge numbers.
        let huge = format!("{{:process {}, :type :invoke, :f :read}}", "9".repeat(10_000));
        assert!(edn(&huge, ModelKind::Register).is_err());
        let huge = format!("{{:process 0, :type :invoke, :f :write, :value -{}N}}", "9".repeat(10_000));
        assert!(edn(&huge, ModelKind::Register).is_err());
        let huge = format!("{{\"process\":{},\"type\":\"invoke\",\"f\":\"read\"}}", "9".repeat(400));
        assert!(jsonl(&huge, ModelKind::Register).is_err());
        let min = "{:process 0, :type :invoke, :f :write, :value -170141183460469231731687303715884105728}";
        assert!(edn(min, ModelKind::Register).is_err());
        // Random bytes, and random mutations of valid lines: any result but a panic.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"{}[]()#_:;\\\"\n ,0123456789-+.eENMabcnu/xyz\xC3\xA9\xFF";
        for round in 0..20_000 {
            let len = (next() % 80) as usize;
            let bytes: Vec<u8> = if round % 2 == 0 {
                (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect()
            } else {
                let base = if round % 4 == 1 { line.as_bytes() } else { json.as_bytes() };
                let mut bytes = base.to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % bytes.len() as u64) as usize;
                    bytes[at] = (next() & 0xFF) as u8;
                }
                bytes
            };
            for format in Format::ALL {
                for model in ModelKind::ALL {
                    let _ = parse("fuzz", &bytes, format, model);
                }
            }
        }
    }

    #[test]
    fn a_large_history_parses() {
        let mut text = String::new();
        for i in 0..20_000u64 {
            let p = i % 10;
            text.push_str(&format!("{{:process {p}, :type :invoke, :f :write, :value {i}, :time {i}}}\n"));
            text.push_str(&format!("{{:process {p}, :type :ok, :f :write, :value {i}, :time {i}}}\n"));
        }
        let h = edn(&text, ModelKind::Register).unwrap();
        assert_eq!((h.ops.len(), h.events), (20_000, 40_000));
    }
}
