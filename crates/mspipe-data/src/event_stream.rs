//! The columnar, time-sorted event stream every other crate consumes.

use crate::{Features, NodeIds};

/// A time-sorted stream of interaction events `(src, dst, t)` over dense node ids, with optional
/// per-event features, labels and split tags, and optional per-node features.
///
/// Columns are separate vectors (not a `Vec<Event>`) because every consumer reads one or two
/// columns at a time: the sampler reads `dst` and `time`, the model gathers feature rows.
#[derive(Debug, Clone, PartialEq)]
pub struct EventStream {
    pub(crate) src: Vec<u32>,
    pub(crate) dst: Vec<u32>,
    pub(crate) time: Vec<f64>,
    pub(crate) label: Option<Vec<f32>>,
    pub(crate) ext_roll: Option<Vec<u8>>,
    pub(crate) edge_feat: Option<Features>,
    pub(crate) node_feat: Option<Features>,
    pub(crate) ids: NodeIds,
    pub(crate) bipartite: bool,
}

/// Why [`EventStream::from_columns`] refused its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ColumnsError {
    /// A column's length differs from the source column's: (column, length, expected).
    #[error("column `{0}` has {1} entries, expected {2}")]
    Length(&'static str, usize, usize),
    /// (event, node, number of nodes).
    #[error("event {0} names node {1}, but there are only {2} nodes")]
    NodeOutOfRange(usize, u32, usize),
    /// (event).
    #[error("timestamp of event {0} is not finite or goes backwards")]
    Time(usize),
}

impl EventStream {
    /// Builds a stream from dense columns, checking lengths, node ranges and time order.
    #[allow(clippy::too_many_arguments)]
    pub fn from_columns(
        src: Vec<u32>,
        dst: Vec<u32>,
        time: Vec<f64>,
        label: Option<Vec<f32>>,
        ext_roll: Option<Vec<u8>>,
        edge_feat: Option<Features>,
        node_feat: Option<Features>,
        ids: NodeIds,
        bipartite: bool,
    ) -> Result<Self, ColumnsError> {
        let n = src.len();
        let len_of = |name, len| {
            if len == n {
                Ok(())
            } else {
                Err(ColumnsError::Length(name, len, n))
            }
        };
        len_of("dst", dst.len())?;
        len_of("time", time.len())?;
        if let Some(l) = &label {
            len_of("label", l.len())?;
        }
        if let Some(r) = &ext_roll {
            len_of("ext_roll", r.len())?;
        }
        if let Some(f) = &edge_feat {
            len_of("edge_feat", f.rows())?;
        }
        if let Some(f) = &node_feat
            && f.rows() != ids.len()
        {
            return Err(ColumnsError::Length("node_feat", f.rows(), ids.len()));
        }
        for (i, (&s, &d)) in src.iter().zip(&dst).enumerate() {
            let bad = s.max(d);
            if bad as usize >= ids.len() {
                return Err(ColumnsError::NodeOutOfRange(i, bad, ids.len()));
            }
        }
        for i in 0..n {
            if !time[i].is_finite() || (i > 0 && time[i] < time[i - 1]) {
                return Err(ColumnsError::Time(i));
            }
        }
        Ok(EventStream {
            src,
            dst,
            time,
            label,
            ext_roll,
            edge_feat,
            node_feat,
            ids,
            bipartite,
        })
    }

    /// A plain stream of `(src[i], dst[i], time[i])` over nodes `0..num_nodes` (original ids equal
    /// to dense ids, no features), bipartite when the two columns share no node.
    pub fn from_edges(
        src: Vec<u32>,
        dst: Vec<u32>,
        time: Vec<f64>,
        num_nodes: usize,
    ) -> Result<Self, ColumnsError> {
        let ids = NodeIds::identity(num_nodes);
        let mut s = Self::from_columns(src, dst, time, None, None, None, None, ids, false)?;
        s.bipartite = sides_disjoint(&s.src, &s.dst, num_nodes);
        Ok(s)
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// Number of nodes (dense ids are `0..num_nodes`).
    pub fn num_nodes(&self) -> usize {
        self.ids.len()
    }

    /// Source node of every event.
    pub fn src(&self) -> &[u32] {
        &self.src
    }

    /// Destination node of every event.
    pub fn dst(&self) -> &[u32] {
        &self.dst
    }

    /// Timestamp of every event, non-decreasing.
    pub fn time(&self) -> &[f64] {
        &self.time
    }

    /// The stream's time resolution over events `range`: the median gap between consecutive
    /// distinct timestamps (1 when the range holds fewer than two). It does not depend on the unit
    /// the timestamps are stored in, so a model that measures Δt in it sees the same numbers
    /// whether the stream counts seconds, days or snapshot years.
    ///
    /// # Panics
    /// If `range` reaches past the stream's end.
    pub fn time_resolution(&self, range: std::ops::Range<usize>) -> f64 {
        let times = &self.time[range];
        let mut gaps: Vec<f64> = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&g| g > 0.0)
            .collect();
        if gaps.is_empty() {
            return 1.0;
        }
        let mid = gaps.len() / 2;
        let (_, median, _) = gaps.select_nth_unstable_by(mid, f64::total_cmp);
        *median
    }

    /// The time from the first to the last event of `range` (0 for fewer than two events).
    pub fn time_span(&self, range: std::ops::Range<usize>) -> f64 {
        match &self.time[range] {
            [first, .., last] => last - first,
            _ => 0.0,
        }
    }

    /// Divides every timestamp by `unit`, so times (and every Δt) are counted in that unit.
    ///
    /// # Panics
    /// If `unit` is not positive and finite.
    pub fn rescale_time(&mut self, unit: f64) {
        assert!(
            unit > 0.0 && unit.is_finite(),
            "time unit {unit} is not positive and finite"
        );
        for t in &mut self.time {
            *t /= unit;
        }
    }

    /// Appends the event `(src, dst, time)` (time in the stream's current unit) with its
    /// edge-feature row — zeros when `edge` is `None` — as the stream's last event; a label or
    /// split tag column gets 0 / 2 (after training). Returns the event's index. For events that
    /// arrive after the stream was built (streaming inference).
    ///
    /// # Errors
    /// A node out of range, a time that is not finite or goes backwards, an `edge` row whose
    /// width is not the stream's edge-feature width; the stream is unchanged then.
    pub fn push(
        &mut self,
        src: u32,
        dst: u32,
        time: f64,
        edge: Option<&[f32]>,
    ) -> Result<usize, ColumnsError> {
        let i = self.len();
        let bad = src.max(dst);
        if bad as usize >= self.num_nodes() {
            return Err(ColumnsError::NodeOutOfRange(i, bad, self.num_nodes()));
        }
        if !time.is_finite() || self.time.last().is_some_and(|&last| time < last) {
            return Err(ColumnsError::Time(i));
        }
        let width = self.edge_feat.as_ref().map_or(0, Features::dim);
        match (edge, &mut self.edge_feat) {
            (Some(row), Some(f)) if row.len() == width => f.push_row(row),
            (None, Some(f)) => f.push_row(&vec![0.0; width]),
            (None, None) => {}
            (Some(row), _) => return Err(ColumnsError::Length("edge_feat", row.len(), width)),
        }
        self.src.push(src);
        self.dst.push(dst);
        self.time.push(time);
        if let Some(l) = &mut self.label {
            l.push(0.0);
        }
        if let Some(r) = &mut self.ext_roll {
            r.push(2);
        }
        Ok(i)
    }

    /// Appends a node with original id `original` (zero node features) and returns its dense id:
    /// a node that first appears after the stream was built. Appended ids follow the sorted ones,
    /// so [`NodeIds::dense`] does not find them; whoever appends keeps their lookup.
    pub fn push_node(&mut self, original: u64) -> u32 {
        let d = self.ids.len() as u32;
        self.ids.push(original);
        if let Some(f) = &mut self.node_feat {
            f.push_row(&vec![0.0; f.dim()]);
        }
        d
    }

    /// Keeps the first `len` events (all of them if there are fewer).
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len());
        self.src.truncate(len);
        self.dst.truncate(len);
        self.time.truncate(len);
        if let Some(l) = &mut self.label {
            l.truncate(len);
        }
        if let Some(r) = &mut self.ext_roll {
            r.truncate(len);
        }
        if let Some(f) = self.edge_feat.take() {
            self.edge_feat = Some(f.slice_rows(0, len));
        }
    }

    /// Per-event label (JODIE's state label), if the source had one.
    pub fn labels(&self) -> Option<&[f32]> {
        self.label.as_deref()
    }

    /// TGL's per-event split tag (0 train, 1 validation, 2 test), if the source had one.
    pub fn ext_roll(&self) -> Option<&[u8]> {
        self.ext_roll.as_deref()
    }

    /// Edge features, one row per event.
    pub fn edge_features(&self) -> Option<&Features> {
        self.edge_feat.as_ref()
    }

    /// Node features, one row per dense node id.
    pub fn node_features(&self) -> Option<&Features> {
        self.node_feat.as_ref()
    }

    /// The original ids of the nodes.
    pub fn node_ids(&self) -> &NodeIds {
        &self.ids
    }

    /// Whether sources and destinations are disjoint node sets (user–item graphs).
    pub fn is_bipartite(&self) -> bool {
        self.bipartite
    }

    /// Sorted, de-duplicated destination nodes: the candidate set of random negative sampling.
    pub fn destination_nodes(&self) -> Vec<u32> {
        self.destination_nodes_of(|_| true)
    }

    /// Sorted, de-duplicated destination nodes of the events `i` with `keep(i)` (the training
    /// events, for training negatives that know nothing of later nodes).
    pub fn destination_nodes_of(&self, keep: impl Fn(usize) -> bool) -> Vec<u32> {
        let mut seen = vec![false; self.num_nodes()];
        for (i, &d) in self.dst.iter().enumerate() {
            if keep(i) {
                seen[d as usize] = true;
            }
        }
        (0..self.num_nodes() as u32)
            .filter(|&d| seen[d as usize])
            .collect()
    }
}

/// Whether the source and destination columns share no node.
pub(crate) fn sides_disjoint(src: &[u32], dst: &[u32], num_nodes: usize) -> bool {
    let mut is_src = vec![false; num_nodes];
    for &s in src {
        is_src[s as usize] = true;
    }
    !src.is_empty() && dst.iter().all(|&d| !is_src[d as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(time: Vec<f64>) -> EventStream {
        let n = time.len();
        let src = (0..n as u32).map(|i| i % 3).collect();
        let dst = (0..n as u32).map(|i| 3 + i % 2).collect();
        EventStream::from_edges(src, dst, time, 5).unwrap()
    }

    #[test]
    fn pushed_events_and_nodes_extend_every_column_and_bad_ones_change_nothing() {
        let f = Features::new(vec![1.0, 2.0, 3.0, 4.0], 2).unwrap();
        let mut s = EventStream::from_columns(
            vec![0, 1],
            vec![2, 2],
            vec![1.0, 2.0],
            Some(vec![1.0, 0.0]),
            None,
            Some(f),
            None,
            NodeIds::identity(3),
            false,
        )
        .unwrap();
        assert_eq!(s.push(1, 0, 2.0, Some(&[5.0, 6.0])), Ok(2));
        assert_eq!(s.push(2, 1, 3.0, None), Ok(3));
        assert_eq!(s.edge_features().unwrap().row(3), &[0.0, 0.0]);
        assert_eq!(s.labels(), Some(&[1.0, 0.0, 0.0, 0.0][..]));
        let before = s.clone();
        assert_eq!(s.push(0, 1, 2.5, None), Err(ColumnsError::Time(4)));
        assert_eq!(
            s.push(0, 3, 4.0, None),
            Err(ColumnsError::NodeOutOfRange(4, 3, 3))
        );
        assert_eq!(
            s.push(0, 1, 4.0, Some(&[1.0])),
            Err(ColumnsError::Length("edge_feat", 1, 2))
        );
        assert_eq!(s, before);
        assert_eq!(s.push_node(70), 3);
        assert_eq!(s.node_ids().original(3), 70);
        assert_eq!(s.push(3, 0, 4.0, None), Ok(4));
        s.truncate(2);
        assert_eq!(
            (s.len(), s.time(), s.src()),
            (2, &[1.0, 2.0][..], &[0, 1][..])
        );
        assert_eq!(s.edge_features().unwrap().as_slice(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.labels(), Some(&[1.0, 0.0][..]));
    }

    #[test]
    fn time_resolution_is_the_median_distinct_gap_in_any_unit() {
        // Distinct times 0, 10, 12, 30, 31: gaps 10, 2, 18, 1 → median (upper of the middle
        // two, as select_nth picks index len/2 of the sorted gaps [1, 2, 10, 18]) = 10.
        let times = vec![0.0, 0.0, 10.0, 12.0, 12.0, 30.0, 31.0];
        let mut s = stream(times.clone());
        assert_eq!(s.time_resolution(0..7), 10.0);
        assert_eq!(s.time_span(0..7), 31.0);
        assert_eq!(s.time_span(2..4), 2.0);
        assert_eq!(s.time_span(3..4), 0.0);
        // Only the range counts: 0, 10, 12 → gaps 10, 2 → 10; one distinct time → 1.
        assert_eq!(s.time_resolution(0..4), 10.0);
        assert_eq!(s.time_resolution(0..2), 1.0);
        // Snapshot years stored as seconds: the resolution is one year.
        let year = 31_536_000.0;
        let snap = stream(vec![0.0, 0.0, year, year, 2.0 * year, 4.0 * year]);
        assert_eq!(snap.time_resolution(0..6), year);
        // Rescaled by its resolution, a stream reads the same in any unit.
        s.rescale_time(10.0);
        assert_eq!(s.time(), &[0.0, 0.0, 1.0, 1.2, 1.2, 3.0, 3.1]);
        let mut scaled = stream(times.iter().map(|t| t * year).collect());
        let unit = scaled.time_resolution(0..7);
        scaled.rescale_time(unit);
        for (a, b) in scaled.time().iter().zip(s.time()) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn destination_nodes_of_keeps_only_the_chosen_events() {
        // dst = 3, 4, 3, 4, …: the first event alone names only node 3.
        let s = stream(vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(s.destination_nodes(), vec![3, 4]);
        assert_eq!(s.destination_nodes_of(|i| i == 0), vec![3]);
        assert!(s.destination_nodes_of(|_| false).is_empty());
    }
}
