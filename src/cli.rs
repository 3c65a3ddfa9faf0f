//! Command-line interface (clap). Validation turns bad values into one-line usage errors (exit 2).
use std::path::PathBuf;

use anyhow::Result;
#[cfg(feature = "train")]
use clap::ValueEnum;
use clap::{Args, Parser, Subcommand};

#[cfg(feature = "train")]
use crate::data::{Normalize, ValTransform};
use crate::error::usage;
#[cfg(feature = "train")]
use crate::framework::{Framework, FrozenBn};
#[cfg(feature = "train")]
use crate::lesson::Scenario;
#[cfg(feature = "train")]
use crate::log::LogBn;
#[cfg(feature = "train")]
use crate::model::{Norm, Preset};
#[cfg(feature = "train")]
use crate::optim::OptimizerKind;

#[derive(Parser, Debug)]
#[command(
    name = "bnscope",
    version,
    about = "Watch BatchNorm's train/eval gap live: a ResNet trains on a few images while you turn the momentum.",
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Momentum is in the Keras convention (running = m·running + (1−m)·batch) unless \
--momentum-convention torch is given: Keras 0.99 is PyTorch/candle 0.01."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    #[cfg(feature = "train")]
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Time training steps and evaluation passes (see docs/PERFORMANCE.md).
    #[cfg(feature = "train")]
    Bench(BenchArgs),
    /// Show a finished JSONL log (bnscope's, or one written by python/'s hook or callback) in the TUI, epoch by
    /// epoch under a cursor (←/→, Shift-←/→, Home/End, {/} events, space plays); several rank logs show how far
    /// the ranks' running statistics are apart. With --headless (or when stdout is not a terminal) prints it as a
    /// headless run prints its epochs, with a summary. What a log lacks says "not in this log".
    Replay(ReplayArgs),
    /// Diagnose imported weights on your images without training: evaluation with running statistics, with batch
    /// statistics, and after recalibrating the statistics on the data (AdaBN); per-layer gaps and a diagnosis.
    #[cfg(feature = "train")]
    Inspect(Box<InspectArgs>),
    /// Follow a growing JSONL log like `tail -F` (a headless bnscope run with --log, or a PyTorch/Keras run with
    /// python/'s hook) in the TUI: waits for the file, copes with truncation and rotation, the cursor follows the
    /// newest epoch until you scroll back (End follows again). With --headless (or when stdout is not a
    /// terminal) prints each epoch as it is written; Ctrl-C stops.
    Watch(WatchArgs),
    /// Compare runs side by side (2 to 8 JSONL logs, e.g. momentum 0.99 against 0.9): accuracy and loss overlaid,
    /// each run in its own colour and marker, the layers per run, the header naming what differs between the runs'
    /// settings; one epoch cursor moves all. `replay`/`watch` of several logs that are not the ranks of one run
    /// open the same view. With --headless (or when stdout is not a terminal) prints a per-epoch table with one
    /// column group per run.
    Compare(CompareArgs),
    /// Print shell completions: bash, zsh, fish (also elvish, powershell); README.md says where they go.
    Completions(CompletionsArgs),
    /// Print bnscope's man page (roff): `bnscope man > ~/.local/share/man/man1/bnscope.1`, then `man bnscope`.
    Man,
    /// Print the effective preferences (ascii, mouse, fps, pace, theme, keys) and where each came from: the
    /// defaults, the config file ($XDG_CONFIG_HOME/bnscope/config.toml, else ~/.config/bnscope/config.toml), the
    /// environment (BNSCOPE_ASCII, BNSCOPE_MOUSE, BNSCOPE_FPS, BNSCOPE_PACE, BNSCOPE_THEME, NO_COLOR), flags.
    Config(ConfigArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Without the config file: what the defaults and the environment give.
    #[arg(long)]
    pub no_config: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// The log(s) to follow (the rank logs of a distributed run; logs that are already there and are not ranks of one
    /// run open the compare view; --headless follows one).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub view: LogViewArgs,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The logs to compare (2 to 8; each once).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Follow the logs as they grow (as `watch` does) instead of reading finished ones.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub view: LogViewArgs,
}

#[cfg(feature = "train")]
#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// Print one JSON object (logits in data order) instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Compute which layer to blame on the first N evaluated images (two evaluations of them per BatchNorm layer;
    /// all of them when there are fewer). The report says how many it used.
    #[arg(long, value_name = "N", default_value_t = crate::protocol::BLAME_SAMPLES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub blame_samples: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

/// What `--freeze` holds still.
#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Freeze {
    /// Everything but the classifier `fc`.
    Backbone,
}

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The logs, in order (the rank logs of a distributed run: the first is shown, all are compared; logs whose
    /// `run` records say they are not ranks of one run open the compare view, as `bnscope compare`).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// TUI: open at this epoch (default: the last).
    #[arg(long, value_name = "N")]
    pub epoch: Option<u64>,
    #[command(flatten)]
    pub view: LogViewArgs,
}

/// How `replay` and `watch` show a log.
#[derive(Args, Debug, Clone)]
pub struct LogViewArgs {
    /// Print lines instead of the TUI (automatic when stdout is not a terminal or TERM=dumb).
    #[arg(long)]
    pub headless: bool,
    /// TUI: epochs a second when space plays the log back (0.01 to 1000; `<` and `>` change it) [default: 7].
    #[arg(long, value_name = "N")]
    pub pace: Option<f64>,
    /// TUI: draw without braille or block characters.
    #[arg(long)]
    pub ascii: bool,
    /// TUI: no mouse (the terminal's own selection works then).
    #[arg(long)]
    pub no_mouse: bool,
    /// Also write the per-epoch table to FILE as CSV (one row an epoch and run; a new file, never one that exists;
    /// a TUI watch writes it when it ends).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Start without the config file (~/.config/bnscope/config.toml): defaults, environment and flags only.
    #[arg(long)]
    pub no_config: bool,
}

impl LogViewArgs {
    /// The playback pace, checked (one-line error, exit 2).
    pub fn pace(&self) -> Result<f64> {
        match self.pace {
            None => Ok(7.0),
            Some(p) if (MIN_PACE..=MAX_PACE).contains(&p) => Ok(p),
            Some(p) => Err(usage(format!(
                "--pace {}: must be between {MIN_PACE} and {MAX_PACE} epochs a second",
                num(p)
            ))),
        }
    }
}

#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Convention {
    /// running = m·running + (1−m)·batch (Keras, TensorFlow).
    Keras,
    /// running = (1−m)·running + m·batch (PyTorch, candle).
    Torch,
}

/// Which batch variance the running variance moves toward.
#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Variance {
    /// Σ(x−μ)²/n, as Keras 3 does.
    Biased,
    /// Σ(x−μ)²/(n−1), as PyTorch and candle do.
    Unbiased,
}

#[cfg(feature = "train")]
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Image folder DIR/<class>/<image> (default: the three embedded seed images), or `shapes[:N]`: N generated
    /// images per class (circle, square, triangle; default 20) drawn at --image-size from --seed, with a held-out
    /// set of another N per class that the evaluations use (a folder named shapes: ./shapes).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Held-out image folder with the same class folders as --data: the evaluations (running and batch
    /// statistics, predictions) use it instead of the training images, as Keras fit's validation_data.
    #[arg(long, value_name = "DIR")]
    pub val: Option<PathBuf>,
    /// Hold out the last ⌈F·n⌉ images of each class of --data (by sorted file name) for the evaluations;
    /// 0 < F < 1.
    #[arg(long, value_name = "F")]
    pub val_split: Option<f64>,
    /// Images per batch of the two evaluation passes [default: --batch-size]; 1 normalises each image with its
    /// own statistics in the batch-statistics evaluation.
    #[arg(long, value_name = "N")]
    pub eval_batch_size: Option<usize>,
    /// A preprocessing mismatch on the evaluation inputs only (not training, not recalibration): scale255
    /// (pixels 0..255 instead of 0..1, the forgotten rescale), no-normalize (skip --normalize imagenet),
    /// invert (255 − pixel) [default: none].
    #[arg(long, value_enum, value_name = "KIND")]
    pub val_transform: Option<ValTransform>,
    /// PyTorch weights to start from: a torchvision/timm ResNet `state_dict` saved with
    /// `safetensors.torch.save_file` (scripts/export_torchvision.py). Its keys say which ResNet it is; loaded
    /// strictly; implies --framework torch. A data set with another number of classes gets a fresh classifier.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Write the model as a PyTorch `state_dict` (torchvision names, running statistics and num_batches_tracked
    /// included) on quit and at the end, atomically: `model.load_state_dict(load_file(F), strict=True)`.
    #[arg(long, value_name = "FILE")]
    pub save_weights: Option<PathBuf>,
    /// Train only the classifier; `backbone` freezes every convolution and BatchNorm weight before `fc`.
    #[arg(long, value_enum, value_name = "PART")]
    pub freeze: Option<Freeze>,
    /// With --freeze: how the frozen BatchNorm layers behave [default: the framework's: keras inference (TF2
    /// trainable=False), torch train (requires_grad_(False) in train mode)].
    #[arg(long, value_enum, value_name = "MODE")]
    pub frozen_bn: Option<FrozenBn>,
    /// Input normalisation after scaling to [0, 1]: none, or imagenet (per channel (x − mean)/std with ImageNet's
    /// mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225, as torchvision's transforms.Normalize; what
    /// pretrained weights expect) [default: none].
    #[arg(long, value_enum, value_name = "KIND")]
    pub normalize: Option<Normalize>,
    /// A lesson: sets up one BatchNorm trap (flags given explicitly still win) and explains it on screen:
    /// seed, small-batch, frozen-backbone, shifted-eval, ema, groupnorm. `L` in the TUI lists them.
    #[arg(long, value_enum, value_name = "NAME")]
    pub scenario: Option<Scenario>,
    /// The normalisation layers: batch (BatchNorm), or group / layer (GroupNorm with 32 groups, fewer where a group
    /// would hold under 4 channels / one group), which normalise each image by itself: no running statistics, no
    /// train/eval gap [default: batch].
    #[arg(long, value_enum, value_name = "KIND")]
    pub norm: Option<Norm>,
    /// Also evaluate an exponential moving average of the weights with this decay (e.g. 0.99), its BatchNorm
    /// buffers copied from the trained model as common EMA helpers do; c recalibrates them.
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// Network preset [default: tiny, the --weights file's, or the checkpoint's with --resume].
    #[arg(long, value_enum)]
    pub model: Option<Preset>,
    /// Square input side in pixels (default: 64 for tiny, 224 for the torchvision ResNets).
    #[arg(long, value_name = "PX")]
    pub image_size: Option<usize>,
    /// Images per optimizer step, as Keras fit's default [default: 32].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Whose BatchNorm and Adam defaults to follow: keras (ε 1e-3, momentum 0.99, running variance from the biased
    /// batch variance, Adam ε 1e-7) or torch (ε 1e-5, momentum 0.1 = Keras 0.9, unbiased, Adam ε 1e-8)
    /// [default: keras]. Each can still be set by its own flag.
    #[arg(long, value_enum, value_name = "NAME")]
    pub framework: Option<Framework>,
    /// BatchNorm momentum, in the convention of --momentum-convention [default: the framework's: Keras 0.99,
    /// PyTorch 0.1].
    #[arg(long, allow_negative_numbers = true, value_name = "M")]
    pub momentum: Option<f64>,
    /// How to read --momentum.
    #[arg(long, value_enum, default_value_t = Convention::Keras)]
    pub momentum_convention: Convention,
    /// Cumulative averaging of the running stats (PyTorch momentum=None) instead of a moving average.
    #[arg(long)]
    pub cumulative: bool,
    /// Learning rate; 0 freezes the weights, only the moving statistics move [default: 0.001].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Optimizer; Adam has weight decay 0 [default: adam].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Stop after N epochs (default: until quit in the TUI, 20 headless).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Seed for weights and shuffling [default: 1, a seed that shows the typical outcome].
    #[arg(long)]
    pub seed: Option<u64>,
    /// BatchNorm epsilon [default: the framework's: Keras 1e-3, PyTorch 1e-5].
    #[arg(long, allow_negative_numbers = true)]
    pub bn_eps: Option<f64>,
    /// The batch variance the running variance moves toward [default: the framework's: Keras biased, PyTorch
    /// unbiased, n/(n−1)·biased]. Normalisation always uses the biased one.
    #[arg(long, value_enum, value_name = "KIND")]
    pub bn_variance: Option<Variance>,
    /// Adam's epsilon [default: the framework's: Keras 1e-7, PyTorch 1e-8].
    #[arg(long, allow_negative_numbers = true)]
    pub adam_eps: Option<f64>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Print one line per epoch instead of the TUI (automatic when stdout is not a terminal).
    #[arg(long)]
    pub headless: bool,
    /// Write a JSONL log (one record per line, flushed every epoch). Never truncated: an existing bnscope log is
    /// appended to; any other existing file is refused (see --overwrite-log).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Start --log FILE afresh, emptying whatever regular file is there (without it, a bnscope log is appended to
    /// and any other file refused).
    #[arg(long)]
    pub overwrite_log: bool,
    /// BatchNorm detail in the log: gaps only, or the per-channel arrays too.
    #[arg(long, value_enum, default_value_t = LogBn::Summary)]
    pub log_bn: LogBn,
    /// Write a safetensors checkpoint on quit and at the end (atomically; a symlink is written through).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from a checkpoint written by --checkpoint.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// At most N epochs a second (0.01 to 1000), 0 for full speed (default: 7 in the TUI, so the mystery stays on screen long enough
    /// to see; full speed headless). `<` and `>` change it in the TUI.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pace: Option<f64>,
    /// Start paused (TUI: press space to run, n to step).
    #[arg(long)]
    pub paused: bool,
    /// TUI: pause after this epoch with an explanation of what the screen shows; 0 never [default: 5, the seed's
    /// moment; not with --paused or --resume unless given].
    #[arg(long, value_name = "EPOCH")]
    pub pause_at: Option<usize>,
    /// TUI: most redraws per second for training progress (keys always redraw at once). 5 keeps the screen
    /// under 5 KB/s over SSH at 120×40.
    /// [default: 5, or the config file's `fps`]
    #[arg(long, value_name = "N")]
    pub fps: Option<u32>,
    /// TUI: no mouse (clicks select layers, the wheel scrolls and zooms); the terminal's own selection works then.
    #[arg(long)]
    pub no_mouse: bool,
    /// TUI: draw without braille or block characters.
    #[arg(long)]
    pub ascii: bool,
    /// Start without the config file (~/.config/bnscope/config.toml): defaults, environment and flags only.
    #[arg(long)]
    pub no_config: bool,
    /// The flags `--scenario` filled in (not given on the command line), for notices that name the lesson.
    #[arg(skip)]
    pub lesson_filled: Vec<&'static str>,
}

#[cfg(feature = "train")]
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Network preset.
    #[arg(long, value_enum, default_value_t = Preset::Tiny)]
    pub model: Preset,
    /// Square input side (default: the preset's).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 3)]
    pub batch_size: usize,
    /// Timed steps (after warm-up).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// The three presets at their default sizes with batch 3 (the seed's setting).
    #[arg(long, conflicts_with_all = ["model", "image_size", "batch_size"])]
    pub all: bool,
    /// Print one JSON object instead of a table (also with --breakdown).
    #[arg(long)]
    pub json: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Time forward, backward and optimizer separately (synchronising the device after each).
    #[arg(long)]
    pub breakdown: bool,
    /// Kernels: own (bnscope's CPU kernels, training steps without candle's autograd graph), ops (the same
    /// kernels as candle custom ops through candle's autograd), candle (candle's ops only).
    #[arg(long, value_enum, default_value_t = Kernels::Own)]
    pub kernels: Kernels,
}

#[cfg(feature = "train")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kernels {
    Own,
    Ops,
    Candle,
}

#[cfg(feature = "train")]
impl Kernels {
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Own => "own",
            Kernels::Ops => "ops",
            Kernels::Candle => "candle",
        }
    }
}

#[cfg(feature = "train")]
impl RunArgs {
    /// The explicit `--momentum` in the Keras convention.
    pub fn keras_momentum(&self) -> Option<f64> {
        self.momentum.map(|m| match self.momentum_convention {
            Convention::Keras => m,
            Convention::Torch => 1.0 - m,
        })
    }

    /// Range checks with one-line messages.
    pub fn validate(&self) -> Result<()> {
        if let Some(m) = self.momentum {
            if !m.is_finite() || !(0.0..=1.0).contains(&m) {
                return Err(usage(format!(
                    "--momentum {}: must be a number between 0 and 1 (Keras 0.99 = PyTorch 0.01)",
                    num(m)
                )));
            }
        }
        if let Some(lr) = self.lr {
            if !lr.is_finite() || lr < 0.0 {
                return Err(usage(format!(
                    "--lr {}: must be a finite number ≥ 0 (0 freezes the weights)",
                    num(lr)
                )));
            }
        }
        for (flag, v) in [("--bn-eps", self.bn_eps), ("--adam-eps", self.adam_eps)] {
            if let Some(e) = v {
                if !e.is_finite() || e <= 0.0 {
                    return Err(usage(format!("{flag} {}: must be a finite number > 0", num(e))));
                }
            }
        }
        if let (Some(model), Some(size)) = (self.model, self.image_size) {
            check_image_size(model, size)?;
        } else if let Some(size) = self.image_size {
            if size > MAX_IMAGE_SIZE {
                return Err(usage(format!("--image-size {size}: must be at most {MAX_IMAGE_SIZE}")));
            }
        }
        if self.batch_size == Some(0) {
            return Err(usage("--batch-size 0: must be at least 1"));
        }
        if let Some(b) = self.batch_size.filter(|&b| b > MAX_BATCH) {
            return Err(usage(format!("--batch-size {b}: at most {MAX_BATCH}")));
        }
        if self.epochs == Some(0) {
            return Err(usage("--epochs 0: must be at least 1"));
        }
        if let Some(p) = self.pace {
            if !(p == 0.0 || (MIN_PACE..=MAX_PACE).contains(&p)) {
                return Err(usage(format!(
                    "--pace {}: must be 0 (full speed) or between {MIN_PACE} and {MAX_PACE} epochs a second",
                    num(p)
                )));
            }
        }
        if let Some(d) = self.ema {
            if !d.is_finite() || !(0.0..1.0).contains(&d) {
                return Err(usage(format!(
                    "--ema {}: the decay must be at least 0 and below 1 (e.g. 0.99)",
                    num(d)
                )));
            }
        }
        if self.norm.is_some_and(|n| n != Norm::Batch) && self.weights.is_some() {
            return Err(usage(
                "--norm with --weights: the imported model has BatchNorm layers; leave --norm out",
            ));
        }
        if let (Some(f), Some(n)) = (self.frozen_bn, self.norm.filter(|&n| n != Norm::Batch)) {
            return Err(usage(format!(
                "--frozen-bn {} with --norm {}: {} layers have no running statistics, so there is no BatchNorm \
                 mode to choose; leave --frozen-bn out",
                f.name(),
                n.name(),
                if n == Norm::Layer { "LayerNorm" } else { "GroupNorm" }
            )));
        }
        if self.frozen_bn.is_some() && self.freeze.is_none() {
            return Err(usage(
                "--frozen-bn: only with --freeze backbone (it says how the frozen BatchNorm layers behave)",
            ));
        }
        if let (Some(_), Some(r)) = (&self.weights, &self.resume) {
            return Err(usage(format!(
                "--weights with --resume {}: a checkpoint carries its own weights; give one of them",
                r.display()
            )));
        }
        self.validate_evaluation()?;
        if let Some(fps) = self.fps.filter(|&f| f == 0 || f > 60) {
            return Err(usage(format!("--fps {fps}: must be between 1 and 60")));
        }
        Ok(())
    }
}

#[cfg(feature = "train")]
impl RunArgs {
    /// `--val-split`, `--eval-batch-size` (`--val` and `--data shapes` are checked where the data is loaded).
    fn validate_evaluation(&self) -> Result<()> {
        if let Some(f) = self.val_split {
            if !(f.is_finite() && f > 0.0 && f < 1.0) {
                return Err(usage(format!(
                    "--val-split {}: must be a fraction between 0 and 1 (0.2 holds out the last 20% of each class)",
                    num(f)
                )));
            }
        }
        match self.eval_batch_size {
            Some(0) => Err(usage("--eval-batch-size 0: must be at least 1")),
            Some(b) if b > MAX_BATCH => Err(usage(format!("--eval-batch-size {b}: at most {MAX_BATCH}"))),
            _ => Ok(()),
        }
    }
}

/// A number from the command line as a person would write it: `1e-300`, not three hundred zeros.
fn num(x: f64) -> String {
    if x != 0.0 && x.is_finite() && (x.abs() < 1e-4 || x.abs() >= 1e9) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Slowest accepted `--pace` other than 0: an epoch every 100 s.
pub const MIN_PACE: f64 = 0.01;
/// Fastest accepted `--pace`.
pub const MAX_PACE: f64 = 1000.0;
/// Most `bench --steps` and `--warmup`.
pub const MAX_BENCH_STEPS: usize = 100_000;
/// Largest `--batch-size`, for training and `bench` alike.
pub const MAX_BATCH: usize = 4096;

#[cfg(feature = "train")]
impl BenchArgs {
    /// Range checks with one-line messages (before anything is allocated).
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_BENCH_STEPS {
            return Err(usage(format!(
                "--steps {}: must be between 1 and {MAX_BENCH_STEPS}",
                self.steps
            )));
        }
        if self.warmup > MAX_BENCH_STEPS {
            return Err(usage(format!("--warmup {}: at most {MAX_BENCH_STEPS}", self.warmup)));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(usage(format!(
                "--batch-size {}: must be between 1 and {MAX_BATCH}",
                self.batch_size
            )));
        }
        Ok(())
    }
}

/// Largest accepted `--image-size`.
pub const MAX_IMAGE_SIZE: usize = 1024;

#[cfg(feature = "train")]
pub fn check_image_size(model: Preset, size: usize) -> Result<()> {
    let min = model.min_image_size();
    if size < min || size > MAX_IMAGE_SIZE {
        return Err(usage(format!(
            "--image-size {size}: must be between {min} and {MAX_IMAGE_SIZE} for --model {}",
            model.name()
        )));
    }
    Ok(())
}

/// What the viewer-only build (`--no-default-features`) says when asked to train (exit 2).
#[cfg(not(feature = "train"))]
pub const VIEWER_ONLY: &str = "bnscope: this build is the viewer only (replay, watch); training, inspect and bench \
need the full build: pip install bnscope, or cargo install bnscope (default features)";

/// The run flags `inspect` has no use for (it evaluates imported weights: it trains nothing, writes nothing and
/// draws no screen): hidden from `bnscope inspect --help` and refused when given (#23).
#[cfg(feature = "train")]
pub const NOT_FOR_INSPECT: &[&str] = &[
    "save_weights",
    "freeze",
    "frozen_bn",
    "scenario",
    "ema",
    "momentum",
    "momentum_convention",
    "cumulative",
    "lr",
    "optimizer",
    "epochs",
    "adam_eps",
    "headless",
    "log",
    "overwrite_log",
    "log_bn",
    "checkpoint",
    "resume",
    "pace",
    "paused",
    "pause_at",
    "fps",
    "no_mouse",
    "ascii",
];

/// The command line's definition with what is known only at run time: `--version`'s long form (commit, features,
/// CPU kernels) and, in the viewer-only build, a line saying so above the help.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command().long_version(crate::about::long_version());
    #[cfg(feature = "train")]
    let cmd = cmd.mut_subcommand("inspect", |c| {
        NOT_FOR_INSPECT.iter().fold(c, |c, id| c.mut_arg(*id, |a| a.hide(true)))
    });
    #[cfg(not(feature = "train"))]
    let cmd = cmd
        .before_help("This build is the viewer only (replay, watch): no training, inspect or bench.")
        .after_help("The full build (default features) also trains: pip install bnscope, or cargo install bnscope.");
    cmd
}

/// The viewer-only build refuses what would train: no subcommand (flags or none at all), `inspect`, `bench`.
#[cfg(not(feature = "train"))]
pub fn would_train(first: Option<&std::ffi::OsStr>) -> bool {
    let Some(first) = first else { return true };
    match first.to_str() {
        Some("-h" | "--help" | "-V" | "--version") => false,
        Some("inspect" | "bench") => true,
        Some(a) => a.starts_with('-'),
        None => false,
    }
}

/// Parses the command line; clap's own errors become one line (`--help`/`--version` print as usual).
pub fn parse() -> std::result::Result<Cli, (String, i32)> {
    use clap::FromArgMatches;
    #[cfg(not(feature = "train"))]
    if would_train(std::env::args_os().nth(1).as_deref()) {
        return Err((VIEWER_ONLY.to_string(), 2));
    }
    let matches = command().try_get_matches();
    #[cfg(feature = "train")]
    if let Some(sub) = matches.as_ref().ok().and_then(|m| m.subcommand_matches("inspect")) {
        if let Some(id) = NOT_FOR_INSPECT
            .iter()
            .find(|id| sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        {
            return Err((
                format!(
                    "bnscope: error: inspect: --{} is not an inspect flag (inspect evaluates the imported weights on \
                     the data: it trains nothing, writes nothing and draws no screen); see bnscope inspect --help",
                    id.replace('_', "-")
                ),
                2,
            ));
        }
    }
    match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => Ok(cli),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Err((e.render().to_string(), 0)),
                _ => Err((one_line(&e.render().to_string()), 2)),
            }
        }
    }
}

/// clap's error as one line: its first line with what follows it (the missing argument's name, the possible values,
/// clap's "did you mean" tip), without the usage and the "for more information" lines.
pub fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let Some((first, rest)) = parts.split_first() else {
        return "bnscope: error: invalid arguments (see bnscope --help)".to_string();
    };
    let first = first.trim_start_matches("error: ").trim_end_matches(':');
    let mut line = format!("bnscope: error: {first}");
    for (i, p) in rest.iter().enumerate() {
        line.push_str(if i == 0 && first.ends_with("provided") {
            ": "
        } else {
            "; "
        });
        line.push_str(p);
    }
    line.push_str(" (see bnscope --help)");
    line
}

#[cfg(test)]
mod one_line_tests {
    use clap::Parser;

    fn err(args: &[&str]) -> String {
        match super::Cli::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => super::one_line(&e.render().to_string()),
        }
    }

    /// One line each, naming what is missing, the valid values and clap's suggestion.
    #[test]
    fn clap_errors_keep_the_names_and_the_suggestion() {
        let missing = err(&["bnscope", "watch"]);
        assert!(missing.contains("not provided: <"), "{missing}");
        let typo = err(&["bnscope", "--scenario", "smallbatch"]);
        assert!(typo.contains("small-batch"), "{typo}");
        assert!(typo.contains("possible values"), "{typo}");
        let sub = err(&["bnscope", "inpsect"]);
        assert!(sub.contains("'inspect'") && !sub.contains("<COMMAND>"), "{sub}");
        let flag = err(&["bnscope", "--momentun", "0.9"]);
        assert!(flag.contains("'--momentum'"), "{flag}");
        for e in [missing, typo, sub, flag] {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
