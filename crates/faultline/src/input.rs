//! Reading what a user hands us: every input file goes through [`read_bounded`], which
//! never reads more than its limit plus one byte, so `/dev/zero`, a 100 MB file or a pipe
//! that never ends is refused after a bounded read, not after reading it whole.
//!
//! Errors display as one line naming the file; a file over the limit names the line and
//! column where the limit was crossed, like every other input error.

use std::io::Read;
use std::path::Path;

/// Why an input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The OS refused (missing file, a directory, no permission). The OS error is part of
    /// the message and deliberately not a `source`: printing the chain would repeat it.
    #[error("{file}: cannot read: {error}")]
    Io { file: String, error: std::io::Error },
    /// More than `max_bytes`; `location` is `file:line:column` of the first byte past it.
    #[error("{location}: (file): larger than {max_bytes} bytes, the most {what} may hold")]
    TooLarge { location: String, what: &'static str, max_bytes: usize },
}

/// Reads `path` whole if it holds at most `max_bytes`; `what` names the kind of file in the
/// error ("a scenario file"). Reads at most `max_bytes + 1` bytes whatever the file is.
pub fn read_bounded(path: &Path, max_bytes: usize, what: &'static str) -> Result<Vec<u8>, InputError> {
    let file = path.display().to_string();
    let io = |error: std::io::Error| InputError::Io { file: file.clone(), error };
    let handle = std::fs::File::open(path).map_err(io)?;
    // The file's own size is only a hint (a FIFO or /dev/zero has none); the `take` is
    // what bounds the read.
    let hint = handle.metadata().map_or(0, |m| m.len()).min(max_bytes as u64 + 1) as usize;
    let mut bytes = Vec::with_capacity(hint);
    handle.take(max_bytes as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > max_bytes {
        return Err(InputError::too_large(&file, &bytes, max_bytes, what));
    }
    Ok(bytes)
}

/// An error at a place in a file: `file:line:column: field: message`, one line. The
/// readers of signals and of histories report their errors in it.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct Located {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
}

impl Located {
    /// An error at `line` and `column` (both from 1) of `file`, about `field`; every part
    /// folded onto one line.
    pub fn at(file: &str, line: u64, column: u64, field: &str, message: impl Into<String>) -> Located {
        Located {
            file: one_line(file),
            line: line.max(1),
            column: column.max(1),
            field: one_line(field),
            message: one_line(&message.into()),
        }
    }
}

impl InputError {
    /// `bytes` of `file` pass `max_bytes`: the error, located at the first byte past it.
    pub fn too_large(file: &str, bytes: &[u8], max_bytes: usize, what: &'static str) -> InputError {
        let location = at_offset(file, &String::from_utf8_lossy(bytes), max_bytes);
        InputError::TooLarge { location, what, max_bytes }
    }
}

/// `file:line:column` for a byte offset into `text`, both counted from 1 (a column counts
/// characters, not bytes).
pub fn at_offset(file: &str, text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{file}:{line}:{column}")
}

/// The most characters of a user's value an error message repeats; longer values are cut
/// in the middle, so that an error stays one readable line whatever was written.
pub const MAX_QUOTED_CHARS: usize = 80;

/// `value` as an error message quotes it: whole when short, else its head and tail with
/// the number of characters left out between them.
pub fn elide(value: &str) -> String {
    if value.chars().count() <= MAX_QUOTED_CHARS { value.to_owned() } else { cut(value, MAX_QUOTED_CHARS) }
}

/// The longest word (a run without white space) an error line keeps whole: long enough for
/// any real path, short enough that a pasted value cannot flood a terminal.
const MAX_WORD_CHARS: usize = 512;
/// The longest error line, after words are cut.
const MAX_LINE_CHARS: usize = 2048;

/// An error message as one line: each line break, with the blanks around it, becomes one
/// space; other control characters (a tab, an escape) are written escaped (`\t`,
/// `\u{1b}`), so a file name or key keeps its spaces and no byte of it can move the
/// terminal; any word (between spaces) over [`MAX_WORD_CHARS`] is cut in its middle, and
/// the whole past [`MAX_LINE_CHARS`], keeping the location and field at its head and the
/// explanation at its tail. Every error Faultline prints goes through here, and going
/// through twice changes nothing.
pub fn one_line(message: &str) -> String {
    let line_break = |c: char| matches!(c, '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}');
    // Blanks next to a break go with it; the line's own first and last characters stay.
    let parts: Vec<&str> = message.split(line_break).collect();
    let last = parts.len() - 1;
    let pieces: Vec<&str> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = if i > 0 { p.trim_start() } else { p };
            if i < last { p.trim_end() } else { p }
        })
        .filter(|p| !p.is_empty())
        .collect();
    let mut escaped = String::with_capacity(message.len());
    for c in pieces.join(" ").chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    let words: Vec<String> = escaped
        .split(' ')
        .map(|w| if w.chars().count() > MAX_WORD_CHARS { cut(w, MAX_WORD_CHARS) } else { w.to_owned() })
        .collect();
    let line = words.join(" ");
    if line.chars().count() > MAX_LINE_CHARS { cut(&line, MAX_LINE_CHARS) } else { line }
}

/// `text` cut to about `keep` characters: its first half-and-more and its last quarter, with
/// the number of characters left out.
fn cut(text: &str, keep: usize) -> String {
    let count = text.chars().count();
    let (head, tail) = (keep / 2, keep / 4);
    let first: String = text.chars().take(head).collect();
    let last: String = text.chars().skip(count - tail).collect();
    format!("{first}…[{} characters]…{last}", count - head - tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_after_a_bounded_read() {
        let err = read_bounded(Path::new("/dev/zero"), 1024, "a test file").unwrap_err();
        assert_eq!(err.to_string(), "/dev/zero:1:1025: (file): larger than 1024 bytes, the most a test file may hold");
    }

    #[test]
    fn a_directory_is_one_os_error() {
        let err = read_bounded(Path::new("/"), 1024, "a test file").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/: cannot read: "), "{text}");
        assert_eq!(text.matches("os error").count(), 1, "{text}");
        assert!(std::error::Error::source(&err).is_none(), "the OS error is in the message, not the chain");
    }

    #[test]
    fn elide_keeps_short_values_and_cuts_long_ones() {
        assert_eq!(elide("crash"), "crash");
        let long = "x".repeat(600_000);
        let cut = elide(&long);
        assert!(cut.chars().count() < 2 * MAX_QUOTED_CHARS, "{cut}");
        assert!(cut.contains("[599940 characters]"), "{cut}");
    }

    #[test]
    fn one_line_folds_lines_and_cuts_floods() {
        assert_eq!(one_line("a\n  b\tc"), "a b\\tc");
        assert_eq!(one_line("my  scenario.toml:1:8: seed: x"), "my  scenario.toml:1:8: seed: x");
        assert_eq!(one_line(" lead.toml:1:1: x"), " lead.toml:1:1: x");
        assert_eq!(one_line("key \u{1b}[31m\u{2028}red"), "key \\u{1b}[31m red");
        for text in ["a\n  b\tc", "x\u{0}y", "my  file"] {
            assert_eq!(one_line(&one_line(text)), one_line(text), "not idempotent on {text:?}");
        }
        let flood = format!("x.toml:1:1: kind: unknown fault kind \"{}\" (see the list)", "y".repeat(600_000));
        let line = one_line(&flood);
        assert!(line.starts_with("x.toml:1:1: kind: unknown fault kind"), "{line}");
        assert!(line.ends_with("(see the list)"), "{line}");
        assert!(line.chars().count() < 1000, "{}", line.len());
        let spaced = format!("x.toml:1:1: kind: {} (see the list)", "y ".repeat(300_000));
        let line = one_line(&spaced);
        assert!(line.chars().count() <= MAX_LINE_CHARS + 40 && line.ends_with("(see the list)"), "{}", line.len());
    }
}
