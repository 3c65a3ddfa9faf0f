//! Reading bnscope's JSONL log (`docs/LOG_FORMAT.md`, schema 1) back: bnscope's own logs and those of the Python
//! hook and callback (`python/`). The reader takes text in pieces, as a file grows, and keeps a partial last line
//! until it is complete; `bnscope replay --headless` prints a finished log as a live headless run would.
//!
//! A reader never invents numbers: a field a writer left out is `None` here and "not in this log" on screen, and a
//! `null` (a number that was not finite) is NaN.
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::error::usage;

/// The newest log format this reader knows.
pub const SCHEMA: u64 = 1;

/// `{loss, acc}`; either may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Metric {
    pub loss: Option<f64>,
    pub acc: Option<f64>,
}

/// The `run` record, as far as a replay uses it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub source: String,
    pub model: Option<String>,
    pub framework: Option<String>,
    pub classes: Vec<String>,
    pub images: Option<u64>,
    pub bn_layers: usize,
    pub momentum: Option<f64>,
    pub cumulative: bool,
    pub rank: Option<u64>,
    pub world_size: Option<u64>,
    pub start_epoch: u64,
    pub resumed_from: Option<String>,
    /// bnscope: `--weights` and `--freeze backbone`'s BatchNorm mode.
    pub weights: Option<String>,
    pub frozen_bn: Option<String>,
    /// bnscope: `--normalize`.
    pub normalize: Option<String>,
    /// bnscope: `--norm` and `--ema`.
    pub norm: Option<String>,
    pub ema: Option<f64>,
    pub pretrain: Option<String>,
    pub lesson: Option<String>,
    /// Per layer: name and channels (where the log says).
    pub layers: Vec<(String, Option<u64>)>,
    pub image_names: Vec<String>,
    /// Class index of each image whose predictions are logged.
    pub labels: Vec<usize>,
    pub image_size: Option<u64>,
    pub batch_size: Option<u64>,
    pub seed: Option<u64>,
    pub lr: Option<f64>,
    pub optimizer: Option<String>,
    pub device: Option<String>,
    pub bn_eps: Option<f64>,
    /// `biased` or `unbiased`; absent = `unbiased` (the format's default).
    pub bn_variance: Option<String>,
    pub params: Option<u64>,
    /// bnscope: `"val"` when the evaluations are on held-out images (absent: `"train"`).
    pub eval_on: Option<String>,
    /// bnscope: images in the training set and in the held-out set.
    pub train_images: Option<u64>,
    pub val_images: Option<u64>,
    /// bnscope: where the held-out images come from.
    pub val_data: Option<String>,
    /// bnscope: `--eval-batch-size` and `--val-transform`.
    pub eval_batch_size: Option<u64>,
    pub val_transform: Option<String>,
}

impl Run {
    /// What the log's evaluations are measured on.
    pub fn eval_on(&self) -> crate::protocol::EvalOn {
        crate::protocol::EvalOn::from_name(self.eval_on.as_deref())
    }
}

/// One `epoch` record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Epoch {
    pub epoch: u64,
    pub step: Option<u64>,
    pub momentum: Option<f64>,
    pub cumulative: bool,
    pub t: Option<u64>,
    pub init_weight: Option<f64>,
    pub train: Option<Metric>,
    pub eval_running: Option<Metric>,
    pub eval_batch: Option<Metric>,
    /// bnscope `--ema`: the averaged model with its copied running statistics.
    pub eval_ema: Option<Metric>,
    pub predictions_running: Option<Vec<Vec<f64>>>,
    pub predictions_batch: Option<Vec<Vec<f64>>>,
    pub step_ms: Option<f64>,
}

/// The records a replay shows (`bn` records are counted but not kept here).
#[derive(Clone, Debug, PartialEq)]
// Records are read once and moved into the timeline; boxing the epoch would only add an allocation per line.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Run(Box<Run>),
    Epoch(Epoch),
    /// A BatchNorm record of this epoch: per layer its name and running statistics, where the log has them.
    Bn {
        epoch: u64,
        layers: Vec<BnLayer>,
    },
    /// An `event`: what and its value as text.
    Event {
        epoch: u64,
        what: String,
        value: String,
    },
    End {
        epochs: u64,
        reason: String,
    },
}

/// One layer of a `bn` record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BnLayer {
    pub name: String,
    pub running_mean: Option<Vec<f64>>,
    pub running_var: Option<Vec<f64>>,
    pub batch_mean: Option<Vec<f64>>,
    pub batch_var: Option<Vec<f64>>,
    pub mean_gap: Option<f64>,
    pub var_gap: Option<f64>,
    /// Values per channel in the batch.
    pub n: Option<u64>,
}

fn matrix(v: &Value, k: &str) -> Option<Vec<Vec<f64>>> {
    v.get(k)?
        .as_array()
        .map(|rows| rows.iter().map(|r| floats_of(r).unwrap_or_default()).collect())
}

fn floats_of(v: &Value) -> Option<Vec<f64>> {
    v.as_array()
        .map(|a| a.iter().map(|x| num(x).unwrap_or(f64::NAN)).collect())
}

fn string(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn floats(v: &Value, k: &str) -> Option<Vec<f64>> {
    floats_of(v.get(k)?)
}

/// Reads records from text that arrives in pieces (a file read whole, or a growing one).
#[derive(Debug, Default)]
pub struct Reader {
    partial: String,
    /// Complete lines seen so far.
    pub lines: u64,
    /// Lines that were not JSON objects (a reader skips them, e.g. a half line a dead writer left).
    pub bad_lines: u64,
    /// Records of a type this reader does not know.
    pub unknown: u64,
    seen_run: bool,
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(f64::NAN),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn field(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(num)
}

fn metric(v: &Value, k: &str) -> Option<Metric> {
    let m = v.get(k)?;
    m.is_object().then(|| Metric {
        loss: field(m, "loss"),
        acc: field(m, "acc"),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Reader {
    /// Takes more text; returns the records of the lines it completed. An error means the file is not a log
    /// this reader can show (no `run` record first, or a newer schema).
    pub fn push(&mut self, chunk: &str) -> Result<Vec<Record>> {
        self.partial.push_str(chunk);
        let mut out = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            if let Some(r) = self.line(line.trim_end())? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The last line, if the text ended without a newline (a finished file whose writer omitted it).
    pub fn finish(&mut self) -> Result<Vec<Record>> {
        let rest = std::mem::take(&mut self.partial);
        Ok(self.line(rest.trim_end())?.into_iter().collect())
    }

    fn line(&mut self, line: &str) -> Result<Option<Record>> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        self.lines += 1;
        let v: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            _ if !self.seen_run && self.lines <= 1 => {
                return Err(anyhow::anyhow!(
                    "not a bnscope log (the first line is not a JSON record)"
                ));
            }
            _ => {
                self.bad_lines += 1;
                return Ok(None);
            }
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        if !self.seen_run && kind != "run" {
            return Err(anyhow::anyhow!(
                "not a bnscope log (the first record is not a `run` record)"
            ));
        }
        let epoch = v.get("epoch").and_then(Value::as_u64).unwrap_or(0);
        Ok(Some(match kind {
            "run" => {
                let schema = v.get("schema").and_then(Value::as_u64).unwrap_or(1);
                if schema > SCHEMA {
                    anyhow::bail!(
                        "a log of schema {schema}; this bnscope reads schema {SCHEMA} (a newer bnscope wrote it)"
                    );
                }
                if v.get("convention")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c != "keras")
                {
                    anyhow::bail!("momenta in a convention other than Keras'; the format requires \"keras\"");
                }
                self.seen_run = true;
                Record::Run(Box::new(Run {
                    source: v.get("source").and_then(Value::as_str).unwrap_or("bnscope").to_string(),
                    model: v.get("model").and_then(Value::as_str).map(str::to_string),
                    framework: v.get("framework").and_then(Value::as_str).map(str::to_string),
                    classes: v
                        .get("classes")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(text).collect())
                        .unwrap_or_default(),
                    images: v.get("images").and_then(Value::as_u64),
                    bn_layers: v.get("bn_layers").and_then(Value::as_array).map_or(0, Vec::len),
                    momentum: field(&v, "momentum"),
                    cumulative: v.get("cumulative").and_then(Value::as_bool).unwrap_or(false),
                    rank: v.get("rank").and_then(Value::as_u64),
                    world_size: v.get("world_size").and_then(Value::as_u64),
                    start_epoch: v.get("start_epoch").and_then(Value::as_u64).unwrap_or(0),
                    resumed_from: v.get("resumed_from").and_then(Value::as_str).map(str::to_string),
                    weights: v.get("weights").and_then(Value::as_str).map(str::to_string),
                    frozen_bn: v.get("frozen_bn").and_then(Value::as_str).map(str::to_string),
                    normalize: v.get("normalize").and_then(Value::as_str).map(str::to_string),
                    norm: v.get("norm").and_then(Value::as_str).map(str::to_string),
                    ema: v.get("ema").and_then(Value::as_f64),
                    pretrain: v.get("pretrain").and_then(Value::as_str).map(str::to_string),
                    lesson: v.get("lesson").and_then(Value::as_str).map(str::to_string),
                    layers: v
                        .get("bn_layers")
                        .and_then(Value::as_array)
                        .map(|ls| {
                            ls.iter()
                                .map(|l| {
                                    (
                                        l.get("name").map(text).unwrap_or_default(),
                                        l.get("channels").and_then(Value::as_u64),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    image_names: v
                        .get("image_names")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(text).collect())
                        .unwrap_or_default(),
                    labels: v
                        .get("labels")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(|x| x.as_u64().unwrap_or(u64::MAX) as usize).collect())
                        .unwrap_or_default(),
                    image_size: v.get("image_size").and_then(Value::as_u64),
                    batch_size: v.get("batch_size").and_then(Value::as_u64),
                    seed: v.get("seed").and_then(Value::as_u64),
                    lr: field(&v, "lr"),
                    optimizer: string(&v, "optimizer"),
                    device: string(&v, "device"),
                    bn_eps: field(&v, "bn_eps"),
                    bn_variance: string(&v, "bn_variance"),
                    params: v.get("params").and_then(Value::as_u64),
                    eval_on: string(&v, "eval_on"),
                    train_images: v.get("train_images").and_then(Value::as_u64),
                    val_images: v.get("val_images").and_then(Value::as_u64),
                    val_data: string(&v, "val_data"),
                    eval_batch_size: v.get("eval_batch_size").and_then(Value::as_u64),
                    val_transform: string(&v, "val_transform"),
                }))
            }
            "epoch" => Record::Epoch(Epoch {
                epoch,
                step: v.get("step").and_then(Value::as_u64),
                momentum: field(&v, "momentum"),
                cumulative: v.get("cumulative").and_then(Value::as_bool).unwrap_or(false),
                t: v.get("t").and_then(Value::as_u64),
                init_weight: field(&v, "init_weight"),
                train: metric(&v, "train"),
                eval_running: metric(&v, "eval_running"),
                eval_batch: metric(&v, "eval_batch"),
                eval_ema: metric(&v, "eval_ema"),
                predictions_running: matrix(&v, "predictions_running"),
                predictions_batch: matrix(&v, "predictions_batch"),
                step_ms: field(&v, "step_ms"),
            }),
            "bn" => Record::Bn {
                epoch,
                layers: v
                    .get("layers")
                    .and_then(Value::as_array)
                    .map(|ls| {
                        ls.iter()
                            .map(|l| BnLayer {
                                name: l.get("name").map(text).unwrap_or_default(),
                                running_mean: floats(l, "running_mean"),
                                running_var: floats(l, "running_var"),
                                batch_mean: floats(l, "batch_mean"),
                                batch_var: floats(l, "batch_var"),
                                mean_gap: field(l, "mean_gap"),
                                var_gap: field(l, "var_gap"),
                                n: l.get("n").and_then(Value::as_u64),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "event" => Record::Event {
                epoch,
                what: v.get("what").map(text).unwrap_or_default(),
                value: v.get("value").map(text).unwrap_or_default(),
            },
            "end" => Record::End {
                epochs: v.get("epochs").and_then(Value::as_u64).unwrap_or(0),
                reason: v.get("reason").map(text).unwrap_or_default(),
            },
            _ => {
                self.unknown += 1;
                return Ok(None);
            }
        }))
    }
}

/// All records of a finished log file, and the reader's counts. Errors name the file (exit 2).
pub fn read_file(path: &Path) -> Result<(Vec<Record>, Reader)> {
    let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("{shown}: cannot read the log: {e}")))?;
    if let Some(what) = crate::files::not_regular(&meta) {
        return Err(usage(format!("{shown}: {what}, not a log file")));
    }
    let bytes = std::fs::read(path).map_err(|e| usage(format!("{shown}: cannot read the log: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut r = Reader::default();
    let mut records = r.push(&text).map_err(|e| usage(format!("{shown}: {e}")))?;
    records.extend(r.finish().map_err(|e| usage(format!("{shown}: {e}")))?);
    if !r.seen_run {
        return Err(usage(format!("{shown}: empty: no `run` record")));
    }
    Ok((records, r))
}

const MISSING: &str = "not in this log";

fn metric_text(name: &str, m: Option<Metric>) -> String {
    // The live headless run's own formats (`headless::loss`), so that a replayed line reads like the live one.
    let loss = m
        .and_then(|m| m.loss)
        .map_or("–".to_string(), |x| crate::headless::loss(x as f32));
    let acc = m.and_then(|m| m.acc).map_or("–".to_string(), |x| format!("{x:.3}"));
    match m {
        None => format!("{name}: {MISSING}"),
        Some(_) => format!("{name}: loss {loss} acc {acc}"),
    }
}

/// An epoch as a line, in the live headless format (`val running`/`val batch` for a run evaluated on held-out
/// images); what the log lacks says so.
pub fn epoch_line(e: &Epoch, on: crate::protocol::EvalOn) -> String {
    let w = on.word();
    let train = match e.train {
        None => format!("train: {MISSING}"),
        Some(m) => metric_text("train", Some(m)).replacen("train: ", "", 1),
    };
    let m = match e.momentum {
        Some(m) => crate::headless::momentum_label(m, e.cumulative),
        None if e.cumulative => crate::headless::momentum_label(0.0, true),
        None => format!("m {MISSING}"),
    };
    let ms = e.step_ms.map_or(String::new(), |v| format!(" | {v:.1} ms/step"));
    format!(
        "epoch {}  {train} | {} | {} | {m}{ms}",
        e.epoch,
        metric_text(&format!("{w} running"), e.eval_running),
        metric_text(&format!("{w} batch"), e.eval_batch)
    )
}

/// `bnscope replay --headless FILE…`: each log's runs, epoch by epoch, then a summary. Exit 0.
pub fn run_headless(files: &[std::path::PathBuf]) -> Result<i32> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // stdout may be a pipe that closes (`bnscope replay run.jsonl | head`): then stop quietly.
    macro_rules! println {
        ($($arg:tt)*) => {
            if writeln!(out, $($arg)*).is_err() {
                return Ok(0);
            }
        };
    }
    let mut per_file: Vec<(String, Vec<Record>)> = Vec::new();
    for path in files {
        let (records, r) = read_file(path)?;
        per_file.push((
            crate::terminal::printable(&path.display().to_string()).into_owned(),
            records.clone(),
        ));
        let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
        let mut first_converged = None;
        let mut last: Option<Epoch> = None;
        let mut on = crate::protocol::EvalOn::Train;
        let mut epochs = 0u64;
        for rec in &records {
            match rec {
                Record::Run(run) => {
                    let mut parts = vec![format!("bnscope replay: {shown}"), format!("source {}", run.source)];
                    if let Some(m) = &run.model {
                        parts.push(crate::terminal::printable(m).into_owned());
                    }
                    if let Some(f) = &run.framework {
                        parts.push(format!("framework {f}"));
                    }
                    if let (Some(r), Some(w)) = (run.rank, run.world_size) {
                        parts.push(format!("rank {r} of {w}"));
                    }
                    if !run.classes.is_empty() {
                        let c: Vec<String> = run
                            .classes
                            .iter()
                            .map(|c| crate::terminal::printable(c).into_owned())
                            .collect();
                        parts.push(format!("classes {}", c.join(", ")));
                    }
                    parts.push(format!("{} BN layers", run.bn_layers));
                    if let Some(from) = &run.resumed_from {
                        parts.push(format!("resumed from {}", crate::terminal::printable(from)));
                    }
                    on = run.eval_on();
                    if on == crate::protocol::EvalOn::Val {
                        let n = run.val_images.map_or(String::new(), |n| format!("{n} "));
                        parts.push(format!("evaluated on {n}held-out images"));
                    }
                    println!("{}", parts.join(" · "));
                }
                Record::Epoch(e) => {
                    println!("{}", epoch_line(e, on));
                    epochs += 1;
                    if first_converged.is_none() && e.eval_running.and_then(|m| m.acc).is_some_and(|a| a >= 1.0) {
                        first_converged = Some(e.epoch);
                    }
                    last = Some(e.clone());
                }
                Record::Event { epoch, what, value } => {
                    let value = crate::terminal::printable(value).into_owned();
                    println!("  after epoch {epoch}: {what} {value}");
                }
                Record::End { epochs, reason } => println!("end after {epochs} epochs ({reason})"),
                Record::Bn { .. } => {}
            }
        }
        match (first_converged, &last) {
            (Some(e), _) => println!("{} with running stats first reached acc 1.000 at epoch {e}", on.word()),
            (None, Some(l)) => match l.eval_running.and_then(|m| m.acc) {
                Some(a) => println!("{} with running stats never reached acc 1.000 (last {a:.3})", on.word()),
                None => println!("{} with running stats: {MISSING}", on.word()),
            },
            (None, None) => println!("no epochs in this log"),
        }
        if r.bad_lines > 0 || r.unknown > 0 {
            eprintln!("bnscope: {shown}: skipped {}", skipped_words(r.bad_lines, r.unknown));
        }
        println!("{epochs} epochs in {shown}");
    }
    if per_file.len() > 1 {
        for line in rank_spread(&per_file) {
            println!("{line}");
        }
    }
    Ok(0)
}

/// The running means of several logs of one run (ranks of a distributed run), by epoch, per file, per layer:
/// what [`spread_at`] compares. Filled by [`add_means`] as `bn` records arrive (a watch adds as the logs grow).
pub type RankMeans = std::collections::BTreeMap<u64, Vec<std::collections::BTreeMap<String, Vec<f64>>>>;

/// Adds one `bn` record of file `file` (of `files`) to `means`.
pub fn add_means(means: &mut RankMeans, file: usize, files: usize, epoch: u64, layers: &[BnLayer]) {
    let entry = means.entry(epoch).or_insert_with(|| vec![Default::default(); files]);
    if entry.len() < files {
        entry.resize(files, Default::default());
    }
    for l in layers {
        if let Some(m) = &l.running_mean {
            entry[file].insert(l.name.clone(), m.clone());
        }
    }
}

/// How far the ranks' running means are apart, per layer, at the newest epoch (at most `upto`) that every log
/// has arrays for: `(epoch, [(spread, layer)])`, the largest first, with spread
/// `max_r ‖mean_r − mean_avg‖₂ / (‖mean_avg‖₂ + 1e-8)`. Without SyncBatchNorm every rank averages only its own
/// batches, and small per-GPU batches make them drift apart.
pub fn spread_at(means: &RankMeans, upto: Option<u64>) -> Option<(u64, Vec<(f64, String)>)> {
    let (epoch, maps) = means
        .range(..=upto.unwrap_or(u64::MAX))
        .rev()
        .find(|(_, maps)| maps.len() > 1 && maps.iter().all(|m| !m.is_empty()))?;
    let mut spreads: Vec<(f64, String)> = Vec::new();
    for name in maps[0].keys() {
        let rows: Vec<&Vec<f64>> = maps.iter().filter_map(|m| m.get(name)).collect();
        if rows.len() != maps.len() || rows.iter().any(|r| r.len() != rows[0].len()) {
            continue;
        }
        let c = rows[0].len();
        let avg: Vec<f64> = (0..c)
            .map(|i| rows.iter().map(|r| r[i]).sum::<f64>() / rows.len() as f64)
            .collect();
        let norm = avg.iter().map(|v| v * v).sum::<f64>().sqrt();
        let worst = rows
            .iter()
            .map(|r| r.iter().zip(&avg).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / (norm + 1e-8))
            .fold(0.0f64, f64::max);
        spreads.push((worst, name.clone()));
    }
    spreads.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some((*epoch, spreads))
}

/// Above this spread (1 %) the ranks' running statistics count as apart.
pub const RANK_SPREAD_WARN: f64 = 0.01;

/// Why ranks drift apart and what helps (headless replay and the TUI's diagnosis).
pub const RANK_ADVICE: &str = "each GPU averages only its own batches (no SyncBatchNorm), and evaluation depends \
     on which rank's statistics are saved; use SyncBatchNorm or larger per-GPU batches, or recalibrate after training";

/// For several logs of one run (ranks of a distributed run): how far their running means are apart, per layer,
/// at the last epoch all of them logged with arrays (see [`spread_at`]), as lines.
pub fn rank_spread(files: &[(String, Vec<Record>)]) -> Vec<String> {
    let mut means = RankMeans::new();
    for (i, (_, records)) in files.iter().enumerate() {
        for rec in records {
            if let Record::Bn { epoch, layers } = rec {
                add_means(&mut means, i, files.len(), *epoch, layers);
            }
        }
    }
    let Some((epoch, spreads)) = spread_at(&means, None) else {
        return vec!["ranks: the logs have no per-channel running statistics to compare (log them in full)".into()];
    };
    let mut out = vec![format!(
        "ranks at epoch {epoch}: running means {} apart at most ({} layers compared)",
        spreads
            .first()
            .map_or("–".to_string(), |(s, n)| format!("{:.1}% ({n})", 100.0 * s)),
        spreads.len()
    )];
    for (s, n) in spreads.iter().take(3) {
        out.push(format!("  {n}: {:.1}%", 100.0 * s));
    }
    if spreads.first().is_some_and(|(s, _)| *s > RANK_SPREAD_WARN) {
        out.push(format!("  the ranks' running statistics differ: {RANK_ADVICE}"));
    }
    out
}

/// How often `watch` looks at the file while nothing is written (a `stat` call: ~0 % CPU).
pub const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The file being followed: where we are in it, and which file it is (a rotation replaces it).
struct Open {
    file: std::fs::File,
    offset: u64,
    ino: u64,
    /// The reader refused this file (not a bnscope log): wait until it is replaced or truncated.
    refused: bool,
}

/// What one look at a followed file found.
#[derive(Clone, Debug, PartialEq)]
pub enum Followed {
    /// The file does not exist (yet); said once per wait.
    Waiting,
    /// The file is there and being read from its start.
    Following,
    /// The file was truncated or replaced (a new run, a rotation): what follows starts over.
    StartingOver { replaced: bool },
    /// Records of lines completed since the last look.
    Records(Vec<Record>),
    /// The reader's counts of skipped lines changed: lines that are not JSON records, records of unknown types.
    Skipped { bad_lines: u64, unknown: u64 },
}

/// Follows a growing log like `tail -F` (`bnscope watch`): each [`Follower::poll`] reads what was appended since
/// the last one; a file that does not exist yet is waited for, a truncated or replaced one is read again from
/// its start, and a partial last line waits for its end. Between polls the caller sleeps ([`WATCH_POLL`]).
pub struct Follower {
    path: std::path::PathBuf,
    shown: String,
    cur: Option<Open>,
    reader: Reader,
    waiting_said: bool,
    skipped: (u64, u64),
    buf: Vec<u8>,
}

impl Follower {
    pub fn new(path: &Path) -> Self {
        Follower {
            path: path.to_path_buf(),
            shown: crate::terminal::printable(&path.display().to_string()).into_owned(),
            cur: None,
            reader: Reader::default(),
            waiting_said: false,
            skipped: (0, 0),
            buf: vec![0u8; 1 << 16],
        }
    }

    /// The file's name as shown (control characters escaped).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// One look at the file. An error names the file: it is not a bnscope log (or not a regular file, or cannot
    /// be read); a later poll waits for that file to be replaced or truncated.
    pub fn poll(&mut self) -> Result<Vec<Followed>> {
        use std::io::{Read, Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let shown = self.shown.clone();
        let mut out = Vec::new();
        loop {
            let meta = std::fs::metadata(&self.path).ok();
            match (&mut self.cur, &meta) {
                (None, None) => {
                    if !self.waiting_said {
                        out.push(Followed::Waiting);
                        self.waiting_said = true;
                    }
                    return Ok(out);
                }
                (None, Some(m)) => {
                    if let Some(what) = crate::files::not_regular(m) {
                        return Err(usage(format!("{shown}: {what}, not a log file")));
                    }
                    let file = std::fs::File::open(&self.path)
                        .map_err(|e| usage(format!("{shown}: cannot read the log: {e}")))?;
                    out.push(Followed::Following);
                    self.cur = Some(Open {
                        file,
                        offset: 0,
                        ino: m.ino(),
                        refused: false,
                    });
                    self.reader = Reader::default();
                    self.skipped = (0, 0);
                }
                (Some(f), m) => {
                    let replaced = m.as_ref().is_none_or(|m| m.ino() != f.ino);
                    let truncated = m.as_ref().is_some_and(|m| m.len() < f.offset);
                    if replaced || truncated {
                        out.push(Followed::StartingOver { replaced });
                        self.cur = None;
                        self.waiting_said = false;
                        continue;
                    }
                    if f.refused {
                        return Ok(out);
                    }
                    f.file.seek(SeekFrom::Start(f.offset))?;
                    let n = f.file.read(&mut self.buf)?;
                    if n == 0 {
                        return Ok(out);
                    }
                    f.offset += n as u64;
                    let text = String::from_utf8_lossy(&self.buf[..n]).into_owned();
                    match self.reader.push(&text) {
                        Ok(records) if records.is_empty() => {}
                        Ok(records) => out.push(Followed::Records(records)),
                        Err(e) => {
                            f.refused = true;
                            return Err(usage(format!("{shown}: {e}")));
                        }
                    }
                    let skipped = (self.reader.bad_lines, self.reader.unknown);
                    if skipped != self.skipped {
                        self.skipped = skipped;
                        out.push(Followed::Skipped {
                            bad_lines: skipped.0,
                            unknown: skipped.1,
                        });
                    }
                }
            }
        }
    }
}

/// `bnscope watch --headless FILE`: follows a growing log like `tail -F` and prints each epoch as it is complete.
/// Waits for a file that does not exist yet, starts over when the file is truncated or replaced (a new run, a
/// rotation), and keeps following until a signal (exit 128 + n) or `stop` returns true.
pub fn watch_headless(path: &Path, stop: impl Fn() -> Option<i32>) -> Result<i32> {
    use std::io::Write;
    let mut follower = Follower::new(path);
    let shown = follower.shown().to_string();
    let mut out = std::io::stdout().lock();
    let mut on = crate::protocol::EvalOn::Train;
    macro_rules! say {
        ($($arg:tt)*) => {
            if writeln!(out, $($arg)*).and_then(|_| out.flush()).is_err() {
                return Ok(0);
            }
        };
    }
    loop {
        if let Some(sig) = stop() {
            return Ok(crate::signals::exit_status(sig));
        }
        for ev in follower.poll()? {
            match ev {
                Followed::Waiting => say!("bnscope watch: waiting for {shown} to appear…"),
                Followed::Following => say!("bnscope watch: following {shown}"),
                Followed::StartingOver { replaced } => say!(
                    "bnscope watch: {shown} was {}; starting over",
                    if replaced { "replaced" } else { "truncated" }
                ),
                Followed::Skipped { bad_lines, unknown } => {
                    eprintln!("bnscope: {shown}: skipped {}", skipped_words(bad_lines, unknown))
                }
                Followed::Records(records) => {
                    for rec in records {
                        match rec {
                            Record::Run(run) => {
                                on = run.eval_on();
                                say!(
                                    "run: source {} · {} · {} BN layers{}",
                                    run.source,
                                    run.model.as_deref().map(crate::terminal::printable).unwrap_or_default(),
                                    run.bn_layers,
                                    if on == crate::protocol::EvalOn::Val {
                                        " · evaluated on held-out images"
                                    } else {
                                        ""
                                    }
                                )
                            }
                            Record::Epoch(e) => say!("{}", epoch_line(&e, on)),
                            Record::Event { epoch, what, value } => {
                                say!("  after epoch {epoch}: {what} {}", crate::terminal::printable(&value))
                            }
                            Record::End { epochs, reason } => {
                                say!("end after {epochs} epochs ({reason}); still following")
                            }
                            Record::Bn { .. } => {}
                        }
                    }
                }
            }
        }
        std::thread::sleep(WATCH_POLL);
    }
}

/// `2 lines that are not JSON records and 1 record of an unknown type`.
pub fn skipped_words(bad_lines: u64, unknown: u64) -> String {
    let mut skipped = Vec::new();
    if bad_lines > 0 {
        skipped.push(format!("{bad_lines} line(s) that are not JSON records"));
    }
    if unknown > 0 {
        skipped.push(format!("{unknown} record(s) of an unknown type"));
    }
    skipped.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_line_waits_for_its_end() {
        let mut r = Reader::default();
        let run = r#"{"type":"run","schema":1,"bn_layers":[]}"#;
        assert_eq!(r.push(&format!("{run}\n{{\"type\":\"epo")).unwrap().len(), 1);
        assert!(r
            .push("ch\",\"epoch\":1,\"train\":{\"loss\":null,\"acc\":1.0}")
            .unwrap()
            .is_empty());
        let recs = r.push("}\n").unwrap();
        let Record::Epoch(e) = &recs[0] else { panic!("{recs:?}") };
        assert_eq!(e.epoch, 1);
        let t = e.train.unwrap();
        assert!(t.loss.unwrap().is_nan() && t.acc == Some(1.0));
        assert_eq!(e.eval_batch, None, "missing stays missing");
        assert!(epoch_line(e, crate::protocol::EvalOn::Train).contains("eval batch: not in this log"));
        assert!(epoch_line(e, crate::protocol::EvalOn::Val).contains("val batch: not in this log"));
    }

    #[test]
    fn bad_lines_are_counted_and_other_files_refused() {
        let mut r = Reader::default();
        let recs = r
            .push(
                "{\"type\":\"run\",\"schema\":1}\nnot json\n{\"type\":\"mystery\"}\n{\"type\":\"end\",\"epochs\":0}\n",
            )
            .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((r.bad_lines, r.unknown), (1, 1));
        assert!(Reader::default().push("hello\n").is_err());
        assert!(Reader::default().push("{\"type\":\"epoch\"}\n").is_err());
        let e = Reader::default().push("{\"type\":\"run\",\"schema\":2}\n").unwrap_err();
        assert!(e.to_string().contains("schema 2"), "{e}");
    }
}
