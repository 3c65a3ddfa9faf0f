//! Checkpoints: restoring a run exactly (settings, shuffle generator, position inside an epoch, start weight)
//! and writing one that never holds NaN/Inf.
use anyhow::Result;
use rand::seq::SliceRandom;

use super::{shuffle_rng, EpochProgress, Resume, Trainer};
use crate::checkpoint::{self, Meta};
use crate::error::NotWritten;

impl Trainer {
    pub(super) fn restore(&mut self, r: Resume) -> Result<()> {
        let m = &r.meta;
        if m.model != self.cfg.preset.name() {
            return Err(crate::error::usage(format!(
                "--resume: the checkpoint is for model {}, not {} (add --model {})",
                m.model,
                self.cfg.preset.name(),
                m.model
            )));
        }
        let saved_norm = m.state.as_ref().and_then(|s| s.norm.as_deref()).unwrap_or("batch");
        if saved_norm != self.cfg.norm.name() {
            return Err(crate::error::usage(format!(
                "--resume: the checkpoint's normalisation layers are {saved_norm} (--norm {saved_norm}), this run's {}; \
                 add --norm {saved_norm}",
                self.cfg.norm.name()
            )));
        }
        if m.classes != self.data.classes {
            return Err(crate::error::usage(format!(
                "--resume: the checkpoint was trained on classes {:?}, the data has {:?}",
                m.classes, self.data.classes
            )));
        }
        self.model
            .load_state_dict(&r.tensors)
            .map_err(|e| crate::error::usage(format!("--resume: {e}")))?;
        let names: Vec<String> = self.model.named_params().into_iter().map(|(n, _)| n).collect();
        self.opt.load_state_dict(&names, &r.tensors)?;
        self.epoch = m.epoch;
        self.start_epoch = m.epoch;
        self.step = m.step;
        if let Some(st) = &m.state {
            // Continue exactly: the same weights seed and restart count, the shuffle generator where it was, and
            // the position inside the epoch with its sums so far.
            self.restarts = st.restarts;
            self.seed = m.seed;
            self.shuffle = shuffle_rng(self.seed);
            let n = self.data.len() as u32;
            for _ in 0..st.shuffles {
                let mut order: Vec<u32> = (0..n).collect();
                order.shuffle(&mut self.shuffle);
            }
            self.shuffles = st.shuffles;
            if st.position > 0 {
                if st.order.len() != self.data.len() || st.position >= st.order.len() {
                    return Err(crate::error::usage(format!(
                        "--resume: the checkpoint stopped inside an epoch of {} images; the data has {}",
                        st.order.len(),
                        self.data.len()
                    )));
                }
                self.cur = EpochProgress {
                    order: st.order.clone(),
                    position: st.position,
                    loss_sum: st.loss_sum,
                    correct: st.correct,
                    seen: st.seen,
                    step_ms: Vec::new(),
                };
            }
            for bn in self.model.bn_layers_mut() {
                bn.set_history(st.init_weight, st.constant_momentum);
            }
        }
        Ok(())
    }

    /// Writes `--save-weights`, if asked for. Returns its path.
    pub fn save_weights(&self) -> Result<Option<String>> {
        let Some(path) = &self.cfg.save_weights else {
            return Ok(None);
        };
        crate::weights::save(path, &self.model)?;
        Ok(Some(path.display().to_string()))
    }

    /// Writes the checkpoint, if one was asked for. Returns its path.
    pub fn save_checkpoint(&self) -> Result<Option<String>> {
        let Some(path) = &self.cfg.checkpoint else {
            return Ok(None);
        };
        let mut tensors = self.model.state_dict()?;
        let names: Vec<String> = self.model.named_params().into_iter().map(|(n, _)| n).collect();
        tensors.extend(self.opt.state_dict(&names)?);
        if let Some(bad) = crate::weights::first_non_finite(&tensors)? {
            // A diverged run must not replace a good checkpoint with NaN/Inf: the file stays as it was.
            let kept = if path.exists() {
                "the file there is left as it was"
            } else {
                "no file was written"
            };
            anyhow::bail!(NotWritten(format!(
                "--checkpoint {}: not written: {bad} holds NaN/Inf after epoch {} (training diverged); {kept}",
                path.display(),
                self.epoch
            )));
        }
        let c = &self.cur;
        let state = checkpoint::SavedState {
            framework: self.cfg.framework,
            bn_eps: self.cfg.bn_eps,
            bn_unbiased: self.cfg.bn_unbiased,
            adam_eps: self.cfg.adam_eps,
            batch_size: self.cfg.batch_size,
            lr: self.cfg.lr,
            optimizer: self.cfg.optimizer.name().into(),
            base_seed: self.cfg.seed,
            restarts: self.restarts,
            shuffles: self.shuffles,
            order: if c.position > 0 { c.order.clone() } else { Vec::new() },
            position: c.position,
            loss_sum: c.loss_sum,
            correct: c.correct,
            seen: c.seen,
            init_weight: self.model.stats_age().init_weight,
            constant_momentum: self.model.stats_age().constant_momentum,
            norm: Some(self.cfg.norm.name().to_string()),
        };
        let meta = Meta {
            model: self.cfg.preset.name().into(),
            classes: self.data.classes.clone(),
            image_size: self.data.size,
            epoch: self.epoch,
            step: self.step,
            momentum: self.momentum.to_string(),
            cumulative: self.cumulative,
            seed: self.seed,
            state: Some(state),
        };
        checkpoint::save(path, &tensors, &meta)?;
        Ok(Some(path.display().to_string()))
    }
}
