//! Link-prediction metrics as scikit-learn computes them (what TGN, TGL and DyGLib report), and
//! their per-batch mean (how those systems report them).

/// Average precision: mean over positives of the precision at their rank (scores descending;
/// tied scores form one threshold, as `sklearn.metrics.average_precision_score`).
pub fn average_precision(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() {
        return f64::NAN;
    }
    let ranked = ranked(pos, neg);
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < ranked.len() {
        let mut j = i;
        while j < ranked.len() && ranked[j].0 == ranked[i].0 {
            if ranked[j].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        let recall = tp as f64 / pos.len() as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j;
    }
    ap
}

/// Area under the ROC curve: the probability that a random positive outscores a random negative,
/// ties counting one half (Mann–Whitney U).
pub fn roc_auc(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut ranked = ranked(pos, neg);
    ranked.reverse(); // ascending
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < ranked.len() {
        let mut j = i;
        while j < ranked.len() && ranked[j].0 == ranked[i].0 {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0; // average 1-based rank of the tie group
        rank_sum += mid_rank * ranked[i..j].iter().filter(|r| r.1).count() as f64;
        i = j;
    }
    let (p, n) = (pos.len() as f64, neg.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Mean reciprocal rank of each positive among its own `neg.len() / pos.len()` negatives
/// (ties ranked pessimistically-optimistically in the middle, as TGB does).
pub fn mrr(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() {
        return f64::NAN;
    }
    let k = neg.len() / pos.len();
    let total: f64 = pos
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let row = &neg[i * k..(i + 1) * k];
            let above = row.iter().filter(|&&n| n > p).count() as f64;
            let tied = row.iter().filter(|&&n| n == p).count() as f64;
            1.0 / (1.0 + above + tied / 2.0)
        })
        .sum();
    total / pos.len() as f64
}

/// The mean over evaluation batches of `metric` on each batch's positives and its negatives
/// (`pos[i]` and `neg[i]` belong together; batch `b` holds the next `batch_len[b]` of them): how
/// TGN, TGL, MSPipe's code and PyG's example report AP and AUC. Batches where `metric` is NaN
/// (no positives) do not count.
///
/// # Panics
/// If `batch_len` sums to more than `pos.len()` or `neg.len()`.
pub fn per_batch_mean(
    pos: &[f32],
    neg: &[f32],
    batch_len: &[usize],
    metric: fn(&[f32], &[f32]) -> f64,
) -> f64 {
    let (mut sum, mut count, mut at) = (0.0, 0usize, 0);
    for &len in batch_len {
        let m = metric(&pos[at..at + len], &neg[at..at + len]);
        at += len;
        if !m.is_nan() {
            sum += m;
            count += 1;
        }
    }
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

fn ranked(pos: &[f32], neg: &[f32]) -> Vec<(f32, bool)> {
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&p| (p, true))
        .chain(neg.iter().map(|&n| (n, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_hand_computed_values() {
        // Descending: p .9, n .8, p .7, n .1 → AP = (1/2)(1) + (1/2)(2/3) = 5/6.
        assert!((average_precision(&[0.9, 0.7], &[0.8, 0.1]) - 5.0 / 6.0).abs() < 1e-12);
        // Pairs (p, n): (.9,.8) (.9,.1) (.7,.8) (.7,.1): 3 of 4 ordered → AUC 0.75.
        assert!((roc_auc(&[0.9, 0.7], &[0.8, 0.1]) - 0.75).abs() < 1e-12);
        // A tie counts one half: AUC of p = n is 0.5; AP of one tied pair is 1/2.
        assert!((roc_auc(&[0.5], &[0.5]) - 0.5).abs() < 1e-12);
        assert!((average_precision(&[0.5], &[0.5]) - 0.5).abs() < 1e-12);
        // MRR: positive .5 among [.9, .1] → rank 2; positive .8 among [.2, .3] → rank 1.
        assert!((mrr(&[0.5, 0.8], &[0.9, 0.1, 0.2, 0.3]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn per_batch_means_differ_from_pooled_scores_as_worked_by_hand() {
        // Batch 1: p .9 .7, n .8 .1 → AP 5/6, AUC 3/4 (as above).
        // Batch 2: p .2, n .3 → the negative ranks first: AP 1/2, AUC 0.
        // Batch 3: p .6 .5 .4, n .05 .01 .02 → every positive first: AP 1, AUC 1.
        let pos = [0.9, 0.7, 0.2, 0.6, 0.5, 0.4];
        let neg = [0.8, 0.1, 0.3, 0.05, 0.01, 0.02];
        let batches = [2, 1, 3];
        let ap = per_batch_mean(&pos, &neg, &batches, average_precision);
        let auc = per_batch_mean(&pos, &neg, &batches, roc_auc);
        assert!((ap - (5.0 / 6.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12, "{ap}");
        assert!((auc - (0.75 + 0.0 + 1.0) / 3.0).abs() < 1e-12, "{auc}");
        // Pooled: descending p .9, n .8, p .7, p .6, p .5, p .4, n .3, p .2, n .1 …
        // precision at each positive: 1, 2/3, 3/4, 4/5, 5/6, 6/8 → AP = their mean.
        let pooled = (1.0 + 2.0 / 3.0 + 0.75 + 0.8 + 5.0 / 6.0 + 0.75) / 6.0;
        assert!((average_precision(&pos, &neg) - pooled).abs() < 1e-12);
        assert!((ap - pooled).abs() > 0.01, "the two protocols differ here");
        // A batch without positives does not count; none at all gives NaN.
        let ap = per_batch_mean(&pos, &neg, &[2, 0, 1, 3], average_precision);
        assert!((ap - (5.0 / 6.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!(per_batch_mean(&[], &[], &[0], average_precision).is_nan());
    }
}
