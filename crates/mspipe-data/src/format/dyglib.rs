//! DyGLib/TGN preprocessed files: `ml_<name>.csv` with `,u,i,ts,label,idx`, edge features
//! `ml_<name>.npy` (row 0 padding, row `idx` for each event) and node features `ml_<name>_node.npy`
//! (row 0 padding, row `id` for node `id`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::columns::{self, Layout};
use super::source::Sink;
use super::{headed_csv, sibling};
use crate::builder::{self, IdSpace, LoadReport, TimeOrder};
use crate::{DataError, EventStream, Features, Problem, Result, npy};

/// `(edge features, node features)` paths that belong to an `ml_<name>.csv`.
pub(crate) fn feature_paths(path: &Path) -> (PathBuf, PathBuf) {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(".gz").trim_end_matches(".csv"))
        .unwrap_or("ml_data")
        .to_string();
    (
        sibling(path, &format!("{stem}.npy")),
        sibling(path, &format!("{stem}_node.npy")),
    )
}

pub(crate) fn read(path: &Path, order: TimeOrder) -> Result<(EventStream, LoadReport)> {
    let (reader, header) = headed_csv(path)?;
    let layout = Layout {
        label: columns::find(&header, &["label"]),
        idx: Some(columns::require(path, &header, "idx", &["idx"])?),
        ..Layout::endpoints(path, &header, [&["u"], &["i"], &["ts"]])?
    };
    let parsed = columns::read_rows(path, reader, &layout)?;
    let mut raw = parsed.raw;
    let (edge_path, node_path) = feature_paths(path);

    if let Some(table) = npy::read_optional(&edge_path)? {
        let pick = parsed.idx.unwrap_or_default();
        let rows = table.rows() as u64;
        if rows != raw.time.len() as u64 + 1 {
            return Err(DataError::file(
                &edge_path,
                Problem::FeatureRows {
                    expected: raw.time.len() + 1,
                    found: table.rows(),
                },
            ));
        }
        if let Some(&(bad, line)) = pick.iter().find(|(i, _)| *i == 0 || *i >= rows) {
            return Err(DataError::at(
                path,
                line,
                Problem::Format {
                    detail: format!(
                        "idx {bad} names no row of {} (1..{rows})",
                        edge_path.display()
                    ),
                },
            ));
        }
        raw.edge_feat = Some(table.gather(pick.iter().map(|&(i, _)| i as usize)));
    }

    let space = match npy::read_optional(&node_path)? {
        Some(table) => {
            let count = table.rows().saturating_sub(1);
            let in_range = |id: &u64| (1..=count as u64).contains(id);
            if let Some(pos) = raw
                .src
                .iter()
                .zip(&raw.dst)
                .position(|(s, d)| !in_range(s) || !in_range(d))
            {
                return Err(DataError::file(
                    path,
                    Problem::FeatureRows {
                        expected: raw.src[pos].max(raw.dst[pos]) as usize + 1,
                        found: table.rows(),
                    },
                ));
            }
            IdSpace::Range {
                first: 1,
                count,
                node_feat: Some(table.slice_rows(1, count + 1)),
            }
        }
        None => IdSpace::Compact,
    };
    builder::build(raw, space, order, path)
}

pub(crate) fn write(stream: &EventStream, path: &Path) -> Result<()> {
    Sink::write_lines(path, ",u,i,ts,label,idx", stream.len(), |w, i| {
        let label = stream.labels().map_or(0.0, |l| l[i]);
        let (s, d, t) = (stream.src[i] + 1, stream.dst[i] + 1, stream.time[i]);
        writeln!(w, "{i},{s},{d},{t},{label},{}", i + 1)
    })?;
    let (edge_path, node_path) = feature_paths(path);
    if let Some(f) = stream.edge_features() {
        npy::write_matrix(&edge_path, &with_padding_row(f))?;
    }
    if let Some(f) = stream.node_features() {
        npy::write_matrix(&node_path, &with_padding_row(f))?;
    }
    Ok(())
}

fn with_padding_row(f: &Features) -> Features {
    let mut data = vec![0.0; f.dim()];
    data.extend_from_slice(f.as_slice());
    Features::new(data, f.dim()).expect("whole rows")
}
