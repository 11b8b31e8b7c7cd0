//! Dynamic node classification (TGN's protocol, for streams with per-event labels such as
//! Wikipedia's editing bans): the trained link model is frozen; every event's source is embedded
//! at the event's time (memory replayed from empty through all events in order); an MLP decoder
//! learns the event's label from the embedding on the training period; ROC AUC on validation and
//! test, reported at the decoder epoch with the best validation AUC.

use anyhow::Result;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use mspipe_model::tensors::{floats, to_vec};
use mspipe_model::{NodeClassifier, NodeClassifierConfig};
use mspipe_step::AdamConfig;

use crate::metrics::roc_auc;
use crate::record::NodeClassification;
use mspipe_step::NodeMemory;

use crate::session::Session;

/// Decoder training epochs.
const EPOCHS: usize = 10;
const LR: f64 = 1e-3;

/// AUC of `logits` against 0/1 `labels`.
fn auc(logits: &[f32], labels: &[f32]) -> f64 {
    let scores = |positive: bool| -> Vec<f32> {
        logits
            .iter()
            .zip(labels)
            .filter(|&(_, &y)| (y > 0.5) == positive)
            .map(|(&s, _)| s)
            .collect()
    };
    roc_auc(&scores(true), &scores(false))
}

/// Runs the protocol when the stream has labels; `None` otherwise. Leaves the session's memory
/// at the end of the stream.
pub fn node_classification<S: NodeMemory>(
    session: &mut Session<S>,
) -> Result<Option<NodeClassification>> {
    let Some(labels) = session.stream.labels().map(<[f32]>::to_vec) else {
        return Ok(None);
    };
    let split = session.split.clone();
    session.reset_memory();
    let all: Vec<usize> = (0..session.stream.len()).collect();
    let h = session.source_embeddings(&all)?;
    let d = session.embedding_dim();
    let rows = |r: std::ops::Range<usize>| (h[r.start * d..r.end * d].to_vec(), labels[r].to_vec());
    let (train_x, train_y) = rows(split.train.clone());
    let (val_x, val_y) = rows(split.val.clone());
    let (test_x, test_y) = rows(split.test.clone());
    let device = session.device().clone();
    let mut model = NodeClassifierConfig::new(d).init(&device);
    let mut optim = AdamConfig::new().init();
    let batch = session.config.train.batch_size;
    let inference = session.device().clone().inner();
    let predict = |m: &NodeClassifier, x: &[f32]| {
        to_vec(m.valid().forward(floats(x, [x.len() / d, d], &inference)))
    };
    let mut best = (f64::NEG_INFINITY, f64::NAN, 0);
    for epoch in 0..EPOCHS {
        for (x, y) in train_x.chunks(batch * d).zip(train_y.chunks(batch)) {
            let logits = model.forward(floats(x, [y.len(), d], &device));
            let y = floats(y, [y.len()], &device);
            // Binary cross-entropy with logits.
            let loss = (y.clone() * log_sigmoid(logits.clone())
                + (y.neg() + 1.0) * log_sigmoid(logits.neg()))
            .mean()
            .neg();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(LR, model, grads);
        }
        let val = auc(&predict(&model, &val_x), &val_y);
        if val > best.0 {
            best = (val, auc(&predict(&model, &test_x), &test_y), epoch + 1);
        }
    }
    Ok(Some(NodeClassification {
        node_val_auc: best.0,
        node_test_auc: best.1,
        node_decoder_epoch: best.2,
        node_positive_labels: labels.iter().filter(|&&y| y > 0.5).count(),
    }))
}
