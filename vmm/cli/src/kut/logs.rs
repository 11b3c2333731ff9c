//! The log directory: each test's console output in `DIR/NAME.log`, where
//! NAME is a section name of a tree written elsewhere, and `DIR/SUMMARY`.
//! By default DIR is `logs` in the working directory, made afresh as
//! upstream's `run_tests.sh` does ([`rotate`]: `logs.old` removed, an old
//! `logs` renamed to `logs.old`, a new `logs` made); `--logs DIR` names
//! another, which is used as it is (created if missing, nothing in it
//! moved or removed but the logs it replaces).
//!
//! A name is a log name only if `NAME.log` is one file name inside DIR:
//! no `/` (so no `..` component and no absolute path), no NUL, at most
//! `NAME_MAX` bytes. A test whose name is not one is skipped with that
//! reason before it runs ([`log_name`]). The file is opened without
//! following a symlink and without blocking, and written only if it is a
//! regular file with no other name (a hard link planted in DIR would
//! otherwise be truncated through), so no path outside DIR is written.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use kut_cfg::excerpt;

/// Longest file name Linux takes.
const NAME_MAX: usize = 255;

/// The file name of test `name`'s log, or why it cannot have one.
pub fn log_name(name: &str) -> Result<String, String> {
    let file = format!("{name}.log");
    if name.contains('/') || name.contains('\0') {
        return Err(format!("its log name {} would leave the log directory", excerpt(&file)));
    }
    if file.len() > NAME_MAX {
        return Err(format!("its log name is {} bytes, over the {NAME_MAX} a file name may have", file.len()));
    }
    Ok(file)
}

/// Upstream's log directory, relative to the working directory.
pub const DEFAULT_DIR: &str = "logs";

/// Makes `dir` a fresh, empty log directory as `run_tests.sh` does:
/// removes `dir.old` (a link there is removed, not followed), renames
/// `dir` to `dir.old` if it is a directory (or a link to one: the link is
/// renamed), and creates `dir`, which fails if something else is there.
pub fn rotate(dir: &Path) -> io::Result<()> {
    let mut old = dir.as_os_str().to_owned();
    old.push(".old");
    let old = PathBuf::from(old);
    match std::fs::symlink_metadata(&old) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(&old)?,
        Ok(_) => std::fs::remove_file(&old)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        std::fs::rename(dir, &old)?;
    }
    std::fs::create_dir(dir)
}

/// Writes `text` as test `name`'s log in `dir`; returns the path.
pub fn write_log(dir: &Path, name: &str, text: &str) -> io::Result<PathBuf> {
    let file = log_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    write_file(dir, &file, text)
}

/// Writes `text` as `dir/SUMMARY`; returns the path.
pub fn write_summary(dir: &Path, text: &str) -> io::Result<PathBuf> {
    write_file(dir, "SUMMARY", text)
}

/// Writes `text` to `dir/file` (one file name), replacing what a regular
/// file of its own there held.
fn write_file(dir: &Path, file: &str, text: &str) -> io::Result<PathBuf> {
    let path = dir.join(file);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        let why = format!("{} is not a regular file of its own", path.display());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    f.set_len(0)?;
    f.write_all(text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Item 8 of issue 20: `[../../x]` and `[/abs/path]` wrote outside DIR.
    #[test]
    fn names_that_leave_the_directory_have_no_log() {
        assert_eq!(log_name("vmexit_cpuid").unwrap(), "vmexit_cpuid.log");
        // A name of dots is one odd but harmless file name.
        assert_eq!(log_name("..").unwrap(), "...log");
        for n in ["../../x", "/abs/path", "a/b", "a\0b"] {
            assert!(log_name(n).unwrap_err().contains("leave"), "{n}");
        }
        assert!(log_name(&"n".repeat(252)).unwrap_err().contains("256 bytes"));
        assert!(log_name(&"n".repeat(251)).is_ok());
    }

    #[test]
    fn links_in_the_directory_are_not_written_through() {
        let top = std::env::temp_dir().join(format!("vmm-kut-logs-{}", std::process::id()));
        let dir = top.join("logs");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(top.join("victim"), b"keep").unwrap();
        symlink("../victim", dir.join("sym.log")).unwrap();
        std::fs::hard_link(top.join("victim"), dir.join("hard.log")).unwrap();
        assert!(write_log(&dir, "sym", "x").is_err());
        assert!(write_log(&dir, "hard", "x").is_err());
        assert!(write_log(&dir, "../victim", "x").is_err());
        assert_eq!(std::fs::read(top.join("victim")).unwrap(), b"keep");
        // An old log is replaced.
        write_log(&dir, "t", "a longer first log").unwrap();
        let p = write_log(&dir, "t", "new").unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), "new");
        std::fs::remove_dir_all(&top).unwrap();
    }

    /// Issue 21: upstream keeps the previous run's logs in `logs.old`;
    /// `logs` was only written with `--logs`.
    #[test]
    fn rotation_keeps_one_old_directory() {
        let top = std::env::temp_dir().join(format!("vmm-kut-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&top).unwrap();
        let logs = top.join("logs");
        rotate(&logs).unwrap();
        write_log(&logs, "first", "1").unwrap();
        rotate(&logs).unwrap();
        assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 0);
        assert_eq!(std::fs::read_to_string(top.join("logs.old/first.log")).unwrap(), "1");
        write_log(&logs, "second", "2").unwrap();
        write_summary(&logs, "BUILD_HEAD=x\n").unwrap();
        rotate(&logs).unwrap();
        assert!(!top.join("logs.old/first.log").exists());
        assert_eq!(std::fs::read_to_string(top.join("logs.old/second.log")).unwrap(), "2");
        assert_eq!(std::fs::read_to_string(top.join("logs.old/SUMMARY")).unwrap(), "BUILD_HEAD=x\n");
        // A link at logs.old is removed, never followed.
        let keep = top.join("keep");
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(keep.join("precious"), b"k").unwrap();
        std::fs::remove_dir_all(top.join("logs.old")).unwrap();
        symlink(&keep, top.join("logs.old")).unwrap();
        rotate(&logs).unwrap();
        assert_eq!(std::fs::read(keep.join("precious")).unwrap(), b"k");
        assert!(top.join("logs.old").is_dir() && !top.join("logs.old").is_symlink());
        // A file where the directory goes is an error, as upstream's mkdir.
        std::fs::remove_dir_all(&logs).unwrap();
        std::fs::write(&logs, b"f").unwrap();
        assert!(rotate(&logs).is_err());
        std::fs::remove_dir_all(&top).unwrap();
    }
}
