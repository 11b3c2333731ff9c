//! Mapping actions (`struct mmap_action`): what a provider chooses in
//! prepare, validated by [`prepare()`] before the VMA exists and carried out
//! by [`complete()`] after.

mod complete;
mod kind;
mod prepare;

pub use complete::complete;
pub use kind::{ActionKind, ErrorHook, MmapAction, PageArray, PageRun, SuccessHook};
pub use prepare::{check_pins, check_table_frames, pins, prepare, simple_ioremap_prep};
