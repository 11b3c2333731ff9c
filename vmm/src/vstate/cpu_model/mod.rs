//! The guest's CPU model from QEMU's `-cpu` syntax: [`features`] names
//! CPUID bits, [`models`] defines the named models, [`spec`] reads a
//! `-cpu` value, [`apply`] edits the CPUID KVM supports into the guest's.
//!
//! What it does not do: give a guest anything KVM does not support
//! (asking for it is [`CpuModelError::Unsupported`]), or change what a
//! model does not define (cache and topology leaves, highest leaves,
//! brand string, physical-address width stay KVM's).

pub mod apply;
pub mod features;
pub mod models;
pub mod spec;

#[cfg(test)]
mod apply_tests;

pub use features::{feature, Feature, FeatureBit, Reg, FEATURES};
pub use models::{ModelDef, MODELS};
pub use spec::{Base, CpuSpec};

use thiserror::Error;

/// Why a `-cpu` value cannot be followed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CpuModelError {
    /// The value is empty.
    #[error("no CPU model")]
    NoModel,
    /// The value is over the length read.
    #[error("a -cpu value of {0} bytes is too long")]
    TooLong(usize),
    /// The model is not one of [`MODELS`], `host` or `max`.
    #[error("unknown CPU model {0}")]
    UnknownModel(String),
    /// `+name` or `-name` with a name not in [`FEATURES`].
    #[error("unknown CPU feature {0}")]
    UnknownFeature(String),
    /// `key=value` with a key that is not implemented.
    #[error("property not followed: {0}")]
    UnknownProperty(String),
    /// A value that is not one the key takes.
    #[error("bad value in {0}")]
    BadValue(String),
    /// Something QEMU can do and this VMM does not.
    #[error("{item}: needs {why}, which vmm does not offer")]
    NotFollowed {
        /// The item as written.
        item: String,
        /// What it needs.
        why: &'static str,
    },
    /// A feature asked for that KVM does not support here.
    #[error("KVM cannot give the guest {0} on this host")]
    Unsupported(&'static str),
}
