//! Opening inputs: plain or gzip-compressed text, chosen by the `.gz` suffix.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

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

/// A writer of text to `path`, gzip-compressed when the name ends in `.gz`.
pub(crate) enum Sink {
    Plain(BufWriter<File>),
    Gz(GzEncoder<BufWriter<File>>),
}

impl Sink {
    pub(crate) fn create(path: &Path) -> Result<Sink> {
        let file = File::create(path).map_err(|e| DataError::io(path, e))?;
        let w = BufWriter::with_capacity(1 << 16, file);
        Ok(if is_gz(path) {
            Sink::Gz(GzEncoder::new(w, Compression::fast()))
        } else {
            Sink::Plain(w)
        })
    }

    /// Flushes everything, writing the gzip trailer; errors surface here rather than on drop.
    pub(crate) fn finish(self, path: &Path) -> Result<()> {
        let mut inner = match self {
            Sink::Plain(w) => w,
            Sink::Gz(gz) => gz.finish().map_err(|e| DataError::io(path, e))?,
        };
        inner.flush().map_err(|e| DataError::io(path, e))
    }
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
