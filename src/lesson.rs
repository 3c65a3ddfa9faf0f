//! The lessons (`--scenario`, `L` in the TUI): the BatchNorm traps that keep coming back on the Keras and PyTorch
//! trackers, each set up so that it shows in a minute on the same screen. A lesson only chooses settings a user
//! could give as flags (it fills in what the command line left open), and says in words what to watch.
use crate::protocol::Metric;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The seed's mystery: momentum 0.99, too few updates.
    Seed,
    /// Batch 2 in training, 1 in evaluation with batch statistics.
    SmallBatch,
    /// Fine-tuning a pre-trained backbone with frozen BatchNorm statistics (Keras ≤ 2.2).
    FrozenBackbone,
    /// Held-out images with a preprocessing mismatch.
    ShiftedEval,
    /// An EMA of the weights evaluated with buffers copied from the trained model.
    Ema,
    /// The seed's run with GroupNorm instead of BatchNorm.
    Groupnorm,
}

/// What a lesson says on screen.
pub struct Lesson {
    pub scenario: Scenario,
    pub title: &'static str,
    /// Two or three sentences: what happens, what to watch, which key helps.
    pub text: &'static str,
}

pub static LESSONS: [Lesson; 6] = [
    Lesson {
        scenario: Scenario::Seed,
        title: "The seed's mystery: too few updates",
        text: "Training and evaluation with batch statistics reach 1.0 within 5 epochs while evaluation with the \
               running statistics stays at chance: at momentum 0.99 they have moved only 1 − 0.99ᵗ of the way from \
               (0, 1). Watch 'travelled' in the header; − lowers the momentum, c recalibrates.",
    },
    Lesson {
        scenario: Scenario::SmallBatch,
        title: "Small batches",
        text: "Training at batch 2 on 8-pixel shapes, and evaluation with batch statistics at batch 1: the last \
               stage is a 1×1 map, so one image is one value per channel there and BatchNorm outputs its bias \
               whatever the image: 'val batch' is exactly chance. The running statistics, averaged over many \
               batches, keep what the model learned: 'val running' stays above it.",
    },
    Lesson {
        scenario: Scenario::FrozenBackbone,
        title: "Frozen backbone, BatchNorm in training mode (Keras ≤ 2.2)",
        text: "Pre-trained on brighter, low-contrast images, then fine-tuned with the backbone frozen: its \
               BatchNorm normalises with this data's batch statistics in training but keeps the pre-training \
               running statistics, so training accuracy climbs and evaluation stays low (keras#9214). With \
               --frozen-bn inference (TF2 trainable=False) they agree; c recalibrates.",
    },
    Lesson {
        scenario: Scenario::ShiftedEval,
        title: "Shifted evaluation data",
        text: "The held-out images reach the model unscaled (pixels 0..255 instead of 0..1, a forgotten \
               rescaling): the running statistics describe the training inputs, so evaluation with them \
               collapses, while the held-out batch's own statistics (AdaBN) recover most of it. The first layer's \
               gauge shows where the shift enters.",
    },
    Lesson {
        scenario: Scenario::Ema,
        title: "EMA weights with stale BatchNorm buffers",
        text: "An exponential moving average of the weights is evaluated each epoch with BatchNorm buffers copied \
               from the trained model, as EMA helpers do: statistics of other weights. Pause (space) and press c: \
               the statistics are re-estimated with the EMA's own weights (swa_utils.update_bn) and it scores as \
               it should.",
    },
    Lesson {
        scenario: Scenario::Groupnorm,
        title: "The seed's run with GroupNorm",
        text: "GroupNorm normalises each image by its own statistics, in training and evaluation alike: there are \
               no running statistics to go stale, so evaluation equals training from the first epoch (and the \
               momentum keys have nothing to act on).",
    },
];

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Seed => "seed",
            Scenario::SmallBatch => "small-batch",
            Scenario::FrozenBackbone => "frozen-backbone",
            Scenario::ShiftedEval => "shifted-eval",
            Scenario::Ema => "ema",
            Scenario::Groupnorm => "groupnorm",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        LESSONS.iter().map(|l| l.scenario).find(|x| x.name() == s)
    }

    pub fn lesson(self) -> &'static Lesson {
        LESSONS
            .iter()
            .find(|l| l.scenario == self)
            .expect("every scenario has a lesson")
    }

    /// The cause in the user's words, from this epoch's numbers: `train`, `running` and `batch` as on screen,
    /// `ema` the EMA model's evaluation with running statistics.
    pub fn diagnose(self, train: f32, running: f32, batch: f32, ema: Option<Metric>) -> String {
        let pct = |v: f32| format!("{:.0} %", 100.0 * v);
        match self {
            Scenario::Seed => format!(
                "Training {} and batch statistics {}, running statistics {}: the running statistics have not \
                 converged yet (too few updates at momentum 0.99).",
                pct(train),
                pct(batch),
                pct(running)
            ),
            Scenario::SmallBatch => format!(
                "Evaluation with the batch's own statistics at batch 1 scores {} against {} with the running \
                 statistics: one image's statistics are not the data's, so the prediction depends on the batch.",
                pct(batch),
                pct(running)
            ),
            // The lesson runs with --frozen-bn train-frozen-stats, or inference as its text suggests: the numbers
            // tell which story is on screen.
            Scenario::FrozenBackbone if train - running > 0.1 => format!(
                "Training {} but evaluation with running statistics {}: the frozen layers normalise with this \
                 data's batch statistics in training and with the pre-training running statistics in evaluation.",
                pct(train),
                pct(running)
            ),
            Scenario::FrozenBackbone => format!(
                "Training {} and evaluation with running statistics {} agree: the frozen layers normalise alike in \
                 training and evaluation (--frozen-bn inference), or the classifier has not learned enough yet for \
                 the gap to show.",
                pct(train),
                pct(running)
            ),
            Scenario::ShiftedEval => format!(
                "Held-out images with running statistics {}, with their own batch statistics {}: the inputs are not \
                 preprocessed as in training, and the first BatchNorm layer's running statistics no longer fit.",
                pct(running),
                pct(batch)
            ),
            Scenario::Ema => match ema {
                Some(e) => format!(
                    "The EMA model scores {} with buffers copied from the trained model ({} itself): its weights and \
                     its statistics do not belong together. c re-estimates them with its own weights.",
                    pct(e.acc),
                    pct(running)
                ),
                None => "No EMA in this run.".into(),
            },
            Scenario::Groupnorm => format!(
                "GroupNorm: evaluation {} equals training {} up to the step between them: no running statistics, \
                 no gap.",
                pct(running),
                pct(train)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_one_lesson_and_a_name_that_parses() {
        for l in &LESSONS {
            assert_eq!(Scenario::from_name(l.scenario.name()), Some(l.scenario));
            assert!(std::ptr::eq(l.scenario.lesson(), l));
            assert!(l.text.len() > 100 && l.title.len() < 70, "{}", l.title);
        }
    }
}
