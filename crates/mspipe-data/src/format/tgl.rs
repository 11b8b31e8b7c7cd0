//! TGL's `edges.csv` (`,src,dst,time,int_roll,ext_roll`; `ext_roll` 0/1/2 = train/val/test) with
//! `edge_features.npy` (one row per edge) and `node_features.npy` (one row per node id) beside it.

use std::io::Write;
use std::path::Path;

use super::columns::{self, Layout};
use super::source::Sink;
use super::{headed_csv, sibling};
use crate::builder::{self, IdSpace, LoadReport, TimeOrder};
use crate::{DataError, EventStream, Problem, Result, npy};

const EDGE_FEATURES: &str = "edge_features.npy";
const NODE_FEATURES: &str = "node_features.npy";

pub(crate) fn feature_paths(path: &Path) -> Vec<std::path::PathBuf> {
    vec![sibling(path, EDGE_FEATURES), sibling(path, NODE_FEATURES)]
}

pub(crate) fn read(path: &Path, order: TimeOrder) -> Result<(EventStream, LoadReport)> {
    let (reader, header) = headed_csv(path)?;
    let layout = Layout {
        ext_roll: Some(columns::require(path, &header, "ext_roll", &["ext_roll"])?),
        ..Layout::endpoints(path, &header, [&["src"], &["dst"], &["time"]])?
    };
    let mut raw = columns::read_rows(path, reader, &layout)?.raw;

    let edge_path = sibling(path, EDGE_FEATURES);
    raw.edge_feat = npy::read_optional(&edge_path)?;
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
    let node_path = sibling(path, NODE_FEATURES);
    let space = match npy::read_optional(&node_path)? {
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
