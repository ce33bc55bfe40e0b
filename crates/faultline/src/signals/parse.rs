//! Readers for the four file formats that carry signals: long CSV, NDJSON, Prometheus text
//! exposition, and a Prometheus `query_range` (or instant query) JSON response.
//!
//! [`Reader`] yields samples one at a time, in nondecreasing time order, or the first error
//! (then nothing). CSV, NDJSON and Prometheus text are read line by line in bounded memory
//! and never read ahead of what they yield: a followed file (a reader that blocks, then
//! returns more) yields each sample as soon as its line is complete. A `query_range`
//! response is a bounded answer to one query: it is read whole, and its series merged into
//! time order.
//!
//! Every error is one line, `file:line:column: field: message`, located at the offending
//! field (columns count characters, from 1). docs/signals.md is the reference.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{Sample, Signal, SignalsError, Value, ValueKind, number, read_value};

/// The header a long CSV file starts with.
pub const CSV_HEADER: &str = "time_s,replica,signal,value";
const CSV_FIELDS: [&str; 4] = ["time_s", "replica", "signal", "value"];

/// The longest line (or CSV record) a streamed file may hold, in bytes: memory stays bounded
/// whatever the file is.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The largest `query_range` response read, in bytes (it is read whole).
pub const MAX_QUERY_BYTES: usize = 1 << 30;

/// The prefix a Prometheus metric name may carry before the signal's name.
pub const METRIC_PREFIX: &str = "faultline_";

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file format that carries signals.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Long CSV: the header `time_s,replica,signal,value`, then one sample per row.
    Csv,
    /// One JSON object per line: `{"time_s":..,"replica":..,"signal":..,"value":..}`.
    Ndjson,
    /// Prometheus text exposition format 0.0.4 (what `/metrics` serves).
    Prometheus,
    /// A Prometheus HTTP API response to `query_range` (a matrix) or `query` (a vector).
    QueryRange,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Csv, Format::Ndjson, Format::Prometheus, Format::QueryRange];

    /// The format of `file_name`, by its extension (`.csv`; `.ndjson`, `.jsonl`; `.prom`,
    /// `.txt`, `.metrics`; `.json`), else by sniffing `head`, the file's first bytes: `{"status"`
    /// is a query response, another `{` NDJSON, a first line that is the CSV header (or starts
    /// with `time_s,`) CSV, anything else Prometheus text.
    pub fn detect(file_name: &str, head: &[u8]) -> Format {
        let extension = Path::new(file_name).extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("csv") => return Format::Csv,
            Some("ndjson" | "jsonl") => return Format::Ndjson,
            Some("prom" | "txt" | "metrics") => return Format::Prometheus,
            Some("json") => return Format::QueryRange,
            _ => {}
        }
        let head = head.strip_prefix(BOM).unwrap_or(head);
        let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
        let head = &head[start..];
        if let Some(rest) = head.strip_prefix(b"{") {
            let i = rest.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(rest.len());
            return if rest[i..].starts_with(b"\"status\"") { Format::QueryRange } else { Format::Ndjson };
        }
        let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        if first.trim_ascii_end() == CSV_HEADER.as_bytes() || first.starts_with(b"time_s,") {
            Format::Csv
        } else {
            Format::Prometheus
        }
    }

    /// The name the command line and error messages use.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Prometheus => "prometheus",
            Format::QueryRange => "query-range",
        }
    }

    /// The format a name stands for, if it is one.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What a file of this format looks like, for the message about a file without samples.
    fn shape(self) -> &'static str {
        match self {
            Format::Csv => "the header time_s,replica,signal,value, then one sample per row",
            Format::Ndjson => r#"one object per line, like {"time_s":0,"replica":"w1","signal":"health_ok","value":1}"#,
            Format::Prometheus => r#"lines like heartbeat_age_s{replica="w1"} 0.4 1700000000000"#,
            Format::QueryRange => "a Prometheus query_range or query response with series of signals",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads `path` whole: its format by [`Format::detect`], then every sample, in time order.
pub fn read_path(path: &Path) -> Result<Vec<Sample>, SignalsError> {
    let file = path.display().to_string();
    let io = |error: io::Error| SignalsError::Input(crate::input::InputError::Io { file: file.clone(), error });
    let mut input = io::BufReader::with_capacity(1 << 16, std::fs::File::open(path).map_err(io)?);
    let format = Format::detect(&file, input.fill_buf().map_err(io)?);
    Reader::new(&file, format, input).collect()
}

/// A streaming reader of one signals file: yields its samples in nondecreasing time order,
/// or the first error (then `None`).
pub struct Reader<R: BufRead> {
    file: String,
    format: Format,
    source: Source<R>,
    order: Order,
    samples: u64,
    done: bool,
}

enum Source<R: BufRead> {
    Csv(Box<CsvSource<R>>),
    Ndjson(Lines<R>),
    Prometheus(Lines<R>, PromStats),
    QueryRange(Option<R>, std::vec::IntoIter<Sample>),
}

impl<R: BufRead> Reader<R> {
    /// A reader of `input`, in `format`; `file` names it in errors.
    pub fn new(file: &str, format: Format, input: R) -> Self {
        let source = match format {
            Format::Csv => Source::Csv(Box::new(CsvSource::new(input))),
            Format::Ndjson => Source::Ndjson(Lines::new(input)),
            Format::Prometheus => Source::Prometheus(Lines::new(input), PromStats::default()),
            Format::QueryRange => Source::QueryRange(Some(input), Vec::new().into_iter()),
        };
        Reader { file: file.to_owned(), format, source, order: Order::default(), samples: 0, done: false }
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The line the last sample yielded was read from (1 for a `query_range` response,
    /// which is read whole), to locate what a caller finds wrong with it.
    pub fn line(&self) -> u64 {
        self.order.last_line.max(1)
    }

    /// The file name errors use.
    pub fn file(&self) -> &str {
        &self.file
    }

    fn next_sample(&mut self) -> Result<Option<Sample>, SignalsError> {
        let file = self.file.as_str();
        match &mut self.source {
            Source::Csv(csv) => csv.next(file, &mut self.order),
            Source::Ndjson(lines) => ndjson_next(lines, file, &mut self.order),
            Source::Prometheus(lines, stats) => prometheus_next(lines, stats, file, &mut self.order),
            Source::QueryRange(input, samples) => {
                if let Some(input) = input.take() {
                    *samples = read_query(file, input)?.into_iter();
                }
                Ok(samples.next())
            }
        }
    }

    fn no_samples(&self) -> SignalsError {
        let why = match &self.source {
            Source::Prometheus(_, stats) if stats.metric_lines > 0 => format!(
                "none of its {} metric lines is a signal's sample (a signal's name, optionally prefixed \
                 {METRIC_PREFIX}, with a replica label)",
                stats.metric_lines
            ),
            _ => format!("read as {}: {}", self.format.name(), self.format.shape()),
        };
        SignalsError::at(&self.file, 1, 1, "(file)", format!("no samples ({why})"))
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Sample, SignalsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_sample() {
            Ok(Some(sample)) => {
                self.samples += 1;
                Some(Ok(sample))
            }
            Ok(None) => {
                self.done = true;
                (self.samples == 0).then(|| Err(self.no_samples()))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The checks every streamed format applies: time order and duplicates.

/// Replicas remembered across timestamps before the table of keys seen is emptied (it is
/// reused while it stays small, which saves an allocation per sample).
const MAX_REMEMBERED_REPLICAS: usize = 4096;

/// What the order check remembers: the last time, and which (replica, signal) pairs were
/// seen at it, with their lines. Only the current timestamp's pairs count (an entry from an
/// earlier epoch is stale), so memory is bounded by the replicas seen at one timestamp,
/// not by the file's length.
#[derive(Default)]
struct Order {
    /// The line of the last sample that passed.
    last_line: u64,
    last: Option<f64>,
    epoch: u64,
    seen: BTreeMap<String, Seen>,
}

struct Seen {
    epoch: u64,
    lines: [u64; Signal::ALL.len()],
}

enum Disorder {
    /// The time decreased: the time before.
    Unsorted(f64),
    /// The same (time, replica, signal) was given before, on this line.
    Duplicate(u64),
}

impl Order {
    fn check(&mut self, time_s: f64, replica: &str, signal: Signal, line: u64) -> Result<(), Disorder> {
        match self.last {
            Some(last) if time_s < last => return Err(Disorder::Unsorted(last)),
            Some(last) if time_s == last => {}
            _ => {
                self.last = Some(time_s);
                self.epoch += 1;
                if self.seen.len() > MAX_REMEMBERED_REPLICAS {
                    self.seen.clear();
                }
            }
        }
        let epoch = self.epoch;
        let seen = match self.seen.get_mut(replica) {
            Some(seen) => seen,
            None => self.seen.entry(replica.to_owned()).or_insert(Seen { epoch, lines: [0; Signal::ALL.len()] }),
        };
        if seen.epoch != epoch {
            *seen = Seen { epoch, lines: [0; Signal::ALL.len()] };
        }
        let slot = &mut seen.lines[signal as usize];
        if *slot != 0 {
            return Err(Disorder::Duplicate(*slot));
        }
        *slot = line;
        self.last_line = line;
        Ok(())
    }
}

impl Disorder {
    /// The message, for a sample of `replica`'s `signal` at `time_s`; `hint` follows a duplicate.
    fn message(&self, time_s: f64, replica: &str, signal: Signal, hint: &str) -> String {
        match self {
            Disorder::Unsorted(last) => format!("unsorted: {time_s} comes after {last} (sort the samples by time)"),
            Disorder::Duplicate(line) => format!(
                "duplicate: {} {signal} at {time_s} was already given on line {line}{hint}",
                crate::input::elide(replica)
            ),
        }
    }
}

/// A replica's name: not empty, without white space around it or control characters in it.
fn check_replica(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        Err("empty (every sample names its replica)".to_owned())
    } else if name.trim() != name {
        Err(format!("{:?} has white space around it", crate::input::elide(name)))
    } else if name.contains(char::is_control) {
        Err(format!("{:?} has a control character in it", crate::input::elide(name)))
    } else {
        Ok(())
    }
}

fn signal_named(name: &str) -> Result<Signal, String> {
    Signal::from_name(name).ok_or_else(|| Signal::unknown(name))
}

fn check_time(time_s: f64) -> Result<f64, String> {
    if time_s.is_finite() { Ok(time_s) } else { Err(format!("must be a finite number of seconds, not {time_s}")) }
}

/// The column (from 1, in characters) of byte `byte` of `line`.
fn column(line: &str, byte: usize) -> u64 {
    let mut byte = byte.min(line.len());
    while !line.is_char_boundary(byte) {
        byte -= 1;
    }
    line[..byte].chars().count() as u64 + 1
}

/// Characters in `bytes`, however they are encoded (a byte that does not continue a UTF-8
/// sequence starts a character).
fn chars_in(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count() as u64
}

/// The message for invalid UTF-8 at the start of `bad`.
fn not_utf8(bad: &[u8]) -> String {
    match bad.first() {
        Some(b) => format!("invalid UTF-8 (byte {b:#04x}); signals files are UTF-8 text"),
        None => "invalid UTF-8 (cut short); signals files are UTF-8 text".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Lines (NDJSON and Prometheus text).

struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    /// The number of the line in `buf` (from 1).
    line: u64,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Self {
        Lines { input, buf: Vec::new(), line: 0 }
    }

    /// The next line, without its line break; `None` at the end. Never reads past the
    /// line's end, nor more than [`MAX_LINE_BYTES`] of it.
    fn next_line(&mut self, file: &str) -> Result<Option<(u64, &str)>, SignalsError> {
        self.buf.clear();
        self.line += 1;
        let read = self.input.by_ref().take(MAX_LINE_BYTES as u64 + 2).read_until(b'\n', &mut self.buf);
        match read {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(SignalsError::at(file, self.line, 1, "(file)", format!("cannot read: {e}"))),
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(SignalsError::at(
                file,
                self.line,
                1,
                "(text)",
                format!("line longer than {MAX_LINE_BYTES} bytes (is this a signals file?)"),
            ));
        }
        let bytes = if self.line == 1 { self.buf.strip_prefix(BOM).unwrap_or(&self.buf) } else { &self.buf };
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some((self.line, text))),
            Err(e) => {
                let good = e.valid_up_to();
                Err(SignalsError::at(file, self.line, chars_in(&bytes[..good]) + 1, "(text)", not_utf8(&bytes[good..])))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Long CSV.

/// Copies what the CSV parser reads, from the start of the current record on, so that an
/// error can be located at its field's line and column whatever the quoting.
struct Tee<R> {
    inner: R,
    buf: Vec<u8>,
    /// Where the current record's bytes start in `buf`.
    start: usize,
    /// The offset in the file of `buf[start]`, and its line.
    offset: u64,
    line: u64,
}

#[derive(Debug)]
struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record longer than {MAX_LINE_BYTES} bytes (is this a signals file?)")
    }
}

impl std::error::Error for RecordTooLong {}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.len() - self.start > MAX_LINE_BYTES + (1 << 16) {
            // Blank lines before the record (the parser skips them within one record) are
            // not part of it: forget them. Then what is left is one record, too long.
            let blank = self.buf[self.start..].iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
            self.advance_to(self.offset + blank as u64);
            if self.buf.len() - self.start > MAX_LINE_BYTES + (1 << 16) {
                return Err(io::Error::other(RecordTooLong));
            }
        }
        let n = self.inner.read(out)?;
        self.buf.extend_from_slice(&out[..n]);
        Ok(n)
    }
}

impl<R> Tee<R> {
    /// Forgets the bytes before `offset` in the file (a record's start), counting their lines.
    fn advance_to(&mut self, offset: u64) {
        let n = (offset.saturating_sub(self.offset) as usize).min(self.buf.len() - self.start);
        self.line += self.buf[self.start..self.start + n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.start += n;
        self.offset += n as u64;
        if self.start > 1 << 16 && self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// The current record's bytes (and what was read after it), from its first byte, and
    /// that byte's line: blank lines (and a byte order mark) before it skipped.
    fn record(&self) -> (&[u8], u64) {
        let mut raw = &self.buf[self.start..];
        if self.offset == 0 {
            raw = raw.strip_prefix(BOM).unwrap_or(raw);
        }
        let mut line = self.line;
        while let Some((&b, rest)) = raw.split_first() {
            match b {
                b'\n' => line += 1,
                b'\r' => {}
                _ => break,
            }
            raw = rest;
        }
        (raw, line)
    }

    /// The line and column of byte `at` of the current record (as [`Tee::record`] gives it).
    fn position(&self, at: usize) -> (u64, u64) {
        let (raw, mut line) = self.record();
        let before = &raw[..at.min(raw.len())];
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        line += before.iter().filter(|&&b| b == b'\n').count() as u64;
        (line, chars_in(&before[line_start..]) + 1)
    }

    /// Where field `index` of the current record starts (a byte of [`Tee::record`]), or
    /// where the record ends if it has fewer fields. Mirrors the CSV parser: a field that
    /// starts with a quote runs to the closing quote (`""` is a quote within it).
    fn field_start(&self, index: usize) -> usize {
        let (raw, _) = self.record();
        let (mut i, mut field) = (0, 0);
        let mut at_field_start = true;
        let mut quoted = false;
        while i < raw.len() {
            if field == index && at_field_start {
                return i;
            }
            let b = raw[i];
            if quoted {
                if b == b'"' {
                    if raw.get(i + 1) == Some(&b'"') {
                        i += 1;
                    } else {
                        quoted = false;
                    }
                }
            } else if at_field_start && b == b'"' {
                quoted = true;
            } else if b == b',' {
                field += 1;
                at_field_start = true;
                i += 1;
                continue;
            } else if b == b'\n' || b == b'\r' {
                return i;
            }
            at_field_start = false;
            i += 1;
        }
        i
    }
}

struct CsvSource<R: BufRead> {
    csv: csv::Reader<Tee<R>>,
    record: csv::ByteRecord,
    /// Where the record after the current one starts, in the file.
    next_record: u64,
    header_read: bool,
}

impl<R: BufRead> CsvSource<R> {
    fn new(input: R) -> Self {
        let tee = Tee { inner: input, buf: Vec::new(), start: 0, offset: 0, line: 1 };
        let csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(tee);
        CsvSource { csv, record: csv::ByteRecord::new(), next_record: 0, header_read: false }
    }

    /// Reads the next record that is not blank into `self.record`; its line, or `None` at
    /// the end.
    fn read_record(&mut self, file: &str) -> Result<Option<u64>, SignalsError> {
        loop {
            let line = self.read_any_record(file)?;
            let blank = self.record.len() == 1 && {
                let only = &self.record[0];
                only.strip_prefix(BOM).unwrap_or(only).trim_ascii().is_empty()
            };
            if line.is_none() || !blank {
                return Ok(line);
            }
        }
    }

    /// Reads the next record into `self.record`; its line, or `None` at the end.
    fn read_any_record(&mut self, file: &str) -> Result<Option<u64>, SignalsError> {
        // The record before is done with: forget it.
        let next = self.next_record;
        self.csv.get_mut().advance_to(next);
        match self.csv.read_byte_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                // Located at the start of the record being read.
                let line = self.csv.get_ref().record().1;
                let message = match e.into_kind() {
                    csv::ErrorKind::Io(e) if e.get_ref().is_some_and(|e| e.is::<RecordTooLong>()) => {
                        return Err(SignalsError::at(file, line, 1, "(text)", RecordTooLong.to_string()));
                    }
                    csv::ErrorKind::Io(e) => format!("cannot read: {e}"),
                    other => format!("{other:?}"),
                };
                return Err(SignalsError::at(file, line, 1, "(file)", message));
            }
        }
        let offset = self.record.position().map_or(0, |p| p.byte());
        self.next_record = self.csv.position().byte();
        let tee = self.csv.get_mut();
        tee.advance_to(offset);
        Ok(Some(tee.record().1))
    }

    /// An error about field `index` of the current record.
    fn error(&self, file: &str, index: usize, field: &str, message: impl Into<String>) -> SignalsError {
        let tee = self.csv.get_ref();
        let (line, column) = tee.position(tee.field_start(index));
        SignalsError::at(file, line, column, field, message)
    }

    /// Field `index` of the current record, as text.
    fn text(&self, file: &str, index: usize) -> Result<&str, SignalsError> {
        self.text_of(file, index, CSV_FIELDS[index])
    }

    /// Field `index` of the current record, as text; `field` names it in an error.
    fn text_of(&self, file: &str, index: usize, field: &str) -> Result<&str, SignalsError> {
        let bytes = &self.record[index];
        std::str::from_utf8(bytes).map_err(|e| {
            let tee = self.csv.get_ref();
            let start = tee.field_start(index);
            let (raw, _) = tee.record();
            // Quotes are ASCII: the first invalid byte from the field's start is the field's.
            let bad = match std::str::from_utf8(&raw[start..]) {
                Err(raw_error) => start + raw_error.valid_up_to(),
                Ok(_) => start,
            };
            let (line, column) = tee.position(bad);
            SignalsError::at(file, line, column, field, not_utf8(&bytes[e.valid_up_to()..]))
        })
    }

    fn next(&mut self, file: &str, order: &mut Order) -> Result<Option<Sample>, SignalsError> {
        if !self.header_read {
            self.header_read = true;
            if self.read_record(file)?.is_none() {
                return Ok(None);
            }
            for i in 0..self.record.len() {
                self.text_of(file, i, "(header)")?;
            }
            // The CSV parser skips a byte order mark only when it comes in one read.
            let header =
                |i: usize| self.record.get(i).map(|f| if i == 0 { f.strip_prefix(BOM).unwrap_or(f) } else { f });
            let differs = (0..CSV_FIELDS.len().max(self.record.len()))
                .find(|&i| header(i) != CSV_FIELDS.get(i).map(|f| f.as_bytes()));
            if let Some(i) = differs {
                let found: Vec<String> = (0..self.record.len())
                    .filter_map(header)
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                let message = format!(
                    "expected the header {CSV_HEADER:?}, not {:?} (a long CSV file has one sample per row)",
                    crate::input::elide(&found.join(","))
                );
                return Err(self.error(file, i, "(header)", message));
            }
        }
        let Some(line) = self.read_record(file)? else { return Ok(None) };
        if self.record.len() != CSV_FIELDS.len() {
            let message = format!("expected 4 fields ({CSV_HEADER}), found {}", self.record.len());
            return Err(self.error(file, self.record.len().min(CSV_FIELDS.len()), "(record)", message));
        }
        let time_text = self.text(file, 0)?;
        let time_s = time_text
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("needs a number of seconds, not {:?}", crate::input::elide(time_text)))
            .and_then(check_time)
            .map_err(|m| self.error(file, 0, "time_s", m))?;
        let replica = self.text(file, 1)?;
        check_replica(replica).map_err(|m| self.error(file, 1, "replica", m))?;
        let signal = signal_named(self.text(file, 2)?).map_err(|m| self.error(file, 2, "signal", m))?;
        let value = read_value(signal, self.text(file, 3)?).map_err(|m| self.error(file, 3, "value", m))?;
        order.check(time_s, replica, signal, line).map_err(|d| {
            let (index, field) = if matches!(d, Disorder::Unsorted(_)) { (0, "time_s") } else { (0, "(sample)") };
            self.error(file, index, field, d.message(time_s, replica, signal, ""))
        })?;
        Ok(Some(Sample { time_s, replica: replica.to_owned(), signal, value }))
    }
}

// ---------------------------------------------------------------------------------------
// NDJSON.

/// A value as JSON carries it: a number, or text.
enum Raw {
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        struct RawVisitor;
        impl Visitor<'_> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Raw, E> {
                Ok(Raw::Number(x))
            }
            fn visit_u64<E: de::Error>(self, x: u64) -> Result<Raw, E> {
                Ok(Raw::Number(x as f64))
            }
            fn visit_i64<E: de::Error>(self, x: i64) -> Result<Raw, E> {
                Ok(Raw::Number(x as f64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Raw, E> {
                Ok(Raw::Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Raw, E> {
                Ok(Raw::Text(s))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NdjsonRecord {
    time_s: f64,
    replica: String,
    signal: String,
    value: Raw,
}

/// A serde_json error's message, without the ` at line L column C` it ends with.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// The field a serde error is about: the key named in a missing or unknown field message
/// (serde_json locates those at the object, not the key), else the path.
fn json_field(path: &str, message: &str) -> String {
    let path = if path == "?" { "." } else { path };
    for prefix in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let key = rest.split('`').next().unwrap_or_default();
            return if path == "." {
                key.to_owned()
            } else if path == key || path.ends_with(&format!(".{key}")) {
                path.to_owned()
            } else {
                format!("{path}.{key}")
            };
        }
    }
    if path == "." { "(record)".to_owned() } else { path.to_owned() }
}

fn ndjson_next<R: BufRead>(
    lines: &mut Lines<R>,
    file: &str,
    order: &mut Order,
) -> Result<Option<Sample>, SignalsError> {
    loop {
        let Some((line, text)) = lines.next_line(file)? else { return Ok(None) };
        let start = text.len() - text.trim_start().len();
        match text.as_bytes().get(start) {
            None => continue,
            Some(b'{') => {}
            Some(_) => {
                let message =
                    r#"expected a JSON object, like {"time_s":0,"replica":"w1","signal":"health_ok","value":1}"#;
                return Err(SignalsError::at(file, line, column(text, start), "(record)", message));
            }
        }
        let at = |key: &str| match locate(text.as_bytes(), &[Step::Key(key)]) {
            Some((_, value)) => column(text, value),
            None => 1,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let record: Result<NdjsonRecord, _> = serde_path_to_error::deserialize(&mut de);
        let record = match record
            .map_err(|e| (e.path().to_string(), e.into_inner()))
            .and_then(|r| de.end().map(|()| r).map_err(|e| (".".to_owned(), e)))
        {
            Ok(record) => record,
            Err((path, e)) => {
                let message = json_message(&e);
                let field = json_field(&path, &message);
                let col = if message.starts_with("unknown field `") {
                    // The key itself (serde_json stops after it).
                    locate(text.as_bytes(), &[Step::Key(&field)]).map_or(1, |(k, _)| column(text, k))
                } else if message.starts_with("duplicate field `") {
                    last_key(text.as_bytes(), &field).map_or(1, |k| column(text, k))
                } else if (e.classify() == serde_json::error::Category::Data || message == "number out of range")
                    && CSV_FIELDS.contains(&path.as_str())
                {
                    // A value of the wrong type or size: at its start (serde_json stops after it).
                    at(&path)
                } else {
                    column(text, e.column().saturating_sub(1))
                };
                return Err(SignalsError::at(file, line, col, &field, message));
            }
        };
        let time_s = check_time(record.time_s).map_err(|m| SignalsError::at(file, line, at("time_s"), "time_s", m))?;
        check_replica(&record.replica).map_err(|m| SignalsError::at(file, line, at("replica"), "replica", m))?;
        let signal =
            signal_named(&record.signal).map_err(|m| SignalsError::at(file, line, at("signal"), "signal", m))?;
        let value = match &record.value {
            Raw::Number(x) => number(signal, *x),
            Raw::Text(s) => read_value(signal, s),
        }
        .map_err(|m| SignalsError::at(file, line, at("value"), "value", m))?;
        order.check(time_s, &record.replica, signal, line).map_err(|d| {
            let field = if matches!(d, Disorder::Unsorted(_)) { "time_s" } else { "(sample)" };
            SignalsError::at(file, line, at("time_s"), field, d.message(time_s, &record.replica, signal, ""))
        })?;
        return Ok(Some(Sample { time_s, replica: record.replica, signal, value }));
    }
}

// ---------------------------------------------------------------------------------------
// Prometheus text exposition.

#[derive(Default)]
struct PromStats {
    /// Lines that were a metric's sample (signals or not).
    metric_lines: u64,
}

/// A label: its name, its value (unescaped), and the byte where its value's quote starts.
struct Label<'a> {
    name: &'a str,
    value: std::borrow::Cow<'a, str>,
    at: usize,
}

/// What went wrong on a line: the byte it is at, the field, the message.
type LineError = (usize, &'static str, String);

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

/// The name starting at byte `i` of `b` (`[a-zA-Z_:][a-zA-Z0-9_:]*`, without `:` for a
/// label), and the byte after it.
fn name_at(b: &[u8], i: usize, colon: bool) -> usize {
    let ok = |c: u8, first: bool| {
        c.is_ascii_alphabetic() || c == b'_' || (colon && c == b':') || (!first && c.is_ascii_digit())
    };
    let mut j = i;
    while j < b.len() && ok(b[j], j == i) {
        j += 1;
    }
    j
}

/// Parses a label set starting at `{` (byte `i`): the labels and the byte after `}`.
fn parse_labels(text: &str, mut i: usize) -> Result<(Vec<Label<'_>>, usize), LineError> {
    let b = text.as_bytes();
    let mut labels: Vec<Label<'_>> = Vec::new();
    i += 1;
    loop {
        i = skip_blanks(b, i);
        if b.get(i) == Some(&b'}') {
            return Ok((labels, i + 1));
        }
        let end = name_at(b, i, false);
        if end == i {
            return Err((i, "labels", "expected a label name or } in the label set".to_owned()));
        }
        let name = &text[i..end];
        if labels.iter().any(|l| l.name == name) {
            return Err((i, "labels", format!("label {name} given twice")));
        }
        i = skip_blanks(b, end);
        if b.get(i) != Some(&b'=') {
            return Err((i, "labels", format!("expected = after the label name {name}")));
        }
        i = skip_blanks(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return Err((i, "labels", format!("the value of label {name} must be in double quotes")));
        }
        let at = i;
        i += 1;
        let start = i;
        let mut unescaped: Option<String> = None;
        loop {
            match b.get(i) {
                None => return Err((at, "labels", format!("the value of label {name} has no closing quote"))),
                Some(b'"') => break,
                Some(b'\\') => {
                    let s = unescaped.get_or_insert_with(|| text[start..i].to_owned());
                    match b.get(i + 1) {
                        Some(b'\\') => s.push('\\'),
                        Some(b'"') => s.push('"'),
                        Some(b'n') => s.push('\n'),
                        _ => {
                            return Err((
                                i,
                                "labels",
                                format!("invalid escape in the value of label {name} (only \\\\, \\\" and \\n)"),
                            ));
                        }
                    }
                    i += 2;
                }
                Some(_) => {
                    let c = text[i..].chars().next().unwrap_or_default();
                    if let Some(s) = &mut unescaped {
                        s.push(c);
                    }
                    i += c.len_utf8().max(1);
                }
            }
        }
        let value = match unescaped {
            Some(s) => std::borrow::Cow::Owned(s),
            None => std::borrow::Cow::Borrowed(&text[start..i]),
        };
        labels.push(Label { name, value, at });
        i = skip_blanks(b, i + 1);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok((labels, i + 1)),
            _ => return Err((i, "labels", "expected , or } after a label".to_owned())),
        }
    }
}

/// The signal a Prometheus metric name stands for: the signal's name, optionally prefixed.
fn metric_signal(name: &str) -> Option<Signal> {
    Signal::from_name(name.strip_prefix(METRIC_PREFIX).unwrap_or(name))
}

/// A Prometheus sample's value, by the conventions docs/signals.md gives: `transport` with a
/// `state` label and `content_digest` with a `digest` label are 1 when the state (the digest)
/// holds and 0 when not (no sample); anything else is a number. The error names the label
/// or `value`.
fn prometheus_value(
    signal: Signal,
    state: Option<&str>,
    digest: Option<&str>,
    x: f64,
) -> Result<Option<Value>, (&'static str, String)> {
    let label = match signal.kind() {
        ValueKind::Transport => state.map(|s| ("state", s)),
        ValueKind::Digest => digest.map(|d| ("digest", d)),
        _ => None,
    };
    let Some((label, text)) = label else { return number(signal, x).map(Some).map_err(|m| ("value", m)) };
    let value = read_value(signal, text).map_err(|m| (label, m))?;
    if x == 1.0 {
        Ok(Some(value))
    } else if x == 0.0 {
        Ok(None)
    } else {
        Err(("value", format!("{signal}{{{label}=...}} must be 1 (it holds) or 0 (it does not), not {x}")))
    }
}

fn parse_number(text: &str) -> Option<f64> {
    // What Prometheus writes: decimal numbers, `NaN`, `+Inf` and `-Inf` (Rust's parser
    // takes the last three whatever their case).
    text.parse().ok()
}

/// A signal's sample on a line of Prometheus text.
struct PromSample {
    sample: Sample,
    /// Whether the line had a timestamp.
    stamped: bool,
    /// The byte of its timestamp (or of its value, without one).
    at: usize,
}

/// One line of Prometheus text: `Ok(None)` if it is not a signal's sample.
fn prometheus_line(text: &str, stats: &mut PromStats) -> Result<Option<PromSample>, LineError> {
    let b = text.as_bytes();
    let start = skip_blanks(b, 0);
    if start == b.len() || b[start] == b'#' {
        return Ok(None);
    }
    let end = name_at(b, start, true);
    if end == start {
        return Err((start, "name", "expected a metric name, a comment (#) or a blank line".to_owned()));
    }
    let name = &text[start..end];
    let mut i = end;
    let labels = if b.get(i) == Some(&b'{') {
        let (labels, after) = parse_labels(text, i)?;
        i = after;
        labels
    } else {
        Vec::new()
    };
    stats.metric_lines += 1;
    let replica = labels.iter().find(|l| l.name == "replica");
    let Some(signal) = metric_signal(name) else {
        return match replica {
            // A real /metrics has hundreds of other metrics: skipped, unless one was meant
            // as a signal (it has a replica label).
            None => Ok(None),
            Some(_) => Err((
                start,
                "name",
                format!(
                    "{}; a metric with a replica label must be a signal (optionally prefixed {METRIC_PREFIX})",
                    Signal::unknown(name)
                ),
            )),
        };
    };
    let Some(replica) = replica else {
        return Err((start, "replica", format!("{name} has no replica label (write {name}{{replica=\"w1\"}} ...)")));
    };
    check_replica(&replica.value).map_err(|m| (replica.at, "replica", m))?;
    let value_at = skip_blanks(b, i);
    if value_at == i && i < b.len() {
        return Err((i, "value", "expected a space, then the value".to_owned()));
    }
    let value_end = value_at + b[value_at..].iter().position(|&c| is_blank(c)).unwrap_or(b.len() - value_at);
    let value_text = &text[value_at..value_end];
    if value_text.is_empty() {
        return Err((value_at, "value", format!("{name} has no value")));
    }
    let x = parse_number(value_text)
        .ok_or_else(|| (value_at, "value", format!("needs a number, not {:?}", crate::input::elide(value_text))))?;
    let ts_at = skip_blanks(b, value_end);
    let ts_end = ts_at + b[ts_at..].iter().position(|&c| is_blank(c)).unwrap_or(b.len() - ts_at);
    let (time_s, stamped) = if ts_at == ts_end {
        (0.0, false)
    } else {
        let ts_text = &text[ts_at..ts_end];
        let ms: i64 = ts_text.parse().map_err(|_| {
            (
                ts_at,
                "timestamp",
                format!("must be whole milliseconds since the epoch, not {:?}", crate::input::elide(ts_text)),
            )
        })?;
        (ms as f64 / 1000.0, true)
    };
    let rest = skip_blanks(b, ts_end);
    if rest < b.len() {
        return Err((rest, "(line)", "unexpected text after the timestamp".to_owned()));
    }
    let label = |n: &str| labels.iter().find(|l| l.name == n);
    let value = prometheus_value(signal, label("state").map(|l| &*l.value), label("digest").map(|l| &*l.value), x)
        .map_err(|(field, m)| {
            let at = if field == "value" { value_at } else { label(field).map_or(value_at, |l| l.at) };
            (at, field, m)
        })?;
    let at = if stamped { ts_at } else { value_at };
    Ok(value.map(|value| PromSample {
        sample: Sample { time_s, replica: replica.value.to_string(), signal, value },
        stamped,
        at,
    }))
}

fn prometheus_next<R: BufRead>(
    lines: &mut Lines<R>,
    stats: &mut PromStats,
    file: &str,
    order: &mut Order,
) -> Result<Option<Sample>, SignalsError> {
    loop {
        let Some((line, text)) = lines.next_line(file)? else { return Ok(None) };
        let parsed = prometheus_line(text, stats)
            .map_err(|(at, field, m)| SignalsError::at(file, line, column(text, at), field, m))?;
        let Some(PromSample { sample, stamped, at }) = parsed else { continue };
        let (time_s, signal) = (sample.time_s, sample.signal);
        order.check(time_s, &sample.replica, signal, line).map_err(|d| {
            let (field, hint) = match d {
                Disorder::Unsorted(_) => ("timestamp", ""),
                Disorder::Duplicate(_) if !stamped => (
                    "(sample)",
                    " (a sample without a timestamp is at time 0, one snapshot: add timestamps, in milliseconds, to \
                     give more than one)",
                ),
                Disorder::Duplicate(_) => ("(sample)", ""),
            };
            SignalsError::at(file, line, column(text, at), field, d.message(time_s, &sample.replica, signal, hint))
        })?;
        return Ok(Some(sample));
    }
}

// ---------------------------------------------------------------------------------------
// Prometheus query_range / query JSON.

#[derive(Deserialize)]
struct QueryHead {
    status: Option<String>,
    data: Option<QueryHeadData>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct QueryHeadData {
    #[serde(rename = "resultType")]
    result_type: Option<String>,
}

#[derive(Deserialize)]
struct QueryBody {
    data: QueryData,
}

#[derive(Deserialize)]
struct QueryData {
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Option<Vec<(f64, Raw)>>,
    value: Option<(f64, Raw)>,
}

/// A step of a path into a JSON document.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn path_text(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn json_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The byte after the JSON string starting at byte `i` (a quote).
fn json_skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The byte after the JSON value starting at byte `i`.
fn json_skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => json_skip_string(b, i),
        b'{' | b'[' => {
            let (mut j, mut depth) = (i, 0usize);
            loop {
                match b.get(j)? {
                    b'"' => j = json_skip_string(b, j)?,
                    b'{' | b'[' => {
                        depth += 1;
                        j += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    _ => j += 1,
                }
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
            Some(j)
        }
    }
}

/// Where the value at `path` is in the JSON document `b`: the byte where its member starts
/// (the key's quote for an object's member) and the byte where its value starts. `None` if
/// it is not there (a key written with escapes is not found).
fn locate(b: &[u8], path: &[Step]) -> Option<(usize, usize)> {
    let mut i = json_ws(b, 0);
    let mut member = i;
    for step in path {
        match *step {
            Step::Key(key) => {
                if b.get(i) != Some(&b'{') {
                    return None;
                }
                i += 1;
                loop {
                    i = json_ws(b, i);
                    if b.get(i) != Some(&b'"') {
                        return None;
                    }
                    let end = json_skip_string(b, i)?;
                    let found = &b[i + 1..end - 1] == key.as_bytes();
                    member = i;
                    i = json_ws(b, end);
                    if b.get(i) != Some(&b':') {
                        return None;
                    }
                    i = json_ws(b, i + 1);
                    if found {
                        break;
                    }
                    i = json_ws(b, json_skip_value(b, i)?);
                    if b.get(i) != Some(&b',') {
                        return None;
                    }
                    i += 1;
                }
            }
            Step::Index(n) => {
                if b.get(i) != Some(&b'[') {
                    return None;
                }
                i = json_ws(b, i + 1);
                for _ in 0..n {
                    i = json_ws(b, json_skip_value(b, i)?);
                    if b.get(i) != Some(&b',') {
                        return None;
                    }
                    i = json_ws(b, i + 1);
                }
                if b.get(i).is_none_or(|&c| c == b']') {
                    return None;
                }
                member = i;
            }
        }
    }
    Some((member, i))
}

/// Where the last member named `key` of the object `b` holds starts (its key's quote).
fn last_key(b: &[u8], key: &str) -> Option<usize> {
    let mut i = json_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    loop {
        i = json_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return found;
        }
        let Some(end) = json_skip_string(b, i) else { return found };
        if &b[i + 1..end - 1] == key.as_bytes() {
            found = Some(i);
        }
        i = json_ws(b, end);
        if b.get(i) != Some(&b':') {
            return found;
        }
        let Some(after) = json_skip_value(b, json_ws(b, i + 1)) else { return found };
        i = json_ws(b, after);
        if b.get(i) != Some(&b',') {
            return found;
        }
        i += 1;
    }
}

/// The line and column (from 1, in characters) of byte `at` of `text`.
fn line_col(text: &str, at: usize) -> (u64, u64) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() as u64 + 1, before[line_start..].chars().count() as u64 + 1)
}

/// The byte serde_json's (line, column) stands for (its column counts bytes).
fn json_offset(text: &str, line: usize, col: usize) -> usize {
    let line_start =
        if line <= 1 { 0 } else { text.match_indices('\n').nth(line - 2).map_or(text.len(), |(i, _)| i + 1) };
    line_start + col.saturating_sub(1)
}

fn read_query<R: BufRead>(file: &str, input: R) -> Result<Vec<Sample>, SignalsError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_QUERY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SignalsError::at(file, 1, 1, "(file)", format!("cannot read: {e}")))?;
    if bytes.len() > MAX_QUERY_BYTES {
        let (line, col) = line_col(&String::from_utf8_lossy(&bytes), MAX_QUERY_BYTES);
        return Err(SignalsError::at(file, line, col, "(file)", format!("larger than {MAX_QUERY_BYTES} bytes")));
    }
    let body = bytes.strip_prefix(BOM).unwrap_or(&bytes);
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            let good = e.valid_up_to();
            let (line, col) = line_col(std::str::from_utf8(&body[..good]).unwrap_or_default(), good);
            return Err(SignalsError::at(file, line, col, "(text)", not_utf8(&body[good..])));
        }
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let json_error = |path: Option<&serde_path_to_error::Path>, e: &serde_json::Error| {
        let message = json_message(e);
        let field = json_field(&path.map_or_else(|| ".".to_owned(), |p| p.to_string()), &message);
        // A value of the wrong type or length is located at its start; a syntax error where
        // serde_json stopped.
        let steps: Option<Vec<Step>> = path.and_then(|p| {
            p.iter()
                .map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Step::Key(key)),
                    _ => None,
                })
                .collect()
        });
        let located = match (e.classify(), &steps) {
            (serde_json::error::Category::Data, Some(steps)) if !message.starts_with("missing field") => {
                locate(text.as_bytes(), steps).map(|(_, v)| v)
            }
            _ => None,
        };
        let (line, col) = line_col(text, located.unwrap_or_else(|| json_offset(text, e.line(), e.column())));
        SignalsError::at(file, line, col, &field, message)
    };
    let at = |path: &[Step], field: &str, message: String| {
        let (line, col) = line_col(text, locate(text.as_bytes(), path).map_or(0, |(_, v)| v));
        let field = if field.is_empty() { path_text(path) } else { field.to_owned() };
        SignalsError::at(file, line, col, &field, message)
    };
    let parse = |text: &str| -> Result<QueryHead, SignalsError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let head: QueryHead =
            serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(Some(e.path()), e.inner()))?;
        de.end().map_err(|e| json_error(None, &e))?;
        Ok(head)
    };
    let head = parse(text)?;
    match head.status.as_deref() {
        Some("success") => {}
        Some("error") => {
            let kind = head.error_type.as_deref().unwrap_or("error");
            let what = head.error.as_deref().unwrap_or("(no message)");
            return Err(at(&[Step::Key("status")], "status", format!("the query failed: {kind}: {what}")));
        }
        Some(other) => {
            return Err(at(
                &[Step::Key("status")],
                "status",
                format!("expected \"success\", not {:?}", crate::input::elide(other)),
            ));
        }
        None => {
            return Err(SignalsError::at(
                file,
                1,
                1,
                "status",
                "not a Prometheus API response: no status (expected {\"status\":\"success\",\"data\":...})",
            ));
        }
    }
    let result_type = head.data.as_ref().and_then(|d| d.result_type.clone());
    let vector = match result_type.as_deref() {
        Some("matrix") => false,
        Some("vector") => true,
        Some(other) => {
            return Err(at(
                &[Step::Key("data"), Step::Key("resultType")],
                "",
                format!(
                    "resultType {:?} carries no series: query a signal's metric by name (e.g. heartbeat_age_s)",
                    crate::input::elide(other)
                ),
            ));
        }
        None if head.data.is_none() => {
            return Err(SignalsError::at(file, 1, 1, "data", "a successful response without data"));
        }
        None => {
            return Err(at(&[Step::Key("data")], "data.resultType", "missing: expected matrix or vector".to_owned()));
        }
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let body: QueryBody =
        serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(Some(e.path()), e.inner()))?;

    // Every sample, with where it came from (series, point), then merged into time order.
    let mut samples: Vec<(Sample, usize, usize)> = Vec::new();
    for (s, series) in body.data.result.iter().enumerate() {
        let series_path = [Step::Key("data"), Step::Key("result"), Step::Index(s)];
        let metric_path = [series_path.as_slice(), &[Step::Key("metric")]].concat();
        let in_metric = |key: &'static str| [metric_path.as_slice(), &[Step::Key(key)]].concat();
        let replica = series.metric.get("replica");
        let Some(name) = series.metric.get("__name__") else {
            let path = in_metric("__name__");
            let message = "the series has no __name__: query a signal's metric by name (an aggregation like \
                           sum() drops it; keep it with `sum by (__name__, replica)` or label_replace)";
            return Err(at(&metric_path, &path_text(&path), message.to_owned()));
        };
        let Some(signal) = metric_signal(name) else {
            if replica.is_none() {
                continue;
            }
            let message = format!(
                "{}; a series with a replica label must be a signal (optionally prefixed {METRIC_PREFIX})",
                Signal::unknown(name)
            );
            return Err(at(&in_metric("__name__"), "", message));
        };
        let Some(replica) = replica else {
            return Err(at(&metric_path, &path_text(&in_metric("replica")), format!("{name} has no replica label")));
        };
        check_replica(replica).map_err(|m| at(&in_metric("replica"), "", m))?;
        let points: Vec<&(f64, Raw)> = match (vector, &series.values, &series.value) {
            (false, Some(values), _) => values.iter().collect(),
            (true, _, Some(value)) => vec![value],
            (false, ..) => return Err(at(&series_path, "", "a matrix series needs \"values\"".to_owned())),
            (true, ..) => return Err(at(&series_path, "", "a vector series needs \"value\"".to_owned())),
        };
        for (p, (time_s, raw)) in points.into_iter().enumerate() {
            let point_path: Vec<Step> = if vector {
                [series_path.as_slice(), &[Step::Key("value")]].concat()
            } else {
                [series_path.as_slice(), &[Step::Key("values"), Step::Index(p)]].concat()
            };
            let time_s = check_time(*time_s).map_err(|m| at(&point_path, "", m))?;
            let value_path = [point_path.as_slice(), &[Step::Index(1)]].concat();
            let x = match raw {
                Raw::Number(x) => *x,
                Raw::Text(t) => parse_number(t).ok_or_else(|| {
                    at(&value_path, "", format!("{signal} needs a number, not {:?}", crate::input::elide(t)))
                })?,
            };
            let state = series.metric.get("state").map(String::as_str);
            let digest = series.metric.get("digest").map(String::as_str);
            let value = match prometheus_value(signal, state, digest, x) {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(("value", m)) => return Err(at(&value_path, "", m)),
                Err((label, m)) => return Err(at(&[metric_path.as_slice(), &[Step::Key(label)]].concat(), "", m)),
            };
            samples.push((Sample { time_s, replica: replica.clone(), signal, value }, s, p));
        }
    }
    samples.sort_by(|(a, ..), (b, ..)| {
        a.time_s.total_cmp(&b.time_s).then_with(|| a.replica.cmp(&b.replica)).then_with(|| a.signal.cmp(&b.signal))
    });
    for pair in samples.windows(2) {
        let ((a, sa, pa), (b, sb, pb)) = (&pair[0], &pair[1]);
        if a.time_s == b.time_s && a.replica == b.replica && a.signal == b.signal {
            let point = |s: usize, p: usize| -> Vec<Step> {
                let mut path = vec![Step::Key("data"), Step::Key("result"), Step::Index(s)];
                path.extend(if vector { vec![Step::Key("value")] } else { vec![Step::Key("values"), Step::Index(p)] });
                path
            };
            let hint = if sa != sb {
                " (two series of the same signal and replica: filter or aggregate away their other labels)"
            } else {
                ""
            };
            let message = format!(
                "duplicate: {} {} at {} is also at {}{hint}",
                crate::input::elide(&b.replica),
                b.signal,
                b.time_s,
                path_text(&point(*sa, *pa))
            );
            return Err(at(&point(*sb, *pb), "", message));
        }
    }
    Ok(samples.into_iter().map(|(sample, ..)| sample).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Transport;

    fn read_bytes(format: Format, bytes: &[u8]) -> Result<Vec<Sample>, String> {
        Reader::new("f", format, bytes).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    fn read(format: Format, text: &str) -> Result<Vec<Sample>, String> {
        read_bytes(format, text.as_bytes())
    }

    /// The error reading `text`, which must fail.
    fn error(format: Format, text: &str) -> String {
        match read(format, text) {
            Ok(samples) => panic!("{format} {text:?} read as {samples:?}"),
            Err(e) => e,
        }
    }

    fn sample(time_s: f64, replica: &str, signal: Signal, value: Value) -> Sample {
        Sample { time_s, replica: replica.to_owned(), signal, value }
    }

    fn num(x: f64) -> Value {
        Value::Number(x)
    }

    const H: &str = "time_s,replica,signal,value\n";

    #[test]
    fn formats_are_detected_by_extension_then_by_content() {
        assert_eq!(Format::detect("a.CSV", b"{"), Format::Csv);
        assert_eq!(Format::detect("a.ndjson", b""), Format::Ndjson);
        assert_eq!(Format::detect("a.jsonl", b""), Format::Ndjson);
        for name in ["a.prom", "a.txt", "a.metrics"] {
            assert_eq!(Format::detect(name, b"time_s,replica,signal,value\n"), Format::Prometheus, "{name}");
        }
        assert_eq!(Format::detect("dir.v2/a.json", b""), Format::QueryRange);
        assert_eq!(Format::detect("-", b"\xEF\xBB\xBF \n {\n  \"status\": \"success\"}"), Format::QueryRange);
        assert_eq!(Format::detect("-", b"{\"time_s\":1}"), Format::Ndjson);
        assert_eq!(Format::detect("-", b"\n\ntime_s,replica,signal,value\r\n1,w1"), Format::Csv);
        assert_eq!(Format::detect("x.log", b"time_s,replica,signal,value,extra\n"), Format::Csv);
        assert_eq!(Format::detect("-", b"# HELP up\nup 1\n"), Format::Prometheus);
        assert_eq!(Format::detect("-", b""), Format::Prometheus);
        for format in Format::ALL {
            assert_eq!(Format::from_name(format.name()), Some(format));
        }
        assert_eq!(Format::ALL.map(Format::name), ["csv", "ndjson", "prometheus", "query-range"]);
    }

    #[test]
    fn csv_reads_every_kind_of_value() {
        let text = "\u{feff}time_s,replica,signal,value\r\n0,w1,heartbeat_age_s,0.25\r\n\r\n0,w1,transport,half-open\n\
                    0,\"w,2\",health_ok,1\n1.5,w1,content_digest,ab12cd\n1.5,w1,acked_index, 17 \n\
                    1.5,w1,\"data_ok\",\"0\"";
        assert_eq!(
            read(Format::Csv, text).unwrap(),
            [
                sample(0.0, "w1", Signal::HeartbeatAge, num(0.25)),
                sample(0.0, "w1", Signal::Transport, Value::Transport(Transport::HalfOpen)),
                sample(0.0, "w,2", Signal::HealthOk, num(1.0)),
                sample(1.5, "w1", Signal::ContentDigest, Value::Digest("ab12cd".to_owned())),
                sample(1.5, "w1", Signal::AckedIndex, num(17.0)),
                sample(1.5, "w1", Signal::DataOk, num(0.0)),
            ]
        );
    }

    #[test]
    fn csv_errors_name_their_line_column_and_field() {
        let known = Signal::unknown("bogus");
        let cases: &[(&str, &str)] = &[
            (
                "time,replica,signal,value\n",
                "f:1:1: (header): expected the header \"time_s,replica,signal,value\", not \"time,replica,signal,value\" (a long CSV file has one sample per row)",
            ),
            (
                "time_s,replica,signal\n1,w1,health_ok\n",
                "f:1:22: (header): expected the header \"time_s,replica,signal,value\", not \"time_s,replica,signal\" (a long CSV file has one sample per row)",
            ),
            (
                "1,w1,health_ok,1\n",
                "f:1:1: (header): expected the header \"time_s,replica,signal,value\", not \"1,w1,health_ok,1\" (a long CSV file has one sample per row)",
            ),
            ("abc,w1,health_ok,1\n", "f:2:1: time_s: needs a number of seconds, not \"abc\""),
            ("NaN,w1,health_ok,1\n", "f:2:1: time_s: must be a finite number of seconds, not NaN"),
            ("-inf,w1,health_ok,1\n", "f:2:1: time_s: must be a finite number of seconds, not -inf"),
            ("1,,health_ok,1\n", "f:2:3: replica: empty (every sample names its replica)"),
            ("1, w1,health_ok,1\n", "f:2:3: replica: \" w1\" has white space around it"),
            ("1,\"w\n1\",health_ok,1\n", "f:2:3: replica: \"w\\n1\" has a control character in it"),
            ("1,w1,heartbeat_age_s,-1\n", "f:2:22: value: heartbeat_age_s is negative (-1); it counts up from 0"),
            ("1,w1,health_ok,0.5\n", "f:2:16: value: health_ok must be 0 or 1, not 0.5"),
            ("1,w1,acked_index,NaN\n", "f:2:18: value: acked_index is NaN"),
            ("1,w1,ack_latency_ms,inf\n", "f:2:21: value: ack_latency_ms is infinite"),
            ("1,w1,data_latency_ms,fast\n", "f:2:22: value: data_latency_ms needs a number, not \"fast\""),
            (
                "1,w1,transport,sideways\n",
                "f:2:16: value: transport must be open, half-open, closed or refused, not \"sideways\"",
            ),
            ("1,w1,content_digest,a b\n", "f:2:21: value: content_digest must be one word, not \"a b\""),
            ("1,w1,health_ok\n", "f:2:15: (record): expected 4 fields (time_s,replica,signal,value), found 3"),
            ("1,w1,health_ok,1,2\n", "f:2:18: (record): expected 4 fields (time_s,replica,signal,value), found 5"),
            // A record that spans lines: the error is where its field is.
            (
                "1,\"w\"\"\n1\",health_ok\n",
                "f:3:13: (record): expected 4 fields (time_s,replica,signal,value), found 3",
            ),
            ("\n\n1,w1,health_ok,1\r\n\r\n2,\"w1\",\"health\"\"_ok\",1\r\n", ""),
            (
                "2,w1,health_ok,1\n1,w1,health_ok,1\n",
                "f:3:1: time_s: unsorted: 1 comes after 2 (sort the samples by time)",
            ),
            (
                "1,w1,health_ok,1\n1,w2,health_ok,1\n1,w1,data_ok,1\n1,w1,health_ok,0\n",
                "f:5:1: (sample): duplicate: w1 health_ok at 1 was already given on line 2",
            ),
        ];
        for (body, expected) in cases {
            let text = if body.starts_with("time") || body.starts_with("1,w1,health_ok,1\n") && !body.contains("w2") {
                body.to_string()
            } else {
                format!("{H}{body}")
            };
            let expected = if expected.is_empty() {
                format!("f:6:8: signal: {}", Signal::unknown("health\"_ok"))
            } else {
                expected.to_string()
            };
            assert_eq!(error(Format::Csv, &text), expected, "{text:?}");
        }
        assert_eq!(error(Format::Csv, &format!("{H}1,w1,bogus,1\n")), format!("f:2:6: signal: {known}"));
        // The same time again, for another replica or signal, or a later time, is fine.
        let fine = format!("{H}1,w1,health_ok,1\n1,w2,health_ok,1\n1,w1,data_ok,1\n2,w1,health_ok,1\n");
        assert_eq!(read(Format::Csv, &fine).unwrap().len(), 4);
    }

    #[test]
    fn ndjson_reads_numbers_and_strings() {
        let text = "{\"time_s\":0,\"replica\":\"w1\",\"signal\":\"heartbeat_age_s\",\"value\":0.5}\r\n\n   \n\
                    {\"value\":\"12.5\",\"signal\":\"ack_latency_ms\",\"replica\":\"w1\",\"time_s\":1}\n\
                    { \"time_s\": 1, \"replica\": \"w1\", \"signal\": \"transport\", \"value\": \"refused\" }\n\
                    {\"time_s\":1,\"replica\":\"w1\",\"signal\":\"content_digest\",\"value\":\"ab12cd\"}\n\
                    {\"time_s\":2,\"replica\":\"w1\",\"signal\":\"content_digest\",\"value\":42}";
        assert_eq!(
            read(Format::Ndjson, text).unwrap(),
            [
                sample(0.0, "w1", Signal::HeartbeatAge, num(0.5)),
                sample(1.0, "w1", Signal::AckLatency, num(12.5)),
                sample(1.0, "w1", Signal::Transport, Value::Transport(Transport::Refused)),
                sample(1.0, "w1", Signal::ContentDigest, Value::Digest("ab12cd".to_owned())),
                sample(2.0, "w1", Signal::ContentDigest, Value::Digest("42".to_owned())),
            ]
        );
    }

    #[test]
    fn ndjson_errors_name_their_line_column_and_field() {
        let line = |time: &str, replica: &str, signal: &str, value: &str| {
            format!("{{\"time_s\":{time},\"replica\":{replica},\"signal\":{signal},\"value\":{value}}}")
        };
        let ok = line("1", "\"w1\"", "\"health_ok\"", "1");
        let cases: Vec<(String, String)> = vec![
            (format!("{ok}\n{}", &ok[..ok.len() - 1]), "f:2:57: (record): EOF while parsing an object".into()),
            (format!("{ok} x"), "f:1:60: (record): trailing characters".into()),
            ("[1, 2]".into(), "f:1:1: (record): expected a JSON object, like {\"time_s\":0,\"replica\":\"w1\",\"signal\":\"health_ok\",\"value\":1}".into()),
            (format!("{},\"x\":2}}", &ok[..ok.len() - 1]), "f:1:59: x: unknown field `x`, expected one of `time_s`, `replica`, `signal`, `value`".into()),
            (format!("{},\"value\":1}}", &ok[..ok.len() - 1]), "f:1:59: value: duplicate field `value`".into()),
            ("{\"time_s\":1,\"replica\":\"w1\",\"signal\":\"health_ok\"}".into(), "f:1:48: value: missing field `value`".into()),
            (line("\"a\"", "\"w1\"", "\"health_ok\"", "1"), "f:1:11: time_s: invalid type: string \"a\", expected f64".into()),
            (line("1e999", "\"w1\"", "\"health_ok\"", "1"), "f:1:11: time_s: number out of range".into()),
            (line("1", "\"w1\"", "\"health_ok\"", "[1]"), "f:1:57: value: invalid type: sequence, expected a number or a string".into()),
            (line("1", "\"w1\"", "\"health_ok\"", "null"), "f:1:57: value: invalid type: null, expected a number or a string".into()),
            (line("1", "\"\"", "\"health_ok\"", "1"), "f:1:23: replica: empty (every sample names its replica)".into()),
            (line("1", "\"w1\"", "\"bogus\"", "1"), format!("f:1:37: signal: {}", Signal::unknown("bogus"))),
            (line("1", "\"w1\"", "\"health_ok\"", "2"), "f:1:57: value: health_ok must be 0 or 1, not 2".into()),
            (line("1", "\"w1\"", "\"retransmits\"", "-3"), "f:1:59: value: retransmits is negative (-3); it counts up from 0".into()),
            (line("1", "\"w1\"", "\"retransmits\"", "\"NaN\""), "f:1:59: value: retransmits is NaN".into()),
            (line("1", "\"w1\"", "\"transport\"", "1"), "f:1:57: value: transport must be open, half-open, closed or refused, not the number 1 (in Prometheus, use a state label)".into()),
            (format!("{}\n{ok}", line("2", "\"w1\"", "\"health_ok\"", "1")), "f:2:11: time_s: unsorted: 1 comes after 2 (sort the samples by time)".into()),
            (format!("{ok}\n\n{ok}"), "f:3:11: (sample): duplicate: w1 health_ok at 1 was already given on line 1".into()),
        ];
        for (text, expected) in cases {
            assert_eq!(error(Format::Ndjson, &text), expected, "{text:?}");
        }
    }

    #[test]
    fn prometheus_reads_a_scrape() {
        let text = "# HELP faultline_heartbeat_age_s Seconds since the leader heard the replica.\n\
                    # TYPE faultline_heartbeat_age_s gauge\n\
                    faultline_heartbeat_age_s{replica=\"w1\",job=\"kv\"} 0.4 1700000000000\n\
                    process_cpu_seconds_total 12.5\n\
                    http_requests_total{code=\"200\",method=\"get\"} 1027 1395066363000\n\
                    transport{replica=\"w1\",state=\"open\"} 1 1700000000000\n\
                    transport{replica=\"w1\",state=\"half-open\"} 0 1700000000000\n\
                    content_digest{replica=\"w1\",digest=\"ab12cd\"} 1 1700000000000\n\
                    \t content_digest{replica=\"w2\"}   42   1700000000000  \r\n\
                    \n\
                    health_ok{ replica = \"w\\\"3\\\\\" , } 1 1700000000500\n\
                    faultline_health_ok{replica=\"w\\n4\"} 0 1700000000500\n\
                    # EOF\n";
        assert_eq!(
            read(Format::Prometheus, text).unwrap_err(),
            "f:12:29: replica: \"w\\n4\" has a control character in it"
        );
        let text = text.replace("w\\n4", "w4");
        assert_eq!(
            read(Format::Prometheus, &text).unwrap(),
            [
                sample(1_700_000_000.0, "w1", Signal::HeartbeatAge, num(0.4)),
                sample(1_700_000_000.0, "w1", Signal::Transport, Value::Transport(Transport::Open)),
                sample(1_700_000_000.0, "w1", Signal::ContentDigest, Value::Digest("ab12cd".to_owned())),
                sample(1_700_000_000.0, "w2", Signal::ContentDigest, Value::Digest("42".to_owned())),
                sample(1_700_000_000.5, "w\"3\\", Signal::HealthOk, num(1.0)),
                sample(1_700_000_000.5, "w4", Signal::HealthOk, num(0.0)),
            ]
        );
        // One snapshot (what `curl host/metrics` gives): every sample at time 0.
        let snapshot = "heartbeat_age_s{replica=\"w1\"} 1.5\nheartbeat_age_s{replica=\"w2\"} 9\n";
        let samples = read(Format::Prometheus, snapshot).unwrap();
        assert_eq!(
            samples.iter().map(|s| (s.time_s, s.replica.as_str())).collect::<Vec<_>>(),
            [(0.0, "w1"), (0.0, "w2")]
        );
    }

    #[test]
    fn prometheus_errors_name_their_line_column_and_field() {
        let cases: Vec<(&str, String)> = vec![
            ("up{replica=\"w1\"} 1", format!("f:1:1: name: {}; a metric with a replica label must be a signal (optionally prefixed faultline_)", Signal::unknown("up"))),
            ("# TYPE x gauge\nheartbeat_age_s 1", "f:2:1: replica: heartbeat_age_s has no replica label (write heartbeat_age_s{replica=\"w1\"} ...)".into()),
            ("{replica=\"w1\"} 1", "f:1:1: name: expected a metric name, a comment (#) or a blank line".into()),
            ("health_ok{replica=\"\"} 1", "f:1:19: replica: empty (every sample names its replica)".into()),
            ("health_ok{replica=\"w1\",replica=\"w2\"} 1", "f:1:24: labels: label replica given twice".into()),
            ("health_ok{replica=\"w\\x\"} 1", "f:1:21: labels: invalid escape in the value of label replica (only \\\\, \\\" and \\n)".into()),
            ("health_ok{replica=\"w1} 1", "f:1:19: labels: the value of label replica has no closing quote".into()),
            ("health_ok{replica=w1} 1", "f:1:19: labels: the value of label replica must be in double quotes".into()),
            ("health_ok{replica=\"w1\" job=\"x\"} 1", "f:1:24: labels: expected , or } after a label".into()),
            ("health_ok{replica=\"w1\"}1", "f:1:24: value: expected a space, then the value".into()),
            ("health_ok{replica=\"w1\"}", "f:1:24: value: health_ok has no value".into()),
            ("health_ok{replica=\"w1\"} abc", "f:1:25: value: needs a number, not \"abc\"".into()),
            ("health_ok{replica=\"w1\"} 1 1.5", "f:1:27: timestamp: must be whole milliseconds since the epoch, not \"1.5\"".into()),
            ("health_ok{replica=\"w1\"} 1 1000 x", "f:1:32: (line): unexpected text after the timestamp".into()),
            ("health_ok{replica=\"w1\"} 2", "f:1:25: value: health_ok must be 0 or 1, not 2".into()),
            ("heartbeat_age_s{replica=\"w1\"} NaN", "f:1:31: value: heartbeat_age_s is NaN".into()),
            ("heartbeat_age_s{replica=\"w1\"} +Inf", "f:1:31: value: heartbeat_age_s is infinite".into()),
            ("heartbeat_age_s{replica=\"w1\"} -Inf", "f:1:31: value: heartbeat_age_s is infinite".into()),
            ("heartbeat_age_s{replica=\"w1\"} -1", "f:1:31: value: heartbeat_age_s is negative (-1); it counts up from 0".into()),
            ("transport{replica=\"w1\"} 1", "f:1:25: value: transport must be open, half-open, closed or refused, not the number 1 (in Prometheus, use a state label)".into()),
            ("transport{replica=\"w1\",state=\"sideways\"} 1", "f:1:30: state: transport must be open, half-open, closed or refused, not \"sideways\"".into()),
            ("transport{replica=\"w1\",state=\"open\"} 2", "f:1:38: value: transport{state=...} must be 1 (it holds) or 0 (it does not), not 2".into()),
            ("content_digest{replica=\"w1\",digest=\"a b\"} 1", "f:1:36: digest: content_digest must be one word, not \"a b\"".into()),
            ("content_digest{replica=\"w1\",digest=\"ab\"} 0.5", "f:1:42: value: content_digest{digest=...} must be 1 (it holds) or 0 (it does not), not 0.5".into()),
            ("health_ok{replica=\"w1\"} 1 2000\nhealth_ok{replica=\"w1\"} 1 1000", "f:2:27: timestamp: unsorted: 1 comes after 2 (sort the samples by time)".into()),
            ("health_ok{replica=\"w1\"} 1 2000\nhealth_ok{replica=\"w1\"} 1", "f:2:25: timestamp: unsorted: 0 comes after 2 (sort the samples by time)".into()),
            ("health_ok{replica=\"w1\"} 1 2000\nhealth_ok{replica=\"w1\"} 0 2000", "f:2:27: (sample): duplicate: w1 health_ok at 2 was already given on line 1".into()),
            ("transport{replica=\"w1\",state=\"open\"} 1\ntransport{replica=\"w1\",state=\"closed\"} 1", "f:2:40: (sample): duplicate: w1 transport at 0 was already given on line 1 (a sample without a timestamp is at time 0, one snapshot: add timestamps, in milliseconds, to give more than one)".into()),
            ("up 1\nprocess_cpu_seconds_total{job=\"x\"} 2\n# EOF\n", "f:1:1: (file): no samples (none of its 2 metric lines is a signal's sample (a signal's name, optionally prefixed faultline_, with a replica label))".into()),
        ];
        for (text, expected) in cases {
            assert_eq!(error(Format::Prometheus, text), expected, "{text:?}");
        }
    }

    fn matrix(series: &str) -> String {
        format!("{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[{series}]}}}}")
    }

    #[test]
    fn query_range_merges_its_series_into_time_order() {
        let text = matrix(
            "{\"metric\":{\"__name__\":\"faultline_heartbeat_age_s\",\"replica\":\"w2\",\"instance\":\"a:9100\"},\
               \"values\":[[1700000000,\"0.5\"],[1700000015.5,\"9\"]]},\
             {\"metric\":{\"__name__\":\"go_goroutines\"},\"values\":[[1700000000,\"12\"]]},\
             {\"metric\":{\"__name__\":\"heartbeat_age_s\",\"replica\":\"w1\"},\
               \"values\":[[1700000000,\"0.25\"],[1700000015.5,\"0.5\"]]},\
             {\"metric\":{\"__name__\":\"transport\",\"replica\":\"w2\",\"state\":\"half-open\"},\
               \"values\":[[1700000000,\"0\"],[1700000015.5,\"1\"]]}",
        );
        assert_eq!(
            read(Format::QueryRange, &text).unwrap(),
            [
                sample(1_700_000_000.0, "w1", Signal::HeartbeatAge, num(0.25)),
                sample(1_700_000_000.0, "w2", Signal::HeartbeatAge, num(0.5)),
                sample(1_700_000_015.5, "w1", Signal::HeartbeatAge, num(0.5)),
                sample(1_700_000_015.5, "w2", Signal::HeartbeatAge, num(9.0)),
                sample(1_700_000_015.5, "w2", Signal::Transport, Value::Transport(Transport::HalfOpen)),
            ]
        );
        let vector = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[\
                      {\"metric\":{\"__name__\":\"content_digest\",\"replica\":\"w1\",\"digest\":\"ab12\"},\"value\":[1700000000.5,\"1\"]},\
                      {\"metric\":{\"__name__\":\"content_digest\",\"replica\":\"w0\"},\"value\":[1700000000.5,\"77\"]}]},\
                      \"warnings\":[\"x\"]}";
        assert_eq!(
            read(Format::QueryRange, vector).unwrap(),
            [
                sample(1_700_000_000.5, "w0", Signal::ContentDigest, Value::Digest("77".to_owned())),
                sample(1_700_000_000.5, "w1", Signal::ContentDigest, Value::Digest("ab12".to_owned())),
            ]
        );
    }

    #[test]
    fn query_range_errors_name_their_line_column_and_path() {
        let series = |metric: &str, values: &str| matrix(&format!("{{\"metric\":{{{metric}}},\"values\":[{values}]}}"));
        let hb = "\"__name__\":\"heartbeat_age_s\",\"replica\":\"w1\"";
        // The metric's { is the 71st character.
        let cases: Vec<(String, String)> = vec![
            ("{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error\"}".into(), "f:1:11: status: the query failed: bad_data: parse error".into()),
            ("{\"data\":{}}".into(), "f:1:1: status: not a Prometheus API response: no status (expected {\"status\":\"success\",\"data\":...})".into()),
            ("{\"status\":\"success\"}".into(), "f:1:1: data: a successful response without data".into()),
            ("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,\"2\"]}}".into(), "f:1:42: data.resultType: resultType \"scalar\" carries no series: query a signal's metric by name (e.g. heartbeat_age_s)".into()),
            ("{\"status\":\"success\",\"data\":".into(), "f:1:27: data: EOF while parsing a value".into()),
            ("{\"status\":\"success\",\n \"data\": {\"resultType\":\"matrix\",\n  \"result\":[{\"metric\":{},\"values\":[[1,2,3]]}]}}".into(), "f:3:41: data.result[0].values[0]: trailing characters".into()),
            (series("\"replica\":\"w1\"", "[1,\"1\"]"), "f:1:71: data.result[0].metric.__name__: the series has no __name__: query a signal's metric by name (an aggregation like sum() drops it; keep it with `sum by (__name__, replica)` or label_replace)".into()),
            (series("\"__name__\":\"up\",\"replica\":\"w1\"", "[1,\"1\"]"), format!("f:1:83: data.result[0].metric.__name__: {}; a series with a replica label must be a signal (optionally prefixed faultline_)", Signal::unknown("up"))),
            (series("\"__name__\":\"health_ok\"", "[1,\"1\"]"), "f:1:71: data.result[0].metric.replica: health_ok has no replica label".into()),
            (series("\"__name__\":\"health_ok\",\"replica\":\" \"", "[1,\"1\"]"), "f:1:105: data.result[0].metric.replica: empty (every sample names its replica)".into()),
            (series(hb, "[1,\"0.5\"],[2,\"-1\"]"), "f:1:140: data.result[0].values[1][1]: heartbeat_age_s is negative (-1); it counts up from 0".into()),
            (series(hb, "[1,\"NaN\"]"), "f:1:130: data.result[0].values[0][1]: heartbeat_age_s is NaN".into()),
            (series(hb, "[1,\"+Inf\"]"), "f:1:130: data.result[0].values[0][1]: heartbeat_age_s is infinite".into()),
            (series(hb, "[1,\"soon\"]"), "f:1:130: data.result[0].values[0][1]: heartbeat_age_s needs a number, not \"soon\"".into()),
            (series(hb, "[1,\"0.5\"],[1]"), "f:1:137: data.result[0].values[1]: invalid length 1, expected a tuple of size 2".into()),
            (series(hb, "[\"1\",\"0.5\"]"), "f:1:128: data.result[0].values[0][0]: invalid type: string \"1\", expected f64".into()),
            (series("\"__name__\":\"transport\",\"replica\":\"w1\",\"state\":\"up\"", "[1,\"1\"]"), "f:1:118: data.result[0].metric.state: transport must be open, half-open, closed or refused, not \"up\"".into()),
            (
                matrix(&format!("{{\"metric\":{{{hb}}},\"values\":[[1,\"0.5\"],[2,\"1\"]]}},\n{{\"metric\":{{{hb},\"instance\":\"b\"}},\"values\":[[2,\"0.5\"]]}}")),
                "f:2:82: data.result[1].values[0]: duplicate: w1 heartbeat_age_s at 2 is also at data.result[0].values[1] (two series of the same signal and replica: filter or aggregate away their other labels)".into(),
            ),
            (matrix(""), "f:1:1: (file): no samples (read as query-range: a Prometheus query_range or query response with series of signals)".into()),
        ];
        for (text, expected) in cases {
            assert_eq!(error(Format::QueryRange, &text), expected, "{text}");
        }
    }

    #[test]
    fn every_format_refuses_a_file_without_samples() {
        for format in Format::ALL {
            for text in ["", "\n\n", "  \n"] {
                let e = error(format, text);
                assert!(e.starts_with("f:1:1: (file): no samples ("), "{format}: {e}");
                assert!(e.contains(format.name()), "{format}: {e}");
            }
        }
        assert!(error(Format::Csv, H).starts_with("f:1:1: (file): no samples (read as csv"));
    }

    #[test]
    fn invalid_utf8_is_located_at_the_bad_byte() {
        let cases: [(Format, &[u8], &str); 7] = [
            (
                Format::Csv,
                b"time_s,replica,signal,value\n1,w\xff1,health_ok,1\n",
                "f:2:4: replica: invalid UTF-8 (byte 0xff)",
            ),
            (
                Format::Csv,
                "time_s,replica,signal,value\n1,\"\u{e9}\u{e9}\"\"\u{e9}\u{e9}\u{e9}\u{ff}\"\n".as_bytes(),
                "",
            ),
            (
                Format::Csv,
                b"time_s,replica,signal,value\n1,\"\xc3\xa9\xc3\",health_ok,1\n",
                "f:2:5: replica: invalid UTF-8 (byte 0xc3)",
            ),
            (Format::Csv, b"time_\xffs,replica,signal,value\n", "f:1:6: (header): invalid UTF-8 (byte 0xff)"),
            (Format::Ndjson, b"{\"time_s\":1,\"replica\":\"w\xff\"}", "f:1:25: (text): invalid UTF-8 (byte 0xff)"),
            (
                Format::Prometheus,
                b"up 1\nhealth_ok{replica=\"\xc3\xa9\xe2\x82\"} 1",
                "f:2:21: (text): invalid UTF-8 (byte 0xe2)",
            ),
            (Format::QueryRange, b"{\"status\":\n\"\xc3\xa9\xfe\"}", "f:2:3: (text): invalid UTF-8 (byte 0xfe)"),
        ];
        for (format, bytes, expected) in cases {
            if expected.is_empty() {
                // Valid UTF-8 in a field after a quote: only the field count is wrong.
                assert!(read_bytes(format, bytes).unwrap_err().contains("found 2"));
                continue;
            }
            let e = read_bytes(format, bytes).unwrap_err();
            assert!(e.starts_with(expected), "{format} {:?}: {e}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn blank_lines_do_not_count_as_a_long_record() {
        let text = format!("{H}{}0,w1,health_ok,1\n", "\n".repeat(3 * MAX_LINE_BYTES));
        let e = read(Format::Csv, &format!("{text}0,w1,health_ok,2")).unwrap_err();
        assert_eq!(e, format!("f:{}:16: value: health_ok must be 0 or 1, not 2", 3 * MAX_LINE_BYTES + 3));
    }

    #[test]
    fn a_line_too_long_is_refused_after_a_bounded_read() {
        // An endless line: the reader gives up after MAX_LINE_BYTES and a little.
        for format in [Format::Csv, Format::Ndjson, Format::Prometheus] {
            let head: &[u8] = if format == Format::Csv { b"time_s,replica,signal,value\n1,w" } else { b"{" };
            let mut input = head.chain(io::repeat(b'x'));
            let mut buffered = io::BufReader::new(&mut input);
            let e = Reader::new("f", format, &mut buffered).next().unwrap().unwrap_err().to_string();
            assert!(
                e.starts_with(if format == Format::Csv {
                    "f:2:1: (text): record longer"
                } else {
                    "f:1:1: (text): line longer"
                }),
                "{format}: {e}"
            );
        }
    }

    /// A reader of what a channel sends, that blocks until it sends more, and ends when it
    /// is dropped: what following a growing file looks like.
    struct Followed {
        rx: std::sync::mpsc::Receiver<Vec<u8>>,
        chunk: Vec<u8>,
        at: usize,
    }

    impl Read for Followed {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = {
                let available = self.fill_buf()?;
                let n = available.len().min(out.len());
                out[..n].copy_from_slice(&available[..n]);
                n
            };
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Followed {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            while self.at == self.chunk.len() {
                match self.rx.recv() {
                    Ok(chunk) => (self.chunk, self.at) = (chunk, 0),
                    Err(_) => return Ok(&[]),
                }
            }
            Ok(&self.chunk[self.at..])
        }

        fn consume(&mut self, n: usize) {
            self.at += n;
        }
    }

    #[test]
    fn samples_come_as_soon_as_their_line_is_complete() {
        use std::sync::mpsc;
        use std::time::Duration;
        let files: [(Format, &str, &str, &str); 3] = [
            (Format::Csv, H, "0,w1,health_ok,1\n", "1,w1,health_ok,0\n"),
            (
                Format::Ndjson,
                "",
                "{\"time_s\":0,\"replica\":\"w1\",\"signal\":\"health_ok\",\"value\":1}\n",
                "{\"time_s\":1,\"replica\":\"w1\",\"signal\":\"health_ok\",\"value\":0}\n",
            ),
            (
                Format::Prometheus,
                "# TYPE health_ok gauge\n",
                "health_ok{replica=\"w1\"} 1 0\n",
                "health_ok{replica=\"w1\"} 0 1000\n",
            ),
        ];
        for (format, head, first, second) in files {
            let (tx, rx) = mpsc::channel::<Vec<u8>>();
            let (out_tx, out) = mpsc::channel();
            // A thread stands for the program that follows the file while the test writes it.
            #[allow(clippy::disallowed_methods)]
            let reader = std::thread::spawn(move || {
                let input = Followed { rx, chunk: Vec::new(), at: 0 };
                for item in Reader::new("f", format, input) {
                    out_tx.send(item.map_err(|e| e.to_string())).unwrap();
                }
            });
            let wait = Duration::from_secs(10);
            tx.send(format!("{head}{first}").into_bytes()).unwrap();
            let got = out.recv_timeout(wait).unwrap_or_else(|_| panic!("{format}: the first sample did not come"));
            assert_eq!(got.unwrap().value, num(1.0), "{format}");
            // Half a line gives nothing yet; the rest of it gives the sample.
            let (a, b) = second.split_at(second.len() / 2);
            tx.send(a.as_bytes().to_vec()).unwrap();
            assert!(out.recv_timeout(Duration::from_millis(50)).is_err(), "{format}: a sample from half a line");
            tx.send(b.as_bytes().to_vec()).unwrap();
            let got = out.recv_timeout(wait).unwrap_or_else(|_| panic!("{format}: the second sample did not come"));
            assert_eq!(got.unwrap(), sample(1.0, "w1", Signal::HealthOk, num(0.0)), "{format}");
            drop(tx);
            reader.join().unwrap();
            assert!(out.recv().is_err(), "{format}: more after the end");
        }
    }

    #[test]
    fn a_byte_order_mark_read_a_byte_at_a_time_is_skipped() {
        // The CSV parser skips it only when it comes in one read (found by tests/signals_fuzz.rs).
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.0.len()).min(1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let text = format!("\u{feff}\n{H}0,w1,health_ok,1\n");
        for capacity in [1, 2, 64] {
            let input = io::BufReader::with_capacity(capacity, Trickle(text.as_bytes()));
            let samples: Vec<Sample> = Reader::new("f", Format::Csv, input).collect::<Result<_, _>>().unwrap();
            assert_eq!(samples, [sample(0.0, "w1", Signal::HealthOk, num(1.0))], "{capacity}");
        }
        let text = "\u{feff}time_s,replica,signal,valu\n";
        let e = Reader::new("f", Format::Csv, io::BufReader::new(Trickle(text.as_bytes()))).next().unwrap();
        assert!(
            e.unwrap_err()
                .to_string()
                .ends_with("not \"time_s,replica,signal,valu\" (a long CSV file has one sample per row)")
        );
    }

    #[test]
    fn after_an_error_the_reader_ends() {
        let text = format!("{H}1,w1,health_ok,7\n2,w1,health_ok,1\n");
        let mut reader = Reader::new("f", Format::Csv, text.as_bytes());
        assert!(reader.next().unwrap().is_err());
        assert!(reader.next().is_none());
    }

    #[test]
    fn read_path_detects_the_format() {
        let dir = std::env::temp_dir().join(format!("faultline-signals-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("export.data");
        std::fs::write(&path, format!("{H}0,w1,retransmits,3\n")).unwrap();
        assert_eq!(read_path(&path).unwrap(), [sample(0.0, "w1", Signal::Retransmits, num(3.0))]);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = read_path(&dir.join("missing.csv")).unwrap_err().to_string();
        assert!(e.contains("missing.csv: cannot read: "), "{e}");
    }
}
