//! The binary cache: a second load comes from it, identical; edits and option changes rebuild it;
//! a damaged cache file is replaced, never trusted.

use mspipe_data::synthetic::{SyntheticConfig, generate};
use mspipe_data::{Format, LoadOptions, ReadOptions, TimeOrder, format, load};

#[test]
fn cache_hits_are_identical_and_stale_caches_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache_dir = dir.path().join("cache");
    let stream = generate(&SyntheticConfig {
        events: 2_000,
        edge_feat_dim: 3,
        node_feat_dim: 2,
        ..Default::default()
    })
    .expect("generate");
    let path = dir.path().join("ml_c.csv");
    format::write(&stream, Format::DyGLib, &path).expect("write");
    let options = LoadOptions {
        read: ReadOptions::default(),
        cache_dir: Some(cache_dir.clone()),
    };

    let first = load(&path, &options).expect("parse");
    assert!(!first.from_cache);
    let second = load(&path, &options).expect("cached");
    assert!(second.from_cache);
    assert_eq!(first.stream, second.stream);
    assert_eq!(second.stream.edge_features(), stream.edge_features());

    // Editing a feature file (not the csv) makes the cache stale.
    let mut feats = stream.edge_features().expect("f").as_slice().to_vec();
    feats[0] += 1.0;
    let edited = mspipe_data::Features::new(feats, 3).expect("f");
    let mut with_pad = vec![0.0; 3];
    with_pad.extend_from_slice(edited.as_slice());
    mspipe_data::npy::write_matrix(
        &dir.path().join("ml_c.npy"),
        &mspipe_data::Features::new(with_pad, 3).expect("f"),
    )
    .expect("npy");
    let third = load(&path, &options).expect("reparsed");
    assert!(!third.from_cache);
    assert_eq!(third.stream.edge_features(), Some(&edited));

    // Other read options, other digest.
    let strict = LoadOptions {
        read: ReadOptions {
            time_order: TimeOrder::Error,
            ..Default::default()
        },
        ..options.clone()
    };
    assert!(!load(&path, &strict).expect("strict").from_cache);

    // A truncated cache file is rebuilt.
    let cached: Vec<_> = std::fs::read_dir(&cache_dir).expect("dir").collect();
    assert_eq!(
        cached.len(),
        1,
        "one cache file per source, rewritten in place"
    );
    let file = cached[0].as_ref().expect("entry").path();
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    let fourth = load(&path, &strict).expect("rebuilt");
    assert!(!fourth.from_cache);
    assert_eq!(fourth.stream, third.stream);
    assert!(load(&path, &strict).expect("hit").from_cache);
}
