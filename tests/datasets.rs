//! Every shipped dataset loads with exactly the counts its PROVENANCE.txt records, and its file is
//! byte-for-byte the one whose sha256 the provenance gives.

use std::collections::HashMap;
use std::path::Path;

use mspipe::data::{LoadOptions, ReadOptions, load, registry};
use sha2::{Digest, Sha256};

/// The `key: value` lines of the VERIFICATION block of `file` in a PROVENANCE.txt, and its sha256
/// from the FILES block.
fn provenance(dir: &Path, file: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join("PROVENANCE.txt")).expect("PROVENANCE.txt");
    let mut out = HashMap::new();
    let mut in_block = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix(file)
            && let Some(sha) = rest.split_whitespace().nth(1)
        {
            out.insert("sha256".to_string(), sha.to_string());
        }
        if let Some(name) = t.strip_prefix("file: ") {
            in_block = name == file;
        } else if in_block && let Some((k, v)) = t.split_once(": ") {
            out.insert(k.to_string(), v.to_string());
        }
    }
    assert!(out.contains_key("rows"), "no verification block for {file}");
    out
}

#[test]
fn shipped_datasets_match_their_provenance() {
    let root = registry::default_root();
    for d in registry::DATASETS {
        let path = root.join(d.file);
        let dir = path.parent().expect("dataset folder");
        let name = path
            .file_name()
            .expect("file")
            .to_string_lossy()
            .to_string();
        let prov = provenance(dir, &name);
        let num = |k: &str| prov[k].parse::<usize>().expect(k);

        let bytes = std::fs::read(&path).expect("dataset file");
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, prov["sha256"], "{}: sha256", d.name);

        let options = LoadOptions {
            read: ReadOptions {
                format: Some(d.format),
                ..Default::default()
            },
            cache_dir: None,
        };
        let loaded = load(&path, &options).expect("loads");
        let s = &loaded.stream;
        assert_eq!(s.len(), num("rows"), "{}: events", d.name);
        assert_eq!(s.num_nodes(), num("n_nodes_union"), "{}: nodes", d.name);
        assert!(
            s.time().windows(2).all(|w| w[0] <= w[1]),
            "{}: sorted",
            d.name
        );
        let sorted_in_file = prov["ts_sorted_nondecreasing"] == "True";
        assert_eq!(loaded.report.inversions == 0, sorted_in_file, "{}", d.name);
        assert_eq!(
            loaded.report.inversions,
            num("ts_out_of_order_pairs"),
            "{}",
            d.name
        );
        let distinct = |col: &[u32]| {
            let mut v = col.to_vec();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        assert_eq!(distinct(s.src()), num("n_src"), "{}: sources", d.name);
        assert_eq!(distinct(s.dst()), num("n_dst"), "{}: destinations", d.name);
        let self_loops = s.src().iter().zip(s.dst()).filter(|(a, b)| a == b).count();
        assert_eq!(self_loops, num("self_loops"), "{}: self loops", d.name);
        let t_min: f64 = prov["ts_min"].parse().expect("ts_min");
        let t_max: f64 = prov["ts_max"].parse().expect("ts_max");
        assert_eq!(
            (s.time()[0], s.time()[s.len() - 1]),
            (t_min, t_max),
            "{}",
            d.name
        );
    }
}

#[test]
fn wikipedia_is_bipartite_with_labels_and_uslegis_has_edge_features() {
    let root = registry::default_root();
    let wiki = registry::find("wikipedia").expect("registered");
    let s = load(&root.join(wiki.file), &LoadOptions::default())
        .expect("loads")
        .stream;
    assert!(s.is_bipartite());
    assert_eq!(s.destination_nodes().len(), 1_000);
    let positives = s
        .labels()
        .expect("labels")
        .iter()
        .filter(|&&l| l == 1.0)
        .count();
    assert_eq!(positives, 217);

    let legis = registry::find("uslegis").expect("registered");
    let s = load(&root.join(legis.file), &LoadOptions::default())
        .expect("loads")
        .stream;
    let f = s.edge_features().expect("ml_USLegis.npy is read");
    assert_eq!((f.rows(), f.dim()), (60_396, 1));
    assert!(f.as_slice().iter().all(|v| v.is_finite() && *v != 0.0));
}
