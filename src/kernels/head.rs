//! A ResNet's head and loss as single ops: global average pool + linear classifier, and cross-entropy.
//!
//! Why: candle builds `x.mean((2, 3)).matmul(Wᵀ).broadcast_add(b)` from ~5 graph nodes and
//! `candle_nn::loss::cross_entropy` from ~8 (log-softmax, gather, sum, neg, div, …), each with its own allocation,
//! backward node and zero-initialised gradient accumulator. On tiny@64 (a ~10 ms step of ~150 nodes) the per-node
//! overhead is a visible part of the step. The arithmetic here is tiny (`N·C·H·W` adds, `N·C·K` MACs).
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::buf::slice;

/// Logits `(N, K)` = `mean_{h,w}(x) · wᵀ + b` for `x (N, C, H, W)`, `w (K, C)`, `b (K)`.
pub fn pool_linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, PoolLinear)
}

struct PoolLinear;

fn head_dims(l1: &Layout, l2: &Layout, l3: &Layout) -> Result<(usize, usize, usize, usize)> {
    let (n, c, h, w) = l1.shape().dims4()?;
    let (k, c2) = l2.shape().dims2()?;
    if c2 != c || l3.shape().elem_count() != k {
        candle_core::bail!(
            "pool-linear: input {:?}, weight {:?}, bias {:?}",
            l1.shape(),
            l2.shape(),
            l3.shape()
        );
    }
    Ok((n, c, h * w, k))
}

/// Logits `(N·K)` of [`pool_linear`] on host slices; `dims = (N, C, H·W, K)`.
pub(crate) fn pool_linear_forward(x: &[f32], w: &[f32], b: &[f32], dims: (usize, usize, usize, usize)) -> Vec<f32> {
    let (n, c, hw, k) = dims;
    let pooled = pool(x, n, c, hw);
    let mut out = Vec::with_capacity(n * k);
    for p in pooled.chunks_exact(c) {
        out.extend(
            w.chunks_exact(c)
                .zip(b)
                .map(|(row, &bias)| bias + row.iter().zip(p).map(|(a, b)| a * b).sum::<f32>()),
        );
    }
    out
}

/// Backward of [`pool_linear`] on host slices: `[dx | dW | db]`; `dims = (N, C, H·W, K)`.
pub(crate) fn pool_linear_backward(x: &[f32], dy: &[f32], w: &[f32], dims: (usize, usize, usize, usize)) -> Vec<f32> {
    let (n, c, hw, k) = dims;
    let pooled = pool(x, n, c, hw);
    let mut out = Vec::with_capacity(n * c * hw + k * c + k);
    // dx[n, c, :] = Σ_k dy[n, k]·w[k, c] / HW
    let inv = 1.0 / hw as f32;
    for i in 0..n {
        let g = &dy[i * k..][..k];
        for ch in 0..c {
            let v: f32 = g.iter().enumerate().map(|(j, &d)| d * w[j * c + ch]).sum::<f32>() * inv;
            out.extend(std::iter::repeat_n(v, hw));
        }
    }
    // dW[k, c] = Σ_n dy[n, k]·pooled[n, c]
    for j in 0..k {
        out.extend((0..c).map(|ch| (0..n).map(|i| dy[i * k + j] * pooled[i * c + ch]).sum::<f32>()));
    }
    // db[k] = Σ_n dy[n, k]
    out.extend((0..k).map(|j| (0..n).map(|i| dy[i * k + j]).sum::<f32>()));
    out
}

/// `pooled (N, C)`: per-plane means, summed in f64.
fn pool(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    x.chunks_exact(hw)
        .take(n * c)
        .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32)
        .collect()
}

impl CustomOp3 for PoolLinear {
    fn name(&self) -> &'static str {
        "bnscope-pool-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw, k) = head_dims(l1, l2, l3)?;
        let (x, w, b) = (slice(s1, l1, "head")?, slice(s2, l2, "head")?, slice(s3, l3, "head")?);
        let out = pool_linear_forward(x, w, b, (n, c, hw, k));
        Ok((CpuStorage::F32(out), Shape::from((n, k))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let packed = x.apply_op3_no_bwd(&dy.contiguous()?, w, &PoolLinearBackward)?;
        let (nx, nw) = (x.elem_count(), w.elem_count());
        Ok((
            Some(packed.narrow(0, 0, nx)?.reshape(x.shape())?),
            Some(packed.narrow(0, nx, nw)?.reshape(w.shape())?),
            Some(packed.narrow(0, nx + nw, b.elem_count())?.reshape(b.shape())?),
        ))
    }
}

/// `(x, dy, w) -> [dx | dW | db]`.
struct PoolLinearBackward;

impl CustomOp3 for PoolLinearBackward {
    fn name(&self) -> &'static str {
        "bnscope-pool-linear-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, wd) = l1.shape().dims4()?;
        let hw = h * wd;
        let (k, c2) = l3.shape().dims2()?;
        if l2.shape().dims() != [n, k] || c2 != c {
            candle_core::bail!(
                "pool-linear backward: gradient {:?}, weight {:?}",
                l2.shape(),
                l3.shape()
            );
        }
        let (x, dy, w) = (slice(s1, l1, "head")?, slice(s2, l2, "head")?, slice(s3, l3, "head")?);
        let out = pool_linear_backward(x, dy, w, (n, c, hw, k));
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// Mean cross-entropy of `logits (N, K)` against class indices `targets (N)` (u32), as
/// `candle_nn::loss::cross_entropy`: `−(1/N)·Σ_n log_softmax(logits_n)[t_n]`, a scalar. One op forward (log-sum-exp
/// in f64) and one backward (`(softmax − onehot)/N`). CPU and f32 only: `crate::model::cross_entropy` chooses
/// between this and candle-nn's.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if targets.rank() != 1 || logits.rank() != 2 {
        candle_core::bail!(
            "cross-entropy: logits must be (N, K) and targets (N), got {:?} and {:?}",
            logits.dims(),
            targets.dims()
        );
    }
    let t = targets.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let (n, k) = logits.dims2()?;
    if t.len() != n {
        candle_core::bail!("cross-entropy: {} targets for {n} rows", t.len());
    }
    if let Some(&bad) = t.iter().find(|&&v| v as usize >= k) {
        candle_core::bail!("cross-entropy: target {bad} out of range for {k} classes");
    }
    logits.contiguous()?.apply_op1(CrossEntropy { targets: t })
}

struct CrossEntropy {
    targets: Vec<u32>,
}

/// Mean cross-entropy of `logits (N·K)` against `targets` on host slices (targets checked by the caller).
pub(crate) fn cross_entropy_forward(logits: &[f32], targets: &[u32], n: usize, k: usize) -> f32 {
    let total: f64 = logits
        .chunks_exact(k)
        .zip(targets)
        .map(|(row, &t)| log_sum_exp(row) - row[t as usize] as f64)
        .sum();
    (total / n as f64) as f32
}

/// Gradient of [`cross_entropy_forward`] times `scale`: `scale·(softmax − onehot)/N`.
pub(crate) fn cross_entropy_backward(logits: &[f32], targets: &[u32], scale: f32, n: usize, k: usize) -> Vec<f32> {
    let f = scale as f64 / n as f64;
    let mut out = Vec::with_capacity(n * k);
    for (row, &t) in logits.chunks_exact(k).zip(targets) {
        let lse = log_sum_exp(row);
        out.extend(row.iter().enumerate().map(|(j, &v)| {
            let p = (v as f64 - lse).exp() - if j == t as usize { 1.0 } else { 0.0 };
            (p * f) as f32
        }));
    }
    out
}

/// Per row: `(log Σ exp(l − max) + max)` in f64.
fn log_sum_exp(row: &[f32]) -> f64 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m
}

impl candle_core::CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "bnscope-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l.shape().dims2()?;
        let x = slice(s, l, "cross-entropy")?;
        let loss = cross_entropy_forward(x, &self.targets, n, k);
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?[0];
        let op = CrossEntropyBackward {
            targets: &self.targets,
            scale: g,
        };
        Ok(Some(arg.apply_op1_no_bwd(&op)?))
    }
}

struct CrossEntropyBackward<'a> {
    targets: &'a [u32],
    scale: f32,
}

impl candle_core::CustomOp1 for CrossEntropyBackward<'_> {
    fn name(&self) -> &'static str {
        "bnscope-cross-entropy-backward"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l.shape().dims2()?;
        let x = slice(s, l, "cross-entropy")?;
        let out = cross_entropy_backward(x, self.targets, self.scale, n, k);
        Ok((CpuStorage::F32(out), Shape::from((n, k))))
    }
}
