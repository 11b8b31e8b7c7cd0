//! Dense row-major f32 feature matrices (edge or node features).

/// A row-major `[rows, dim]` matrix of f32 features.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    data: Vec<f32>,
    dim: usize,
}

impl Features {
    /// Wraps `data` as rows of `dim` values; `None` if the length is not a multiple of `dim`.
    pub fn new(data: Vec<f32>, dim: usize) -> Option<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return None;
        }
        Some(Features { data, dim })
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// All values, row after row.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Gives the buffer back.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Appends `row`, which has [`Features::dim`] values.
    pub(crate) fn push_row(&mut self, row: &[f32]) {
        debug_assert_eq!(row.len(), self.dim);
        self.data.extend_from_slice(row);
    }

    /// Keeps rows `range` only (drops leading padding rows, for instance).
    pub(crate) fn slice_rows(mut self, start: usize, end: usize) -> Self {
        self.data.truncate(end * self.dim);
        self.data.drain(..start * self.dim);
        self
    }

    /// New matrix whose row `r` is row `pick[r]` of this one.
    pub(crate) fn gather(&self, pick: impl ExactSizeIterator<Item = usize>) -> Self {
        let mut data = Vec::with_capacity(pick.len() * self.dim);
        for i in pick {
            data.extend_from_slice(self.row(i));
        }
        Features {
            data,
            dim: self.dim,
        }
    }

    /// Reorders rows in place so that new row `r` is old row `perm[r]`, with one row of scratch:
    /// edge features can be gigabytes, so sorting events must not copy them.
    pub(crate) fn permute_rows(&mut self, perm: &[usize]) {
        let dim = self.dim;
        let mut done = vec![false; perm.len()];
        let mut scratch = vec![0f32; dim];
        for start in 0..perm.len() {
            if done[start] || perm[start] == start {
                continue;
            }
            scratch.copy_from_slice(self.row(start));
            let mut cur = start;
            loop {
                done[cur] = true;
                let from = perm[cur];
                if from == start {
                    self.data[cur * dim..(cur + 1) * dim].copy_from_slice(&scratch);
                    break;
                }
                self.data
                    .copy_within(from * dim..(from + 1) * dim, cur * dim);
                cur = from;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_rows_matches_gather() {
        let f = Features::new((0..24).map(|x| x as f32).collect(), 3).unwrap();
        let perm = [3, 0, 7, 1, 2, 5, 4, 6];
        let expected = f.gather(perm.iter().copied());
        let mut g = f.clone();
        g.permute_rows(&perm);
        assert_eq!(g, expected);
        assert_eq!(g.row(0), &[9.0, 10.0, 11.0]);
    }

    #[test]
    fn rejects_ragged_data() {
        assert!(Features::new(vec![1.0; 5], 2).is_none());
        assert!(Features::new(vec![], 0).is_none());
    }
}
