//! Several runs side by side (`bnscope compare A.jsonl B.jsonl …`, and `replay`/`watch` with logs that are not
//! ranks of one run): per run what the screen needs, reduced so that a long log costs the same as a short one;
//! what differs between the runs' settings (from their `run` records); the headless per-epoch table.
//!
//! Candle-free (the viewer build has it); the TUI's compare view (`tui/compare`) and the headless table read it.
use std::path::PathBuf;

use crate::logfile::{Metric, Record, Run, Span};

/// The most runs one comparison takes (each gets its own colour and marker; `1`…`8` pick them on screen).
pub const MAX_RUNS: usize = 8;

/// The most epochs kept per run. Beyond it every second kept epoch is dropped and the stride doubles, so a run
/// of 10⁶ epochs keeps at most this many evenly spread ones (plus its newest): the charts are at most a few hundred
/// columns wide anyway.
pub const MAX_POINTS: usize = 512;

/// Above this fraction of the way travelled the running statistics count as caught up (the README's "within 1 %").
pub const CAUGHT_UP: f64 = 0.99;

/// A run's layers at one epoch: `(layer, mean gap, var gap)` (`None`: not in that log).
pub type LayerGaps = Vec<(String, Option<f64>, Option<f64>)>;

/// One kept epoch of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Point {
    pub epoch: u64,
    pub train: Option<Metric>,
    /// Evaluation with the running statistics (`model.eval()`, Keras `evaluate`).
    pub running: Option<Metric>,
    /// Evaluation with each batch's statistics.
    pub batch: Option<Metric>,
    /// Keras convention.
    pub momentum: Option<f64>,
    /// How far the running statistics have travelled from their start toward the batch statistics: `1 − ∏ mᵢ`.
    pub travelled: Option<f64>,
    /// Where this epoch's `bn` record lies in the file (read again for the layers panel).
    pub bn: Option<Span>,
}

/// One run as the comparison keeps it.
#[derive(Clone, Debug)]
pub struct Series {
    /// The file as given (printable).
    pub file: String,
    pub path: Option<PathBuf>,
    pub run: Option<Box<Run>>,
    /// Kept epochs, oldest first, at most [`MAX_POINTS`].
    pub points: Vec<Point>,
    /// Every `stride`-th epoch record is kept.
    pub stride: u64,
    /// Epoch records seen since the `run` record.
    pub seen: u64,
    /// The newest epoch, kept whatever the stride.
    pub last: Option<Point>,
    /// The first epoch at which the running statistics had travelled [`CAUGHT_UP`] of the way.
    pub caught_up: Option<u64>,
    /// Since which epoch evaluation with the running statistics has been as accurate as with batch statistics
    /// (`None` while it is not).
    pub agree_since: Option<u64>,
    /// The run ended (`end` record): its reason.
    pub ended: Option<String>,
    /// The running statistics' age after the newest epoch (`logfile::next_age`, as the TUI's timeline reads it:
    /// from `init_weight` where the log has it, else `t` and the momentum, e.g. the PyTorch hook's logs).
    age: Option<crate::protocol::StatsAge>,
}

impl Series {
    pub fn new(file: String, path: Option<PathBuf>) -> Self {
        Series {
            file,
            path,
            run: None,
            points: Vec::new(),
            stride: 1,
            seen: 0,
            last: None,
            caught_up: None,
            agree_since: None,
            ended: None,
            age: None,
        }
    }

    /// Takes one file's records in order. A second `run` record (a restart, a rotated log) starts the run over.
    pub fn take(&mut self, records: Vec<Record>) {
        for rec in records {
            match rec {
                Record::Run(r) => {
                    *self = Series::new(std::mem::take(&mut self.file), self.path.take());
                    self.run = Some(r);
                }
                Record::Epoch(e) => {
                    self.age = match self.run.as_deref() {
                        Some(r) => crate::logfile::next_age(self.age, &e, r),
                        // Epochs before any `run` record (not a log bnscope reads, but a `Series` fed by hand): the
                        // log's own `init_weight` or nothing.
                        None => e.init_weight.map(|w| crate::protocol::StatsAge {
                            t: e.t.unwrap_or(0),
                            init_weight: w,
                            constant_momentum: None,
                        }),
                    };
                    let p = Point {
                        epoch: e.epoch,
                        train: e.train,
                        running: e.eval_running,
                        batch: e.eval_batch,
                        momentum: e.momentum,
                        travelled: self.age.map(|a| 1.0 - a.init_weight),
                        bn: None,
                    };
                    self.add(p);
                }
                Record::Bn { epoch, span, .. } => {
                    if let Some(l) = self.last.as_mut().filter(|l| l.epoch == epoch) {
                        l.bn = Some(span);
                    }
                    if let Some(p) = self.points.last_mut().filter(|p| p.epoch == epoch) {
                        p.bn = Some(span);
                    }
                }
                Record::End { reason, .. } => self.ended = Some(reason),
                // As the timeline: what a recalibration or a reset leaves (a log without `init_weight` says so only
                // through these events).
                Record::Event(ev) => {
                    if let Some(age) = crate::logfile::age_after_event(&ev.what) {
                        self.age = Some(age);
                    }
                }
                Record::Inspect(_) => {}
            }
        }
    }

    fn add(&mut self, p: Point) {
        if self.caught_up.is_none() && p.travelled.is_some_and(|t| t >= CAUGHT_UP) {
            self.caught_up = Some(p.epoch);
        }
        let agree = match (p.running, p.batch) {
            (Some(r), Some(b)) => r.acc.zip(b.acc).map(|(r, b)| r >= b - 1e-6),
            _ => None,
        };
        match agree {
            Some(true) => self.agree_since = self.agree_since.or(Some(p.epoch)),
            Some(false) => self.agree_since = None,
            None => {}
        }
        if self.seen.is_multiple_of(self.stride) {
            self.points.push(p.clone());
            if self.points.len() > MAX_POINTS {
                let mut i = 0;
                self.points.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.seen += 1;
        self.last = Some(p);
    }

    /// The kept epochs and the newest, oldest first.
    pub fn epochs(&self) -> impl Iterator<Item = &Point> {
        let extra = self
            .last
            .as_ref()
            .filter(|l| self.points.last().is_none_or(|p| p.epoch != l.epoch));
        self.points.iter().chain(extra)
    }

    /// The newest kept epoch at or before `epoch`.
    pub fn at(&self, epoch: u64) -> Option<&Point> {
        self.epochs().take_while(|p| p.epoch <= epoch).last()
    }
}

/// One setting of a `run` record, as words.
struct Field {
    name: &'static str,
    value: fn(&Run) -> Option<String>,
}

/// A setting's number as written (`0.99`, `0.001`), without trailing zeros.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "nan".into();
    }
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A fraction in `[0, 1]` as a percentage with one decimal (`33.1%`).
pub fn percent(frac: f64) -> String {
    if !frac.is_finite() {
        return "nan".into();
    }
    format!("{:.1}%", 100.0 * frac.clamp(0.0, 1.0))
}

/// The settings compared between runs, in the order they are named. A field a log lacks is "—".
const FIELDS: &[Field] = &[
    Field {
        name: "momentum",
        value: |r| r.momentum.map(num),
    },
    Field {
        name: "cumulative",
        value: |r| Some(if r.cumulative { "yes" } else { "no" }.into()),
    },
    Field {
        name: "frozen-bn",
        value: |r| r.frozen_bn.clone(),
    },
    Field {
        name: "framework",
        value: |r| r.framework.clone(),
    },
    Field {
        name: "model",
        value: |r| r.model.clone(),
    },
    Field {
        name: "norm",
        value: |r| r.norm.clone(),
    },
    Field {
        name: "batch",
        value: |r| r.batch_size.map(|v| v.to_string()),
    },
    Field {
        name: "lr",
        value: |r| r.lr.map(num),
    },
    Field {
        name: "optimizer",
        value: |r| r.optimizer.clone(),
    },
    Field {
        name: "ema",
        value: |r| r.ema.map(num),
    },
    Field {
        name: "seed",
        value: |r| r.seed.map(|v| v.to_string()),
    },
    Field {
        name: "images",
        value: |r| r.images.map(|v| v.to_string()),
    },
    Field {
        name: "normalize",
        value: |r| r.normalize.clone(),
    },
    Field {
        name: "val-transform",
        value: |r| r.val_transform.clone(),
    },
    Field {
        name: "lesson",
        value: |r| r.lesson.clone(),
    },
    Field {
        name: "weights",
        value: |r| r.weights.clone(),
    },
    Field {
        name: "source",
        value: |r| Some(r.source.clone()),
    },
    Field {
        name: "rank",
        value: |r| r.rank.map(|v| v.to_string()),
    },
];

/// What differs between the runs' settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Differences {
    /// One phrase per differing setting: `momentum 0.99 vs 0.9`.
    pub phrases: Vec<String>,
    /// Per run its values of the differing settings: `momentum 0.99, frozen-bn none`.
    pub labels: Vec<String>,
}

/// The settings that differ between `runs` (a run whose `run` record is not read yet has none).
pub fn differences(runs: &[Option<&Run>]) -> Differences {
    let mut out = Differences {
        phrases: Vec::new(),
        labels: vec![String::new(); runs.len()],
    };
    for f in FIELDS {
        let values: Vec<String> = runs
            .iter()
            .map(|r| r.and_then(f.value).unwrap_or_else(|| "none".into()))
            .collect();
        if runs.iter().any(Option::is_none) || values.iter().all(|v| v == &values[0]) {
            continue;
        }
        out.phrases.push(format!("{} {}", f.name, values.join(" vs ")));
        for (label, v) in out.labels.iter_mut().zip(&values) {
            if !label.is_empty() {
                label.push_str(", ");
            }
            label.push_str(&format!("{} {v}", f.name));
        }
    }
    out
}

/// Several logs are the ranks of one distributed run (distinct `rank`s of one `world_size`): `replay`/`watch` then
/// show them as one run with the rank spread, not as a comparison. Unknown (a `run` record not read yet): `None`.
pub fn are_ranks(runs: &[Option<&Run>]) -> Option<bool> {
    let runs: Vec<&Run> = runs.iter().copied().collect::<Option<_>>()?;
    let mut ranks: Vec<u64> = Vec::new();
    for r in &runs {
        let (Some(rank), Some(world)) = (r.rank, r.world_size) else {
            return Some(false);
        };
        if world != runs[0].world_size.unwrap_or(0) || ranks.contains(&rank) {
            return Some(false);
        }
        ranks.push(rank);
    }
    Some(true)
}

/// The runs' letters: `A`, `B`, … (the headless table's column groups and the screen's legend).
pub fn letter(i: usize) -> char {
    (b'A' + (i as u8 % 26)) as char
}

fn cell(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        Some(_) => "nan".into(),
        None => "-".into(),
    }
}

/// The headless comparison: a legend (each run's letter, file and what differs), then one row per epoch with one
/// column group per run (training accuracy, evaluation with running statistics, with batch statistics, how far the
/// running statistics have travelled), then when each run's running statistics caught up.
pub fn table(series: &[Series]) -> Vec<String> {
    let runs: Vec<Option<&Run>> = series.iter().map(|s| s.run.as_deref()).collect();
    let diff = differences(&runs);
    let mut out = Vec::new();
    if diff.phrases.is_empty() {
        out.push("compare: the runs' settings are the same".to_string());
    } else {
        out.push(format!("compare: {}", diff.phrases.join("; ")));
    }
    for (i, s) in series.iter().enumerate() {
        let label = if diff.labels[i].is_empty() {
            String::new()
        } else {
            format!(": {}", diff.labels[i])
        };
        out.push(format!("{} = {}{label}", letter(i), s.file));
    }
    out.push(
        "columns per run: train acc, eval acc with running statistics (model.eval()), with batch statistics, \
         how far the running statistics have travelled toward the batch's (1 - product of momenta)"
            .into(),
    );
    if let Some(s) = series.iter().find(|s| s.stride > 1) {
        out.push(format!(
            "(long logs: every {}th epoch of {}, and the newest)",
            s.stride, s.file
        ));
    }
    let mut head = format!("{:>6}", "epoch");
    for i in 0..series.len() {
        let l = letter(i);
        head.push_str(&format!(
            " | {:>5} {:>5} {:>5} {:>6}",
            format!("{l}.trn"),
            format!("{l}.run"),
            format!("{l}.bat"),
            format!("{l}.trav")
        ));
    }
    out.push(head);
    let mut epochs: Vec<u64> = series.iter().flat_map(|s| s.epochs().map(|p| p.epoch)).collect();
    epochs.sort_unstable();
    epochs.dedup();
    for e in epochs {
        let mut row = format!("{e:>6}");
        for s in series {
            match s.epochs().find(|p| p.epoch == e) {
                Some(p) => row.push_str(&format!(
                    " | {:>5} {:>5} {:>5} {:>6}",
                    cell(p.train.and_then(|m| m.acc), 3),
                    cell(p.running.and_then(|m| m.acc), 3),
                    cell(p.batch.and_then(|m| m.acc), 3),
                    p.travelled.map_or("-".into(), percent)
                )),
                None => row.push_str(&format!(" | {:>5} {:>5} {:>5} {:>6}", "", "", "", "")),
            }
        }
        out.push(row);
    }
    for (i, s) in series.iter().enumerate() {
        out.push(format!("{}: {}", letter(i), caught_up_words(s)));
    }
    out
}

/// When a run's running statistics caught up, in words (headless and the screen's run lines).
pub fn caught_up_words(s: &Series) -> String {
    let stats = match (s.caught_up, s.last.as_ref().and_then(|p| p.travelled)) {
        (Some(e), _) => format!("running statistics 99% of the way at epoch {e}"),
        (None, Some(t)) => format!("running statistics not caught up ({} of the way)", percent(t)),
        (None, None) => "running statistics: not in this log".into(),
    };
    let acc = match s.agree_since {
        Some(e) => format!("eval with running statistics as accurate as with batch statistics since epoch {e}"),
        None => "eval with running statistics behind batch statistics".into(),
    };
    format!("{stats}; {acc}")
}

/// `bnscope compare --headless` (and a headless `replay` of logs that are not ranks): every file read in full
/// (streamed; memory stays bounded by [`MAX_POINTS`]), then the table. Errors name the file (exit 2).
pub fn run_headless(files: &[PathBuf]) -> anyhow::Result<i32> {
    use std::io::Write;
    let series = read_all(files)?;
    let mut out = std::io::stdout().lock();
    for line in table(&series) {
        if writeln!(out, "{line}").is_err() {
            return Ok(0);
        }
    }
    Ok(0)
}

/// Every file read in full (lite records: figures and spans).
pub fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<Series>> {
    let mut series = Vec::new();
    for path in files {
        let mut s = Series::new(
            crate::terminal::printable(&path.display().to_string()).into_owned(),
            Some(path.clone()),
        );
        crate::logfile::read::stream_file(path, false, |recs| {
            s.take(recs);
            Ok(())
        })?;
        series.push(s);
    }
    Ok(series)
}

/// The layers of one run at one epoch, read again from the file by the epoch's span: `(layer, mean gap, var gap)`
/// with the gaps as the log defines them (`‖running − batch‖₂ / ‖batch‖₂`; 0 is caught up).
pub fn layers_at(s: &Series, p: &Point) -> Option<LayerGaps> {
    let path = s.path.as_ref()?;
    match crate::logfile::reread(path, p.bn?)? {
        Record::Bn {
            layers: Some(layers), ..
        } => Some(
            layers
                .into_iter()
                .map(|l| {
                    let mean = l.mean_gap.or_else(|| gap(&l.running_mean, &l.batch_mean));
                    let var = l.var_gap.or_else(|| gap(&l.running_var, &l.batch_var));
                    (l.name, mean, var)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// `‖a − b‖₂ / (‖b‖₂ + 1e-8)`, the log's gap, for a record that has the arrays but not the gap.
fn gap(a: &Option<Vec<f64>>, b: &Option<Vec<f64>>) -> Option<f64> {
    let (a, b) = (a.as_ref()?, b.as_ref()?);
    if a.len() != b.len() {
        return None;
    }
    let d = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let n = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    Some(d / (n + 1e-8))
}
