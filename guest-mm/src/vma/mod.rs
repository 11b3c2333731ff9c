//! Virtual memory areas, the operations providers attach to them, and the
//! tree that orders them.

mod area;
mod budget;
mod gaps;
mod ops;
mod radix;
mod slab;
mod tree;
#[cfg(test)]
mod tree_model;

pub use area::{ProviderId, Vma, VmaPrivate};
pub use budget::{VmaBudget, RAM_BYTES_PER_VMA};
pub use ops::{FaultAccess, FaultInfo, FaultPage, ObjectKey, Punched, VmaOps};
pub use tree::{VmaTree, STACK_GUARD_GAP};
