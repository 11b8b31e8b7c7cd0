//! Errors of the data crate: every failure names the file, the 1-based line where it has one, and
//! a typed [`Problem`] so callers (and tests) can tell failures apart without matching strings.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong with the content of an input.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // every field is named in its variant's message
pub enum Problem {
    /// The file (or the part that should hold events) has no data rows.
    Empty,
    /// A row has fewer fields than the format needs.
    MissingField { field: String },
    /// A field that must be a number is not one.
    NotNumeric { field: String, value: String },
    /// A node id is negative.
    NegativeId { field: String, value: String },
    /// A timestamp or feature value is NaN or infinite.
    NonFinite { field: String, value: String },
    /// A feature matrix has another number of rows than the events or nodes it describes.
    FeatureRows { expected: usize, found: usize },
    /// Rows of one file disagree on the number of fields.
    FieldCount { expected: usize, found: usize },
    /// A `.npy` file ends before the data its header announces.
    NpyTruncated {
        expected_bytes: u64,
        found_bytes: u64,
    },
    /// A `.npy` file holds a dtype other than little-endian f32/f64.
    NpyDtype { dtype: String },
    /// A `.npy` file whose header cannot be used (bad magic, Fortran order, >2 dimensions...).
    NpyHeader { detail: String },
    /// Timestamps go backwards and the caller asked for that to be an error.
    Unsorted { inversions: usize },
    /// The format could not be determined or the header does not fit the format.
    Format { detail: String },
    /// A split label (TGL's `ext_roll`) is outside 0..=2 or not chronological.
    Split { detail: String },
    /// The binary cache is damaged (it is rebuilt on load, this is only reported when read directly).
    Cache { detail: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => write!(f, "no data rows"),
            Problem::MissingField { field } => write!(f, "missing field `{field}`"),
            Problem::NotNumeric { field, value } => {
                write!(f, "field `{field}` is not a number: {value:?}")
            }
            Problem::NegativeId { field, value } => {
                write!(f, "field `{field}` is a negative node id: {value}")
            }
            Problem::NonFinite { field, value } => {
                write!(f, "field `{field}` is not finite: {value}")
            }
            Problem::FeatureRows { expected, found } => {
                write!(f, "feature matrix has {found} rows, expected {expected}")
            }
            Problem::FieldCount { expected, found } => {
                write!(f, "row has {found} fields, expected {expected}")
            }
            Problem::NpyTruncated {
                expected_bytes,
                found_bytes,
            } => write!(
                f,
                "truncated .npy: header announces {expected_bytes} data bytes, file holds {found_bytes}"
            ),
            Problem::NpyDtype { dtype } => {
                write!(f, "unsupported .npy dtype {dtype} (expected <f4 or <f8)")
            }
            Problem::NpyHeader { detail } => write!(f, "unusable .npy header: {detail}"),
            Problem::Unsorted { inversions } => write!(
                f,
                "timestamps are not sorted ({inversions} adjacent pairs go backwards)"
            ),
            Problem::Format { detail } => write!(f, "{detail}"),
            Problem::Split { detail } => write!(f, "bad split: {detail}"),
            Problem::Cache { detail } => write!(f, "bad cache: {detail}"),
        }
    }
}

/// Error of every fallible function of this crate.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // every field is named in its variant's message
pub enum DataError {
    /// The content of `path` is wrong; `line` is 1-based where the problem sits on one line.
    #[error("{}{}: {problem}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<u64>,
        problem: Problem,
    },
    /// `path` could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A caller-supplied option or name is unusable (no file involved).
    #[error("{0}")]
    Usage(String),
}

impl DataError {
    pub(crate) fn at(path: &Path, line: u64, problem: Problem) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            line: Some(line),
            problem,
        }
    }

    pub(crate) fn file(path: &Path, problem: Problem) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            line: None,
            problem,
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The typed problem, if this is a content error.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            DataError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The 1-based line, if the problem sits on one.
    pub fn line(&self) -> Option<u64> {
        match self {
            DataError::Invalid { line, .. } => *line,
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
