//! What a run records: one [`EpochRecord`] per epoch (a line of `metrics.jsonl`, kept in the
//! checkpoint's history) and the run's [`Summary`] (`summary.json`). Split metrics are written
//! flat (`val_ap`, `test_auc_pooled`, …), and an undefined figure (no event to score) as `null`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_with::with_prefix;

use crate::config::ModelName;

with_prefix!(val_prefix "val_");
with_prefix!(test_prefix "test_");

/// A split's scores, as `run` computes them from the evaluation pass.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// AP per evaluation batch, averaged over batches (what TGN, TGL and MSPipe report).
    #[serde(deserialize_with = "nan_if_null")]
    pub ap: f64,
    /// AUC per evaluation batch, averaged over batches.
    #[serde(deserialize_with = "nan_if_null")]
    pub auc: f64,
    /// AP of all the split's events ranked at once.
    #[serde(deserialize_with = "nan_if_null")]
    pub ap_pooled: f64,
    /// AUC of all the split's events ranked at once.
    #[serde(deserialize_with = "nan_if_null")]
    pub auc_pooled: f64,
    /// Pooled AP of the events that touch a node hidden from training (NaN: none).
    #[serde(deserialize_with = "nan_if_null")]
    pub ap_new_node_events: f64,
    /// Pooled AUC of those events (NaN: none).
    #[serde(deserialize_with = "nan_if_null")]
    pub auc_new_node_events: f64,
    /// Mean reciprocal rank, when there are several negatives per positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrr: Option<f64>,
}

/// Staleness and stage times of an epoch's pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStats {
    /// Updates a batch's memory fetch missed, averaged over the epoch's batches.
    pub mean_staleness: f64,
    pub max_staleness: usize,
    /// Busy seconds per stage (by stage name). Stages overlap: their sum exceeds the epoch's
    /// wall time when pipelining works.
    pub stage_seconds: BTreeMap<String, f64>,
    /// Seconds of compute before each step handed its memory update over (the forward passes),
    /// summed: their share of compute is what a fetch can overlap with.
    #[serde(default)]
    pub forward_seconds: f64,
    /// Minor page faults of the process per training batch (fresh pages the allocator took from
    /// the kernel, each cleared by it: allocation traffic that reuse would avoid).
    #[serde(default)]
    pub minor_faults_per_batch: f64,
    /// The share of the training batches' wall time that the pool's other workers, kept awake
    /// while one trains, spent running the pool's work (split halves of parallel ops, sampling);
    /// none with one thread, or with several compute workers. A second thread can speed
    /// training up by at most about this share.
    #[serde(default)]
    pub pool_busy_share: Option<f64>,
}

/// What an epoch of training measured (EdgeBank, which trains nothing, has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingStats {
    /// Mean training loss over the epoch's batches.
    #[serde(deserialize_with = "nan_if_null")]
    pub loss: f64,
    /// Seconds in training batches (checkpoint writes excluded).
    pub train_seconds: f64,
    pub train_events_per_sec: f64,
    /// Wall seconds of the epoch, evaluation included.
    pub seconds: f64,
    pub pipeline: PipelineStats,
}

/// One epoch: a line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    #[serde(flatten)]
    pub training: Option<TrainingStats>,
    #[serde(flatten, with = "val_prefix")]
    pub val: SplitMetrics,
    #[serde(flatten, with = "test_prefix")]
    pub test: SplitMetrics,
}

/// Dynamic node classification of a run's frozen link model (when the stream has labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeClassification {
    pub node_val_auc: f64,
    pub node_test_auc: f64,
    /// The decoder epoch with the best validation AUC.
    pub node_decoder_epoch: usize,
    pub node_positive_labels: usize,
}

/// The pipeline of a whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPipeline {
    /// `off`, `fixed:K` or `mspipe`.
    pub mode: String,
    pub mean_staleness: f64,
    pub max_staleness: usize,
}

/// A run's outcome: the best epoch's metrics (by validation AP), speed and pipeline statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub model: ModelName,
    pub dataset: String,
    pub backend: String,
    pub seed: u64,
    pub git_revision: String,
    /// One unit of the model's time in the stream's unit (none for EdgeBank).
    pub time_unit: Option<f64>,
    pub epochs: usize,
    /// 1-based.
    pub best_epoch: usize,
    #[serde(flatten, with = "val_prefix")]
    pub val: SplitMetrics,
    #[serde(flatten, with = "test_prefix")]
    pub test: SplitMetrics,
    pub train_events_per_sec: f64,
    pub train_seconds: f64,
    pub peak_rss_bytes: u64,
    pub pipeline: RunPipeline,
    #[serde(flatten)]
    pub node_classification: Option<NodeClassification>,
}

/// What serde_json writes for a NaN (`null`) read back as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(ap: f64) -> SplitMetrics {
        SplitMetrics {
            ap,
            auc: 0.5,
            ap_pooled: 0.25,
            auc_pooled: 0.125,
            ap_new_node_events: f64::NAN,
            auc_new_node_events: 1.0,
            mrr: None,
        }
    }

    /// The flat line (keys sorted, NaN as null) reads into the record and writes back to the
    /// same text through `serde_json::Value`, as `run` writes it; a line of a binary from before
    /// `forward_seconds`, `minor_faults_per_batch` and `pool_busy_share` reads with 0 (none) there.
    #[test]
    fn an_epoch_line_round_trips_flat() {
        let line = r#"{"epoch":2,"loss":0.5,"pipeline":{"forward_seconds":1.0,"max_staleness":1,"mean_staleness":0.5,"minor_faults_per_batch":0.25,"pool_busy_share":0.75,"stage_seconds":{"compute":2.0}},"seconds":3.0,"test_ap":0.75,"test_ap_new_node_events":null,"test_ap_pooled":0.25,"test_auc":0.5,"test_auc_new_node_events":1.0,"test_auc_pooled":0.125,"train_events_per_sec":10.0,"train_seconds":2.5,"val_ap":0.875,"val_ap_new_node_events":null,"val_ap_pooled":0.25,"val_auc":0.5,"val_auc_new_node_events":1.0,"val_auc_pooled":0.125}"#;
        let record: EpochRecord = serde_json::from_str(line).expect("parses");
        assert_eq!(record.epoch, 2);
        assert_eq!(record.val.ap, 0.875);
        assert_eq!(record.test.ap, 0.75);
        assert!(record.test.ap_new_node_events.is_nan());
        let training = record.training.as_ref().expect("a trained epoch");
        assert_eq!(training.pipeline.stage_seconds["compute"], 2.0);
        assert_eq!(training.pipeline.forward_seconds, 1.0);
        let value = serde_json::to_value(&record).expect("serializes");
        assert_eq!(value.to_string(), line);
        assert_eq!(training.pipeline.minor_faults_per_batch, 0.25);
        assert_eq!(training.pipeline.pool_busy_share, Some(0.75));
        let older = line
            .replace(r#""forward_seconds":1.0,"#, "")
            .replace(r#""minor_faults_per_batch":0.25,"#, "")
            .replace(r#""pool_busy_share":0.75,"#, "");
        let record: EpochRecord = serde_json::from_str(&older).expect("parses");
        let training = record.training.expect("a trained epoch");
        assert_eq!(training.pipeline.forward_seconds, 0.0);
        assert_eq!(training.pipeline.minor_faults_per_batch, 0.0);
        assert_eq!(training.pipeline.pool_busy_share, None);
    }

    /// A checkpoint's history reads back to the very f64s it was written from (a two-worker run's
    /// epoch loss came back one ulp off before serde_json's exact float parsing).
    #[test]
    fn records_read_back_bit_for_bit() {
        let losses: [f64; 5] = [
            0.9335840260773375,
            0.1 + 0.2,
            1.0 / 3.0,
            5e-324,
            0.7824834804785881,
        ];
        for loss in losses {
            let text = serde_json::to_string(&loss).expect("serializes");
            let back: f64 = serde_json::from_str(&text).expect("parses");
            assert_eq!(back.to_bits(), loss.to_bits(), "{text}");
        }
    }

    /// EdgeBank's line has no training figures; MRR appears only when measured.
    #[test]
    fn an_untrained_epoch_has_no_training_figures() {
        let record = EpochRecord {
            epoch: 1,
            training: None,
            val: SplitMetrics {
                mrr: Some(0.5),
                ..metrics(0.5)
            },
            test: metrics(0.5),
        };
        let value = serde_json::to_value(&record).expect("serializes");
        assert!(value.get("loss").is_none() && value.get("pipeline").is_none());
        assert_eq!(value["val_mrr"], 0.5);
        assert!(value.get("test_mrr").is_none());
        let back: EpochRecord = serde_json::from_value(value).expect("parses");
        assert!(back.training.is_none());
        assert_eq!(back.val.mrr, Some(0.5));
    }
}
