//! A store updated on one thread is what another thread reads — as training's pipeline does: the
//! update stage writes, the fetch (compute thread) and checkpoints (main thread) read. burn-fusion
//! 0.22.1 left a custom operation's outputs unordered for readers on other threads (they read the
//! old store, whether the writer had ended or not); the fused update dispatches before returning.

use burn::prelude::*;
use mspipe_kernels::runtime::test_device;
use mspipe_kernels::{DeviceMemory, Writes, update};

/// Nodes 1 and 2 updated at times 5 and 6.
fn writes(device: &Device) -> Writes {
    Writes::events(
        Tensor::from_data(TensorData::new(vec![1i64, 2], [2]), device),
        Tensor::from_floats([5.0, 6.0], device),
        Tensor::ones([2, 2], device),
        Tensor::ones([2, 3], device),
    )
}

fn last_update(state: &DeviceMemory) -> Vec<f32> {
    state
        .last_update
        .to_data()
        .try_to_vec::<f32>()
        .expect("f32")
}

#[test]
fn an_update_on_another_thread_is_seen() {
    let Some(gpu) = test_device() else { return };
    let want = vec![0.0, 5.0, 6.0, 0.0];
    // The writer has ended when the store is read.
    let state = DeviceMemory::zeros(4, 2, 3, 1, &gpu);
    let device = gpu.clone();
    let out = std::thread::spawn(move || update(state, writes(&device)))
        .join()
        .expect("writer");
    assert_eq!(last_update(&out), want);
    // The writer is still alive (the pipeline's update thread).
    let state = DeviceMemory::zeros(4, 2, 3, 1, &gpu);
    let device = gpu.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        tx.send(update(state, writes(&device))).expect("send");
        wait.recv().expect("told to end");
    });
    let out = rx.recv().expect("store");
    assert_eq!(last_update(&out), want);
    let memory = out.memory.to_data().try_to_vec::<f32>().expect("f32");
    assert_eq!(memory, vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    done.send(()).expect("end");
    writer.join().expect("writer");
}
