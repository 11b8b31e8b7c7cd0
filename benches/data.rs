//! Data-crate throughput, printed as one JSON object:
//! `cargo bench --bench data` (add `-- --events N` to size the generator run; default 10M).
//!
//! 1. sx-mathoverflow (gzip SNAP, 506,550 events): parse from the file vs load from the cache.
//! 2. The synthetic generator at 10M events with 172-dim edge features, and the peak RSS.

use std::time::Instant;

use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::data::{LoadOptions, ReadOptions, load, registry};
use serde_json::json;

fn median_secs(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

fn main() {
    let mut args = std::env::args().skip_while(|a| a != "--events").skip(1);
    let events: usize = args
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);

    let entry = registry::find("mathoverflow").expect("registered");
    let path = registry::default_root().join(entry.file);
    let cache = tempfile::tempdir().expect("tempdir");
    let parse = LoadOptions {
        read: ReadOptions::default(),
        cache_dir: None,
    };
    let cached = LoadOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..parse.clone()
    };
    let n = load(&path, &cached)
        .expect("parse and fill cache")
        .stream
        .len();
    let cold = median_secs(5, || {
        assert!(!load(&path, &parse).expect("parse").from_cache)
    });
    let warm = median_secs(5, || {
        assert!(load(&path, &cached).expect("cache").from_cache)
    });

    let config = SyntheticConfig {
        events,
        nodes: 1_000_000,
        edge_feat_dim: 172,
        seed: 1,
        ..Default::default()
    };
    let start = Instant::now();
    let stream = generate(&config).expect("generate");
    let gen_secs = start.elapsed().as_secs_f64();
    assert_eq!(stream.len(), events);

    let report = json!({
        "threads": rayon::current_num_threads(),
        "mathoverflow": {
            "events": n,
            "parse_seconds": cold,
            "parse_events_per_sec": n as f64 / cold,
            "cache_seconds": warm,
            "cache_events_per_sec": n as f64 / warm,
            "cache_speedup": cold / warm,
        },
        "generator": {
            "events": events,
            "edge_feat_dim": 172,
            "seconds": gen_secs,
            "events_per_sec": events as f64 / gen_secs,
            "peak_rss_bytes": mspipe::train::run::peak_rss_bytes(),
            "feature_bytes": events * 172 * 4,
        },
    });
    println!("{report}");
}
