//! JODIE raw CSV: `user_id,item_id,timestamp,state_label,f1..fD` (the original files name the
//! feature columns `comma_separated_list_of_features` in a single header cell, so the feature count
//! comes from the first data row). Users and items are separate id spaces; items follow users.

use std::io::Write;
use std::path::Path;

use super::columns::{self, Layout};
use super::headed_csv;
use super::source::Sink;
use crate::builder::{self, IdSpace, LoadReport, TimeOrder};
use crate::{DataError, EventStream, Problem, Result};

pub(crate) const HEADER_PREFIX: [&str; 4] = ["user_id", "item_id", "timestamp", "state_label"];

pub(crate) fn read(path: &Path, order: TimeOrder) -> Result<(EventStream, LoadReport)> {
    let (reader, header) = headed_csv(path)?;
    let matches = header.len() >= 4
        && HEADER_PREFIX
            .iter()
            .zip(header.iter())
            .all(|(want, got)| want.eq_ignore_ascii_case(got));
    if !matches {
        return Err(DataError::at(
            path,
            1,
            Problem::Format {
                detail: format!(
                    "JODIE header must start with {}, found {:?}",
                    HEADER_PREFIX.join(","),
                    header.iter().collect::<Vec<_>>()
                ),
            },
        ));
    }
    let layout = Layout {
        src: 0,
        dst: 1,
        time: 2,
        label: Some(3),
        features: Some(4..usize::MAX),
        ..Default::default()
    };
    let parsed = columns::read_rows(path, reader, &layout)?;
    builder::build(parsed.raw, IdSpace::TwoSided, order, path)
}

pub(crate) fn write(stream: &EventStream, path: &Path) -> Result<()> {
    if !stream.is_bipartite() {
        return Err(DataError::Usage(format!(
            "{}: the JODIE format needs a bipartite stream (sources and destinations disjoint)",
            path.display()
        )));
    }
    let users = stream.node_ids().users().unwrap_or(0) as u32;
    let feats = stream.edge_features();
    let mut header = HEADER_PREFIX.join(",");
    for k in 0..feats.map_or(0, |f| f.dim()) {
        header.push_str(&format!(",f{}", k + 1));
    }
    Sink::write_lines(path, &header, stream.len(), |w, i| {
        let label = stream.labels().map_or(0.0, |l| l[i]);
        let (u, it, t) = (stream.src[i], stream.dst[i] - users, stream.time[i]);
        write!(w, "{u},{it},{t},{label}")?;
        if let Some(f) = feats {
            for v in f.row(i) {
                write!(w, ",{v}")?;
            }
        }
        writeln!(w)
    })
}
