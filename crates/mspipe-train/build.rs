//! Records the git revision the binary is built from, for run directories.

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
    // Git's own files say when the revision changed; no file of the repository is read.
    for head in ["HEAD", "refs"] {
        let path = Command::new("git")
            .args(["rev-parse", "--git-path", head])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if let Some(path) = path {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
