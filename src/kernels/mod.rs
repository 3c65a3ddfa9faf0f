//! bnscope's own CPU kernels, wired into candle as custom ops so that autograd and the optimizer keep working.
//!
//! Why they exist (candle 0.11.1, CPU, f32, measured on a 2-vCPU EPYC, see `docs/PERFORMANCE.md`):
//! * [`conv`]: candle's conv2d forward is im2col + gemm but allocates and zero-fills per call, and its backward
//!   computes the input gradient with `conv_transpose2d` in direct loops (~10× slower than PyTorch) and the weight
//!   gradient with another slow path. Here forward, input gradient and weight gradient are each one gemm (the
//!   `gemm` crate, the one candle uses) around im2col / col2im, sharing scratch buffers.
//! * [`bn`]: candle builds train-mode BatchNorm out of ~10 tensor ops forward and ~20 backward, each a full pass
//!   over the activation plus an allocation. The fused op does two passes forward and two backward, and takes the
//!   following ReLU, or a residual block's `relu(bn(x) + skip)`, into the same passes.
//! * [`pool`]: max-pool with padding whose backward scatters to the argmax kept by the forward pass (candle's
//!   `max_pool2d` backward needs kernel == stride and scales the gradient wrongly).
//! * [`head`]: global average pool + linear classifier as one op, and cross-entropy as one op.
//! * [`adam`]: a one-pass in-place Adam update instead of ~10 tensor ops per parameter.
//! * [`gemm`] and [`buf`]: how products are split across threads, and the buffers the kernels share.
//!
//! This module is the bottom of the dependency graph: it imports nothing from the rest of bnscope. Whether a
//! kernel is used (CPU, f32, the own-kernels switch) is decided by the model, in `crate::model::path`. Each kernel
//! is tested against candle's reference ops in `tests/kernels.rs`.
pub mod adam;
pub mod bn;
pub mod buf;
pub mod conv;
pub mod gemm;
pub mod head;
pub mod im2col;
pub mod pool;
