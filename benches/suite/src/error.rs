//! The benchmark error type.

use guest_mm::MmError;

/// Why a benchmark could not produce its figures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The mapper refused a request the benchmark relies on.
    #[error("mapper: {context}: {source}")]
    Mm {
        /// What was being done.
        context: String,
        /// The mapper's error.
        source: MmError,
    },
    /// A host system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A figure ended up with no usable samples.
    #[error("{0}: no usable samples")]
    NoSamples(String),
    /// Ours and the peer were not measured the same number of times.
    #[error("{0}: ours and the peer have different repetition counts")]
    Unpaired(String),
    /// A measurement contradicted what the mapper must do (a wrong entry
    /// count, an unbalanced table count): the figure would be meaningless.
    #[error("{0}")]
    Check(String),
    /// A peer implementation failed.
    #[error("peer {peer}: {reason}")]
    Peer {
        /// Which peer.
        peer: String,
        /// What went wrong.
        reason: String,
    },
    /// A guest-side benchmark failed.
    #[error("guest benchmark {item}: {reason}")]
    Guest {
        /// Which one.
        item: String,
        /// What went wrong.
        reason: String,
    },
    /// Writing the JSON report or the chart failed.
    #[error("writing {path}: {reason}")]
    Output {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl BenchError {
    /// Wraps a mapper error with context.
    pub fn mm(context: impl Into<String>) -> impl FnOnce(MmError) -> BenchError {
        let context = context.into();
        move |source| BenchError::Mm { context, source }
    }

    /// Wraps the last OS error with context.
    pub fn last_os(context: impl Into<String>) -> BenchError {
        BenchError::Io { context: context.into(), source: std::io::Error::last_os_error() }
    }
}
