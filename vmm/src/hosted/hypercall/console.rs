//! Console output shared by the serial port and the `write` hypercall,
//! and copying bytes out of user memory through the guest's page tables.

use guest_mm::{errno, GuestVirtAddr, PageTables};
use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::layout::PAGE_SIZE;
pub use crate::run::output::Output;

/// Where console output goes: a bounded, non-blocking [`Output`] (a
/// vCPU that wrote to it throttles with [`Output::throttle`]).
pub type ConsoleOut = Output;

/// Copies `len` bytes at user address `va`: every page must be present
/// and user-accessible (`EFAULT` otherwise), and the range must stay in
/// the lower half.
pub fn copy_from_user<M: GuestMemory>(mem: &M, pt: &PageTables<M>, va: u64, len: u64) -> Result<Vec<u8>, i32> {
    let end = va.checked_add(len).ok_or(errno::EFAULT)?;
    if end > 1 << 47 {
        return Err(errno::EFAULT);
    }
    let mut out = Vec::with_capacity(len as usize);
    let mut cur = va;
    while cur < end {
        let v = GuestVirtAddr::try_new(cur).map_err(|_| errno::EFAULT)?;
        let t = pt.translate(v).ok_or(errno::EFAULT)?;
        if !t.prot.present || !t.prot.user {
            return Err(errno::EFAULT);
        }
        let page_end = (cur & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        let n = (page_end.min(end) - cur) as usize;
        let start = out.len();
        out.resize(start + n, 0);
        mem.read_slice(&mut out[start..], GuestAddress(t.phys.0)).map_err(|_| errno::EFAULT)?;
        cur += n as u64;
    }
    Ok(out)
}

/// Copies `bytes` to user address `va`: every page must be present, user
/// and writable (`EFAULT` otherwise, checked for the whole range before
/// anything is written), and the range must stay in the lower half.
pub fn copy_to_user<M: GuestMemory>(mem: &M, pt: &PageTables<M>, va: u64, bytes: &[u8]) -> Result<(), i32> {
    let end = va.checked_add(bytes.len() as u64).ok_or(errno::EFAULT)?;
    if end > 1 << 47 {
        return Err(errno::EFAULT);
    }
    let mut pieces = Vec::new();
    let mut cur = va;
    while cur < end {
        let v = GuestVirtAddr::try_new(cur).map_err(|_| errno::EFAULT)?;
        let t = pt.translate(v).ok_or(errno::EFAULT)?;
        if !t.prot.present || !t.prot.user || !t.prot.writable {
            return Err(errno::EFAULT);
        }
        let page_end = (cur & !(PAGE_SIZE - 1)) + PAGE_SIZE;
        let n = page_end.min(end) - cur;
        pieces.push((GuestAddress(t.phys.0), (cur - va) as usize, n as usize));
        cur += n;
    }
    for (pa, off, n) in pieces {
        mem.write_slice(&bytes[off..off + n], pa).map_err(|_| errno::EFAULT)?;
    }
    Ok(())
}
