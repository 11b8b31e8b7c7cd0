//! TGL's `edges.csv` (`,src,dst,time,int_roll,ext_roll`; `ext_roll` 0/1/2 = train/val/test) with
//! `edge_features.npy` (one row per edge) and `node_features.npy` (one row per node id) beside it.

use std::io::Write;
use std::path::Path;

use super::columns::{self, Layout};
use super::source::Sink;
use super::{csv_error, csv_reader, sibling};
use crate::builder::{self, IdSpace, LoadReport, TimeOrder};
use crate::{DataError, EventStream, Problem, Result, npy};

const EDGE_FEATURES: &str = "edge_features.npy";
const NODE_FEATURES: &str = "node_features.npy";

pub(crate) fn feature_paths(path: &Path) -> Vec<std::path::PathBuf> {
    vec![sibling(path, EDGE_FEATURES), sibling(path, NODE_FEATURES)]
}

pub(crate) fn read(path: &Path, order: TimeOrder) -> Result<(EventStream, LoadReport)> {
    let mut reader = csv_reader(path, true)?;
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let layout = Layout {
        src: columns::require(path, &header, "source", &["src"])?,
        dst: columns::require(path, &header, "destination", &["dst"])?,
        time: columns::require(path, &header, "time", &["time"])?,
        ext_roll: Some(columns::require(path, &header, "ext_roll", &["ext_roll"])?),
        ..Default::default()
    };
    let mut raw = columns::read_rows(path, reader, &layout)?.raw;

    let edge_path = sibling(path, EDGE_FEATURES);
    if edge_path.exists() {
        raw.edge_feat = npy::read_matrix(&edge_path)?;
        if let Some(f) = &raw.edge_feat
            && f.rows() != raw.time.len()
        {
            return Err(DataError::file(
                &edge_path,
                Problem::FeatureRows {
                    expected: raw.time.len(),
                    found: f.rows(),
                },
            ));
        }
    }
    let node_path = sibling(path, NODE_FEATURES);
    let node_feat = if node_path.exists() {
        npy::read_matrix(&node_path)?
    } else {
        None
    };
    let space = match node_feat {
        Some(table) => {
            let max_id = raw.src.iter().chain(&raw.dst).copied().max().unwrap_or(0);
            if max_id as usize >= table.rows() {
                return Err(DataError::file(
                    &node_path,
                    Problem::FeatureRows {
                        expected: max_id as usize + 1,
                        found: table.rows(),
                    },
                ));
            }
            IdSpace::Range {
                first: 0,
                count: table.rows(),
                node_feat: Some(table),
            }
        }
        None => IdSpace::Compact,
    };
    builder::build(raw, space, order, path)
}

pub(crate) fn write(stream: &EventStream, path: &Path) -> Result<()> {
    Sink::write_lines(
        path,
        ",src,dst,time,int_roll,ext_roll",
        stream.len(),
        |w, i| {
            let roll = stream.ext_roll().map_or(0, |r| r[i]);
            let (s, d, t) = (stream.src[i], stream.dst[i], stream.time[i]);
            writeln!(w, "{i},{s},{d},{t},0,{roll}")
        },
    )?;
    if let Some(f) = stream.edge_features() {
        npy::write_matrix(&sibling(path, EDGE_FEATURES), f)?;
    }
    if let Some(f) = stream.node_features() {
        npy::write_matrix(&sibling(path, NODE_FEATURES), f)?;
    }
    Ok(())
}
