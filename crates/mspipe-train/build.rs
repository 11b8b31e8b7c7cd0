//! Records the git revision for run directories and embeds the default dataset, gzip-compressed,
//! so the main job runs from any working directory.

use std::io::Write;
use std::path::Path;
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MSPIPE_GIT_REV={rev}");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs");

    let source = Path::new("../../datasets/wikipedia/wikipedia.csv");
    println!("cargo:rerun-if-changed={}", source.display());
    let bytes =
        std::fs::read(source).expect("datasets/wikipedia/wikipedia.csv is part of the repository");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("wikipedia.csv.gz");
    let file = std::fs::File::create(&out).expect("OUT_DIR is writable");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    gz.write_all(&bytes).expect("write embedded dataset");
    gz.finish().expect("finish embedded dataset");
}
