//! What the trainer watches besides training: divergence (the training loss, both evaluations, the running
//! statistics) and warnings such as one value per channel.
use crate::protocol::{BnSnapshot, EpochMetrics, EventKind};

use super::Trainer;

/// A condition the user should hear about that does not stop the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub epoch: usize,
    pub what: EventKind,
    /// The subject, e.g. the layer names.
    pub value: String,
    /// One line for a person.
    pub text: String,
}

impl Trainer {
    /// Notes BatchNorm layers whose last training batch had one value per channel (a 1×1 map with one image):
    /// their batch variance is 0, which pulls the running variance toward 0 (PyTorch refuses such a batch:
    /// "Expected more than 1 value per channel when training"). Each layer is reported once per run.
    pub(super) fn check_one_value_per_channel(&mut self) {
        let new: Vec<String> = self
            .model
            .bn_layers()
            .iter()
            .filter(|b| b.n() == 1 && !self.one_value_reported.iter().any(|r| r == b.name()))
            .map(|b| b.name().to_string())
            .collect();
        if new.is_empty() {
            return;
        }
        self.one_value_reported.extend(new.iter().cloned());
        let list = new.join(", ");
        self.warnings.push(Warning {
            epoch: self.epoch + 1,
            what: EventKind::OneValuePerChannel,
            value: list.clone(),
            text: format!(
                "one value per channel in a training batch (batch statistics of a single number; the running variance is pulled toward 0) in {list}: use a larger batch or larger images (PyTorch refuses this: \"Expected more than 1 value per channel when training\")"
            ),
        });
    }

    /// Notes, once per run, BatchNorm layers that an evaluation batch of one image reaches as a 1×1 map: evaluation
    /// with batch statistics normalises a single number there, so the layer outputs its bias whatever the image.
    /// Probed with one image, recording statistics without updating anything; the layers' state is put back.
    pub(super) fn check_one_value_in_evaluation(&mut self) -> anyhow::Result<()> {
        if self.eval_one_value_checked {
            return Ok(());
        }
        self.eval_one_value_checked = true;
        let bs = self.eval_batch_size();
        let (data, _) = self.eval_data();
        let n = data.len();
        let smallest = if n % bs == 0 { bs } else { n % bs };
        if smallest != 1 || n == 0 {
            return Ok(());
        }
        let x = data.batch(&[0], &self.device)?;
        let saved: Vec<_> = self.model.bn_layers().iter().map(|b| b.state()).collect();
        let probe = self.model.record_batch_stats(&x);
        let ones: Vec<String> = self
            .model
            .bn_layers()
            .iter()
            .filter(|b| b.n() == 1 && b.groups().is_none())
            .map(|b| b.name().to_string())
            .collect();
        for (b, s) in self.model.bn_layers_mut().into_iter().zip(saved) {
            b.set_state(s);
        }
        probe?;
        if ones.is_empty() {
            return Ok(());
        }
        let list = ones.join(", ");
        self.warnings.push(Warning {
            epoch: self.epoch,
            what: EventKind::OneValueInEvaluation,
            value: list.clone(),
            text: format!(
                "evaluation with batch statistics at batch 1 gives one value per channel in {list}: BatchNorm there outputs its bias whatever the image (the running statistics do not have this problem)"
            ),
        });
        Ok(())
    }

    /// Warnings raised since the last call (the thread loop sends and logs them).
    pub fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }
}

/// Why an epoch counts as diverged, if it does: a training loss that is NaN, infinite or over
/// [`DIVERGED_FACTOR`] times the chance level `ln C` (BatchNorm renormalises activations, so even absurd learning
/// rates rarely produce NaN in the loss itself; a loss a thousand times worse than guessing is just as final), an
/// evaluation loss that is not finite, or running statistics that hold NaN/Inf.
pub fn divergence(m: &EpochMetrics, snap: &BnSnapshot, classes: usize) -> Option<String> {
    if diverged(m.train.loss, classes) {
        return Some(if m.train.loss.is_finite() {
            format!(
                "the training loss is over {DIVERGED_FACTOR:.0}× chance (ln {})",
                classes.max(2)
            )
        } else {
            "the training loss is not finite".to_string()
        });
    }
    for (metric, words) in [
        (m.eval_running, "evaluation with running statistics"),
        (m.eval_batch, "evaluation with batch statistics"),
    ] {
        if !metric.loss.is_finite() {
            return Some(format!("{words} gives a loss that is not finite"));
        }
    }
    snap.layers
        .iter()
        .find(|l| l.running_mean.iter().chain(&l.running_var).any(|v| !v.is_finite()))
        .map(|l| format!("the running statistics of {} hold NaN/Inf", l.name))
}

/// A training loss that is NaN, infinite, or over [`DIVERGED_FACTOR`] times the chance level `ln C`. BatchNorm
/// renormalises activations, so even absurd learning rates rarely produce NaN in the loss itself; a loss a thousand
/// times worse than guessing is just as final.
pub fn diverged(loss: f32, classes: usize) -> bool {
    !loss.is_finite() || loss as f64 > DIVERGED_FACTOR * (classes.max(2) as f64).ln()
}

/// See [`diverged`].
pub const DIVERGED_FACTOR: f64 = 1000.0;
