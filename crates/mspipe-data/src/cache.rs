//! A compact binary cache of parsed streams: raw little-endian columns behind a header that holds
//! the sha256 of the source files and of the read options. A cache whose digest no longer matches
//! (source edited, options changed) or that cannot be read is rebuilt from the source.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::builder::LoadReport;
use crate::{DataError, EventStream, Features, NodeIds, Problem, Result};

const MAGIC: &[u8; 8] = b"MSPIPE\0C";
const VERSION: u32 = 1;

/// sha256 over the bytes of every file in `paths` (in order) and of `options`.
pub fn digest(paths: &[PathBuf], options: &str) -> Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in paths {
        let mut f = File::open(p).map_err(|e| DataError::io(p, e))?;
        loop {
            let n = f.read(&mut buf).map_err(|e| DataError::io(p, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        hasher.update(b"\0file-end\0");
    }
    hasher.update(options.as_bytes());
    Ok(hasher.finalize().into())
}

/// Writes `stream` to `path` atomically (a temporary file in the same folder, then a rename).
pub fn write(
    path: &Path,
    digest: &[u8; 32],
    stream: &EventStream,
    report: &LoadReport,
) -> Result<()> {
    let io = |e| DataError::io(path, e);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let tmp = crate::format::source::temporary_beside(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let counts = [
        stream.len() as u64,
        stream.num_nodes() as u64,
        stream.node_ids().users().map_or(u64::MAX, |u| u as u64),
        stream.edge_features().map_or(0, |f| f.dim() as u64),
        stream.node_features().map_or(0, |f| f.dim() as u64),
        report.inversions as u64,
        u64::from(stream.is_bipartite()),
        u64::from(stream.labels().is_some()),
        u64::from(stream.ext_roll().is_some()),
    ];
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
    w.write_all(digest).map_err(io)?;
    w.write_all(bytemuck::cast_slice(&counts)).map_err(io)?;
    let mut put = |bytes: &[u8]| w.write_all(bytes).map_err(io);
    put(bytemuck::cast_slice(stream.src()))?;
    put(bytemuck::cast_slice(stream.dst()))?;
    put(bytemuck::cast_slice(stream.time()))?;
    put(bytemuck::cast_slice(stream.node_ids().originals()))?;
    if let Some(l) = stream.labels() {
        put(bytemuck::cast_slice(l))?;
    }
    if let Some(r) = stream.ext_roll() {
        put(r)?;
    }
    if let Some(f) = stream.edge_features() {
        put(bytemuck::cast_slice(f.as_slice()))?;
    }
    if let Some(f) = stream.node_features() {
        put(bytemuck::cast_slice(f.as_slice()))?;
    }
    w.flush().map_err(io)?;
    drop(w);
    crate::format::source::persist(tmp, path)
}

/// Reads a cache written by [`write()`] if its digest is `expected`; `Ok(None)` if it is stale.
pub fn read(path: &Path, expected: &[u8; 32]) -> Result<Option<(EventStream, LoadReport)>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let bad = |detail: &str| {
        DataError::file(
            path,
            Problem::Cache {
                detail: detail.into(),
            },
        )
    };
    let mut head = [0u8; 8 + 4 + 32];
    r.read_exact(&mut head)
        .map_err(|_| bad("shorter than its header"))?;
    if &head[..8] != MAGIC || head[8..12] != VERSION.to_le_bytes() {
        return Err(bad("not an mspipe cache of this version"));
    }
    if &head[12..] != expected {
        return Ok(None);
    }
    let mut counts = [0u64; 9];
    fill(&mut r, bytemuck::cast_slice_mut(&mut counts)).map_err(|_| bad("truncated header"))?;
    let [
        e,
        n,
        users,
        edge_dim,
        node_dim,
        inversions,
        bipartite,
        has_label,
        has_roll,
    ] = counts.map(|c| c as usize);
    let truncated = |_| bad("truncated columns");
    let src: Vec<u32> = column(&mut r, e).map_err(truncated)?;
    let dst: Vec<u32> = column(&mut r, e).map_err(truncated)?;
    let time: Vec<f64> = column(&mut r, e).map_err(truncated)?;
    let originals: Vec<u64> = column(&mut r, n).map_err(truncated)?;
    let label = optional(has_label == 1, || column::<f32>(&mut r, e)).map_err(truncated)?;
    let ext_roll = optional(has_roll == 1, || column::<u8>(&mut r, e)).map_err(truncated)?;
    let edge = optional(edge_dim > 0, || column::<f32>(&mut r, e * edge_dim)).map_err(truncated)?;
    let node = optional(node_dim > 0, || column::<f32>(&mut r, n * node_dim)).map_err(truncated)?;
    let users = (users as u64 != u64::MAX).then_some(users);
    let stream = EventStream::from_columns(
        src,
        dst,
        time,
        label,
        ext_roll,
        edge.and_then(|d| Features::new(d, edge_dim)),
        node.and_then(|d| Features::new(d, node_dim)),
        NodeIds::new(originals, users),
        bipartite == 1,
    )
    .map_err(|e| bad(&e.to_string()))?;
    Ok(Some((stream, LoadReport { inversions })))
}

fn fill(r: &mut impl Read, bytes: &mut [u8]) -> std::io::Result<()> {
    r.read_exact(bytes)
}

fn column<T: bytemuck::Pod + Default>(r: &mut impl Read, len: usize) -> std::io::Result<Vec<T>> {
    let mut v = vec![T::default(); len];
    fill(r, bytemuck::cast_slice_mut(&mut v))?;
    Ok(v)
}

fn optional<T>(
    present: bool,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<Option<T>> {
    present.then(f).transpose()
}
