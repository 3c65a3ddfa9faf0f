//! A pre-training phase on differently distributed data before the run proper (the `frozen-backbone` lesson):
//! the model trains normally on the data with its contrast and brightness changed (`x·scale + shift`), so that its
//! BatchNorm running statistics describe that distribution; then the classifier is re-initialised and the run
//! fine-tunes on the real data, typically with `--freeze backbone`. With `--frozen-bn train-frozen-stats` the
//! training pass normalises with the new data's batch statistics while evaluation uses the pre-training ones: the
//! keras#9214 gap.
use anyhow::Result;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

use super::Trainer;
use crate::optim::Optimizer;

/// How the pre-training data differs, and for how long the model trains on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pretrain {
    pub epochs: usize,
    pub scale: f32,
    pub shift: f32,
}

impl Pretrain {
    /// `30 epochs on x·0.5 + 0.5`.
    pub fn describe(&self) -> String {
        format!("{} epochs on x·{} + {}", self.epochs, self.scale, self.shift)
    }

    /// The lesson's: half the contrast, lifted to the bright half of the range.
    pub const LESSON: Pretrain = Pretrain {
        epochs: 30,
        scale: 0.5,
        shift: 0.5,
    };
}

impl Trainer {
    /// Runs the pre-training phase (every layer training, batch statistics, running statistics updated), then
    /// gives the model a fresh classifier and the optimizer fresh state. Nothing is logged as epochs: the run's
    /// epochs start after it. `progress(epochs done, epochs, share done)` is called before the first batch and
    /// after every batch; its error stops the phase (a quit).
    pub(super) fn pretrain(
        &mut self,
        p: Pretrain,
        progress: &mut dyn FnMut(usize, usize, f64) -> Result<()>,
    ) -> Result<()> {
        let n = self.data.len();
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x9e37_79b9);
        let mut opt = Optimizer::new(self.cfg.optimizer, self.model.params(), self.cfg.lr)?
            .with_eps(self.cfg.adam_eps)
            .with_form(self.cfg.framework.adam_form());
        let per_epoch = n.div_ceil(self.cfg.batch_size.max(1)).max(1);
        let all = (p.epochs * per_epoch).max(1) as f64;
        progress(0, p.epochs, 0.0)?;
        for e in 0..p.epochs {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.shuffle(&mut rng);
            for (b, chunk) in order.chunks(self.cfg.batch_size).enumerate() {
                let (x, y) = self.training_batch(chunk)?;
                let x = ((x * p.scale as f64)? + p.shift as f64)?;
                opt.train_step(&mut self.model, &x, &y)?;
                let batches = e * per_epoch + b + 1;
                progress(batches / per_epoch, p.epochs, batches as f64 / all)?;
            }
        }
        // A new head for the fine-tuning (from another seed), and a fresh optimizer.
        let fresh = self.blank_model(self.seed.wrapping_add(0x00f1_7e7e))?;
        let (w, b) = self.model.head();
        let (fw, fb) = fresh.head();
        w.set(&fw.as_tensor().copy()?)?;
        b.set(&fb.as_tensor().copy()?)?;
        self.opt = Optimizer::new(self.cfg.optimizer, self.model.params(), self.cfg.lr)?
            .with_eps(self.cfg.adam_eps)
            .with_form(self.cfg.framework.adam_form());
        Ok(())
    }
}
