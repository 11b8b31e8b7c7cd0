#!/usr/bin/env bash
# A newcomer's project outside the workspace: a fresh cargo package under the target directory
# that depends on mspipe's library crates by path, with `examples/tgn_step.rs` as its main,
# builds and trains. Fails if the libraries cannot be used without mspipe-train.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME}/.cache/mspipe-target}"
dir="$CARGO_TARGET_DIR/fresh-project"
rm -rf "$dir"
mkdir -p "$dir/src"
cat > "$dir/Cargo.toml" <<EOF
[package]
name = "fresh-project"
version = "0.1.0"
edition = "2024"
publish = false

# Not a member of the mspipe workspace above it.
[workspace]

[dependencies]
burn = { version = "0.22.1", default-features = false, features = ["std", "flex", "autodiff", "optim"] }
mspipe-data = { path = "$root/crates/mspipe-data" }
mspipe-model = { path = "$root/crates/mspipe-model" }
mspipe-sampler = { path = "$root/crates/mspipe-sampler" }
mspipe-step = { path = "$root/crates/mspipe-step", features = ["flex"] }
EOF
cp "$root/crates/mspipe-step/examples/tgn_step.rs" "$dir/src/main.rs"
# The workspace's lock file: the same dependency versions that CI tested (cargo drops the
# entries this package does not use).
cp "$root/Cargo.lock" "$dir/Cargo.lock"
cd "$dir"
cargo run --quiet
