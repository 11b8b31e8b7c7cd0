//! Loading with the binary cache in front of the readers.

use std::path::{Path, PathBuf};

use crate::format::{self, Format, ReadOptions};
use crate::{EventStream, LoadReport, Result, cache};

/// How to load a dataset file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// How to parse it.
    pub read: ReadOptions,
    /// Where parsed streams are cached; `None` always parses.
    pub cache_dir: Option<PathBuf>,
}

/// A loaded stream and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The events.
    pub stream: EventStream,
    /// What reading found (rows, reordering, duplicates, …).
    pub report: LoadReport,
    /// The format the file was read as.
    pub format: Format,
    /// Whether the stream came from the cache rather than from parsing.
    pub from_cache: bool,
    /// sha256 over the source files and read options (what the cache is keyed on).
    pub digest: [u8; 32],
}

/// `$MSPIPE_CACHE_DIR`, else `$XDG_CACHE_HOME/mspipe`, else `~/.cache/mspipe`, else a temp dir.
pub fn default_cache_dir() -> PathBuf {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("MSPIPE_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("mspipe")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("mspipe")))
        .unwrap_or_else(|| std::env::temp_dir().join("mspipe-cache"))
}

/// Reads `path`, from the cache when it holds this exact source and options, and refreshes the
/// cache otherwise. A cache that cannot be read or written costs a warning, never the load.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    let fmt = match options.read.format {
        Some(f) => f,
        None => format::detect(path)?,
    };
    let read = ReadOptions {
        format: Some(fmt),
        ..options.read.clone()
    };
    let digest = cache::digest(&format::inputs(fmt, path), &format!("{read:?}"))?;
    let cache_file = options.cache_dir.as_ref().map(|d| cache_path(d, path));
    if let Some(file) = cache_file.as_deref().filter(|f| f.exists()) {
        match cache::read(file, &digest) {
            Ok(Some((stream, report))) => {
                return Ok(Loaded {
                    stream,
                    report,
                    format: fmt,
                    from_cache: true,
                    digest,
                });
            }
            Ok(None) => log::info!("{}: stale cache, re-parsing", file.display()),
            Err(e) => log::warn!("{e}; re-parsing"),
        }
    }
    let (stream, report) = format::read(path, &read)?;
    if let Some(file) = cache_file
        && let Err(e) = cache::write(&file, &digest, &stream, &report)
    {
        log::warn!("could not write the cache: {e}");
    }
    Ok(Loaded {
        stream,
        report,
        format: fmt,
        from_cache: false,
        digest,
    })
}

/// `<cache dir>/<file name>-<hash of the absolute path>.bin`.
fn cache_path(dir: &Path, source: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let key = cache::digest(&[], &abs.to_string_lossy()).unwrap_or_default();
    let hex: String = key[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = source.file_name().unwrap_or_default().to_string_lossy();
    dir.join(format!("{name}-{hex}.bin"))
}
