//! The character devices the tree serves itself: `/dev/null`,
//! `/dev/zero`, `/dev/urandom` (random bytes from the host's
//! `getrandom`). Reads are bounded by the caller's length.

use super::errno::{Errno, EIO};

/// A device node served here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Reads end of file, writes vanish.
    Null,
    /// Reads zeros, writes vanish.
    Zero,
    /// Reads random bytes, writes vanish (Linux mixes them in).
    Urandom,
}

impl Device {
    /// Linux's device number (`st_rdev`) for it: major 1, minor 3/5/9.
    pub fn rdev(self) -> u64 {
        let minor = match self {
            Device::Null => 3,
            Device::Zero => 5,
            Device::Urandom => 9,
        };
        (1 << 8) | minor
    }

    /// What a read of `len` bytes gives.
    pub fn read(self, len: usize) -> Result<Vec<u8>, Errno> {
        match self {
            Device::Null => Ok(Vec::new()),
            Device::Zero => Ok(vec![0; len]),
            Device::Urandom => {
                let mut buf = vec![0; len];
                fill_random(&mut buf)?;
                Ok(buf)
            }
        }
    }
}

/// Fills `buf` from the host's `getrandom(2)` (the urandom pool).
pub fn fill_random(buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes
        // that lives across the call; getrandom writes at most that many.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Errno::from_io(&err));
        }
        if n == 0 {
            return Err(EIO);
        }
        done += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads() {
        assert!(Device::Null.read(10).unwrap().is_empty());
        assert_eq!(Device::Zero.read(3).unwrap(), vec![0, 0, 0]);
        let a = Device::Urandom.read(64).unwrap();
        let b = Device::Urandom.read(64).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b, "two 64-byte random reads were equal");
        assert_eq!(Device::Zero.rdev(), 0x105);
    }
}
