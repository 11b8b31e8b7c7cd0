//! Prints what a dataset holds and how TGN's split divides it:
//! `cargo run --release -p mspipe-data --example summary -- wikipedia [more names or paths]`.

use std::process::ExitCode;

use mspipe_data::{
    LoadOptions, ReadOptions, Split, SplitConfig, default_cache_dir, load, registry,
};

fn summarize(name: &str) -> Result<(), mspipe_data::DataError> {
    let (path, format) = registry::resolve(name, &registry::default_root())?;
    let options = LoadOptions {
        read: ReadOptions {
            format,
            ..Default::default()
        },
        cache_dir: Some(default_cache_dir()),
    };
    let loaded = load(&path, &options)?;
    let s = &loaded.stream;
    let split = Split::chronological(s, &SplitConfig::default())?;
    let new_node_events =
        |r: std::ops::Range<usize>| r.filter(|&i| split.involves_new_node(s, i)).count();
    let dim = |f: Option<&mspipe_data::Features>| f.map_or(0, |f| f.dim());
    println!("{}  ({}, format {})", name, path.display(), loaded.format);
    println!(
        "  events {:>10}   nodes {:>8}   bipartite {}",
        s.len(),
        s.num_nodes(),
        s.is_bipartite()
    );
    println!(
        "  time   {} .. {}   out-of-order pairs in file {}",
        s.time()[0],
        s.time()[s.len() - 1],
        loaded.report.inversions
    );
    println!(
        "  edge features {}   node features {}   labels {}",
        dim(s.edge_features()),
        dim(s.node_features()),
        s.labels().is_some()
    );
    println!(
        "  split  train {} ({} trained on)   val {} ({} new-node)   test {} ({} new-node)",
        split.train.len(),
        split.train_events(s).len(),
        split.val.len(),
        new_node_events(split.val.clone()),
        split.test.len(),
        new_node_events(split.test.clone()),
    );
    Ok(())
}

fn main() -> ExitCode {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let names = if names.is_empty() {
        registry::DATASETS
            .iter()
            .map(|d| d.name.to_string())
            .collect()
    } else {
        names
    };
    for name in &names {
        if let Err(e) = summarize(name) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
