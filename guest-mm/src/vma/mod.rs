//! Virtual memory areas and the tree that orders them.

mod area;
mod gaps;
mod tree;
#[cfg(test)]
mod tree_model;

pub use area::{ProviderId, Vma, VmaOps, VmaPrivate};
pub use tree::VmaTree;
