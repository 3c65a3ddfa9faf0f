//! Optimizers: Adam (weight decay 0, as Keras `Adam` and `torch.optim.Adam`) and plain SGD.
//!
//! Written here rather than taken from candle-nn because candle-nn's `AdamW` defaults to weight decay 0.01 and
//! keeps its moment estimates private, so they could not be checkpointed. The update is PyTorch's:
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − lr·m̂/(√v̂ + ε)` with bias-corrected `m̂`, `v̂`; under the
//! Keras profile Keras 3's form, ε on the uncorrected √v: `p ← p − lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε)`
//! ([`AdamForm`]).
use std::collections::HashMap;

use candle_core::{backprop::GradStore, Result, Tensor, Var};

pub use crate::kernels::adam::AdamForm;
use crate::model::BnMode;
use crate::model::ResNet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Sgd => "sgd",
        }
    }
}

pub const BETA1: f64 = 0.9;
pub const BETA2: f64 = 0.999;
/// PyTorch's default (Keras uses 1e-7; see `crate::framework`).
pub const ADAM_EPS: f64 = 1e-8;

pub struct Optimizer {
    kind: OptimizerKind,
    lr: f64,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// The moments on the host while the fused CPU update (`crate::kernels::adam`) owns them; `m`/`v` are stale
    /// then. Converted back when the tensor path runs or a checkpoint is written.
    host: Option<Vec<(Vec<f32>, Vec<f32>)>>,
    step: u64,
    /// Adam's ε.
    eps: f64,
    /// Where ε goes (PyTorch's or Keras' form).
    form: AdamForm,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, vars: Vec<Var>, lr: f64) -> Result<Self> {
        let (mut m, mut v) = (vec![], vec![]);
        if kind == OptimizerKind::Adam {
            for var in &vars {
                m.push(var.zeros_like()?);
                v.push(var.zeros_like()?);
            }
        }
        Ok(Self {
            kind,
            lr,
            vars,
            m,
            v,
            host: None,
            step: 0,
            eps: ADAM_EPS,
            form: AdamForm::Torch,
        })
    }

    /// Adam's ε (PyTorch 1e-8 by default, Keras 1e-7).
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Where Adam's ε goes: PyTorch's form (the default) or Keras 3's.
    pub fn with_form(mut self, form: AdamForm) -> Self {
        self.form = form;
        self
    }

    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One training step of `model` on images `x` with class indices `y`: forward with BN in train mode, mean
    /// cross-entropy, backward, update. Returns the loss and the logits. On the CPU with the own kernels this is
    /// [`crate::model::step::train_step`] (no candle graph); elsewhere `model.forward` + candle's autograd. Both
    /// give the same gradients, bit for bit (`tests/step.rs`).
    pub fn train_step(&mut self, model: &mut ResNet, x: &Tensor, y: &Tensor) -> Result<(f32, Tensor)> {
        crate::runtime::in_pool(x.device(), || self.train_step_here(model, x, y))
    }

    fn train_step_here(&mut self, model: &mut ResNet, x: &Tensor, y: &Tensor) -> Result<(f32, Tensor)> {
        if let Some(out) = crate::model::step::train_step(model, x, y)? {
            self.step_with(&out.grads)?;
            return Ok((out.loss, out.logits));
        }
        let logits = model.forward(x, BnMode::Train)?;
        let loss = crate::model::cross_entropy(&logits, y)?;
        self.backward_step(&loss)?;
        Ok((loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?, logits))
    }

    /// One step that trains only the classifier of `model` (a frozen backbone): the pooled features come from the
    /// backbone in `mode` without a graph (`BnMode::Train` normalises with batch statistics and updates the running
    /// ones; `EvalBatch` normalises with batch statistics and updates nothing; `EvalRunning` uses the running
    /// statistics), then linear + cross-entropy + backward through `fc` only. Parameters without a gradient are
    /// left as they are, as PyTorch's optimizers skip parameters whose `.grad` is `None`.
    pub fn train_head_step(
        &mut self,
        model: &mut ResNet,
        x: &Tensor,
        y: &Tensor,
        mode: BnMode,
    ) -> Result<(f32, Tensor)> {
        crate::runtime::in_pool(x.device(), || {
            let feats = model.features(x, mode)?;
            let (w, b) = model.head();
            let logits = feats.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?;
            let loss = crate::model::cross_entropy(&logits, y)?;
            let grads = loss.backward()?;
            self.step_with(&grads)?;
            Ok((
                loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?,
                logits.detach(),
            ))
        })
    }

    /// Backpropagates `loss` and applies one update. With `lr == 0` the weights stay bit-identical.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        // Same gradients as `loss.backward()`, without candle's zero-init + add pass per conv weight.
        let grads = crate::kernels::conv::backward_collecting(loss)?;
        self.step_with(&grads)
    }

    pub fn step_with(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        if self.lr == 0.0 {
            return Ok(());
        }
        match self.kind {
            OptimizerKind::Sgd => {
                for var in &self.vars {
                    if let Some(g) = grads.get(var) {
                        var.set(&var.sub(&(g * self.lr)?)?)?;
                    }
                }
            }
            OptimizerKind::Adam => {
                let t = self.step as i32;
                let c1 = 1.0 - BETA1.powi(t);
                let c2 = 1.0 - BETA2.powi(t);
                if self
                    .vars
                    .iter()
                    .all(|v| crate::model::path::custom_ops(&[v.as_tensor()]) && v.is_contiguous())
                {
                    let h = crate::kernels::adam::AdamStep {
                        lr: self.lr,
                        beta1: BETA1,
                        beta2: BETA2,
                        eps: self.eps,
                        c1,
                        c2,
                        form: self.form,
                    };
                    self.host_moments()?;
                    let host = self.host.as_mut().expect("host moments");
                    for (var, (m, v)) in self.vars.iter().zip(host.iter_mut()) {
                        if let Some(g) = grads.get(var) {
                            crate::kernels::adam::step(var.as_tensor(), g, m, v, &h)?;
                        }
                    }
                    return Ok(());
                }
                self.sync_moments()?;
                let h = crate::kernels::adam::AdamStep {
                    lr: self.lr,
                    beta1: BETA1,
                    beta2: BETA2,
                    eps: self.eps,
                    c1,
                    c2,
                    form: self.form,
                };
                let (step_size, inv_c2) = h.coefficients();
                for (i, var) in self.vars.iter().enumerate() {
                    let Some(g) = grads.get(var) else { continue };
                    let m = ((&self.m[i] * BETA1)? + (g * (1.0 - BETA1))?)?;
                    let v = ((&self.v[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
                    let denom = ((&v * inv_c2)?.sqrt()? + self.eps)?;
                    let update = ((&m / &denom)? * step_size)?;
                    var.set(&var.sub(&update)?)?;
                    self.m[i] = m;
                    self.v[i] = v;
                }
            }
        }
        Ok(())
    }

    /// The moments as host vectors for the fused update (moved there from the tensors on first use).
    fn host_moments(&mut self) -> Result<()> {
        if self.host.is_none() {
            let mut h = Vec::with_capacity(self.m.len());
            for (m, v) in self.m.iter().zip(&self.v) {
                h.push((m.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?));
            }
            self.host = Some(h);
        }
        Ok(())
    }

    /// Moment tensors as of now, whichever path last updated them.
    fn moment_tensors(&self) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        match &self.host {
            None => Ok((self.m.clone(), self.v.clone())),
            Some(h) => {
                let (mut ms, mut vs) = (vec![], vec![]);
                for ((m, v), t) in h.iter().zip(&self.m) {
                    ms.push(Tensor::from_slice(m, t.shape(), t.device())?);
                    vs.push(Tensor::from_slice(v, t.shape(), t.device())?);
                }
                Ok((ms, vs))
            }
        }
    }

    /// Brings the moment tensors up to date and drops the host copies.
    fn sync_moments(&mut self) -> Result<()> {
        if self.host.is_some() {
            (self.m, self.v) = self.moment_tensors()?;
            self.host = None;
        }
        Ok(())
    }

    /// Moment estimates and step count as named tensors, for checkpoints (`names` parallel to the vars).
    pub fn state_dict(&self, names: &[String]) -> Result<HashMap<String, Tensor>> {
        let mut sd = HashMap::new();
        let (ms, vs) = self.moment_tensors()?;
        for (i, name) in names.iter().enumerate() {
            if let (Some(m), Some(v)) = (ms.get(i), vs.get(i)) {
                sd.insert(format!("optim.{name}.exp_avg"), m.clone());
                sd.insert(format!("optim.{name}.exp_avg_sq"), v.clone());
            }
        }
        sd.insert(
            "optim.step".into(),
            Tensor::new(&[self.step as i64], &candle_core::Device::Cpu)?,
        );
        Ok(sd)
    }

    /// Restores what [`Self::state_dict`] wrote; missing moments are left at zero.
    pub fn load_state_dict(&mut self, names: &[String], sd: &HashMap<String, Tensor>) -> Result<()> {
        self.sync_moments()?;
        for (i, name) in names.iter().enumerate() {
            if i >= self.m.len() {
                break;
            }
            let dev = self.vars[i].device().clone();
            if let Some(m) = sd.get(&format!("optim.{name}.exp_avg")) {
                if m.dims() == self.m[i].dims() {
                    self.m[i] = m.to_device(&dev)?;
                }
            }
            if let Some(v) = sd.get(&format!("optim.{name}.exp_avg_sq")) {
                if v.dims() == self.v[i].dims() {
                    self.v[i] = v.to_device(&dev)?;
                }
            }
        }
        if let Some(s) = sd.get("optim.step") {
            self.step = s.to_dtype(candle_core::DType::I64)?.to_vec1::<i64>()?[0].max(0) as u64;
        }
        Ok(())
    }
}
