//! File formats of the temporal-graph literature: one module per format, each with its reader and
//! writer, and the detection that picks one from a path.

mod columns;
mod csv_generic;
mod detect;
mod dyglib;
mod fields;
mod jodie;
mod snap;
pub(crate) mod source;
mod tgl;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use csv_generic::ColumnNames;
pub use detect::detect;

use crate::builder::{LoadReport, TimeOrder};
use crate::{DataError, EventStream, Result};

/// The supported formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// SNAP temporal edge list: `src dst unix_ts` per line, whitespace-separated, `#`/`%` comments,
    /// optionally gzip-compressed.
    Snap,
    /// DyGLib/TGN `ml_<name>.csv` (`,u,i,ts,label,idx`) with optional `ml_<name>.npy` edge features
    /// (row 0 is padding) and `ml_<name>_node.npy` node features (row 0 is padding).
    DyGLib,
    /// JODIE raw CSV: `user_id,item_id,timestamp,state_label,f1..fD`; users and items are separate
    /// id spaces and items are re-indexed after users.
    Jodie,
    /// TGL `edges.csv` (`src,dst,time[,int_roll],ext_roll`) with `edge_features.npy` and
    /// `node_features.npy` beside it.
    Tgl,
    /// Any CSV with a header; columns found by common names or given in [`ColumnNames`].
    Csv,
}

impl Format {
    /// Every format, in the order detection tries the unambiguous ones.
    pub const ALL: [Format; 5] = [
        Format::Snap,
        Format::DyGLib,
        Format::Jodie,
        Format::Tgl,
        Format::Csv,
    ];

    /// The lowercase name used on command lines and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Format::Snap => "snap",
            Format::DyGLib => "dyglib",
            Format::Jodie => "jodie",
            Format::Tgl => "tgl",
            Format::Csv => "csv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                DataError::Usage(format!(
                    "unknown format {s:?}; expected one of snap, dyglib, jodie, tgl, csv"
                ))
            })
    }
}

/// How to read a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// Force a format instead of detecting it.
    pub format: Option<Format>,
    /// Column names for [`Format::Csv`] files whose headers use uncommon names.
    pub columns: ColumnNames,
    /// What to do with events out of time order.
    pub time_order: TimeOrder,
}

/// Reads `path` into a time-sorted stream with dense node ids.
pub fn read(path: &Path, options: &ReadOptions) -> Result<(EventStream, LoadReport)> {
    let format = match options.format {
        Some(f) => f,
        None => detect(path)?,
    };
    let order = options.time_order;
    match format {
        Format::Snap => snap::read(path, order),
        Format::DyGLib => dyglib::read(path, order),
        Format::Jodie => jodie::read(path, order),
        Format::Tgl => tgl::read(path, order),
        Format::Csv => csv_generic::read(path, &options.columns, order),
    }
}

/// Writes `stream` to `path` in `format` (feature files beside it where the format has them).
///
/// Dense ids are written (shifted by one for DyGLib, whose id 0 is padding), so reading the file
/// back gives the same stream for any stream in which every node takes part in an event.
pub fn write(stream: &EventStream, format: Format, path: &Path) -> Result<()> {
    match format {
        Format::Snap => snap::write(stream, path),
        Format::DyGLib => dyglib::write(stream, path),
        Format::Jodie => jodie::write(stream, path),
        Format::Tgl => tgl::write(stream, path),
        Format::Csv => csv_generic::write(stream, path),
    }
}

/// Every file reading `path` as `format` consumes (the edge file and the feature files beside it
/// that exist): what the cache digest covers.
pub(crate) fn inputs(format: Format, path: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![path.to_path_buf()];
    let companions = match format {
        Format::DyGLib => {
            let (e, n) = dyglib::feature_paths(path);
            vec![e, n]
        }
        Format::Tgl => tgl::feature_paths(path),
        _ => vec![],
    };
    files.extend(companions.into_iter().filter(|p| p.exists()));
    files
}

/// Sibling file of `path` called `name` (feature files live beside the edge file).
fn sibling(path: &Path, name: &str) -> std::path::PathBuf {
    path.with_file_name(name)
}

/// A CSV reader with the options every CSV format here shares.
fn csv_reader(path: &Path, has_headers: bool) -> Result<csv::Reader<Box<dyn std::io::BufRead>>> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(source::open(path)?))
}

/// A CSV reader of `path` past its header, and the header.
fn headed_csv(path: &Path) -> Result<(csv::Reader<Box<dyn std::io::BufRead>>, csv::StringRecord)> {
    let mut reader = csv_reader(path, true)?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    Ok((reader, header))
}

/// Converts a csv crate error into one naming the file and line.
fn csv_error(path: &Path, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => DataError::io(path, io),
        other => DataError::Invalid {
            path: path.to_path_buf(),
            line,
            problem: crate::Problem::Format {
                detail: format!("{other:?}"),
            },
        },
    }
}

/// 1-based line of a CSV record.
fn line_of(record: &csv::StringRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

/// Field `i` of a record, or the [`crate::Problem::MissingField`] error at its line.
fn field<'r>(path: &Path, record: &'r csv::StringRecord, i: usize, name: &str) -> Result<&'r str> {
    record.get(i).ok_or_else(|| {
        DataError::at(
            path,
            line_of(record),
            crate::Problem::MissingField { field: name.into() },
        )
    })
}
