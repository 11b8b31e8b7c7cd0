//! What the model sees per batch: roots, unique nodes, valid neighbour slots and distinct Δt,
//! averaged over training batches as the sampler produces them. The work of a TGN step grows
//! with these, so they explain throughput differences between datasets and stream sizes.

use anyhow::Result;
use mspipe::train::session::Session;
use serde_json::{Value, json};

/// Mean sizes of a set of training batches.
pub struct BatchShape {
    pub roots: f64,
    pub unique_nodes: f64,
    /// First-hop slots (roots × k).
    pub slots: f64,
    pub valid_slots: f64,
    /// Distinct Δt among the first hop's slots (the time encoding runs once per distinct value).
    pub distinct_dt: f64,
    pub batches: usize,
}

impl BatchShape {
    /// Samples training batches `batches` (epoch 0) of `session` and averages their sizes.
    pub fn measure(session: &mut Session, batches: impl Iterator<Item = usize>) -> Result<Self> {
        let mut sums = [0usize; 5];
        let mut n = 0;
        for b in batches {
            let s = session.sample_train_batch(0, b)?;
            let h = &s.batch.hops[0];
            let mut dt: Vec<u32> = h.dt.iter().map(|d| d.to_bits()).collect();
            dt.sort_unstable();
            dt.dedup();
            let sizes = [
                s.batch.roots.len(),
                s.batch.unique_nodes.len(),
                h.len(),
                h.valid(),
                dt.len(),
            ];
            for (sum, size) in sums.iter_mut().zip(sizes) {
                *sum += size;
            }
            n += 1;
        }
        let mean = |i: usize| sums[i] as f64 / n.max(1) as f64;
        Ok(BatchShape {
            roots: mean(0),
            unique_nodes: mean(1),
            slots: mean(2),
            valid_slots: mean(3),
            distinct_dt: mean(4),
            batches: n,
        })
    }

    /// Back from [`BatchShape::to_json`] (missing fields read as 0).
    pub fn from_json(v: &Value) -> Self {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        BatchShape {
            roots: f("roots_per_batch"),
            unique_nodes: f("unique_nodes_per_batch"),
            slots: f("slots_per_batch"),
            valid_slots: f("valid_slots_per_batch"),
            distinct_dt: f("distinct_dt_per_batch"),
            batches: 0,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "roots_per_batch": self.roots,
            "unique_nodes_per_batch": self.unique_nodes,
            "slots_per_batch": self.slots,
            "valid_slots_per_batch": self.valid_slots,
            "distinct_dt_per_batch": self.distinct_dt,
        })
    }
}

/// Adds the fields of object `from` to object `into`.
pub fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}
