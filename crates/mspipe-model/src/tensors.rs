//! Host slices → tensors: the one place that knows the dtypes the model's inputs use.

use burn::prelude::*;
use burn::tensor::TensorData;

/// A float tensor of `shape` from row-major values.
pub fn floats<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(float_data(values.to_vec(), shape), device)
}

/// A 1-D int tensor (gather/select indices).
pub fn indices(values: &[u32], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(index_data(values), device)
}

/// A bool tensor of `shape` (masks).
pub fn bools<const D: usize>(
    values: &[bool],
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Bool> {
    Tensor::from_data(bool_data(values.to_vec(), shape), device)
}

/// [`floats`]'s data, taking the values without a copy: built on one thread, a tensor on the
/// device later.
pub fn float_data<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> TensorData {
    TensorData::new(values, shape)
}

/// [`indices`]'s data.
pub fn index_data(values: &[u32]) -> TensorData {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    TensorData::new(v, [values.len()])
}

/// [`bools`]'s data, taking the values without a copy.
pub fn bool_data<const D: usize>(values: Vec<bool>, shape: [usize; D]) -> TensorData {
    TensorData::new(values, shape)
}

/// The values of a float tensor, row-major.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32 just before")
}
