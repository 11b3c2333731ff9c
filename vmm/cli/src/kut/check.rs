//! `check = PATH=VALUE`: a test runs only if the host file PATH (a module
//! parameter under `/sys/module`, usually) holds VALUE.
//!
//! PATH comes from a tree written elsewhere, so it is read as any user
//! input is (`vmm::input_file`): opened without blocking, refused unless
//! it is a regular file, and read up to [`CHECK_MAX`] bytes whatever
//! size it reports (sysfs and procfs files report 4096 or 0). So
//! `/dev/zero`, a FIFO or a huge file is a skip with the reason, never a
//! read that grows without bound or blocks forever.

use std::io::Read;
use std::path::Path;

use kut_cfg::{cut, EXCERPT_MAX};
use vmm::input_file::{open_checked, Accept};

/// Most bytes of a check file read: parameter files hold a word.
pub const CHECK_MAX: u64 = 4096;

/// `Ok` if `path` holds `want` (surrounding whitespace aside), else the
/// reason to skip, in `run_tests.sh`'s words.
pub fn check(path: &str, want: &str) -> Result<(), String> {
    let unequal = || format!("{} not equal to {}", cut(path, EXCERPT_MAX), cut(want, EXCERPT_MAX));
    let (file, _) = open_checked(Path::new(path), false, Accept::Regular).map_err(|e| match e {
        vmm::input_file::InputError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => unequal(),
        e => format!("{} ({})", unequal(), cut(&e.to_string(), 2 * EXCERPT_MAX)),
    })?;
    let mut got = Vec::new();
    file.take(CHECK_MAX + 1).read_to_end(&mut got).map_err(|e| format!("{} (cannot read it: {e})", unequal()))?;
    if got.len() as u64 > CHECK_MAX {
        return Err(format!("{} (it holds more than {CHECK_MAX} bytes)", unequal()));
    }
    if String::from_utf8_lossy(&got).trim() == want {
        Ok(())
    } else {
        Err(unequal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item 7 of issue 20: `/dev/zero` grew without bound, a FIFO blocked.
    #[test]
    fn devices_fifos_and_big_files_are_skips() {
        let e = check("/dev/zero", "Y").unwrap_err();
        assert!(e.starts_with("/dev/zero not equal to Y ("), "{e}");
        assert!(e.contains("character device"), "{e}");
        let dir = std::env::temp_dir().join(format!("vmm-kut-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = check(fifo.to_str().unwrap(), "Y").unwrap_err();
        assert!(e.contains("FIFO"), "{e}");
        let big = dir.join("big");
        std::fs::File::create(&big).unwrap().set_len(1 << 40).unwrap();
        let e = check(big.to_str().unwrap(), "Y").unwrap_err();
        assert!(e.contains("more than 4096 bytes"), "{e}");
        let y = dir.join("y");
        std::fs::write(&y, "Y\n").unwrap();
        assert_eq!(check(y.to_str().unwrap(), "Y"), Ok(()));
        assert!(check(y.to_str().unwrap(), "N").unwrap_err().ends_with("not equal to N"));
        assert_eq!(check("/nonexistent/param", "Y").unwrap_err(), "/nonexistent/param not equal to Y");
        // procfs files report size 0 and are still read.
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
        assert_eq!(check("/proc/sys/kernel/pid_max", pid_max.trim()), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
