//! Moving bytes between the program's buffers and the host: the
//! per-call bound ([`WRITE_MAX`]), reading an iovec array ([`iovecs`])
//! and scattering bytes over one ([`scatter`]). Shared by the file,
//! pipe and socket calls.

use super::super::fs::IOV_MAX;
use super::ctx::Ctx;

/// Most bytes one `write`/`writev`/`read` moves.
pub const WRITE_MAX: u64 = 1 << 20;

/// The `(base, len)` pairs of an iovec array.
pub fn iovecs(c: &Ctx<'_>, iov: u64, cnt: u64) -> Result<Vec<(u64, u64)>, i32> {
    if cnt > IOV_MAX as u64 {
        return Err(libc::EINVAL);
    }
    let raw = c.hv.read_user(c.vcpu, iov, cnt * 16)?;
    let mut out = Vec::with_capacity(cnt as usize);
    for v in raw.chunks_exact(16) {
        let base = u64::from_le_bytes(v[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(v[8..].try_into().unwrap_or_default());
        if len > i64::MAX as u64 {
            return Err(libc::EINVAL);
        }
        out.push((base, len));
    }
    Ok(out)
}

/// Copies `data` over the buffers `bufs` in order: the bytes copied.
pub fn scatter(c: &Ctx<'_>, bufs: &[(u64, u64)], data: &[u8]) -> Result<u64, i32> {
    let mut done = 0usize;
    for &(base, len) in bufs {
        if done >= data.len() {
            break;
        }
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(data.len() - done);
        c.hv.write_user(c.vcpu, base, &data[done..done + n])?;
        done += n;
    }
    Ok(done as u64)
}
