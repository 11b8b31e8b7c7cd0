//! The row loop shared by every CSV-based format: given which column holds what, parse records
//! into [`RawEvents`], reporting the line of any bad field.

use std::io::BufRead;
use std::ops::Range;
use std::path::Path;

use super::{csv_error, field, fields, line_of};
use crate::builder::RawEvents;
use crate::{DataError, Features, Problem, Result};

/// Which column holds what (0-based indices).
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub src: usize,
    pub dst: usize,
    pub time: usize,
    pub label: Option<usize>,
    pub ext_roll: Option<usize>,
    /// DyGLib's `idx`: the event's row in the edge-feature file.
    pub idx: Option<usize>,
    /// Inline feature columns (JODIE); `end == usize::MAX` means "to the end of the first row".
    pub features: Option<Range<usize>>,
}

impl Layout {
    /// The source, destination and time columns, each the first of its names found in `header`
    /// (an error on the header line naming what is missing); no other column.
    pub fn endpoints(
        path: &Path,
        header: &csv::StringRecord,
        [src, dst, time]: [&[&str]; 3],
    ) -> Result<Layout> {
        Ok(Layout {
            src: require(path, header, "source", src)?,
            dst: require(path, header, "destination", dst)?,
            time: require(path, header, "time", time)?,
            ..Default::default()
        })
    }
}

/// Rows parsed, plus DyGLib's `idx` column when the layout has one.
pub(crate) struct Parsed {
    pub raw: RawEvents,
    pub idx: Option<Vec<(u64, u64)>>,
}

pub(crate) fn read_rows(
    path: &Path,
    mut reader: csv::Reader<Box<dyn BufRead>>,
    layout: &Layout,
) -> Result<Parsed> {
    let mut raw = RawEvents {
        label: layout.label.map(|_| Vec::new()),
        ext_roll: layout.ext_roll.map(|_| Vec::new()),
        ..Default::default()
    };
    let mut idx = layout.idx.map(|_| Vec::new());
    let mut feats: Vec<f32> = Vec::new();
    let mut feat_range = layout.features.clone();
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        let line = line_of(&record);
        let at = |p: Problem| DataError::at(path, line, p);
        raw.src
            .push(fields::id("src", field(path, &record, layout.src, "src")?).map_err(at)?);
        raw.dst
            .push(fields::id("dst", field(path, &record, layout.dst, "dst")?).map_err(at)?);
        raw.time.push(
            fields::finite_f64("time", field(path, &record, layout.time, "time")?).map_err(at)?,
        );
        if let (Some(col), Some(out)) = (layout.label, raw.label.as_mut()) {
            out.push(fields::finite_f32("label", field(path, &record, col, "label")?).map_err(at)?);
        }
        if let (Some(col), Some(out)) = (layout.ext_roll, raw.ext_roll.as_mut()) {
            let roll =
                fields::id("ext_roll", field(path, &record, col, "ext_roll")?).map_err(at)?;
            if roll > 2 {
                return Err(at(Problem::Split {
                    detail: format!("ext_roll {roll} is not 0, 1 or 2"),
                }));
            }
            out.push(roll as u8);
        }
        if let (Some(col), Some(out)) = (layout.idx, idx.as_mut()) {
            out.push((
                fields::id("idx", field(path, &record, col, "idx")?).map_err(at)?,
                line,
            ));
        }
        if let Some(range) = feat_range.as_mut() {
            if range.end == usize::MAX {
                range.end = record.len();
            }
            if record.len() != range.end {
                return Err(at(Problem::FieldCount {
                    expected: range.end,
                    found: record.len(),
                }));
            }
            for c in range.clone() {
                feats.push(fields::finite_f32("feature", &record[c]).map_err(at)?);
            }
        }
    }
    if let Some(range) = feat_range.filter(|r| r.end > r.start) {
        raw.edge_feat = Features::new(feats, range.end - range.start);
    }
    Ok(Parsed { raw, idx })
}

/// Position of the first header name that matches one of `names` (case-insensitive).
pub(crate) fn find(header: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    header
        .iter()
        .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
}

/// Like [`find`], but a missing column is a [`Problem::Format`] error on the header line.
pub(crate) fn require(
    path: &Path,
    header: &csv::StringRecord,
    what: &str,
    names: &[&str],
) -> Result<usize> {
    find(header, names).ok_or_else(|| {
        DataError::at(
            path,
            line_of(header).max(1),
            Problem::Format {
                detail: format!(
                    "no {what} column (looked for {}) in header {:?}",
                    names.join("|"),
                    header.iter().collect::<Vec<_>>()
                ),
            },
        )
    })
}
