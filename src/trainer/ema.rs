//! `--ema DECAY`: an exponential moving average of the weights, evaluated beside the trained model, whose
//! BatchNorm buffers are copied from the trained model after every step, as common EMA helpers do (timm's
//! `ModelEmaV2` and `swa_utils.AveragedModel` average or keep buffers that were computed with other weights). Those
//! buffers describe the trained weights' activations, not the averaged weights', so the EMA model evaluates worse
//! than it is until its statistics are re-estimated with its own weights (`c`, `swa_utils.update_bn`;
//! pytorch/ignite#2590).
use anyhow::Result;
use candle_core::Var;

use super::Trainer;
use crate::model::{BnMode, ResNet};
use crate::protocol::Metric;

pub(super) struct Ema {
    pub decay: f64,
    pub model: ResNet,
    /// (averaged, trained) parameter pairs, taken once: variables are updated in place, so the handles stay valid
    /// for the life of both models (a restart builds a new `Ema`).
    pairs: Vec<(Var, Var)>,
}

impl Ema {
    /// Starts as a copy of `raw` (weights and statistics).
    pub fn new(decay: f64, mut model: ResNet, raw: &ResNet) -> Result<Self> {
        let pairs: Vec<(Var, Var)> = model.params().into_iter().zip(raw.params()).collect();
        for (e, r) in &pairs {
            e.set(&r.as_tensor().copy()?)?;
        }
        copy_buffers(&mut model, raw);
        Ok(Self { decay, model, pairs })
    }

    /// `ema ← d·ema + (1 − d)·raw` for every parameter, then the raw model's BatchNorm buffers.
    pub fn update(&mut self, raw: &ResNet) -> Result<()> {
        let d = self.decay;
        for (e, r) in &self.pairs {
            let v = ((e.as_tensor() * d)? + (r.as_tensor() * (1.0 - d))?)?;
            e.set(&v)?;
        }
        copy_buffers(&mut self.model, raw);
        Ok(())
    }
}

fn copy_buffers(ema: &mut ResNet, raw: &ResNet) {
    for (e, r) in ema.bn_layers_mut().into_iter().zip(raw.bn_layers()) {
        e.set_state(r.state());
    }
}

impl Trainer {
    /// The EMA model's evaluation with its running statistics (what deploying it gives), if there is one.
    pub(super) fn evaluate_ema(&mut self) -> Result<Option<Metric>> {
        self.with_ema(|t| Ok(t.evaluate(BnMode::EvalRunning)?.0))
    }

    /// Runs `f` with the EMA model in the trained model's place (evaluation and recalibration code is the same).
    pub(super) fn with_ema<T>(&mut self, f: impl FnOnce(&mut Trainer) -> Result<T>) -> Result<Option<T>> {
        let Some(mut ema) = self.ema.take() else {
            return Ok(None);
        };
        std::mem::swap(&mut self.model, &mut ema.model);
        let r = f(self);
        std::mem::swap(&mut self.model, &mut ema.model);
        self.ema = Some(ema);
        r.map(Some)
    }
}
