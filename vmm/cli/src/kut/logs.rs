//! `--logs DIR`: each test's console output in `DIR/NAME.log`, where
//! NAME is a section name of a tree written elsewhere.
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

/// Writes `text` as test `name`'s log in `dir`; returns the path.
pub fn write_log(dir: &Path, name: &str, text: &str) -> io::Result<PathBuf> {
    let file = log_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
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
}
