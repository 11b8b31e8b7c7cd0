//! Opening inputs: plain or gzip-compressed text, chosen by the `.gz` suffix.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use tempfile::NamedTempFile;

use crate::{DataError, Result};

pub(crate) fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// A buffered reader over the (decompressed) bytes of `path`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    Ok(if is_gz(path) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    })
}

/// A writer of text to `path`, gzip-compressed when the name ends in `.gz`. The text goes to a
/// temporary file beside `path` that [`Sink::finish`] renames onto it, so a failed or interrupted
/// write leaves any earlier file at `path` as it was.
pub(crate) enum Sink {
    Plain(BufWriter<NamedTempFile>),
    Gz(GzEncoder<BufWriter<NamedTempFile>>),
}

impl Sink {
    pub(crate) fn create(path: &Path) -> Result<Sink> {
        let w = BufWriter::with_capacity(1 << 16, temporary_beside(path)?);
        Ok(if is_gz(path) {
            Sink::Gz(GzEncoder::new(w, Compression::fast()))
        } else {
            Sink::Plain(w)
        })
    }

    /// Writes `header` (a line, unless empty), then `line(w, i)` for `i` in `0..lines` (each
    /// writing one line), into `path` as one atomic write.
    pub(crate) fn write_lines(
        path: &Path,
        header: &str,
        lines: usize,
        mut line: impl FnMut(&mut Sink, usize) -> io::Result<()>,
    ) -> Result<()> {
        let io = |e| DataError::io(path, e);
        let mut w = Sink::create(path)?;
        if !header.is_empty() {
            writeln!(w, "{header}").map_err(io)?;
        }
        for i in 0..lines {
            line(&mut w, i).map_err(io)?;
        }
        w.finish(path)
    }

    /// Flushes everything (the gzip trailer too) and moves the file onto `path`; errors surface
    /// here rather than on drop.
    pub(crate) fn finish(self, path: &Path) -> Result<()> {
        let io = |e| DataError::io(path, e);
        let buffered = match self {
            Sink::Plain(w) => w,
            Sink::Gz(gz) => gz.finish().map_err(io)?,
        };
        let file = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        persist(file, path)
    }
}

/// A temporary file in `path`'s directory, for a write that [`persist`] completes. It is created
/// readable by all (less the umask), as a plain `File::create` would be: the file is the user's
/// data, not a secret.
pub(crate) fn temporary_beside(path: &Path) -> Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    builder.tempfile_in(dir).map_err(|e| DataError::io(path, e))
}

/// Moves the finished temporary `file` onto `path`, its bytes on disk first so that the rename
/// never publishes a file a crash could still truncate.
pub(crate) fn persist(file: NamedTempFile, path: &Path) -> Result<()> {
    file.as_file()
        .sync_all()
        .map_err(|e| DataError::io(path, e))?;
    file.persist(path)
        .map(drop)
        .map_err(|e| DataError::io(path, e.error))
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Gz(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Gz(w) => w.flush(),
        }
    }
}

/// The first line of `path` that is neither blank nor a `#`/`%` comment, with its 1-based number.
pub(crate) fn first_content_line(path: &Path) -> Result<Option<(u64, String)>> {
    let reader = open(path)?;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| DataError::io(path, e))?;
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#') || t.starts_with('%')) {
            return Ok(Some((i as u64 + 1, line)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["edges.csv", "edges.csv.gz"] {
            let path = dir.path().join(name);
            Sink::write_lines(&path, "a,b", 2, |w, i| writeln!(w, "{i},{}", i * 10))
                .expect("write");
            let read = |p: &Path| -> Vec<String> {
                open(p)
                    .expect("open")
                    .lines()
                    .map(|l| l.expect("line"))
                    .collect()
            };
            assert_eq!(read(&path), ["a,b", "0,0", "1,10"]);
            // A write that fails half-way leaves the earlier file as it was, and no stray file.
            let failed = Sink::write_lines(&path, "a,b", 3, |w, i| {
                if i == 2 {
                    return Err(io::Error::other("disk full"));
                }
                writeln!(w, "{i}")
            });
            let err = failed.expect_err("the line writer failed").to_string();
            assert!(err.contains(name) && err.contains("disk full"), "{err}");
            assert_eq!(read(&path), ["a,b", "0,0", "1,10"]);
        }
        assert_eq!(files_in(dir.path()), ["edges.csv", "edges.csv.gz"]);
        // Created with the permissions a plain `File::create` gives under this umask.
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).expect("create");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions();
        assert_eq!(mode(&dir.path().join("edges.csv")), mode(&plain));
    }
}
