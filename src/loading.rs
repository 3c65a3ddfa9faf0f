//! Loading the data set for a run, with a progress bar on stderr, and its one-line summary.
//!
//! The bar (indicatif) is drawn only when stderr is a terminal (not `TERM=dumb`); in tests, CI logs and pipes only
//! the summary appears: `bnscope: --data DIR: 5000 images, 10 classes, streamed (2.8 GiB decoded > 512 MiB; …),
//! checked in 12.3 s`. `main` prints the summary once every start-up check has passed (so that a failed start
//! stays one line). Loading happens before the TUI takes the terminal over, so the TUI run shows the same bar.
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::{self, DataSpec, Dataset, LoadOptions, Progress};
use crate::error::usage;
use crate::terminal::printable;

/// The bar, created when the number of images is known.
struct Bar(std::sync::OnceLock<ProgressBar>);

impl Progress for Bar {
    fn start(&self, images: usize) {
        let bar = ProgressBar::with_draw_target(Some(images as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("bnscope: loading {wide_bar} {pos}/{len} images, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        let _ = self.0.set(bar);
    }
    fn advance(&self) {
        if let Some(b) = self.0.get() {
            b.inc(1);
        }
    }
}

/// Whether a bar may be drawn on stderr.
fn bar_wanted() -> bool {
    std::io::stderr().is_terminal() && !std::env::var("TERM").is_ok_and(|t| t == "dumb")
}

/// Where the held-out images come from (`--val DIR`, `--val-split F`); with `--data shapes` they are generated.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeldOut<'a> {
    pub dir: Option<&'a Path>,
    pub split: Option<f64>,
}

/// Loads the training set `spec` and, where there is one, the held-out set: `--data shapes:N` generates both
/// (split 0 and 1, the same N per class, from `seed`); a folder or the embedded images take `held.dir` (the
/// same classes required) or `held.split` (the last ⌈F·n⌉ images of each class). Errors are one line naming the flag.
pub fn load_sets(spec: &DataSpec, held: HeldOut, seed: u64, opts: &LoadOptions) -> Result<(Dataset, Option<Dataset>)> {
    if held.dir.is_some() && held.split.is_some() {
        return Err(usage(
            "--val and --val-split: give one of them (a held-out folder, or a share of --data)",
        ));
    }
    if let DataSpec::Shapes(n) = *spec {
        if held.dir.is_some() || held.split.is_some() {
            let flag = if held.dir.is_some() { "--val" } else { "--val-split" };
            return Err(usage(format!(
                "{flag}: --data shapes generates its own held-out set ({n} images per class, independent of the \
                 training images); {flag} is for image folders"
            )));
        }
        let train = with_bar(|p| data::shapes_with_progress(n, seed, 0, opts, p))?;
        let val = with_bar(|p| data::shapes_with_progress(n, seed, 1, opts, p))?;
        return Ok((train, Some(val)));
    }
    let dir = match spec {
        DataSpec::Dir(d) => Some(d.as_path()),
        _ => None,
    };
    if let (Some(v), Some(d)) = (held.dir, dir) {
        if crate::files::same_file(v, d) {
            return Err(usage(format!(
                "--val {}: the same folder as --data {}: its images are the training images, not held-out ones; \
                 leave --val out to evaluate on the training images, or give a folder of other images (or \
                 --val-split F)",
                printable(&v.display().to_string()),
                printable(&d.display().to_string())
            )));
        }
    }
    let train = load(dir, opts)?;
    if let Some(v) = held.dir {
        let o = LoadOptions { flag: "--val", ..*opts };
        let val = load(Some(v), &o)?;
        train.check_held_out(&val, "--val")?;
        // Held out means not trained on: no image of --val may be one of --data's files (a link to it included).
        let shared = val.file_ids.iter().position(|id| train.file_ids.contains(id));
        if let Some(i) = shared {
            return Err(usage(format!(
                "--val {}: its image {}/{} is also a --data image (the same file); held-out images must not be \
                 trained on",
                printable(&v.display().to_string()),
                printable(&val.classes[val.labels[i]]),
                printable(&val.names[i])
            )));
        }
        return Ok((train, Some(val)));
    }
    if let Some(f) = held.split {
        let (train, val) = train.split_held_out(f)?;
        return Ok((train, Some(val)));
    }
    Ok((train, None))
}

/// Loads `--data DIR` (or the embedded seed images without it). For a folder, shows a bar while decoding when
/// stderr is a terminal.
pub fn load(dir: Option<&Path>, opts: &LoadOptions) -> Result<Dataset> {
    let Some(dir) = dir else {
        return data::embedded_with(opts);
    };
    with_bar(|p| data::load_dir_with(dir, opts, p))
}

/// Runs `load` with a progress bar on stderr when one may be drawn there.
fn with_bar(load: impl FnOnce(&dyn Progress) -> Result<Dataset>) -> Result<Dataset> {
    if !bar_wanted() {
        return load(&());
    }
    let bar = Bar(std::sync::OnceLock::new());
    let r = load(&bar);
    if let Some(b) = bar.0.get() {
        b.finish_and_clear();
    }
    r
}

/// `bnscope: held-out (evaluation) data DIR: 20 images, 2 classes, in memory (…), loaded in 0.0 s`.
pub fn held_out_line(ds: &Dataset) -> String {
    format!(
        "bnscope: evaluating on held-out data {}: {}, {} in {:.1} s",
        printable(&ds.source),
        ds.summary(),
        ds.load_verb(),
        ds.load_time.as_secs_f64()
    )
}

/// `bnscope: --data DIR: 3 images, 2 classes, in memory (144.0 KiB decoded), checked in 0.0 s`.
pub fn summary_line(ds: &Dataset) -> String {
    format!(
        "bnscope: --data {}: {}, {} in {:.1} s",
        printable(&ds.source),
        ds.summary(),
        ds.load_verb(),
        ds.load_time.as_secs_f64()
    )
}
