//! generate → write in each format → read → the same stream (for what each format carries).

use mspipe_data::synthetic::{SyntheticConfig, generate};
use mspipe_data::{EventStream, Format, ReadOptions, format};
use proptest::prelude::*;

fn read_back(stream: &EventStream, fmt: Format, file: &str, detect: bool) -> EventStream {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(file);
    format::write(stream, fmt, &path).expect("write");
    let options = ReadOptions {
        format: (!detect).then_some(fmt),
        ..Default::default()
    };
    format::read(&path, &options).expect("read").0
}

fn assert_same_events(a: &EventStream, b: &EventStream, what: &str) {
    assert_eq!(a.src(), b.src(), "{what}: src");
    assert_eq!(a.dst(), b.dst(), "{what}: dst");
    assert_eq!(a.time(), b.time(), "{what}: time");
    assert_eq!(a.num_nodes(), b.num_nodes(), "{what}: nodes");
    assert_eq!(a.is_bipartite(), b.is_bipartite(), "{what}: bipartite");
}

fn config(seed: u64, users: Option<usize>, edge_dim: usize, node_dim: usize) -> SyntheticConfig {
    SyntheticConfig {
        events: 3_000,
        nodes: 300,
        users,
        edge_feat_dim: edge_dim,
        node_feat_dim: node_dim,
        label_rate: 0.05,
        seed,
        ..Default::default()
    }
}

#[test]
fn every_format_round_trips_what_it_carries() {
    let plain = generate(&config(1, None, 0, 0)).expect("generate");
    let featured = generate(&config(2, None, 4, 3)).expect("generate");
    let bipartite = generate(&config(3, Some(120), 5, 0)).expect("generate");

    for (file, detect) in [("edges.txt", true), ("edges.txt.gz", true)] {
        let back = read_back(&plain, Format::Snap, file, detect);
        assert_same_events(&plain, &back, file);
    }

    let back = read_back(&featured, Format::Csv, "events.csv", true);
    assert_same_events(&featured, &back, "csv");
    assert_eq!(back.labels(), featured.labels());

    let back = read_back(&featured, Format::DyGLib, "ml_synth.csv", true);
    assert_same_events(&featured, &back, "dyglib");
    assert_eq!(back.labels(), featured.labels());
    assert_eq!(back.edge_features(), featured.edge_features());
    assert_eq!(back.node_features(), featured.node_features());

    let back = read_back(&featured, Format::Tgl, "edges.csv", true);
    assert_same_events(&featured, &back, "tgl");
    assert_eq!(back.edge_features(), featured.edge_features());
    assert_eq!(back.node_features(), featured.node_features());
    assert_eq!(back.ext_roll(), Some(&vec![0u8; featured.len()][..]));

    let back = read_back(&bipartite, Format::Jodie, "jodie.csv", true);
    assert_same_events(&bipartite, &back, "jodie");
    assert_eq!(back.labels(), bipartite.labels());
    assert_eq!(back.edge_features(), bipartite.edge_features());
    assert_eq!(back.node_ids().users(), bipartite.node_ids().users());
}

#[test]
fn jodie_wide_feature_rows_with_the_original_header() {
    // The original JODIE files have one header cell for all 172 features.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wikipedia.csv");
    let mut text =
        String::from("user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n");
    for i in 0..10 {
        let feats: Vec<String> = (0..172)
            .map(|k| format!("{}", (i * k) as f32 / 7.0))
            .collect();
        text += &format!(
            "{},{},{},{},{}\n",
            i % 3,
            i % 4,
            i * 2,
            i % 2,
            feats.join(",")
        );
    }
    std::fs::write(&path, text).expect("write");
    let (s, _) = format::read(&path, &ReadOptions::default()).expect("read");
    let f = s.edge_features().expect("features");
    assert_eq!((f.rows(), f.dim()), (10, 172));
    assert_eq!(f.row(3)[5], 15.0 / 7.0);
    assert_eq!(s.node_ids().users(), Some(3));
    assert_eq!(s.num_nodes(), 7);
    assert_eq!(
        s.dst()[1],
        3 + 1,
        "item 1 is the second item, after 3 users"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn dyglib_and_csv_round_trip_any_seed(seed in 0u64..1_000, edge_dim in 1usize..4) {
        let s = generate(&SyntheticConfig { events: 500, nodes: 40, ..config(seed, None, edge_dim, 2) })
            .expect("generate");
        let back = read_back(&s, Format::DyGLib, "ml_x.csv", true);
        prop_assert_eq!(back.src(), s.src());
        prop_assert_eq!(back.time(), s.time());
        prop_assert_eq!(back.edge_features(), s.edge_features());
        let back = read_back(&s, Format::Csv, "x.csv", true);
        prop_assert_eq!(back.dst(), s.dst());
        prop_assert_eq!(back.time(), s.time());
    }
}
