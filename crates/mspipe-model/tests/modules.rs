//! Updater semantics and the save/load round trip.

use burn::module::Module;
use burn::prelude::*;
use mspipe_model::memory::{Combine, Gathered, MemoryStore, MemoryUpdater, RnnCellConfig};
use mspipe_model::tensors::{bools, floats, indices, to_vec};
use mspipe_model::{EmbedInput, HopInput, MemoryInput, MemoryModelConfig};

#[test]
fn nodes_without_mail_keep_their_memory_and_mean_averages_present_mails() {
    let dev = Device::flex();
    let cell = RnnCellConfig::new(2, 3).init(&dev);
    let memory = floats(&[0.1, 0.2, 0.3, -0.5, 0.4, 0.9], [2, 3], &dev);
    // Node 0: mails [1, 2] (old) and [3, 4] (new); node 1: no mail.
    let mails = floats(&[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0], [2, 2, 2], &dev);
    let mask = bools(&[true, true, false, false], [2, 2], &dev);
    let updater = MemoryUpdater::Rnn(cell.clone());
    let h = floats(&[0.1, 0.2, 0.3], [1, 3], &dev);
    for (combine, x) in [(Combine::Last, [3.0, 4.0]), (Combine::Mean, [2.0, 3.0])] {
        let out = to_vec(updater.forward(memory.clone(), mails.clone(), mask.clone(), combine));
        let want = to_vec(cell.forward(floats(&x, [1, 2], &dev), h.clone()));
        assert_eq!(&out[..3], &want[..], "{combine:?}");
        assert_eq!(&out[3..], &[-0.5, 0.4, 0.9], "no mail, no change");
    }
}

/// Every preset: a saved model loaded into a freshly initialised one gives identical outputs.
#[test]
fn record_round_trip_gives_identical_outputs() {
    let dev = Device::flex();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, config) in [
        ("tgn", MemoryModelConfig::tgn(3)),
        ("jodie", MemoryModelConfig::jodie(3)),
        ("apan", MemoryModelConfig::apan(3)),
    ] {
        let config = config
            .with_memory_dim(8)
            .with_time_dim(4)
            .with_embed_dim(8)
            .with_neighbors(2);
        let mut store = MemoryStore::new(4, 8, config.mail_dim(), config.mailbox);
        let mail: Vec<f32> = (0..config.mail_dim()).map(|i| i as f32 / 10.0).collect();
        store.push_mails(&[0, 2], &[mail.clone(), mail].concat(), &[1.0, 2.0]);
        let mut g = Gathered::default();
        store.gather(&[0, 1, 2, 3], &mut g);
        let input = EmbedInput {
            root_index: indices(&[0, 2], &dev),
            root_dt: floats(&[0.5, 1.5], [2], &dev),
            hops: vec![HopInput::from_host(
                &[1, 3, 2, 0],
                &[1.0, 2.0, 3.0, 4.0],
                &[true, false, true, true],
                Some((&[0.5; 12], 3)),
                2,
                &dev,
            )],
        };
        let run = |model: &mspipe_model::MemoryModel| {
            let memory = model.update_memory(MemoryInput::from_host(&g, 8, config.mailbox, &dev));
            let h = model.embed(memory, &input);
            to_vec(model.score(h, indices(&[0], &dev), indices(&[1], &dev)))
        };
        dev.seed(1);
        let model = config.init(&dev);
        let before = run(&model);
        let path = dir.path().join(format!("{name}.bpk"));
        model.clone().save_file(&path).expect("save");
        dev.seed(2);
        let other = config.init(&dev);
        assert_ne!(run(&other), before, "{name}: another init differs");
        let loaded = other.try_load_file(&path).expect("load");
        assert_eq!(run(&loaded), before, "{name}");
    }
}
