//! Turns what a reader parsed (original ids, file order) into an [`EventStream`]: stable time sort,
//! dense id assignment, node-feature alignment. Every reader goes through here, so the rules are
//! stated once.

use std::path::Path;

use rayon::prelude::*;

use crate::event_stream::sides_disjoint;
use crate::{DataError, EventStream, Features, NodeIds, Problem, Result};

/// What to do when timestamps go backwards in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeOrder {
    /// Stably sort the events by time and log a warning that counts the inversions.
    #[default]
    Sort,
    /// Refuse the file with [`Problem::Unsorted`].
    Error,
}

/// Events as parsed, in file order, with the ids of the file.
#[derive(Debug, Default)]
pub(crate) struct RawEvents {
    pub src: Vec<u64>,
    pub dst: Vec<u64>,
    pub time: Vec<f64>,
    pub label: Option<Vec<f32>>,
    pub ext_roll: Option<Vec<u8>>,
    pub edge_feat: Option<Features>,
}

/// How the file's ids become dense ids.
#[derive(Debug)]
pub(crate) enum IdSpace {
    /// One id space; only ids that occur are kept, in ascending order.
    Compact,
    /// Users (`src`) and items (`dst`) are separate id spaces; users first, then items (JODIE).
    TwoSided,
    /// Every id in `first..first + count` is a node, whether it occurs or not, because a
    /// node-feature matrix gives them rows (DyGLib and TGL files).
    Range {
        first: u64,
        count: usize,
        node_feat: Option<Features>,
    },
}

/// What loading learned besides the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadReport {
    /// Adjacent event pairs whose timestamps went backwards in the file (0 for sorted files).
    pub inversions: usize,
}

pub(crate) fn build(
    mut raw: RawEvents,
    space: IdSpace,
    order: TimeOrder,
    path: &Path,
) -> Result<(EventStream, LoadReport)> {
    if raw.time.is_empty() {
        return Err(DataError::file(path, Problem::Empty));
    }
    if let Some(f) = &raw.edge_feat
        && f.rows() != raw.time.len()
    {
        return Err(DataError::file(
            path,
            Problem::FeatureRows {
                expected: raw.time.len(),
                found: f.rows(),
            },
        ));
    }
    let inversions = raw.time.windows(2).filter(|w| w[1] < w[0]).count();
    if inversions > 0 {
        if order == TimeOrder::Error {
            return Err(DataError::file(path, Problem::Unsorted { inversions }));
        }
        log::warn!(
            "{}: {inversions} adjacent event pairs go backwards in time; events were stably sorted",
            path.display()
        );
        sort_by_time(&mut raw);
    }
    let (src, dst, ids, node_feat) = assign_dense_ids(&raw.src, &raw.dst, space);
    let bipartite = ids.users().is_some() || sides_disjoint(&src, &dst, ids.len());
    let stream = EventStream {
        src,
        dst,
        time: raw.time,
        label: raw.label,
        ext_roll: raw.ext_roll,
        edge_feat: raw.edge_feat,
        node_feat,
        ids,
        bipartite,
    };
    Ok((stream, LoadReport { inversions }))
}

fn sort_by_time(raw: &mut RawEvents) {
    let mut perm: Vec<usize> = (0..raw.time.len()).collect();
    perm.sort_by(|&a, &b| raw.time[a].total_cmp(&raw.time[b])); // stable
    fn apply<T: Copy>(col: &mut Vec<T>, perm: &[usize]) {
        *col = perm.iter().map(|&i| col[i]).collect();
    }
    apply(&mut raw.src, &perm);
    apply(&mut raw.dst, &perm);
    apply(&mut raw.time, &perm);
    if let Some(l) = &mut raw.label {
        apply(l, &perm);
    }
    if let Some(r) = &mut raw.ext_roll {
        apply(r, &perm);
    }
    if let Some(f) = &mut raw.edge_feat {
        f.permute_rows(&perm);
    }
}

type Dense = (Vec<u32>, Vec<u32>, NodeIds, Option<Features>);

fn assign_dense_ids(src: &[u64], dst: &[u64], space: IdSpace) -> Dense {
    match space {
        IdSpace::Compact => {
            let original = sorted_unique(src.iter().chain(dst));
            let s = remap(src, &original, 0);
            let d = remap(dst, &original, 0);
            (s, d, NodeIds::new(original, None), None)
        }
        IdSpace::TwoSided => {
            let users = sorted_unique(src.iter());
            let items = sorted_unique(dst.iter());
            let s = remap(src, &users, 0);
            let d = remap(dst, &items, users.len() as u32);
            let n_users = users.len();
            let mut original = users;
            original.extend_from_slice(&items);
            (s, d, NodeIds::new(original, Some(n_users)), None)
        }
        IdSpace::Range {
            first,
            count,
            node_feat,
        } => {
            let dense = |ids: &[u64]| ids.par_iter().map(|&i| (i - first) as u32).collect();
            let original = (first..first + count as u64).collect();
            (
                dense(src),
                dense(dst),
                NodeIds::new(original, None),
                node_feat,
            )
        }
    }
}

fn sorted_unique<'a>(ids: impl Iterator<Item = &'a u64>) -> Vec<u64> {
    let mut all: Vec<u64> = ids.copied().collect();
    all.par_sort_unstable();
    all.dedup();
    all
}

fn remap(ids: &[u64], sorted: &[u64], offset: u32) -> Vec<u32> {
    ids.par_iter()
        .map(|id| offset + sorted.partition_point(|x| x < id) as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(src: &[u64], dst: &[u64], time: &[f64]) -> RawEvents {
        RawEvents {
            src: src.to_vec(),
            dst: dst.to_vec(),
            time: time.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn sorts_stably_and_counts_adjacent_inversions() {
        let mut r = raw(&[10, 20, 30, 40], &[1, 2, 3, 4], &[5.0, 1.0, 5.0, 0.0]);
        r.edge_feat = Features::new(vec![0.0, 1.0, 2.0, 3.0], 1);
        let (s, rep) = build(r, IdSpace::Compact, TimeOrder::Sort, Path::new("x")).unwrap();
        assert_eq!(rep.inversions, 2);
        assert_eq!(s.time(), &[0.0, 1.0, 5.0, 5.0]);
        // ids 1,2,3,4,10,20,30,40 -> 0..8; stable: the two t=5 events keep file order (10 then 30).
        let srcs: Vec<u64> = s.src().iter().map(|&d| s.node_ids().original(d)).collect();
        assert_eq!(srcs, vec![40, 20, 10, 30]);
        assert_eq!(s.edge_features().unwrap().as_slice(), &[3.0, 1.0, 0.0, 2.0]);
        assert!(s.is_bipartite());
    }

    #[test]
    fn unsorted_is_an_error_when_asked() {
        let r = raw(&[1, 2], &[2, 1], &[2.0, 1.0]);
        let e = build(r, IdSpace::Compact, TimeOrder::Error, Path::new("f.csv")).unwrap_err();
        assert_eq!(e.problem(), Some(&Problem::Unsorted { inversions: 1 }));
        assert!(e.to_string().starts_with("f.csv: "));
    }

    #[test]
    fn two_sided_ids_put_users_first() {
        let r = raw(&[7, 3, 7], &[3, 9, 3], &[0.0, 1.0, 2.0]);
        let (s, _) = build(r, IdSpace::TwoSided, TimeOrder::Sort, Path::new("x")).unwrap();
        assert_eq!(s.src(), &[1, 0, 1]);
        assert_eq!(s.dst(), &[2, 3, 2]);
        assert_eq!(s.node_ids().users(), Some(2));
        assert_eq!(s.node_ids().dense_item(9), Some(3));
        assert!(s.is_bipartite());
    }

    #[test]
    fn shared_node_means_not_bipartite() {
        let r = raw(&[1, 2], &[2, 3], &[0.0, 1.0]);
        let (s, _) = build(r, IdSpace::Compact, TimeOrder::Sort, Path::new("x")).unwrap();
        assert!(!s.is_bipartite());
        assert_eq!(s.num_nodes(), 3);
    }
}
