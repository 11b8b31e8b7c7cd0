//! Any CSV with a header: columns found by their common names, or named by the caller.

use std::io::Write;
use std::path::Path;

use super::columns::{self, Layout};
use super::headed_csv;
use super::source::Sink;
use crate::builder::{self, IdSpace, LoadReport, TimeOrder};
use crate::{EventStream, Result};

pub(crate) const SRC_NAMES: &[&str] = &["src", "u", "source", "from", "user_id", "user"];
pub(crate) const DST_NAMES: &[&str] = &[
    "dst",
    "i",
    "destination",
    "to",
    "dest",
    "target",
    "item_id",
    "item",
];
pub(crate) const TIME_NAMES: &[&str] = &["t", "ts", "time", "timestamp"];
pub(crate) const LABEL_NAMES: &[&str] = &["label", "state_label"];

/// Header names for the source, destination, time and label columns of a CSV whose names are not
/// among the common ones. `None` means "find it by its common names".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnNames {
    /// The source node's column.
    pub src: Option<String>,
    /// The destination node's column.
    pub dst: Option<String>,
    /// The timestamp's column.
    pub time: Option<String>,
    /// The (optional) label's column.
    pub label: Option<String>,
}

/// Whether a header row names a source, a destination and a time column by common names.
pub(crate) fn has_common_names(header: &csv::StringRecord) -> bool {
    [SRC_NAMES, DST_NAMES, TIME_NAMES]
        .iter()
        .all(|names| columns::find(header, names).is_some())
}

pub(crate) fn read(
    path: &Path,
    names: &ColumnNames,
    order: TimeOrder,
) -> Result<(EventStream, LoadReport)> {
    let (reader, header) = headed_csv(path)?;
    let pick = |given: &Option<String>, what: &str, common: &[&str]| match given {
        Some(name) => columns::require(path, &header, what, &[name.as_str()]),
        None => columns::require(path, &header, what, common),
    };
    let label = match &names.label {
        Some(name) => Some(columns::require(path, &header, "label", &[name.as_str()])?),
        None => columns::find(&header, LABEL_NAMES),
    };
    let layout = Layout {
        src: pick(&names.src, "source", SRC_NAMES)?,
        dst: pick(&names.dst, "destination", DST_NAMES)?,
        time: pick(&names.time, "time", TIME_NAMES)?,
        label,
        ..Default::default()
    };
    let parsed = columns::read_rows(path, reader, &layout)?;
    builder::build(parsed.raw, IdSpace::Compact, order, path)
}

pub(crate) fn write(stream: &EventStream, path: &Path) -> Result<()> {
    let labels = stream.labels();
    let header = if labels.is_some() {
        "src,dst,t,label"
    } else {
        "src,dst,t"
    };
    Sink::write_lines(path, header, stream.len(), |w, i| {
        write!(w, "{},{},{}", stream.src[i], stream.dst[i], stream.time[i])?;
        if let Some(l) = labels {
            write!(w, ",{}", l[i])?;
        }
        writeln!(w)
    })
}
