//! The one error of the parser: what is wrong, and on which line.

use thiserror::Error;

/// Errors in a configuration file. Any text of the file a message shows
/// is cut to [`crate::EXCERPT_MAX`] bytes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CfgError {
    /// A line is neither a section, a `key = value`, a comment nor blank,
    /// or a value is malformed.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file holds bytes that are not text (invalid UTF-8 or a control
    /// character): it is not a configuration file.
    #[error("line {line}: not a text file ({what} at byte {offset} of the file)")]
    Binary {
        /// 1-based line number of the first such byte.
        line: usize,
        /// Its offset in the file.
        offset: usize,
        /// What it is.
        what: String,
    },
}
