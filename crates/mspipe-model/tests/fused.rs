//! One model, two routes: TGN and APAN on flex (attention in burn ops) and the same weights on
//! wgpu (attention as the fused kernel, with its backward kernel under autodiff) give the same
//! scores and the same gradients.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Tolerance;
use mspipe_kernels::runtime::test_device;
use mspipe_model::memory::{Gathered, MemoryStore};
use mspipe_model::tensors::{floats, indices};
use mspipe_model::{AttentionHeadsConfig, EmbedInput, HopInput, MemoryInput, MemoryModelConfig};

/// Scores of roots (0, 2) against (1, 3), and the gradient of their sum for the memories.
fn scores_and_memory_grad(
    model: &mspipe_model::MemoryModel,
    gathered: &Gathered,
    mailbox: usize,
    device: &Device,
) -> (TensorData, TensorData) {
    let input = MemoryInput::from_host(gathered.clone(), 8, mailbox, device);
    let memory = input.memory.clone().require_grad();
    let updated = model.update_memory(MemoryInput {
        memory: memory.clone(),
        ..input
    });
    let embed = EmbedInput {
        root_index: indices(&[0, 1, 2, 3], device),
        root_dt: floats(&[0.5, 1.5, 0.0, 2.0], [4], device),
        hops: vec![HopInput::from_host(
            &[1, 3, 2, 0, 3, 3, 0, 1],
            &[1.0, 2.0, 3.0, 4.0, 0.5, 0.0, 7.0, 1.0],
            &[true, false, true, true, false, false, true, true],
            Some((&[0.25; 24], 3)),
            2,
            device,
        )],
    };
    let h = model.embed(updated, &embed);
    let logits = model.score(h, indices(&[0, 2], device), indices(&[1, 3], device));
    let grads = logits.clone().sum().backward();
    let grad = memory.grad(&grads).expect("memory gradient");
    (logits.inner().into_data(), grad.into_data())
}

#[test]
fn flex_and_fused_wgpu_agree() {
    let Some(gpu) = test_device() else { return };
    let (gpu, cpu) = (gpu.autodiff(), Device::flex().autodiff());
    // The wgpu side takes the kernel route, the flex side the burn-ops one.
    assert!(mspipe_kernels::cube::runs_on(&gpu) && !mspipe_kernels::cube::runs_on(&cpu));
    for config in [MemoryModelConfig::tgn(3), MemoryModelConfig::apan(3)] {
        let config = config
            .with_memory_dim(8)
            .with_time_dim(4)
            .with_embed_dim(8)
            .with_neighbors(2)
            // Each device draws its own dropout masks: compare the deterministic model.
            .with_attention(AttentionHeadsConfig::new().with_dropout(0.0));
        let mut store = MemoryStore::new(4, 8, config.mail_dim(), config.mailbox);
        let mail: Vec<f32> = (0..config.mail_dim())
            .map(|i| i as f32 / 10.0 - 0.3)
            .collect();
        store.push_mails(
            &[0, 2, 3],
            &[mail.clone(), mail.clone(), mail].concat(),
            &[1.0, 2.0, 2.5],
        );
        let mut gathered = Gathered::default();
        store.gather(&[0, 1, 2, 3], &mut gathered);
        cpu.seed(5);
        let on_cpu = config.init(&cpu);
        let on_gpu = on_cpu.clone().to_device(&gpu);
        let want = scores_and_memory_grad(&on_cpu, &gathered, config.mailbox, &cpu);
        let got = scores_and_memory_grad(&on_gpu, &gathered, config.mailbox, &gpu);
        let tol = Tolerance::<f32>::rel_abs(1e-4, 1e-5);
        got.0.assert_approx_eq::<f32>(&want.0, tol);
        got.1.assert_approx_eq::<f32>(&want.1, tol);
    }
}
