//! Format detection from the file name and the first content line.

use std::path::Path;

use super::{Format, csv_generic, jodie, source};
use crate::{DataError, Problem, Result};

/// Picks the format of `path`, or fails naming the file when it cannot tell (pass a format then).
///
/// Rules, in order: `ml_*.csv` is DyGLib, `edges.csv` is TGL; otherwise the first line decides:
/// a JODIE header, a DyGLib header (`,u,i,ts,...`), a header with `ext_roll` (TGL), any other
/// header naming source/destination/time columns (CSV), or whitespace-separated numbers (SNAP).
pub fn detect(path: &Path) -> Result<Format> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .trim_end_matches(".gz");
    if name.starts_with("ml_") && name.ends_with(".csv") {
        return Ok(Format::DyGLib);
    }
    if name == "edges.csv" {
        return Ok(Format::Tgl);
    }
    let Some((line_no, line)) = source::first_content_line(path)? else {
        return Err(DataError::file(path, Problem::Empty));
    };
    let cells: Vec<&str> = line.split(',').map(str::trim).collect();
    let header = csv::StringRecord::from(cells.clone());
    let lower: Vec<String> = cells.iter().map(|c| c.to_ascii_lowercase()).collect();
    if lower.len() >= 4 && lower[..4] == jodie::HEADER_PREFIX {
        return Ok(Format::Jodie);
    }
    if lower.len() >= 6 && lower[0].is_empty() && lower[1..4] == ["u", "i", "ts"] {
        return Ok(Format::DyGLib);
    }
    if lower.iter().any(|c| c == "ext_roll") {
        return Ok(Format::Tgl);
    }
    if cells.len() > 1 && csv_generic::has_common_names(&header) {
        return Ok(Format::Csv);
    }
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    if words.len() == 3 && words.iter().all(|w| w.parse::<f64>().is_ok()) {
        return Ok(Format::Snap);
    }
    Err(DataError::at(
        path,
        line_no,
        Problem::Format {
            detail: format!(
                "cannot tell the format from {line:?}; name it (snap, dyglib, jodie, tgl, csv) \
                 and, for a CSV, its source/destination/time columns"
            ),
        },
    ))
}
