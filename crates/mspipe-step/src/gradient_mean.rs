//! The gradient all-reduce of data-parallel replicas in one process: each worker hands in its
//! gradients, the last to arrive sums them in worker order and divides by their number, and every
//! worker takes a copy of that one mean to its own device — so replicas that start identical and
//! step the same optimizer stay bit-identical.
//!
//! burn 0.22's `burn::tensor::distributed` all-reduce would do this on devices that implement it,
//! but the flex CPU backend's `DistributedOps` is empty and exposes one device, so several CPU
//! workers (one per thread pool) could not use it; an exchange through host memory is what works
//! on every backend.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::StepError;

/// One step's exchange of gradients among `workers` replicas of a model.
#[derive(Debug)]
pub struct GradientMean {
    state: Mutex<Round>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Round {
    /// Gradients handed in this round, by worker.
    arrived: Vec<Option<GradientsParams>>,
    /// The round's mean, once every participant has handed in.
    mean: Option<GradientsParams>,
    /// Participants that took their copy of `mean`.
    taken: usize,
    aborted: bool,
}

impl GradientMean {
    /// An exchange among `workers` replicas.
    pub fn new(workers: usize) -> Self {
        GradientMean {
            state: Mutex::new(Round {
                arrived: (0..workers).map(|_| None).collect(),
                ..Round::default()
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Round> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_while<'a>(
        &self,
        mut round: MutexGuard<'a, Round>,
        busy: impl Fn(&Round) -> bool,
    ) -> Result<MutexGuard<'a, Round>, StepError> {
        while busy(&round) && !round.aborted {
            round = self
                .changed
                .wait(round)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if round.aborted {
            return Err(StepError::Aborted);
        }
        Ok(round)
    }

    /// Hands in `worker`'s gradients of `model` (a replica on `device`) and returns the mean over
    /// the round's `participants` workers (`0..participants`), on `device`.
    ///
    /// # Errors
    /// [`StepError::Aborted`] once [`GradientMean::abort`] was called (a peer failed).
    ///
    /// # Panics
    /// If `worker` is not below `participants`, `participants` exceeds the exchange's workers, or
    /// the device fails to run the work queued for the gradients.
    pub fn mean(
        &self,
        worker: usize,
        participants: usize,
        grads: GradientsParams,
        model: &impl Module,
        device: &Device,
    ) -> Result<GradientsParams, StepError> {
        assert!(worker < participants, "worker {worker} of {participants}");
        // Another worker's thread may read these gradients: run this thread's queued work first
        // (burn-fusion 0.22.1 orders a custom operation's outputs only for the thread that queued
        // it; a no-op on flex).
        if let Err(e) = device.sync() {
            panic!("running worker {worker}'s backward pass failed: {e:?}");
        }
        // A worker already in its next step waits until the last round was taken.
        let mut round = self.wait_while(self.lock(), |r| r.mean.is_some())?;
        round.arrived[worker] = Some(grads);
        if round.arrived[..participants].iter().all(Option::is_some) {
            let handed: Vec<_> = round.arrived.iter_mut().filter_map(Option::take).collect();
            round.mean = Some(average(handed, model, device));
            self.changed.notify_all();
        }
        let mut round = self.wait_while(round, |r| r.mean.is_none())?;
        let mean = round.mean.as_ref().expect("waited for it");
        let mine = copy(mean, model, device);
        round.taken += 1;
        if round.taken == participants {
            round.mean = None;
            round.taken = 0;
            self.changed.notify_all();
        }
        Ok(mine)
    }

    /// Releases every waiting worker with [`StepError::Aborted`], now and in later rounds.
    pub fn abort(&self) {
        self.lock().aborted = true;
        self.changed.notify_all();
    }
}

/// Σ `grads` (in the order given) ÷ their number, on `device`.
pub(crate) fn average(
    grads: Vec<GradientsParams>,
    model: &impl Module,
    device: &Device,
) -> GradientsParams {
    let count = grads.len();
    let mut visitor = Average {
        grads: grads
            .into_iter()
            .map(|g| g.to_device(device, model))
            .collect(),
        count,
        out: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}

struct Average {
    grads: Vec<GradientsParams>,
    count: usize,
    out: GradientsParams,
}

impl ModuleVisitor for Average {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let mut parts = self
            .grads
            .iter_mut()
            .filter_map(|g| g.remove::<D>(param.id));
        let Some(first) = parts.next() else { return };
        let sum = parts.fold(first, |sum, g| sum + g);
        let mean = match self.count {
            1 => sum,
            n => sum.div_scalar(n as f64),
        };
        self.out.register(param.id, mean);
    }
}

/// `mean`'s tensors for `model`'s parameters, on `device`.
fn copy(mean: &GradientsParams, model: &impl Module, device: &Device) -> GradientsParams {
    let mut visitor = CopyTo {
        mean,
        device,
        out: GradientsParams::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}

struct CopyTo<'a> {
    mean: &'a GradientsParams,
    device: &'a Device,
    out: GradientsParams,
}

impl ModuleVisitor for CopyTo<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.mean.get::<D>(param.id) {
            self.out.register(param.id, g.to_device(self.device));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    fn grads_of(layer: &Linear, x: f32, device: &Device) -> GradientsParams {
        let input = Tensor::<2>::full([1, 2], x, device);
        let loss = layer.forward(input).sum();
        GradientsParams::from_grads(loss.backward(), layer)
    }

    #[test]
    fn every_worker_gets_the_mean_of_the_rounds_gradients() {
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(2, 1).init(&device);
        let exchange = GradientMean::new(3);
        // d(sum(x·W + b))/dW = x per weight, /db = 1: inputs 1, 2 and 6 average to 3.
        let means: Vec<GradientsParams> = std::thread::scope(|s| {
            let handles: Vec<_> = [1.0, 2.0, 6.0]
                .into_iter()
                .enumerate()
                .map(|(w, x)| {
                    // Each worker its own replica, forked as the trainer forks them: replicas
                    // sharing autodiff leaves merge their graphs across threads, where
                    // burn-autodiff 0.22.1 takes its locks in opposite orders (a deadlock).
                    let (layer, exchange) = (layer.clone().fork(&device), &exchange);
                    let device = device.clone();
                    s.spawn(move || {
                        let grads = grads_of(&layer, x, &device);
                        exchange.mean(w, 3, grads, &layer, &device).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for mean in &means {
            let w: Tensor<2> = mean.get(layer.weight.id).unwrap();
            let b: Tensor<1> = mean.get(layer.bias.as_ref().unwrap().id).unwrap();
            assert_eq!(
                w.into_data().iter::<f32>().collect::<Vec<_>>(),
                vec![3.0, 3.0]
            );
            assert_eq!(b.into_data().iter::<f32>().collect::<Vec<_>>(), vec![1.0]);
        }
        // A round of fewer participants (the last, partial group) averages over those alone.
        let grads = grads_of(&layer, 5.0, &device);
        let alone = exchange.mean(0, 1, grads, &layer, &device).unwrap();
        let w: Tensor<2> = alone.get(layer.weight.id).unwrap();
        assert_eq!(
            w.into_data().iter::<f32>().collect::<Vec<_>>(),
            vec![5.0, 5.0]
        );
    }

    #[test]
    fn an_aborted_exchange_releases_the_waiting_workers() {
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(2, 1).init(&device);
        let exchange = GradientMean::new(2);
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                let grads = grads_of(&layer, 1.0, &device);
                exchange.mean(0, 2, grads, &layer, &device)
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            exchange.abort();
            assert_eq!(waiting.join().unwrap().unwrap_err(), StepError::Aborted);
        });
    }
}
