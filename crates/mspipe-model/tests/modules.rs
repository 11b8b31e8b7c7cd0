//! Updater semantics and the save/load round trip.

use burn::module::Module;
use burn::prelude::*;
use mspipe_model::embedding::TemporalAttention;
use mspipe_model::memory::{Combine, Gathered, Mails, MemoryStore, MemoryUpdater, RnnCellConfig};
use mspipe_model::tensors::{bools, floats, indices, to_vec};
use mspipe_model::{
    EmbedInput, HopInput, LinkPredictorConfig, MemoryInput, MemoryModelConfig, SlotTimes,
};

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
    // Each mail's first value as the mail, its second as its time encoding.
    let joined = Mails::side_by_side(mails.clone(), 1);
    let mails = Mails::new(mails.clone().narrow(2, 0, 1), mails.narrow(2, 1, 1));
    for (combine, [a, b]) in [(Combine::Last, [3.0, 4.0]), (Combine::Mean, [2.0, 3.0])] {
        let out = to_vec(updater.forward(memory.clone(), mails.clone(), mask.clone(), combine));
        let from_joined = updater.forward(memory.clone(), joined.clone(), mask.clone(), combine);
        assert_eq!(
            to_vec(from_joined),
            out,
            "{combine:?}: parts given side by side"
        );
        let x = |v: f32| floats(&[v], [1, 1], &dev);
        let want = to_vec(cell.forward(x(a), x(b), h.clone()));
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
            let memory =
                model.update_memory(MemoryInput::from_host(g.clone(), 8, config.mailbox, &dev));
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

/// Two attention layers: hop-1 neighbours are first embedded from their own hop-2 neighbours
/// (layer 1), then the roots from those (layer 2), as TGL's multi-layer sampling implies.
/// A training step scores its positive and negative pairs in one pass: each pair's logit is the
/// one scoring the two sets apart gives, to the bit (a row's products do not depend on the other
/// rows), and the gradients agree (the parameters' sum their rows in another order).
#[test]
fn pairs_scored_together_match_pairs_scored_apart() {
    let dev = Device::flex().autodiff();
    let link = LinkPredictorConfig::new(100).init(&dev);
    let (r, b) = (1_800, 600u32);
    // Values in [-1, 1) from a multiplicative sequence: no shared random generator.
    let values: Vec<f32> = (0..r * 100u64)
        .map(|i| (i * 2_654_435_761 % 1_000) as f32 / 500.0 - 1.0)
        .collect();
    let h = floats(&values, [r as usize, 100], &dev).require_grad();
    let (src, dst): (Vec<u32>, Vec<u32>) = ((0..b).chain(0..b).collect(), (b..3 * b).collect());
    let score = |s: &[u32], d: &[u32]| {
        let pick = |i: &[u32]| h.clone().select(0, indices(i, &dev));
        link.forward(pick(s), pick(d))
    };
    let together = score(&src, &dst);
    let (pos, neg) = (
        score(&src[..600], &dst[..600]),
        score(&src[600..], &dst[600..]),
    );
    let bits = |t: Tensor<1>| {
        to_vec(t.detach())
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    };
    let apart: Vec<u32> = bits(pos.clone())
        .into_iter()
        .chain(bits(neg.clone()))
        .collect();
    assert_eq!(bits(together.clone()), apart);
    let grad = |loss: Tensor<1>| to_vec(h.grad(&loss.backward()).expect("tracked").reshape([-1]));
    let (p, n) = (together.clone().slice(0..600), together.slice(600..));
    let (one, two) = (grad(p.sum() - n.sum()), grad(pos.sum() - neg.sum()));
    for (a, b) in one.iter().zip(&two) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn two_layer_embedding_composes_the_layers() {
    use mspipe_model::embedding::{NeighborRows, Neighbors};
    let dev = Device::flex();
    let (d, k) = (6, 2);
    let config = MemoryModelConfig::tgn(0)
        .with_memory_dim(d)
        .with_time_dim(4)
        .with_embed_dim(d)
        .with_layers(2)
        .with_neighbors(k);
    let model = config.init(&dev);
    let memory: Vec<f32> = (0..5 * d)
        .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5)
        .collect();
    let mem = floats(&memory, [5, d], &dev);
    // One root (row 0); hop 1: rows 1, 2; hop 2: rows 3, 4 | 0, 3 (last one padded).
    let hop1 = (vec![1u32, 2], vec![1.0f32, 2.0], vec![true, true]);
    let hop2 = (
        vec![3u32, 4, 0, 3],
        vec![0.5f32, 1.5, 2.5, 3.5],
        vec![true, true, true, false],
    );
    let input = EmbedInput {
        root_index: indices(&[0], &dev),
        root_dt: floats(&[0.0], [1], &dev),
        hops: vec![
            HopInput::from_host(&hop1.0, &hop1.1, &hop1.2, None, k, &dev),
            HopInput::from_host(&hop2.0, &hop2.1, &hop2.2, None, k, &dev),
        ],
    };
    let got = to_vec(model.embed(mem.clone(), &input));

    let te = model.time_encoding();
    let rows = |idx: &[u32]| mem.clone().select(0, indices(idx, &dev));
    let nbr = |h: Tensor<2>, dt: &[f32], mask: &[bool], n: usize| Neighbors {
        h: NeighborRows::Dense(h.reshape([n, k, d])),
        dt: SlotTimes::from_host(dt, &dev),
        edge: None,
        mask: bools(mask, [n, k], &dev),
    };
    let [l1, l2] = [&model.layers()[0], &model.layers()[1]];
    let hop1_reps = l1.forward(rows(&hop1.0), nbr(rows(&hop2.0), &hop2.1, &hop2.2, 2), te);
    let root_l1 = l1.forward(rows(&[0]), nbr(rows(&hop1.0), &hop1.1, &hop1.2, 1), te);
    let want = to_vec(l2.forward(root_l1, nbr(hop1_reps, &hop1.1, &hop1.2, 1), te));
    assert_eq!(got, want);
}

/// Each dropout (on the output and merge units; on the attention weights) acts while training
/// only: on the autodiff device two draws differ and some outputs change, on the inference copy
/// the layer equals the same weights without dropout.
#[test]
fn attention_dropout_acts_in_training_only() {
    for (dropout, att_dropout) in [(0.5, 0.0), (0.0, 0.5)] {
        dropout_acts_in_training_only(dropout, att_dropout);
    }
}

fn dropout_acts_in_training_only(dropout: f64, att_dropout: f64) {
    use mspipe_model::embedding::{NeighborRows, Neighbors, TemporalAttentionConfig};
    use mspipe_model::{AttentionHeadsConfig, TimeEncodingConfig};
    let dev = Device::flex().autodiff();
    let (r, k, d) = (4, 3, 8);
    dev.seed(1);
    let heads = AttentionHeadsConfig::new()
        .with_dropout(dropout)
        .with_att_dropout(att_dropout);
    let layer = TemporalAttentionConfig::new(d, 0, 4, d)
        .with_attention(heads)
        .init(&dev);
    let te = TimeEncodingConfig::new(4).init(&dev);
    let values = |n: usize| {
        (0..n)
            .map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.4)
            .collect::<Vec<_>>()
    };
    let run = |layer: &TemporalAttention, te: &mspipe_model::TimeEncoding, dev: &Device| {
        to_vec(layer.forward(
            floats(&values(r * d), [r, d], dev),
            Neighbors {
                h: NeighborRows::Dense(floats(&values(r * k * d), [r, k, d], dev)),
                dt: SlotTimes::from_host(&[1.0, 2.0, 3.0].repeat(r), dev),
                edge: None,
                mask: bools(&[true; 12], [r, k], dev),
            },
            te,
        ))
    };
    let (a, b) = (run(&layer, &te, &dev), run(&layer, &te, &dev));
    assert_ne!(a, b, "two training draws use different masks");
    let inner = dev.clone().inner();
    let (valid, te_valid) = (layer.clone().valid(), te.clone().valid());
    let no_dropout = TemporalAttention {
        dropout: burn::nn::DropoutConfig::new(0.0).init(),
        att_dropout: burn::nn::DropoutConfig::new(0.0).init(),
        ..layer.clone()
    }
    .valid();
    let eval = run(&valid, &te_valid, &inner);
    assert_eq!(
        eval,
        run(&valid, &te_valid, &inner),
        "evaluation is deterministic"
    );
    assert_eq!(
        eval,
        run(&no_dropout, &te_valid, &inner),
        "and drops nothing"
    );
    assert_ne!(a, eval, "training did drop units");
}

/// Roots given as rows of a smaller table (nodes that are roots of several events): the query
/// and its fold through `W_k` are computed per table row and gathered. The output and the
/// gradients of the table and of the query and key weights equal those of the roots' rows one
/// by one (to rounding: the gradients sum the repeated roots in another order).
#[test]
fn roots_as_table_rows_match_roots_row_by_row() {
    use mspipe_model::AttentionHeadsConfig;
    use mspipe_model::TimeEncodingConfig;
    use mspipe_model::embedding::{NeighborRows, Neighbors, TemporalAttentionConfig};
    let dev = Device::flex().autodiff();
    let (t, d, k) = (4, 6, 3);
    let at = [0u32, 2, 0, 3, 2, 0, 1];
    let r = at.len();
    // No dropout: both runs must see the same weights on every slot.
    let heads = AttentionHeadsConfig::new()
        .with_heads(2)
        .with_dropout(0.0)
        .with_att_dropout(0.0);
    let layer = TemporalAttentionConfig::new(d, 0, 4, 8)
        .with_attention(heads)
        .init(&dev);
    let te = TimeEncodingConfig::new(4).init(&dev);
    let values = |n: usize, m: usize| {
        (0..n)
            .map(|i| ((i * m) % 17) as f32 / 17.0 - 0.45)
            .collect::<Vec<_>>()
    };
    let mask: Vec<bool> = (0..r * k).map(|s| s % 5 != 4).collect();
    let dt: Vec<f32> = (0..r * k).map(|s| (s % 4) as f32 * 3.0).collect();
    let g = floats(&values(r * 8, 7), [r, 8], &dev);
    let run = |by_table: bool| {
        let table = floats(&values(t * d, 5), [t, d], &dev).require_grad();
        let index = indices(&at, &dev);
        let root = if by_table {
            NeighborRows::Gather {
                table: table.clone(),
                index,
            }
        } else {
            table.clone().select(0, index).into()
        };
        let nbr = Neighbors {
            h: NeighborRows::Dense(floats(&values(r * k * d, 3), [r, k, d], &dev)),
            dt: SlotTimes::from_host(&dt, &dev),
            edge: None,
            mask: bools(&mask, [r, k], &dev),
        };
        let out = layer.forward(root, nbr, &te);
        let grads = (out.clone() * g.clone()).sum().backward();
        let grad = |x: Tensor<2>| to_vec(x.grad(&grads).expect("tracked"));
        [
            to_vec(out),
            grad(table),
            grad(layer.query.weight.val()),
            grad(layer.key.weight.val()),
        ]
    };
    let (got, want) = (run(true), run(false));
    for (what, (a, b)) in ["output", "table", "W_q", "W_k"]
        .iter()
        .zip(got.iter().zip(&want))
    {
        assert_eq!(a.len(), b.len(), "{what}");
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{what}: {x} vs {y}"
            );
        }
    }
}
