//! Named datasets shipped in the repository's `datasets/` folder, so `--dataset wikipedia` works
//! while any path works too.

use std::path::{Path, PathBuf};

use crate::{DataError, Format, Result};

/// A shipped dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    /// Name used on command lines.
    pub name: &'static str,
    /// Edge file, relative to the datasets folder (its PROVENANCE.txt sits beside it).
    pub file: &'static str,
    /// Its format.
    pub format: Format,
    /// One line for tables and `--help`.
    pub description: &'static str,
}

/// Every shipped dataset.
pub const DATASETS: &[Dataset] = &[
    Dataset {
        name: "wikipedia",
        file: "wikipedia/wikipedia.csv",
        format: Format::Csv,
        description: "JODIE Wikipedia edits without edge features: 157,474 events, 9,227 nodes, bipartite",
    },
    Dataset {
        name: "collegemsg",
        file: "collegemsg/CollegeMsg.txt",
        format: Format::Snap,
        description: "SNAP CollegeMsg (UCI messages): 59,835 events, 1,899 nodes",
    },
    Dataset {
        name: "mathoverflow",
        file: "mathoverflow/sx-mathoverflow.txt.gz",
        format: Format::Snap,
        description: "SNAP sx-mathoverflow: 506,550 events, 24,818 nodes, unsorted, gzip",
    },
    Dataset {
        name: "uslegis",
        file: "uslegis/ml_USLegis.csv",
        format: Format::DyGLib,
        description: "DyGLib USLegis: 60,396 events, 225 nodes, 1-dim edge feature (.npy)",
    },
    Dataset {
        name: "bitcoin-alpha",
        file: "bitcoin-alpha/soc-sign-bitcoinalpha.csv",
        format: Format::Csv,
        description: "SNAP Bitcoin Alpha trust ratings: 24,186 events, 3,783 nodes, unsorted",
    },
];

/// The shipped dataset called `name`.
pub fn find(name: &str) -> Option<&'static Dataset> {
    DATASETS.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// `$MSPIPE_DATASETS` if set, else the repository's `datasets/` folder.
pub fn default_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("MSPIPE_DATASETS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // Where cargo runs us from first (it sets CARGO_MANIFEST_DIR for `cargo run/test/bench`),
    // then the working directory, then where this crate was compiled: a build cache shared
    // between checkouts can hold an artifact compiled in another checkout.
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let starts = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
        Some(compiled.clone()),
    ];
    starts
        .into_iter()
        .flatten()
        .find_map(|start| {
            start
                .ancestors()
                .map(|a| a.join("datasets"))
                .find(|d| d.join("README.md").is_file())
        })
        .unwrap_or_else(|| compiled.join("../../datasets"))
}

/// An existing path as given, else the file of the shipped dataset of that name under `root`.
pub fn resolve(name_or_path: &str, root: &Path) -> Result<(PathBuf, Option<Format>)> {
    let as_path = Path::new(name_or_path);
    if as_path.exists() {
        return Ok((as_path.to_path_buf(), None));
    }
    match find(name_or_path) {
        Some(d) => Ok((root.join(d.file), Some(d.format))),
        None => Err(DataError::Usage(format!(
            "{name_or_path:?} is neither a file nor a shipped dataset ({})",
            DATASETS
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
