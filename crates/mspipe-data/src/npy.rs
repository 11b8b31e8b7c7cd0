//! `.npy` feature matrices (DyGLib, TGL): little-endian f32/f64, C order, 1-D or 2-D, through
//! `npyz`, with the checks that give a clear error instead of a short read.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use npyz::{NpyFile, WriterBuilder};

use crate::{DataError, Features, Problem, Result};

/// [`read_matrix`] of a file that may be absent (absent: `Ok(None)`, as for no features).
pub fn read_optional(path: &Path) -> Result<Option<Features>> {
    if path.exists() {
        read_matrix(path)
    } else {
        Ok(None)
    }
}

/// Reads a 1-D (`[rows]`, one value per row) or 2-D (`[rows, dim]`) float array as f32 features.
/// A `[rows, 0]` array (some DyGLib sets ship one) means "no features": `Ok(None)`.
pub fn read_matrix(path: &Path) -> Result<Option<Features>> {
    let header_err = |detail: String| DataError::file(path, Problem::NpyHeader { detail });
    let file_len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    let data_offset = data_offset(path)?;
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let npy = NpyFile::new(BufReader::new(file)).map_err(|e| header_err(e.to_string()))?;
    if npy.order() != npyz::Order::C {
        return Err(header_err("Fortran order is not supported".into()));
    }
    let shape = npy.shape().to_vec();
    let (rows, dim) = match shape[..] {
        [rows] => (rows, 1),
        [rows, dim] => (rows, dim),
        _ => return Err(header_err(format!("shape {shape:?} is not 1-D or 2-D"))),
    };
    let dtype = npy.dtype().descr();
    let item = match dtype.as_str() {
        "'<f4'" => 4,
        "'<f8'" => 8,
        _ => {
            return Err(DataError::file(
                path,
                Problem::NpyDtype {
                    dtype: dtype.trim_matches('\'').to_string(),
                },
            ));
        }
    };
    let expected_bytes = rows * dim * item;
    let found_bytes = file_len.saturating_sub(data_offset);
    if found_bytes < expected_bytes {
        return Err(DataError::file(
            path,
            Problem::NpyTruncated {
                expected_bytes,
                found_bytes,
            },
        ));
    }
    if dim == 0 {
        return Ok(None);
    }
    let io = |e| DataError::io(path, e);
    let data: Vec<f32> = if item == 4 {
        npy.into_vec::<f32>().map_err(io)?
    } else {
        npy.into_vec::<f64>()
            .map_err(io)?
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(DataError::file(
            path,
            Problem::NonFinite {
                field: format!("row {} column {}", i as u64 / dim, i as u64 % dim),
                value: data[i].to_string(),
            },
        ));
    }
    Ok(Features::new(data, dim as usize))
}

/// Writes features as a `[rows, dim]` `<f4` array.
pub fn write_matrix(path: &Path, features: &Features) -> Result<()> {
    let io = |e| DataError::io(path, e);
    let mut file = crate::format::source::temporary_beside(path)?;
    let mut buffered = BufWriter::new(&mut file);
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[features.rows() as u64, features.dim() as u64])
        .writer(&mut buffered)
        .begin_nd()
        .map_err(io)?;
    writer
        .extend(features.as_slice().iter().copied())
        .map_err(io)?;
    writer.finish().map_err(io)?;
    buffered.flush().map_err(io)?;
    drop(buffered);
    crate::format::source::persist(file, path)
}

/// Byte offset of the array data: magic (6) + version (2) + header length (u16 in v1, u32 after).
fn data_offset(path: &Path) -> Result<u64> {
    let mut pre = [0u8; 12];
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let n = file.read(&mut pre).map_err(|e| DataError::io(path, e))?;
    let bad = |detail: &str| {
        DataError::file(
            path,
            Problem::NpyHeader {
                detail: detail.into(),
            },
        )
    };
    if n < 10 || &pre[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    match pre[6] {
        1 => Ok(10 + u16::from_le_bytes([pre[8], pre[9]]) as u64),
        2 | 3 if n == 12 => Ok(12 + u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as u64),
        _ => Err(bad("unknown format version")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.npy");
        let f = Features::new(vec![1.5, -2.0, 3.25, 0.0, 1e-7, 7.0], 3).unwrap();
        write_matrix(&p, &f).unwrap();
        assert_eq!(read_matrix(&p).unwrap(), Some(f));

        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let e = read_matrix(&p).unwrap_err();
        assert_eq!(
            e.problem(),
            Some(&Problem::NpyTruncated {
                expected_bytes: 24,
                found_bytes: 19
            })
        );
        assert!(e.to_string().contains("f.npy"));
    }

    #[test]
    fn rejects_integer_dtype_and_bad_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.npy");
        npyz::to_file_1d(&p, vec![1i32, 2, 3]).unwrap();
        let e = read_matrix(&p).unwrap_err();
        assert_eq!(
            e.problem(),
            Some(&Problem::NpyDtype {
                dtype: "<i4".into()
            })
        );
        std::fs::write(&p, b"not an npy file at all").unwrap();
        assert!(matches!(
            read_matrix(&p).unwrap_err().problem(),
            Some(Problem::NpyHeader { .. })
        ));
    }

    #[test]
    fn reads_f64_vectors_as_one_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.npy");
        npyz::to_file_1d(&p, vec![0.5f64, 2.0]).unwrap();
        let f = read_matrix(&p).unwrap().unwrap();
        assert_eq!((f.rows(), f.dim()), (2, 1));
        assert_eq!(f.as_slice(), &[0.5, 2.0]);
    }
}
