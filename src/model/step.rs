//! A whole training step — forward with BN in train mode, cross-entropy, backward — on the CPU without candle's
//! autograd, calling the same kernels as the custom ops do.
//!
//! Why: with every layer a fused custom op (round 3 of `docs/PERFORMANCE.md`), what was left between them was
//! candle's backprop itself: for every edge of the graph it allocates a zero tensor (`GradStore::or_insert`) and
//! adds the op's gradient into it (a new tensor again), and it keeps each op's packed outputs alive through
//! `narrow` views. On resnet50@224 that was ~8 % of the samples (`binary_map` + `memset`), on tiny@64 most of the
//! step besides the kernels. Here each activation gradient is written once by the kernel that produces it and read
//! once by the next; the only sums are the two branches of a residual block, as in candle.
//!
//! The arithmetic is the custom ops' own (`conv::forward`/`backward_parts`, `bn::forward`/`backward`, the
//! max-pool argmax and scatter, the pool + linear head, cross-entropy), called in the same order on the same
//! inputs, and the two branch gradients of a block input are added as candle adds them (`0 + a + b`, and IEEE
//! addition commutes). The gradients are therefore bit-identical to `loss.backward()` over the custom ops, which
//! `tests/step.rs` checks, and the seed reproductions do not move. [`eval_forward`] is the same forward pass for
//! the two evaluation modes (bit-identical logits).
//!
//! Used on the CPU with f32 and the own kernels on (see `super::path::graph_free_applies`); otherwise callers take the candle graph
//! (`crate::model::ResNet::forward` + autograd), which also serves CUDA.
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Storage, Tensor, Var};

use super::{BnMode, ConvBn, ResNet};
use crate::kernels::im2col::Geom;
use crate::kernels::{bn, conv, head, pool};

/// What one step produced.
pub struct StepOutput {
    /// Mean cross-entropy of the batch.
    pub loss: f32,
    /// `(N, classes)` logits of the train-mode forward pass.
    pub logits: Tensor,
    /// Gradient of the loss for every parameter of the model.
    pub grads: GradStore,
    /// Milliseconds spent in the forward pass and the loss (for `bench --breakdown`).
    pub forward_ms: f64,
}

/// Host view of a contiguous f32 CPU tensor, valid while the guard lives.
struct Held<'a> {
    guard: candle_core::StorageRef<'a>,
    range: (usize, usize),
}

impl<'a> Held<'a> {
    fn new(t: &'a Tensor) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        let range = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("graph-free step: tensor must be contiguous".into()))?;
        Ok(Self { guard, range })
    }

    fn slice(&self) -> Result<&[f32]> {
        #[allow(unreachable_patterns)] // only `Cpu` exists without the `cuda` feature
        match &*self.guard {
            Storage::Cpu(s) => Ok(&s.as_slice::<f32>()?[self.range.0..self.range.1]),
            _ => candle_core::bail!("graph-free step: tensor must be on the CPU"),
        }
    }
}

/// How a forward pass normalises, and whether it keeps what the backward pass needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Norm {
    /// Batch statistics, everything kept for the backward pass and the running-statistics update.
    Train,
    /// Batch statistics, nothing kept (`BnMode::EvalBatch`).
    Batch,
    /// Running statistics (`BnMode::EvalRunning`).
    Running,
}

/// A conv + BN unit's weights, geometry and what its forward pass saved.
struct Unit<'a> {
    bn: &'a super::BatchNorm2d,
    conv_w: &'a Var,
    gamma: &'a Var,
    beta: &'a Var,
    w: Held<'a>,
    g: Geom,
    cout: usize,
    /// Conv output (the BN input).
    c: Vec<f32>,
    /// BN output (after the ReLU where there is one); empty for a block's last unit, whose output is the block's.
    y: Vec<f32>,
    stats: Option<bn::Stats>,
}

impl<'a> Unit<'a> {
    fn new(cb: ConvBn<'a>, n: usize, cin: usize, h: usize, w: usize) -> Result<Self> {
        let (c, b) = cb;
        let (cout, wc, kh, kw) = c.weight.as_tensor().dims4()?;
        if wc != cin {
            candle_core::bail!("{}: input has {cin} channels, weight expects {wc}", c.name);
        }
        if h + 2 * c.padding < kh || w + 2 * c.padding < kw {
            candle_core::bail!("{}: a {h}×{w} input is smaller than the {kh}×{kw} kernel", c.name);
        }
        Ok(Self {
            bn: b,
            conv_w: &c.weight,
            gamma: &b.weight,
            beta: &b.bias,
            w: Held::new(c.weight.as_tensor())?,
            g: Geom::new(n, cin, h, w, kh, kw, c.stride, c.padding),
            cout,
            c: Vec::new(),
            y: Vec::new(),
            stats: None,
        })
    }

    fn dims(&self) -> (usize, usize, usize) {
        (self.g.n, self.cout, self.g.p())
    }

    /// Conv, then BN `[+ skip]` `[ReLU]`; returns the BN output. With [`Norm::Train`] the conv output and the
    /// batch statistics are kept for the backward pass.
    fn forward(&mut self, x: &[f32], skip: Option<&[f32]>, relu: bool, norm: Norm) -> Result<Vec<f32>> {
        let c = conv::forward(x, self.w.slice()?, &self.g, self.cout);
        let norm = if norm == Norm::Running && self.bn.batch_in_eval() {
            Norm::Batch
        } else {
            norm
        };
        let (gamma, beta) = (Held::new(self.gamma.as_tensor())?, Held::new(self.beta.as_tensor())?);
        let (gamma, beta) = (gamma.slice()?, beta.slice()?);
        let y = match norm {
            Norm::Running => {
                // The composite of `crate::model::batchnorm` (EvalRunning), operation for operation in f32:
                // a = γ·(1/√(σ²+ε)), b = β − μ·a, y = x·a + b.
                let (rm, rv) = (Held::new(self.bn.running_mean())?, Held::new(self.bn.running_var())?);
                let eps = self.bn.eps() as f32;
                let a: Vec<f32> = gamma
                    .iter()
                    .zip(rv.slice()?)
                    .map(|(&g, &v)| g * (1.0 / (v + eps).sqrt()))
                    .collect();
                let b: Vec<f32> = beta
                    .iter()
                    .zip(rm.slice()?)
                    .zip(&a)
                    .map(|((&b, &m), &a)| b - m * a)
                    .collect();
                bn::affine(&c, skip, &a, &b, self.dims(), relu)
            }
            Norm::Train | Norm::Batch => {
                let (y, stats) = bn::forward(&c, skip, gamma, beta, self.dims(), self.bn.eps(), relu);
                if norm == Norm::Train {
                    self.stats = Some(stats);
                }
                y
            }
        };
        if norm == Norm::Train {
            self.c = c;
        }
        Ok(y)
    }

    /// BN backward (ReLU masked by `out` where given, `dskip` returned with `add`), then conv backward; records
    /// γ, β and conv-weight gradients and returns `(dx if need_dx, the BN backward's packed output)`; with `add`,
    /// `dskip` is `packed[len..2·len]` (left in place rather than copied out).
    fn backward(
        &self,
        x: &[f32],
        dy: &[f32],
        out: Option<&[f32]>,
        add: bool,
        need_dx: bool,
        grads: &mut Grads,
    ) -> Result<UnitGrads> {
        let stats = self
            .stats
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("graph-free step: backward before forward".into()))?;
        let packed = bn::backward(&self.c, dy, out, add, stats, self.dims());
        let (len, c) = (self.c.len(), self.cout);
        let at = if add { 2 * len } else { len };
        grads.push(self.gamma, packed[at..at + c].to_vec());
        grads.push(self.beta, packed[at + c..at + 2 * c].to_vec());
        let (dx, dw) = conv::backward_parts(x, self.w.slice()?, &packed[..len], &self.g, self.cout, need_dx);
        grads.push(self.conv_w, dw);
        Ok((dx, packed))
    }
}

/// `(dx, packed)` of [`Unit::backward`].
type UnitGrads = (Option<Vec<f32>>, Vec<f32>);

/// The value of an `Option` the step's own logic guarantees, as an error instead of a panic if it ever is not.
fn must<T>(o: Option<T>, what: &str) -> Result<T> {
    o.ok_or_else(|| candle_core::Error::Msg(format!("graph-free step: internal error, no {what}")))
}

/// Parameter gradients as they are produced.
struct Grads(Vec<(Var, Vec<f32>)>);

impl Grads {
    fn push(&mut self, v: &Var, g: Vec<f32>) {
        self.0.push((v.clone(), g));
    }
}

/// A residual block's units and its input geometry.
struct BlockRun<'a> {
    main: Vec<Unit<'a>>,
    down: Option<Unit<'a>>,
}

/// A forward pass's state: the units with what they kept, the block activations, the logits.
struct Net<'a> {
    stem: Unit<'a>,
    stem_dims: (usize, usize, usize, usize),
    argmax: Vec<usize>,
    /// `acts[i]` is block `i`'s input, `acts[i + 1]` its output (only the last is kept outside [`Norm::Train`]).
    acts: Vec<Vec<f32>>,
    blocks: Vec<BlockRun<'a>>,
    fc: (&'a Var, &'a Var),
    head_dims: (usize, usize, usize, usize),
    logits: Vec<f32>,
}

/// The forward pass of `model` on `x (N, 3, H, W)` (a contiguous f32 CPU tensor) up to the logits.
fn forward_net<'a>(model: &'a ResNet, x: &Tensor, norm: Norm) -> Result<Net<'a>> {
    let (n, cin, h, w) = x.dims4()?;
    let layout = model.layout();
    let xh = Held::new(x)?;
    let xs = xh.slice()?;
    let keep = norm == Norm::Train;
    let (stem_conv, stem_bn, pool) = layout.stem;
    let mut stem = Unit::new((stem_conv, stem_bn), n, cin, h, w)?;
    let stem_out = stem.forward(xs, None, true, norm)?;
    let (sh, sw) = (stem.g.oh, stem.g.ow);
    let stem_dims = (n, stem.cout, sh, sw);
    let (ph, pw) = pool.out_dims(sh, sw)?;
    let (pooled, argmax) = pool.window().forward_saved(&stem_out, stem_dims);
    if keep {
        stem.y = stem_out;
    }
    let mut acts: Vec<Vec<f32>> = vec![pooled];
    let mut dims = vec![(stem.cout, ph, pw)];
    let mut blocks: Vec<BlockRun> = Vec::with_capacity(layout.blocks.len());
    for (main, down) in &layout.blocks {
        let (c0, h0, w0) = *dims.last().expect("stem dims");
        let input = acts.last().expect("block input");
        let mut units = Vec::with_capacity(main.len());
        let (mut c, mut hh, mut ww) = (c0, h0, w0);
        for &cb in main {
            let u = Unit::new(cb, n, c, hh, ww)?;
            (c, hh, ww) = (u.cout, u.g.oh, u.g.ow);
            units.push(u);
        }
        let last = units.len() - 1;
        for i in 0..last {
            let (done, rest) = units.split_at_mut(i);
            let inp = if i == 0 { input } else { &done[i - 1].y };
            rest[0].y = rest[0].forward(inp, None, true, norm)?;
        }
        let mut down_unit = match down {
            Some(cb) => Some(Unit::new(*cb, n, c0, h0, w0)?),
            None => None,
        };
        let skip = match down_unit.as_mut() {
            Some(d) => {
                if (d.cout, d.g.oh, d.g.ow) != (c, hh, ww) {
                    candle_core::bail!("graph-free step: shortcut shape differs from the main path");
                }
                Some(d.forward(input, None, false, norm)?)
            }
            None => {
                if (c0, h0, w0) != (c, hh, ww) {
                    candle_core::bail!("graph-free step: identity shortcut with a shape change");
                }
                None
            }
        };
        let (done, rest) = units.split_at_mut(last);
        let prev = if last == 0 { input } else { &done[last - 1].y };
        let out = rest[0].forward(prev, Some(skip.as_deref().unwrap_or(input)), true, norm)?;
        if !keep {
            // Evaluation: nothing goes backward, so only the newest activation is needed.
            units.iter_mut().for_each(|u| u.y = Vec::new());
            if let Some(prev) = acts.last_mut() {
                *prev = Vec::new();
            }
        }
        acts.push(out);
        dims.push((c, hh, ww));
        blocks.push(BlockRun {
            main: units,
            down: down_unit,
        });
    }
    let (fw, fb) = layout.fc;
    let (fc_c, fh, fwd) = *dims.last().expect("features");
    let (k, fc_in) = fw.as_tensor().dims2()?;
    if fc_in != fc_c || k != model.classes() {
        candle_core::bail!("graph-free step: classifier {k}×{fc_in} for {fc_c} features");
    }
    let head_dims = (n, fc_c, fh * fwd, k);
    let (fwh, fbh) = (Held::new(fw.as_tensor())?, Held::new(fb.as_tensor())?);
    let logits = head::pool_linear_forward(acts.last().expect("features"), fwh.slice()?, fbh.slice()?, head_dims);
    Ok(Net {
        stem,
        stem_dims,
        argmax,
        acts,
        blocks,
        fc: (fw, fb),
        head_dims,
        logits,
    })
}

/// The graph-free forward pass in an evaluation `mode`, where it applies.
fn eval_net<'a>(model: &'a ResNet, x: &Tensor, mode: BnMode) -> Result<Option<Net<'a>>> {
    let norm = match mode {
        BnMode::EvalBatch => Norm::Batch,
        BnMode::EvalRunning => Norm::Running,
        BnMode::Train => return Ok(None),
    };
    if !super::path::graph_free_applies(model, x) {
        return Ok(None);
    }
    forward_net(model, &x.contiguous()?, norm).map(Some)
}

/// Logits `(N, classes)` of an evaluation pass (`mode` `EvalBatch` or `EvalRunning`), bit-identical to
/// `model.forward(x, mode)` over the custom ops but without building candle's graph. `Ok(None)` where
/// `super::path::graph_free_applies` says no, or for `BnMode::Train` (which updates statistics: use [`train_step`]).
pub fn eval_forward(model: &ResNet, x: &Tensor, mode: BnMode) -> Result<Option<Tensor>> {
    let Some(net) = eval_net(model, x, mode)? else {
        return Ok(None);
    };
    let (n, _, _, k) = net.head_dims;
    Ok(Some(Tensor::from_vec(net.logits, (n, k), &Device::Cpu)?))
}

/// The globally average-pooled features `(N, C)` the classifier sees, in an evaluation `mode` (nothing is
/// updated), without candle's graph; `Ok(None)` where [`eval_forward`] would be.
pub fn eval_features(model: &ResNet, x: &Tensor, mode: BnMode) -> Result<Option<Tensor>> {
    let Some(net) = eval_net(model, x, mode)? else {
        return Ok(None);
    };
    let (n, c, p, _) = net.head_dims;
    let feat = net.acts.last().expect("features");
    let pooled: Vec<f32> = feat
        .chunks_exact(p)
        .map(|plane| (plane.iter().map(|&v| v as f64).sum::<f64>() / p as f64) as f32)
        .collect();
    Ok(Some(Tensor::from_vec(pooled, (n, c), &Device::Cpu)?))
}

/// One training step of `model` on `x (N, 3, H, W)` with class indices `y (N)`: forward with batch statistics
/// (updating every BN layer's running statistics, as `model.forward(x, BnMode::Train)` does), mean cross-entropy,
/// and the gradient of every parameter. `Ok(None)` where `super::path::graph_free_applies` says no; the caller then takes candle's graph.
pub fn train_step(model: &mut ResNet, x: &Tensor, y: &Tensor) -> Result<Option<StepOutput>> {
    if !super::path::graph_free_applies(model, x) {
        return Ok(None);
    }
    let started = Instant::now();
    let n = x.dims4()?.0;
    let classes = model.classes();
    let targets = y.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?;
    if targets.len() != n {
        candle_core::bail!("graph-free step: {} labels for {n} images", targets.len());
    }
    if let Some(&bad) = targets.iter().find(|&&t| t as usize >= classes) {
        candle_core::bail!("graph-free step: label {bad} out of range for {classes} classes");
    }
    let x = x.contiguous()?;
    let xh = Held::new(&x)?;
    let xs = xh.slice()?;
    let Net {
        mut stem,
        stem_dims,
        argmax,
        acts,
        mut blocks,
        fc: (fw, fb),
        head_dims,
        logits,
    } = forward_net(model, &x, Norm::Train)?;
    let (_, fc_c, _, k) = head_dims;
    let feat = acts.last().expect("features");
    let loss = head::cross_entropy_forward(&logits, &targets, n, k);
    let forward_ms = started.elapsed().as_secs_f64() * 1e3;

    // ---- backward ----
    let mut grads = Grads(Vec::new());
    let dlogits = head::cross_entropy_backward(&logits, &targets, 1.0, n, k);
    let fwh = Held::new(fw.as_tensor())?;
    let packed = head::pool_linear_backward(feat, &dlogits, fwh.slice()?, head_dims);
    let nfeat = feat.len();
    grads.push(fw, packed[nfeat..nfeat + k * fc_c].to_vec());
    grads.push(fb, packed[nfeat + k * fc_c..].to_vec());
    let mut dcur = packed;
    dcur.truncate(nfeat);
    for (i, b) in blocks.iter().enumerate().rev() {
        let input = &acts[i];
        let output = &acts[i + 1];
        let last = b.main.len() - 1;
        let prev_out = if last > 0 { &b.main[last - 1].y } else { input };
        let (d, packed) = b.main[last].backward(prev_out, &dcur, Some(output), true, true, &mut grads)?;
        let dskip = &packed[output.len()..2 * output.len()];
        let mut d = must(d, "dx")?;
        for j in (0..last).rev() {
            let u = &b.main[j];
            let uin = if j > 0 { &b.main[j - 1].y } else { input };
            d = must(u.backward(uin, &d, Some(&u.y), false, true, &mut grads)?.0, "dx")?;
        }
        let down_dx = match &b.down {
            Some(du) => Some(must(du.backward(input, dskip, None, false, true, &mut grads)?.0, "dx")?),
            None => None,
        };
        let other = down_dx.as_deref().unwrap_or(dskip);
        // The block input's two gradients, summed as candle's backprop sums them.
        for (a, b) in d.iter_mut().zip(other) {
            *a += *b;
        }
        dcur = d;
    }
    let dstem = pool::scatter(&dcur, &argmax, stem_dims);
    stem.backward(xs, &dstem, Some(&stem.y), false, false, &mut grads)?;

    // ---- outputs ----
    let mut stats = vec![stem.stats.take()];
    for b in blocks.iter_mut() {
        stats.extend(b.main.iter_mut().map(|u| u.stats.take()));
        stats.extend(b.down.iter_mut().map(|u| u.stats.take()));
    }
    let counts: Vec<usize> = std::iter::once(stem.g.n * stem.g.p())
        .chain(
            blocks
                .iter()
                .flat_map(|b| b.main.iter().chain(&b.down).map(|u| u.g.n * u.g.p())),
        )
        .collect();
    let mut store = GradStore::default();
    for (v, g) in grads.0 {
        let t = Tensor::from_vec(g, v.shape(), &Device::Cpu)?;
        store.insert(v.as_tensor(), t);
    }
    let logits = Tensor::from_vec(logits, (n, k), &Device::Cpu)?;
    drop((stem, blocks, xh, fwh));
    for ((bn, s), count) in model.bn_layers_mut().into_iter().zip(stats).zip(counts) {
        let s = s.ok_or_else(|| candle_core::Error::Msg("graph-free step: missing statistics".into()))?;
        bn.update_from_batch(s.mean, s.var, count)?;
    }
    Ok(Some(StepOutput {
        loss,
        logits,
        grads: store,
        forward_ms,
    }))
}
