//! Host-side node memory: per node a memory vector, its last-update time and a FIFO mailbox of the
//! last `M` mails with their times. Plain buffers with gather/scatter by node id, which the
//! scheduler versions; on a cubecl device the same state lives on the device instead
//! ([`DeviceMemory`], converted with [`MemoryStore::to_device`] and [`MemoryStore::from_device`]).
//! A node never updated has last-update time 0, as in TGL: with Unix timestamps its first Δt is
//! the time since 1970, which marks it as new.

use std::io::{self, Read, Write};

use burn::prelude::*;
use mspipe_kernels::DeviceMemory;
use rayon::prelude::*;

use crate::tensors::{floats, to_vec};

/// Floats copied per parallel task at least.
const COPY_TASK: usize = 1 << 14;

/// Sets `out` to rows `rows` of `from` (rows of `width`), copied in parallel (a batch's mailboxes
/// are megabytes: APAN's ten mails a node).
fn gather_into(out: &mut Vec<f32>, from: &[f32], rows: &[u32], width: usize) {
    out.clear();
    let len = rows.len() * width;
    out.reserve(len);
    if len == 0 {
        return;
    }
    let per_task = (COPY_TASK / width).max(1);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(per_task * width)
        .zip(rows.par_chunks(per_task))
        .with_max_len(1)
        .for_each(|(out, rows)| {
            for (out, &u) in out.chunks_exact_mut(width).zip(rows) {
                let row = &from[u as usize * width..][..width];
                out.iter_mut().zip(row).for_each(|(o, &v)| {
                    o.write(v);
                });
            }
        });
    // SAFETY: the chunks cover the first `len` elements, each row written above.
    unsafe { out.set_len(len) };
}

/// First bytes of a saved store (format version 1).
const MAGIC: &[u8; 8] = b"MSPMEM01";

/// What [`MemoryStore::gather`] returns for a batch's nodes, row-major, in the order asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gathered {
    /// `[U, dim]` memories.
    pub memory: Vec<f32>,
    /// `[U]` last-update times.
    pub last_update: Vec<f64>,
    /// `[U', M, mail_dim]` mails of the first `U' ≤ U` nodes (see [`MemoryStore::gather_rows`]),
    /// oldest first; empty slots are zero.
    pub mail: Vec<f32>,
    /// `[U', M]` mail time minus last-update time ([`crate::MailClock::SinceUpdate`]; see
    /// [`Gathered::to_ages`]).
    pub mail_dt: Vec<f32>,
    /// `[U', M]` whether the slot holds a mail.
    pub mail_mask: Vec<bool>,
}

impl Gathered {
    /// Keeps the first `rows` nodes (all of them when there are fewer).
    pub fn truncate(&mut self, rows: usize, dim: usize, slots: usize) {
        let mailboxes = self.mail_mask.len() / slots.max(1);
        if mailboxes > rows {
            let mail_dim = self.mail.len() / (mailboxes * slots).max(1);
            self.mail.truncate(rows * slots * mail_dim);
            self.mail_dt.truncate(rows * slots);
            self.mail_mask.truncate(rows * slots);
        }
        self.memory.truncate(rows * dim);
        self.last_update.truncate(rows);
    }

    /// Turns each mail's Δt from [`MailClock::SinceUpdate`](crate::MailClock::SinceUpdate) (as
    /// [`MemoryStore::gather`] reads it) into [`MailClock::Age`](crate::MailClock::Age) at `now`;
    /// empty slots stay 0.
    pub fn to_ages(&mut self, now: &[f64], slots: usize) {
        for (s, (dt, &valid)) in self.mail_dt.iter_mut().zip(&self.mail_mask).enumerate() {
            if valid {
                let mail_time = self.last_update[s / slots] + f64::from(*dt);
                *dt = (now[s / slots] - mail_time) as f32;
            }
        }
    }
}

/// Memory, last-update times and mailboxes of every node.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryStore {
    dim: usize,
    mail_dim: usize,
    slots: usize,
    memory: Vec<f32>,
    last_update: Vec<f64>,
    mail: Vec<f32>,
    mail_time: Vec<f64>,
    mail_valid: Vec<bool>,
}

impl MemoryStore {
    /// Zero memory for `nodes` nodes of width `dim`, mailboxes of `slots` mails of `mail_dim`.
    pub fn new(nodes: usize, dim: usize, mail_dim: usize, slots: usize) -> Self {
        MemoryStore {
            dim,
            mail_dim,
            slots,
            memory: vec![0.0; nodes * dim],
            last_update: vec![0.0; nodes],
            mail: vec![0.0; nodes * slots * mail_dim],
            mail_time: vec![0.0; nodes * slots],
            mail_valid: vec![false; nodes * slots],
        }
    }

    /// Back to the state of [`MemoryStore::new`] (epoch start).
    pub fn reset(&mut self) {
        self.memory.fill(0.0);
        self.last_update.fill(0.0);
        self.mail.fill(0.0);
        self.mail_time.fill(0.0);
        self.mail_valid.fill(false);
    }

    /// Grows the store to `nodes` nodes, the new ones with zero memory and empty mailboxes (nodes
    /// that first appear in a stream being served). Never shrinks.
    pub fn grow(&mut self, nodes: usize) {
        let nodes = nodes.max(self.num_nodes());
        let (d, m, md) = (self.dim, self.slots, self.mail_dim);
        self.memory.resize(nodes * d, 0.0);
        self.last_update.resize(nodes, 0.0);
        self.mail.resize(nodes * m * md, 0.0);
        self.mail_time.resize(nodes * m, 0.0);
        self.mail_valid.resize(nodes * m, false);
    }

    /// Memory width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Mail width.
    pub fn mail_dim(&self) -> usize {
        self.mail_dim
    }

    /// Mailbox size.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.last_update.len()
    }

    /// Memory of node `u`.
    pub fn memory(&self, u: u32) -> &[f32] {
        &self.memory[u as usize * self.dim..(u as usize + 1) * self.dim]
    }

    /// Last-update time of node `u`.
    pub fn last_update(&self, u: u32) -> f64 {
        self.last_update[u as usize]
    }

    /// Time of the memory node `u`'s updater produces: its newest mail's, as the updater reads it
    /// (the last update plus the mail's Δt in f32, see [`Gathered::mail_dt`]), or its last update
    /// when its mailbox is empty.
    pub fn memory_time(&self, u: u32) -> f64 {
        let (u, m) = (u as usize, self.slots);
        let last = self.last_update[u];
        let newest = u * m + m - 1;
        match self.mail_valid[newest] {
            true => last + f64::from((self.mail_time[newest] - last) as f32),
            false => last,
        }
    }

    /// Reads the state of `nodes` into `out` (buffers reused).
    pub fn gather(&self, nodes: &[u32], out: &mut Gathered) {
        self.gather_rows(nodes, nodes.len(), out);
    }

    /// Reads the memories of `nodes` and the mailboxes of the first `mailboxes` of them into
    /// `out` (buffers reused): a model whose updater reads only some rows (the roots') need not
    /// copy the others' mailboxes, ten mails a node for APAN.
    pub fn gather_rows(&self, nodes: &[u32], mailboxes: usize, out: &mut Gathered) {
        let (d, m, md) = (self.dim, self.slots, self.mail_dim);
        let with_mail = &nodes[..mailboxes.min(nodes.len())];
        gather_into(&mut out.memory, &self.memory, nodes, d);
        gather_into(&mut out.mail, &self.mail, with_mail, m * md);
        out.last_update.clear();
        out.mail_dt.clear();
        out.mail_mask.clear();
        out.last_update
            .extend(nodes.iter().map(|&u| self.last_update[u as usize]));
        for &u in with_mail {
            let u = u as usize;
            let last = self.last_update[u];
            for s in u * m..(u + 1) * m {
                let valid = self.mail_valid[s];
                out.mail_dt.push(if valid {
                    (self.mail_time[s] - last) as f32
                } else {
                    0.0
                });
                out.mail_mask.push(valid);
            }
        }
    }

    /// Writes `rows` (`[nodes, dim]`) as the memories of `nodes`, last updated at `times`.
    pub fn write_memory(&mut self, nodes: &[u32], rows: &[f32], times: &[f64]) {
        let d = self.dim;
        for (i, &u) in nodes.iter().enumerate() {
            let u = u as usize;
            self.memory[u * d..(u + 1) * d].copy_from_slice(&rows[i * d..(i + 1) * d]);
            self.last_update[u] = times[i];
        }
    }

    /// Delivers `mails` (`[targets, mail_dim]`) at `times` to `targets`. A target named several
    /// times gets only its latest mail (largest time, then last position), pushed into its FIFO.
    pub fn push_mails(&mut self, targets: &[u32], mails: &[f32], times: &[f64]) {
        let md = self.mail_dim;
        let mut order: Vec<usize> = (0..targets.len()).collect();
        // Per target, the winner is the last in (time, position) order.
        order.sort_by(|&a, &b| {
            (targets[a], times[a])
                .partial_cmp(&(targets[b], times[b]))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });
        for (j, &i) in order.iter().enumerate() {
            let last_of_target = order.get(j + 1).is_none_or(|&n| targets[n] != targets[i]);
            if last_of_target {
                self.push_one(targets[i], &mails[i * md..(i + 1) * md], times[i]);
            }
        }
    }

    /// This store on `device` as the kernels keep it: validity as 0/1 and times in f32, as TGL
    /// keeps them, but measured from `origin` — absolute timestamps (Unix seconds, ~1.7·10⁹,
    /// where f32 steps by 128 s) keep the resolution of their span.
    pub fn to_device(&self, device: &Device, origin: f64) -> DeviceMemory {
        let (n, m) = (self.num_nodes(), self.slots);
        let narrow = |t: &[f64]| t.iter().map(|&x| (x - origin) as f32).collect::<Vec<f32>>();
        let valid: Vec<f32> = self
            .mail_valid
            .iter()
            .map(|&v| f32::from(u8::from(v)))
            .collect();
        DeviceMemory {
            memory: floats(&self.memory, [n, self.dim], device),
            last_update: floats(&narrow(&self.last_update), [n], device),
            mail: floats(&self.mail, [n, m, self.mail_dim], device),
            mail_time: floats(&narrow(&self.mail_time), [n, m], device),
            mail_valid: floats(&valid, [n, m], device),
        }
    }

    /// Reads back what [`MemoryStore::to_device`] made with `origin` (checkpoints, inspection).
    pub fn from_device(state: &DeviceMemory, origin: f64) -> Self {
        let [n, m, mail_dim] = state.mail.dims();
        let widen = |t: &Tensor<1>| {
            to_vec(t.clone())
                .into_iter()
                .map(|x| f64::from(x) + origin)
                .collect()
        };
        let flat = |t: &Tensor<2>| t.clone().reshape([n * m]);
        MemoryStore {
            dim: state.memory.dims()[1],
            mail_dim,
            slots: m,
            memory: to_vec(state.memory.clone()),
            last_update: widen(&state.last_update),
            mail: to_vec(state.mail.clone()),
            mail_time: widen(&flat(&state.mail_time)),
            mail_valid: to_vec(flat(&state.mail_valid))
                .iter()
                .map(|&v| v > 0.5)
                .collect(),
        }
    }

    /// Writes the whole store (checkpoints): a header of the shape, then every buffer in
    /// little-endian order.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(MAGIC)?;
        for n in [self.num_nodes(), self.dim, self.mail_dim, self.slots] {
            w.write_all(&(n as u64).to_le_bytes())?;
        }
        for x in &self.memory {
            w.write_all(&x.to_le_bytes())?;
        }
        for x in &self.mail {
            w.write_all(&x.to_le_bytes())?;
        }
        for x in self.last_update.iter().chain(&self.mail_time) {
            w.write_all(&x.to_le_bytes())?;
        }
        let valid: Vec<u8> = self.mail_valid.iter().map(|&v| v as u8).collect();
        w.write_all(&valid)
    }

    /// Restores what [`MemoryStore::write_to`] wrote into this store, which must have the same
    /// shape (the checkpoint belongs to the same dataset and configuration).
    pub fn read_from(&mut self, r: &mut impl Read) -> io::Result<()> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid("not a node-memory file".into()));
        }
        let mut word = [0u8; 8];
        let want = [self.num_nodes(), self.dim, self.mail_dim, self.slots];
        let mut got = [0usize; 4];
        for g in &mut got {
            r.read_exact(&mut word)?;
            *g = u64::from_le_bytes(word) as usize;
        }
        if got != want {
            return Err(invalid(format!(
                "node memory of shape (nodes, dim, mail_dim, slots) = {got:?}, expected {want:?}"
            )));
        }
        let mut half = [0u8; 4];
        for x in self.memory.iter_mut().chain(&mut self.mail) {
            r.read_exact(&mut half)?;
            *x = f32::from_le_bytes(half);
        }
        for x in self.last_update.iter_mut().chain(&mut self.mail_time) {
            r.read_exact(&mut word)?;
            *x = f64::from_le_bytes(word);
        }
        let mut valid = vec![0u8; self.mail_valid.len()];
        r.read_exact(&mut valid)?;
        for (v, &b) in self.mail_valid.iter_mut().zip(&valid) {
            *v = b != 0;
        }
        Ok(())
    }

    fn push_one(&mut self, u: u32, mail: &[f32], time: f64) {
        let (m, md) = (self.slots, self.mail_dim);
        let base = u as usize * m;
        self.mail
            .copy_within((base + 1) * md..(base + m) * md, base * md);
        self.mail_time.copy_within(base + 1..base + m, base);
        self.mail_valid.copy_within(base + 1..base + m, base);
        let last = base + m - 1;
        self.mail[last * md..(last + 1) * md].copy_from_slice(mail);
        self.mail_time[last] = time;
        self.mail_valid[last] = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grown_nodes_are_empty_and_old_ones_unchanged() {
        let mut s = MemoryStore::new(2, 2, 1, 2);
        s.write_memory(&[1], &[7.0, 8.0], &[2.0]);
        s.push_mails(&[1], &[40.0], &[4.0]);
        let mut g = Gathered::default();
        s.gather(&[0, 1], &mut g);
        s.grow(4);
        assert_eq!(s.num_nodes(), 4);
        let mut after = Gathered::default();
        s.gather(&[0, 1], &mut after);
        assert_eq!(after, g);
        s.gather(&[3], &mut after);
        assert_eq!(after.memory, [0.0; 2]);
        assert_eq!(after.mail_mask, [false; 2]);
        assert_eq!(s.last_update(3), 0.0);
        s.grow(1);
        assert_eq!(s.num_nodes(), 4, "never shrinks");
    }

    /// Three nodes with memories of width 2, mailboxes of two mails of width 3: nodes 2 and 1
    /// hold one mail each.
    fn three_nodes() -> MemoryStore {
        let mut s = MemoryStore::new(3, 2, 3, 2);
        s.write_memory(
            &[0, 1, 2],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[1.0, 2.0, 3.0],
        );
        s.push_mails(&[2, 1], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0], &[4.0, 5.0]);
        s
    }

    #[test]
    fn truncating_a_gather_keeps_what_gathering_fewer_nodes_reads() {
        let s = three_nodes();
        let (mut all, mut first) = (Gathered::default(), Gathered::default());
        s.gather(&[1, 2, 0], &mut all);
        s.gather(&[1, 2], &mut first);
        all.truncate(2, 2, 2);
        assert_eq!(all, first);
        all.truncate(5, 2, 2);
        assert_eq!(all, first, "more rows than held changes nothing");
    }

    #[test]
    fn gathering_fewer_mailboxes_reads_every_memory_and_the_leading_mailboxes() {
        let s = three_nodes();
        let (mut all, mut part, mut lead) = Default::default();
        s.gather(&[1, 2, 0], &mut all);
        s.gather_rows(&[1, 2, 0], 1, &mut part);
        s.gather(&[1], &mut lead);
        assert_eq!(
            (&part.memory, &part.last_update),
            (&all.memory, &all.last_update)
        );
        assert_eq!(
            (&part.mail, &part.mail_dt, &part.mail_mask),
            (&lead.mail, &lead.mail_dt, &lead.mail_mask)
        );
        // Truncated to the mailboxes held, it is the gather of those nodes alone.
        part.truncate(1, 2, 2);
        assert_eq!(part, lead);
    }

    #[test]
    fn memory_time_is_the_newest_mail_as_the_updater_reads_it() {
        let mut s = MemoryStore::new(2, 1, 1, 2);
        // Times in seconds since 1970: f32 Δt since the last update rounds the mail's time.
        let (last, mail) = (1.7e9, 1.7e9 + 0.3);
        s.write_memory(&[1], &[0.5], &[last]);
        s.push_mails(&[1], &[9.0], &[mail]);
        assert_eq!(s.memory_time(0), 0.0, "no mail: the last update");
        let read = last + f64::from((mail - last) as f32);
        assert_eq!(s.memory_time(1), read);
        let mut g = Gathered::default();
        s.gather(&[1], &mut g);
        assert_eq!(read, g.last_update[0] + f64::from(g.mail_dt[1]));
    }

    #[test]
    fn latest_mail_wins_and_fifo_shifts() {
        let mut s = MemoryStore::new(3, 2, 1, 2);
        s.push_mails(
            &[1, 1, 2, 1],
            &[10.0, 30.0, 5.0, 20.0],
            &[1.0, 3.0, 1.0, 3.0],
        );
        // Node 1: times 1, 3, 3 → the t=3 mail at the last position (20) wins.
        let mut g = Gathered::default();
        s.gather(&[1, 2, 0], &mut g);
        assert_eq!(g.mail, vec![0.0, 20.0, 0.0, 5.0, 0.0, 0.0]);
        assert_eq!(g.mail_mask, vec![false, true, false, true, false, false]);
        s.write_memory(&[1], &[7.0, 8.0], &[2.0]);
        s.push_mails(&[1], &[40.0], &[4.0]);
        s.gather(&[1], &mut g);
        assert_eq!(g.memory, vec![7.0, 8.0]);
        assert_eq!(g.mail, vec![20.0, 40.0]);
        assert_eq!(g.mail_dt, vec![1.0, 2.0]); // 3 − 2, 4 − 2
        let mut bytes = Vec::new();
        s.write_to(&mut bytes).expect("write");
        let mut back = MemoryStore::new(3, 2, 1, 2);
        back.read_from(&mut &bytes[..]).expect("read");
        assert_eq!(back, s);
        // Through a device and back: every value here is exact in f32, and stays so measured
        // from an origin that f32 holds (times near 2·10⁹ would not be, absolute).
        let device = Device::flex();
        assert_eq!(MemoryStore::from_device(&s.to_device(&device, 0.0), 0.0), s);
        let origin = 2f64.powi(31);
        let mut late = MemoryStore::new(3, 2, 1, 2);
        late.push_mails(&[1, 2], &[10.0, 30.0], &[origin + 3.0, origin + 5.0]);
        late.write_memory(&[2], &[7.0, 8.0], &[origin + 1.0]);
        let round_trip = MemoryStore::from_device(&late.to_device(&device, origin), origin);
        assert_eq!(round_trip, late);
        let mut other_shape = MemoryStore::new(4, 2, 1, 2);
        let err = other_shape.read_from(&mut &bytes[..]).expect_err("shape");
        assert!(err.to_string().contains("expected [4, 2, 1, 2]"), "{err}");
        assert!(back.read_from(&mut &bytes[..bytes.len() - 1]).is_err());
        s.reset();
        s.gather(&[1], &mut g);
        assert_eq!(g.mail_mask, vec![false, false]);
        assert_eq!(g.memory, vec![0.0, 0.0]);
    }

    #[test]
    fn ages_are_now_minus_the_mail_time() {
        let mut s = MemoryStore::new(2, 1, 1, 3);
        s.write_memory(&[0], &[1.0], &[4.0]);
        s.push_mails(&[0, 1], &[1.0, 2.0], &[5.0, 2.0]);
        s.push_mails(&[0], &[3.0], &[7.0]);
        let mut g = Gathered::default();
        s.gather(&[0, 1], &mut g);
        assert_eq!(g.mail_dt, vec![0.0, 1.0, 3.0, 0.0, 0.0, 2.0]);
        // Node 0 asked at 10, node 1 at 6; the empty slots stay 0.
        g.to_ages(&[10.0, 6.0], 3);
        assert_eq!(g.mail_dt, vec![0.0, 5.0, 3.0, 0.0, 0.0, 4.0]);
    }
}
