//! The temporal graph in T-CSR form (as in TGL): for every node, its incident events sorted by time
//! as parallel arrays of neighbour id, edge id and timestamp, so "the events of `u` before `t`" is a
//! binary search and a contiguous slice.
//!
//! Events appended after construction (evaluation replay, streaming inference) go to a per-node
//! tail that continues the node's slice in time order; [`TemporalGraph::compact`] folds the tails
//! into the arrays.

use mspipe_data::EventStream;

use crate::SamplerError;

/// Which endpoints list an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both endpoints see the event (TGN-style models add both directions).
    #[default]
    Undirected,
    /// Only the source sees the event, with the destination as neighbour.
    Directed,
}

/// One incident event of a node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Incident {
    /// The other endpoint.
    pub nbr: u32,
    /// Index of the event in its stream.
    pub eid: u32,
    /// Its timestamp.
    pub ts: f64,
}

/// T-CSR temporal graph with append-only streaming insertion.
#[derive(Debug, Clone, Default)]
pub struct TemporalGraph {
    indptr: Vec<usize>,
    nbr: Vec<u32>,
    eid: Vec<u32>,
    ts: Vec<f64>,
    tail: Vec<Vec<Incident>>,
    /// Entries in `tail`.
    appended: usize,
    newest: f64,
    direction: Direction,
}

/// The events of one node before a cut (see [`TemporalGraph::before`]): `len` of them, the first
/// in the T-CSR arrays, the rest in the node's tail.
#[derive(Debug, Clone, Copy)]
pub struct Before<'g> {
    nbr: &'g [u32],
    eid: &'g [u32],
    ts: &'g [f64],
    tail: &'g [Incident],
}

impl Before<'_> {
    /// Number of events.
    #[inline]
    pub fn len(&self) -> usize {
        self.ts.len() + self.tail.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `j`-th oldest.
    #[inline]
    pub fn get(&self, j: usize) -> Incident {
        if j < self.ts.len() {
            Incident {
                nbr: self.nbr[j],
                eid: self.eid[j],
                ts: self.ts[j],
            }
        } else {
            self.tail[j - self.ts.len()]
        }
    }
}

impl TemporalGraph {
    /// The graph of every event of `stream`.
    pub fn from_stream(stream: &EventStream, direction: Direction) -> Self {
        Self::from_events(stream, direction, |_| true)
    }

    /// The graph of the events `keep` accepts (training excludes events of hidden nodes), built in
    /// two passes over the stream: degrees, then a fill in time order, so each node's list is
    /// time-sorted without a sort and nothing but the final arrays is allocated.
    pub fn from_events(
        stream: &EventStream,
        direction: Direction,
        keep: impl Fn(usize) -> bool,
    ) -> Self {
        let n = stream.num_nodes();
        let (src, dst, time) = (stream.src(), stream.dst(), stream.time());
        let both = direction == Direction::Undirected;
        let mut indptr = vec![0usize; n + 1];
        for i in (0..stream.len()).filter(|&i| keep(i)) {
            indptr[src[i] as usize + 1] += 1;
            if both {
                indptr[dst[i] as usize + 1] += 1;
            }
        }
        for u in 0..n {
            indptr[u + 1] += indptr[u];
        }
        let total = indptr[n];
        let mut graph = TemporalGraph {
            nbr: vec![0; total],
            eid: vec![0; total],
            ts: vec![0.0; total],
            tail: Vec::new(),
            appended: 0,
            newest: f64::NEG_INFINITY,
            direction,
            indptr: indptr.clone(),
        };
        let mut next = indptr;
        let mut put = |u: u32, v: u32, i: usize| {
            let at = next[u as usize];
            next[u as usize] += 1;
            graph.nbr[at] = v;
            graph.eid[at] = i as u32;
            graph.ts[at] = time[i];
        };
        for i in (0..stream.len()).filter(|&i| keep(i)) {
            put(src[i], dst[i], i);
            if both {
                put(dst[i], src[i], i);
            }
        }
        graph.newest = graph.ts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        graph
    }

    /// An empty graph over `num_nodes` nodes, filled by [`TemporalGraph::insert`].
    pub fn empty(num_nodes: usize, direction: Direction) -> Self {
        TemporalGraph {
            indptr: vec![0; num_nodes + 1],
            newest: f64::NEG_INFINITY,
            direction,
            ..Default::default()
        }
    }

    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of (node, event) entries, appended ones included.
    pub fn num_entries(&self) -> usize {
        self.ts.len() + self.appended()
    }

    /// Number of entries appended since the last [`TemporalGraph::compact`].
    pub fn appended(&self) -> usize {
        self.appended
    }

    /// How events are listed.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Appends event `eid` = `(src, dst, time)`, which must not be older than any event held.
    pub fn insert(&mut self, src: u32, dst: u32, time: f64, eid: u32) -> Result<(), SamplerError> {
        let n = self.num_nodes();
        if let Some(&node) = [src, dst].iter().find(|&&u| u as usize >= n) {
            return Err(SamplerError::UnknownNode { node, num_nodes: n });
        }
        if time < self.newest || !time.is_finite() {
            return Err(SamplerError::OutOfOrder {
                time,
                newest: self.newest,
            });
        }
        if self.tail.is_empty() {
            self.tail = vec![Vec::new(); n];
        }
        self.newest = time;
        let entry = |nbr| Incident { nbr, eid, ts: time };
        self.tail[src as usize].push(entry(dst));
        self.appended += 1;
        if self.direction == Direction::Undirected {
            self.tail[dst as usize].push(entry(src));
            self.appended += 1;
        }
        Ok(())
    }

    /// Adds `count` nodes without events (nodes that first appear in a stream being served).
    pub fn add_nodes(&mut self, count: usize) {
        let end = self.nbr.len();
        self.indptr.extend(std::iter::repeat_n(end, count));
        if !self.tail.is_empty() {
            self.tail.resize(self.indptr.len() - 1, Vec::new());
        }
    }

    /// Folds the appended events into the T-CSR arrays (one pass, one new copy of the arrays).
    pub fn compact(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let n = self.num_nodes();
        let total = self.num_entries();
        let (mut nbr, mut eid, mut ts) = (
            Vec::with_capacity(total),
            Vec::with_capacity(total),
            Vec::with_capacity(total),
        );
        let mut indptr = Vec::with_capacity(n + 1);
        indptr.push(0);
        for u in 0..n {
            let (a, b) = (self.indptr[u], self.indptr[u + 1]);
            nbr.extend_from_slice(&self.nbr[a..b]);
            eid.extend_from_slice(&self.eid[a..b]);
            ts.extend_from_slice(&self.ts[a..b]);
            for e in &self.tail[u] {
                nbr.push(e.nbr);
                eid.push(e.eid);
                ts.push(e.ts);
            }
            indptr.push(nbr.len());
        }
        *self = TemporalGraph {
            indptr,
            nbr,
            eid,
            ts,
            tail: Vec::new(),
            appended: 0,
            newest: self.newest,
            direction: self.direction,
        };
    }

    /// The events of `u` that precede `(t, first)`, oldest first: those strictly before `t`, and
    /// those at `t` itself with an index below `first` (events of earlier batches that share the
    /// timestamp: node memory already holds them, so a snapshot stream's batch sees the
    /// snapshot's earlier batches). A node's events are sorted by (time, index), so this is one
    /// binary search.
    #[inline]
    pub fn before(&self, u: u32, t: f64, first: u32) -> Before<'_> {
        let (a, b) = (self.indptr[u as usize], self.indptr[u as usize + 1]);
        let ts = &self.ts[a..b];
        let eid = &self.eid[a..b];
        let precedes = |x: f64, e: u32| x < t || (x == t && e < first);
        // Past the events before `t`, those at `t` are sorted by index: a second binary search.
        let at_t = ts.partition_point(|&x| x < t);
        let same = ts[at_t..].partition_point(|&x| x == t);
        let cut = at_t + eid[at_t..at_t + same].partition_point(|&e| e < first);
        let tail = match self.tail.get(u as usize) {
            Some(tail) if cut == ts.len() => {
                &tail[..tail.partition_point(|e| precedes(e.ts, e.eid))]
            }
            _ => &[],
        };
        Before {
            nbr: &self.nbr[a..a + cut],
            eid: &self.eid[a..a + cut],
            ts: &ts[..cut],
            tail,
        }
    }

    /// Number of events of `u` held.
    pub fn degree(&self, u: u32) -> usize {
        self.before(u, f64::INFINITY, 0).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> EventStream {
        EventStream::from_edges(
            vec![0, 1, 0, 2],
            vec![1, 2, 2, 0],
            vec![1.0, 2.0, 2.0, 5.0],
            3,
        )
        .unwrap()
    }

    fn events(g: &TemporalGraph, u: u32, t: f64) -> Vec<(u32, u32, f64)> {
        events_from(g, u, t, 0)
    }

    fn events_from(g: &TemporalGraph, u: u32, t: f64, first: u32) -> Vec<(u32, u32, f64)> {
        let b = g.before(u, t, first);
        (0..b.len())
            .map(|j| {
                let e = b.get(j);
                (e.nbr, e.eid, e.ts)
            })
            .collect()
    }

    #[test]
    fn lists_are_time_sorted_and_cut_strictly_before() {
        let g = TemporalGraph::from_stream(&stream(), Direction::Undirected);
        assert_eq!(g.num_entries(), 8);
        assert_eq!(
            events(&g, 0, 10.0),
            vec![(1, 0, 1.0), (2, 2, 2.0), (2, 3, 5.0)]
        );
        assert_eq!(events(&g, 0, 2.0), vec![(1, 0, 1.0)]);
        assert_eq!(events(&g, 0, 1.0), vec![]);
        let d = TemporalGraph::from_stream(&stream(), Direction::Directed);
        assert_eq!(events(&d, 2, 10.0), vec![(0, 3, 5.0)]);
    }

    #[test]
    fn events_at_the_roots_time_count_only_from_earlier_batches() {
        // Node 2 at t = 2 has events 1 (1–2) and 2 (0–2), both at t = 2.
        let g = TemporalGraph::from_stream(&stream(), Direction::Undirected);
        assert_eq!(events_from(&g, 2, 2.0, 0), vec![]);
        assert_eq!(events_from(&g, 2, 2.0, 1), vec![]);
        assert_eq!(events_from(&g, 2, 2.0, 2), vec![(1, 1, 2.0)]);
        assert_eq!(events_from(&g, 2, 2.0, 3), vec![(1, 1, 2.0), (0, 2, 2.0)]);
        // Later times are never reached through the index.
        assert_eq!(events_from(&g, 2, 2.0, 99), vec![(1, 1, 2.0), (0, 2, 2.0)]);
        // The same in a tail of appended events.
        let mut t = TemporalGraph::from_events(&stream(), Direction::Undirected, |i| i < 1);
        t.insert(1, 2, 2.0, 1).unwrap();
        t.insert(0, 2, 2.0, 2).unwrap();
        assert_eq!(events_from(&t, 2, 2.0, 2), vec![(1, 1, 2.0)]);
    }

    #[test]
    fn appends_continue_the_lists_and_compact_keeps_them() {
        let mut g = TemporalGraph::from_events(&stream(), Direction::Undirected, |i| i < 2);
        assert_eq!(events(&g, 0, 10.0), vec![(1, 0, 1.0)]);
        g.insert(0, 2, 2.0, 2).unwrap();
        g.insert(2, 0, 5.0, 3).unwrap();
        assert_eq!(
            events(&g, 0, 10.0),
            vec![(1, 0, 1.0), (2, 2, 2.0), (2, 3, 5.0)]
        );
        assert_eq!(events(&g, 0, 5.0), vec![(1, 0, 1.0), (2, 2, 2.0)]);
        assert_eq!(
            g.insert(1, 2, 4.0, 9),
            Err(SamplerError::OutOfOrder {
                time: 4.0,
                newest: 5.0
            })
        );
        assert!(matches!(
            g.insert(7, 0, 6.0, 9),
            Err(SamplerError::UnknownNode { node: 7, .. })
        ));
        assert_eq!(g.appended(), 4);
        let before: Vec<_> = (0..3).map(|u| events(&g, u, 10.0)).collect();
        g.compact();
        assert_eq!((g.appended(), g.num_entries()), (0, 8));
        let after: Vec<_> = (0..3).map(|u| events(&g, u, 10.0)).collect();
        assert_eq!(before, after);
        let full = TemporalGraph::from_stream(&stream(), Direction::Undirected);
        let rebuilt: Vec<_> = (0..3).map(|u| events(&full, u, 10.0)).collect();
        assert_eq!(after, rebuilt);
    }

    #[test]
    fn added_nodes_start_empty_and_take_events() {
        for appended in [false, true] {
            let mut g = TemporalGraph::from_stream(&stream(), Direction::Undirected);
            if appended {
                g.insert(0, 1, 6.0, 4).unwrap();
            }
            g.add_nodes(2);
            assert_eq!(g.num_nodes(), 5);
            assert_eq!(events(&g, 4, 10.0), vec![]);
            g.insert(4, 0, 7.0, 5).unwrap();
            assert_eq!(events(&g, 4, 10.0), vec![(0, 5, 7.0)]);
            assert_eq!(events(&g, 3, 10.0), vec![]);
            assert_eq!(events(&g, 0, 10.0).last(), Some(&(4, 5, 7.0)));
            assert_eq!(g.degree(2), 3, "old nodes keep their lists: events 1, 2, 3");
        }
    }
}
