//! Virtual memory areas and the tree that orders them.

mod area;
mod tree;

pub use area::{ProviderId, Vma, VmaOps, VmaPrivate};
pub use tree::VmaTree;
