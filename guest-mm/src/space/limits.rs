//! The VMA count limit (`vm.max_map_count`): checked before an operation
//! changes anything, from the VMAs it would cut.

use vm_memory::GuestMemoryBackend;

use super::AddressSpace;
use crate::error::MmError;

impl<M: GuestMemoryBackend> AddressSpace<M> {
    /// Refuses with `ENOMEM` an operation that cuts `[start, end)` out of
    /// the VMAs and then puts `inside` VMAs into it, if the count before
    /// any merging would exceed the limit. `inside` is `None` when the
    /// overlapped VMAs keep their in-range parts (mprotect).
    pub(super) fn check_map_count(&self, start: u64, end: u64, inside: Option<usize>) -> Result<(), MmError> {
        let mut n = self.vmas.len();
        for v in self.vmas.overlapping(start, end) {
            // The parts left outside the range; the part inside goes
            // unless it is kept.
            n += usize::from(v.start().raw() < start) + usize::from(v.end() > end);
            n -= 1;
            if inside.is_none() {
                n += 1;
            }
        }
        n += inside.unwrap_or(0);
        if n > self.max_map_count {
            return Err(MmError::TooManyMappings { limit: self.max_map_count });
        }
        Ok(())
    }

    /// The most VMAs this address space may hold.
    pub fn max_map_count(&self) -> usize {
        self.max_map_count
    }
}
