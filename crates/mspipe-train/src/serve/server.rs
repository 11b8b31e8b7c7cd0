//! [`Server`]: a run's serving state, live — scores each micro-batch of new events from the
//! memory before it, then ingests it (memory and mailbox update, mail delivery, graph insert),
//! exactly as training's evaluation replays a split.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::prelude::*;
use mspipe_data::EventStream;
use mspipe_model::tensors::to_vec;
use mspipe_model::{MemoryModel, MemoryModelConfig};
use mspipe_sampler::{Direction, NegativeSampler, NeighborSampler, TemporalGraph};
use mspipe_step::{Inference, MemoryStore, RootRows, SampleContext};
use rustc_hash::FxHashMap;

use super::input::NewEvent;
use super::state::{self, Saved, StateInfo};
use crate::config::Config;
use crate::session::{EVAL_KEY, base_device, model_config, neighbor_sampler};

/// What a served event scored, before it was ingested.
#[derive(Debug, Clone, PartialEq)]
pub struct EventScore {
    /// Logit of the link (src, dst) at its time.
    pub logit: f32,
    /// Logits of its negatives (src, a random known destination) at the same time.
    pub negatives: Vec<f32>,
    /// Whether the source was unknown before this event (a new node, zero memory).
    pub new_src: bool,
    /// Whether the destination was unknown before this event.
    pub new_dst: bool,
    /// The most likely destinations for the source at this time, best first: (original id,
    /// logit) (empty unless asked for).
    pub top: Vec<(u64, f32)>,
}

/// An event appended to the served stream.
struct Appended {
    /// Its index in the stream.
    index: usize,
    /// Whether its source was unknown before it.
    new_src: bool,
    /// Whether its destination was unknown before it.
    new_dst: bool,
}

/// Original id → dense id, per side of a two-sided stream (users, items) or for both.
struct NodeLookup {
    users: FxHashMap<u64, u32>,
    /// Items of a two-sided stream (none: one id space).
    items: Option<FxHashMap<u64, u32>>,
}

impl NodeLookup {
    fn new(stream: &EventStream, info: &StateInfo) -> Self {
        let ids = stream.node_ids().originals();
        let users_end = stream.node_ids().users();
        let new_user = |d: usize| info.new_users.binary_search(&(d as u32)).is_ok();
        let is_user = |d: usize| match users_end {
            None => true,
            Some(u) if d < info.dataset_nodes => d < u,
            Some(_) => new_user(d),
        };
        let side = |user: bool| {
            (0..ids.len())
                .filter(|&d| is_user(d) == user)
                .map(|d| (ids[d], d as u32))
                .collect()
        };
        NodeLookup {
            users: side(true),
            items: users_end.map(|_| side(false)),
        }
    }

    /// The map of sources (users) or destinations (items; the same map in one id space).
    fn side(&mut self, source: bool) -> &mut FxHashMap<u64, u32> {
        match &mut self.items {
            Some(items) if !source => items,
            _ => &mut self.users,
        }
    }
}

/// A trained run's model serving a stream: see the module documentation.
pub struct Server {
    dir: PathBuf,
    info: StateInfo,
    config: Config,
    model_config: MemoryModelConfig,
    model: MemoryModel,
    store: MemoryStore,
    sampler: NeighborSampler,
    graph: TemporalGraph,
    stream: EventStream,
    negatives: NegativeSampler,
    /// Destinations ranked for top-k (none: every known destination).
    ranked: Option<Vec<u32>>,
    lookup: NodeLookup,
    device: Device,
}

impl Server {
    /// Opens the serving state of run directory `run` (see [`state`]) on [`base_device`].
    ///
    /// # Errors
    /// A missing or damaged state, or one of another format version, naming the file.
    pub fn open(run: &Path) -> Result<Self> {
        Self::open_on(run, base_device())
    }

    /// [`Server::open`] with the model on `device`, whichever device trained it: the state is
    /// the same on every device (node memory stays in host buffers, uploaded per batch).
    ///
    /// # Errors
    /// As [`Server::open`].
    pub fn open_on(run: &Path, device: Device) -> Result<Self> {
        let dir = state::dir(run);
        let (mut info, config, stream) = state::read(&dir)?;
        let edge_dim = stream.edge_features().map_or(0, |f| f.dim());
        let model_config = model_config(&config, edge_dim);
        let file = dir.join("model.bpk");
        let model = model_config
            .init(&device)
            .try_load_file(&file)
            .with_context(|| format!("loading {}", file.display()))?;
        let mut store = MemoryStore::new(
            stream.num_nodes(),
            model_config.memory_dim,
            model_config.mail_dim(),
            model_config.mailbox,
        );
        let file = dir.join("memory.bin");
        let mut r = std::io::BufReader::new(
            std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
        );
        store
            .read_from(&mut r)
            .with_context(|| format!("reading {}", file.display()))?;
        let sampler = neighbor_sampler(&config)?;
        let graph = TemporalGraph::from_stream(&stream, Direction::Undirected);
        // The sampler keeps the candidates from here on; a checkpoint writes them back.
        let candidates = std::mem::take(&mut info.candidates);
        let negatives = NegativeSampler::random(candidates, info.negative_seed);
        let lookup = NodeLookup::new(&stream, &info);
        Ok(Server {
            dir,
            info,
            config,
            model_config,
            model,
            store,
            sampler,
            graph,
            stream,
            negatives,
            ranked: None,
            lookup,
            device,
        })
    }

    /// Ranks top-k destinations among `destinations` (original ids) only, instead of every
    /// known destination.
    ///
    /// # Errors
    /// An id the state does not know as a destination, or an empty list.
    pub fn rank_among(&mut self, destinations: &[u64]) -> Result<()> {
        if destinations.is_empty() {
            bail!("no candidate destinations given");
        }
        let known = self.lookup.side(false);
        let dense = destinations
            .iter()
            .map(|id| {
                known
                    .get(id)
                    .copied()
                    .with_context(|| format!("candidate {id} is no node the state knows"))
            })
            .collect::<Result<Vec<u32>>>()?;
        self.ranked = Some(dense);
        Ok(())
    }

    /// Events ingested while serving since the state was exported (a restarted client resends
    /// the events after these).
    pub fn served(&self) -> usize {
        self.info.served
    }

    /// The last ingested event's time, in the model's unit (see [`Server::model_time`]).
    pub fn last_time(&self) -> Option<f64> {
        self.stream.time().last().copied()
    }

    /// Edge features each event carries (0: none).
    pub fn edge_dim(&self) -> usize {
        self.stream.edge_features().map_or(0, |f| f.dim())
    }

    /// Checks `event`'s features: the stream's width, or none (zeros).
    ///
    /// # Errors
    /// What is wrong, for the client.
    pub fn check_features(&self, event: &NewEvent) -> std::result::Result<(), String> {
        match &event.features {
            Some(f) if f.len() != self.edge_dim() => Err(format!(
                "{} features, the stream's events have {}",
                f.len(),
                self.edge_dim()
            )),
            _ => Ok(()),
        }
    }

    /// Scores `events` (in time order, none older than the last ingested, features passing
    /// [`Server::check_features`]) with `negatives` random negatives each, from the memory before
    /// them, then ingests them: one micro-batch, as one evaluation batch of training.
    ///
    /// # Errors
    /// An event out of order or with features of another width (nothing is changed then).
    pub fn score(&mut self, events: &[NewEvent], negatives: usize) -> Result<Vec<EventScore>> {
        self.score_ranked(events, negatives, 0)
    }

    /// [`Server::score`], with each event's `top` most likely destinations among every known
    /// destination (see [`Inference::run_ranking`] for the time they are embedded at).
    ///
    /// # Errors
    /// As [`Server::score`].
    pub fn score_ranked(
        &mut self,
        events: &[NewEvent],
        negatives: usize,
        top: usize,
    ) -> Result<Vec<EventScore>> {
        on_pool(|| self.score_batch(events, negatives, top))
    }

    /// [`Server::score_ranked`] on the calling thread.
    fn score_batch(
        &mut self,
        events: &[NewEvent],
        negatives: usize,
        top: usize,
    ) -> Result<Vec<EventScore>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.check_batch(events)?;
        let appended = self.append(events)?;
        let indices = appended.iter().map(|a| a.index).collect();
        let cx = SampleContext {
            stream: &self.stream,
            graph: &self.graph,
            negatives: &self.negatives,
            negative_key: EVAL_KEY,
            per_positive: negatives,
            root_rows: RootRows::for_clock(self.model_config.mail_clock()),
            embed: self.config.gnn.embed,
        };
        let inference = Inference {
            model: &self.model,
            delivery: self.model_config.delivery,
            time_origin: self.info.time_origin,
            device: &self.device,
        };
        let (scored, ranked) = if top == 0 {
            let scored = inference.run(cx, &mut self.sampler, &mut self.store, indices)?;
            (scored, Vec::new())
        } else {
            let candidates = match &self.ranked {
                Some(ranked) => &ranked[..],
                None => self.negatives.candidates(),
            };
            let (scored, pairs) = inference.run_ranking(
                cx,
                &mut self.sampler,
                &mut self.store,
                indices,
                candidates,
            )?;
            let ids = self.stream.node_ids();
            let best = |row: &[f32]| -> Vec<(u64, f32)> {
                top_k(row, top)
                    .into_iter()
                    .map(|j| (ids.original(candidates[j]), row[j]))
                    .collect()
            };
            let pairs = to_vec(pairs);
            let ranked = pairs.chunks(candidates.len().max(1)).map(best).collect();
            (scored, ranked)
        };
        self.info.served += events.len();
        let pos = to_vec(scored.pos);
        let neg = to_vec(scored.neg);
        let mut ranked = ranked.into_iter();
        Ok(pos
            .into_iter()
            .zip(appended)
            .enumerate()
            .map(|(i, (logit, a))| EventScore {
                logit,
                negatives: neg[i * negatives..(i + 1) * negatives].to_vec(),
                new_src: a.new_src,
                new_dst: a.new_dst,
                top: ranked.next().unwrap_or_default(),
            })
            .collect())
    }

    /// Refuses a batch out of time order (or older than the last ingested event), or with
    /// features of another width, before anything changes.
    fn check_batch(&self, events: &[NewEvent]) -> Result<()> {
        let mut last = self.last_time();
        for e in events {
            self.check_features(e).map_err(anyhow::Error::msg)?;
            let t = self.model_time(e.t);
            if last.is_some_and(|last| t < last) {
                bail!("event at t = {} is older than the one before it", e.t);
            }
            last = Some(t);
        }
        Ok(())
    }

    /// Appends `events` (checked) to the stream and the graph.
    fn append(&mut self, events: &[NewEvent]) -> Result<Vec<Appended>> {
        let mut appended = Vec::with_capacity(events.len());
        for e in events {
            let (src, new_src) = self.node(e.src, true);
            let (dst, new_dst) = self.node(e.dst, false);
            let t = self.model_time(e.t);
            let index = self.stream.push(src, dst, t, e.features.as_deref())?;
            self.graph.insert(src, dst, t, index as u32)?;
            appended.push(Appended {
                index,
                new_src,
                new_dst,
            });
        }
        // Appended events live in per-node lists, which the sampler reads slower than the T-CSR
        // arrays; they are folded in once they are a sixteenth of the graph (a copy of the
        // arrays each time the graph grows by that much: about 16 copies of each entry).
        if self.graph.appended() * 16 > self.graph.num_entries() {
            self.graph.compact();
        }
        Ok(appended)
    }

    /// Writes the live state over the run's serving state, atomically.
    ///
    /// # Errors
    /// I/O errors, naming the path.
    pub fn checkpoint(&self) -> Result<()> {
        let info = StateInfo {
            candidates: self.negatives.candidates().to_vec(),
            ..self.info.clone()
        };
        let saved = Saved {
            info: &info,
            config: &self.config,
            stream: &self.stream,
            model: &|d| Ok(self.model.clone().save_file(d.join("model.bpk"))?),
            memory: &|p| {
                let mut w = std::io::BufWriter::new(std::fs::File::create(p)?);
                self.store.write_to(&mut w)?;
                std::io::Write::flush(&mut w)?;
                Ok(())
            },
        };
        state::write(&self.dir, &saved)
    }

    /// `t` of the stream file's unit in the model's, as training rescaled the stream (monotone:
    /// compare times in this unit, where a served event meets the stream's).
    pub fn model_time(&self, t: f64) -> f64 {
        t / self.info.time_unit
    }

    /// The dense id of original id `id` (a source if `source`), and whether it is new: a new
    /// node gets zero memory and no events, as training's unseen nodes.
    fn node(&mut self, id: u64, source: bool) -> (u32, bool) {
        if let Some(&d) = self.lookup.side(source).get(&id) {
            return (d, false);
        }
        let d = self.stream.push_node(id);
        self.lookup.side(source).insert(id, d);
        if source && self.lookup.items.is_some() {
            self.info.new_users.push(d);
        }
        if !source {
            // A known destination from now on: drawn as a negative, ranked as a candidate.
            self.negatives.add_candidate(d);
        }
        self.graph.add_nodes(1);
        self.store.grow(self.stream.num_nodes());
        (d, true)
    }
}

/// Runs `f` as one of rayon's workers, as training runs (see [`crate::run::train`]): the
/// backend's parallel ops then split their work with `join` on this thread instead of queueing
/// it and putting the caller to sleep until done, twice per op. (Entering the pool costs two
/// context switches; [`super::serve`] enters it once for the whole stream.)
pub(crate) fn on_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_none() && rayon::current_num_threads() > 1 {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// Indices of the `k` largest values of `row`, largest first (ties: lower index first).
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let order = |&a: &usize, &b: &usize| row[b].total_cmp(&row[a]).then(a.cmp(&b));
    let mut idx: Vec<usize> = (0..row.len()).collect();
    let k = k.min(row.len());
    if k < row.len() {
        idx.select_nth_unstable_by(k, order);
        idx.truncate(k);
    }
    idx.sort_unstable_by(order);
    idx
}

#[cfg(test)]
mod tests {
    use super::top_k;

    #[test]
    fn top_k_is_the_largest_first_with_ties_to_the_lower_index() {
        let row = [0.5, 2.0, -1.0, 2.0, 3.0, 0.0];
        assert_eq!(top_k(&row, 3), [4, 1, 3]);
        assert_eq!(top_k(&row, 1), [4]);
        assert_eq!(top_k(&row, 10), [4, 1, 3, 0, 5, 2]);
        assert_eq!(top_k(&row, 0), Vec::<usize>::new());
    }
}
