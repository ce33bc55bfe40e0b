//! Every file the command writes (`--trace`, `--plot`) goes through [`write_output`], the
//! one place that decides how:
//!
//! - `-` is standard output;
//! - a regular file (or a new path) is written to a temporary file beside it and renamed
//!   into place only when complete, so a failed or interrupted run never leaves half a file
//!   over what was there, and the temporary file is removed on SIGINT, SIGTERM, SIGHUP and
//!   on a panic ([`install_cleanup`]);
//! - a symbolic link is followed: the file it names is replaced, the link stays;
//! - a FIFO, a character device (`/dev/stdout`, a terminal) or a socket is written in
//!   place, since there is nothing to replace (and renaming over it would destroy it);
//! - a file the command reads (the scenario) is refused, never overwritten.
//!
//! Standard output and standard error are written without panicking: a closed standard
//! output is an error (exit 2), a full or closed standard error is not fatal.

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};

use anyhow::{Context as _, Result, bail};

/// Temporary files not yet renamed into place: what a signal or a panic must remove.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> MutexGuard<'static, Vec<PathBuf>> {
    PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every temporary file not yet renamed into place (waiting for the list if the
/// main thread holds it for a moment: a signal must not miss a file being registered).
pub fn remove_pending() {
    remove(&mut pending());
}

fn remove(list: &mut Vec<PathBuf>) {
    for path in list.drain(..) {
        let _ = std::fs::remove_file(path);
    }
}

/// Hooks run by the signal thread before it ends the process (a command's own cleanup:
/// `faultline cluster` kills its etcd members and removes their directories).
static ON_SIGNAL: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// Adds a hook for SIGINT, SIGTERM and SIGHUP (run on the signal thread, not in a handler).
pub fn on_signal(hook: fn()) {
    ON_SIGNAL.lock().unwrap_or_else(|e| e.into_inner()).push(hook);
}

/// Removes pending temporary files on SIGINT, SIGTERM and SIGHUP (then ends the process as
/// the signal would have) and on a panic (before the default hook reports it; the release
/// build aborts on panic, and an abort runs no destructor).
pub fn install_cleanup() -> Result<()> {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The panic may have struck while this thread held the list: never wait for it.
        match PENDING.try_lock() {
            Ok(mut list) => remove(&mut list),
            Err(std::sync::TryLockError::Poisoned(p)) => remove(&mut p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        default(info);
    }));
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let hooks = ON_SIGNAL.lock().map(|h| h.clone()).unwrap_or_default();
                for hook in hooks {
                    hook();
                }
                remove_pending();
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Registers a temporary file for [`remove_pending`] while it lives.
struct Registered(PathBuf);

impl Registered {
    fn new(path: &Path) -> Registered {
        pending().push(path.to_owned());
        Registered(path.to_owned())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        pending().retain(|p| p != &self.0);
    }
}

/// Whether `path` names standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// What an output path is, once links are followed.
enum Target {
    Stdout,
    /// A FIFO, a device or a socket: written in place.
    Special(PathBuf),
    /// A regular file, or nothing yet: written atomically.
    Regular(PathBuf),
}

/// Checks an output path before any work is done: not an input of this command, not a
/// directory. [`write_output`] checks again when it writes.
pub fn check_output(path: &Path, inputs: &[&Path]) -> Result<()> {
    target(path, inputs).map(drop)
}

fn target(path: &Path, inputs: &[&Path]) -> Result<Target> {
    if is_stdout(path) {
        return Ok(Target::Stdout);
    }
    let shown = path.display();
    let target = follow_links(path);
    match std::fs::metadata(&target) {
        Ok(meta) => {
            if let Some(input) = inputs.iter().find(|i| same_file(&meta, i)) {
                bail!("{shown}: is an input of this command ({}); write the output elsewhere", input.display());
            }
            if meta.is_dir() {
                bail!("{shown}: is a directory");
            }
            Ok(if meta.is_file() { Target::Regular(target) } else { Target::Special(target) })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Target::Regular(target)),
        Err(e) => Err(anyhow::anyhow!("{shown}: cannot write: {e}")),
    }
}

/// Writes the output `path` (see the module's rules) with `write`. `inputs` are the files
/// this command reads, which an output must not replace.
pub fn write_output<T>(path: &Path, inputs: &[&Path], write: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    let shown = path.display().to_string();
    let (mut file, shown) = match target(path, inputs)? {
        Target::Regular(target) => return write_atomically(&target, &shown, write),
        Target::Stdout => (stdout_file()?, "standard output".to_owned()),
        Target::Special(target) => {
            let file =
                File::options().write(true).open(&target).map_err(|e| anyhow::anyhow!("{shown}: cannot write: {e}"))?;
            (file, shown)
        }
    };
    let value = write(&mut file)?;
    file.flush().map_err(|e| anyhow::anyhow!("{shown}: cannot write: {e}"))?;
    Ok(value)
}

/// Standard output as a file of its own (a duplicate descriptor): writes to it report
/// errors, where Rust's `stdout()` silently drops them when the descriptor is closed.
pub fn stdout_file() -> Result<File> {
    let fd = std::io::stdout().as_fd().try_clone_to_owned().map_err(|e| anyhow::anyhow!("standard output: {e}"))?;
    Ok(File::from(fd))
}

/// Writes `bytes` to standard output. A reader that went away (`| head`) is not an error.
pub fn print(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    match stdout_file()?.write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::anyhow!("writing the output: {e}")),
        _ => Ok(()),
    }
}

/// Writes one line to standard error; an error doing so (a closed or full standard error)
/// is ignored, since there is nowhere left to report it.
pub fn eprint_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Refuses to run with standard output closed (`faultline demo >&-`), where the results
/// would be lost without a word.
///
/// Rust's runtime reopens a closed descriptor 0, 1 or 2 on /dev/null, read-write, before
/// `main` (so no file of ours can take its number); a shell's `>/dev/null` opens it write
/// only. A standard output on /dev/null opened read-write is therefore one that was closed.
/// Only Linux's /proc tells; elsewhere the check passes.
pub fn check_stdout_open() -> Result<()> {
    let target = std::fs::read_link("/proc/self/fd/1");
    let flags = std::fs::read_to_string("/proc/self/fdinfo/1");
    if let (Ok(target), Ok(info)) = (target, flags) {
        let octal = info.lines().find_map(|l| l.strip_prefix("flags:")).map(str::trim);
        let read_write = octal.and_then(|o| u32::from_str_radix(o, 8).ok()).is_some_and(|f| f & 0o3 == 0o2);
        if target == Path::new("/dev/null") && read_write {
            bail!("standard output is closed: there is nowhere to write the results");
        }
    }
    Ok(())
}

/// Follows symbolic links (at most 40, as the kernel does) to the path they name, even a
/// path that does not exist yet.
fn follow_links(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let Ok(link) = std::fs::read_link(&p) else { break };
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => break,
        }
    }
    p
}

fn same_file(meta: &std::fs::Metadata, other: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(other).is_ok_and(|o| o.dev() == meta.dev() && o.ino() == meta.ino())
}

/// Writes `path` through a temporary file in the same directory, renamed into place only
/// when `write` succeeds.
fn write_atomically<T>(path: &Path, shown: &str, write: impl FnOnce(&mut File) -> Result<T>) -> Result<T> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| anyhow::anyhow!("{shown}: cannot create a file beside it: {e}"))?;
    let _registered = Registered::new(tmp.path());
    let value = write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush().map_err(|e| anyhow::anyhow!("{shown}: cannot write: {e}"))?;
    // A temporary file is private (0600); the result should look like any file the user
    // writes: keep the permissions of the file it replaces, else the usual 0644.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode());
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.persist(path).map_err(|e| anyhow::anyhow!("{shown}: cannot write: {}", e.error))?;
    Ok(value)
}

/// A writer that refuses to go past a byte limit shared by every writer made from the same
/// budget (a trace's cases share one). Past it, each write fails with a message naming the
/// limit and the flag that sets it.
pub struct Capped<W> {
    inner: W,
    left: Rc<Cell<u64>>,
    limit_mb: u64,
    flag: &'static str,
}

impl<W: Write> Capped<W> {
    /// A new budget of `limit_mb` MiB, and a writer that draws on it.
    pub fn new(inner: W, limit_mb: u64, flag: &'static str) -> Capped<W> {
        Capped { inner, left: Rc::new(Cell::new(limit_mb.saturating_mul(1 << 20))), limit_mb, flag }
    }

    /// Another writer drawing on the same budget.
    pub fn sharing<V: Write>(&self, inner: V) -> Capped<V> {
        Capped { inner, left: Rc::clone(&self.left), limit_mb: self.limit_mb, flag: self.flag }
    }
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let left = self.left.get();
        if buf.len() as u64 > left {
            return Err(std::io::Error::other(format!(
                "the output passed its limit of {} MiB (set by {})",
                self.limit_mb, self.flag
            )));
        }
        let n = self.inner.write(buf)?;
        self.left.set(left - n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
