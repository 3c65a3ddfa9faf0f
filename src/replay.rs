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
}

/// One `epoch` record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Epoch {
    pub epoch: u64,
    pub momentum: Option<f64>,
    pub cumulative: bool,
    pub t: Option<u64>,
    pub init_weight: Option<f64>,
    pub train: Option<Metric>,
    pub eval_running: Option<Metric>,
    pub eval_batch: Option<Metric>,
    pub step_ms: Option<f64>,
}

/// The records a replay shows (`bn` records are counted but not kept here).
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Run(Run),
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
}

fn floats(v: &Value, k: &str) -> Option<Vec<f64>> {
    v.get(k)?
        .as_array()
        .map(|a| a.iter().map(|x| num(x).unwrap_or(f64::NAN)).collect())
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
                Record::Run(Run {
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
                })
            }
            "epoch" => Record::Epoch(Epoch {
                epoch,
                momentum: field(&v, "momentum"),
                cumulative: v.get("cumulative").and_then(Value::as_bool).unwrap_or(false),
                t: v.get("t").and_then(Value::as_u64),
                init_weight: field(&v, "init_weight"),
                train: metric(&v, "train"),
                eval_running: metric(&v, "eval_running"),
                eval_batch: metric(&v, "eval_batch"),
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

/// An epoch as a line, in the live headless format; what the log lacks says so.
pub fn epoch_line(e: &Epoch) -> String {
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
        metric_text("eval running", e.eval_running),
        metric_text("eval batch", e.eval_batch)
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
                    println!("{}", parts.join(" · "));
                }
                Record::Epoch(e) => {
                    println!("{}", epoch_line(e));
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
            (Some(e), _) => println!("eval with running stats first reached acc 1.000 at epoch {e}"),
            (None, Some(l)) => match l.eval_running.and_then(|m| m.acc) {
                Some(a) => println!("eval with running stats never reached acc 1.000 (last {a:.3})"),
                None => println!("eval with running stats: {MISSING}"),
            },
            (None, None) => println!("no epochs in this log"),
        }
        let mut skipped = Vec::new();
        if r.bad_lines > 0 {
            skipped.push(format!("{} line(s) that are not JSON records", r.bad_lines));
        }
        if r.unknown > 0 {
            skipped.push(format!("{} record(s) of an unknown type", r.unknown));
        }
        if !skipped.is_empty() {
            eprintln!("bnscope: {shown}: skipped {}", skipped.join(" and "));
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

/// For several logs of one run (ranks of a distributed run): how far their running means are apart, per layer,
/// at the last epoch all of them logged with arrays: `max_r ‖mean_r − mean_avg‖₂ / (‖mean_avg‖₂ + 1e-8)`. Without
/// SyncBatchNorm every rank averages only its own batches, and small per-GPU batches make them drift apart.
pub fn rank_spread(files: &[(String, Vec<Record>)]) -> Vec<String> {
    use std::collections::BTreeMap;
    // epoch -> per file: layer name -> running mean
    let mut by_epoch: BTreeMap<u64, Vec<BTreeMap<String, Vec<f64>>>> = BTreeMap::new();
    for (i, (_, records)) in files.iter().enumerate() {
        for rec in records {
            if let Record::Bn { epoch, layers } = rec {
                let entry = by_epoch
                    .entry(*epoch)
                    .or_insert_with(|| vec![BTreeMap::new(); files.len()]);
                for l in layers {
                    if let Some(m) = &l.running_mean {
                        entry[i].insert(l.name.clone(), m.clone());
                    }
                }
            }
        }
    }
    let Some((epoch, maps)) = by_epoch
        .iter()
        .rev()
        .find(|(_, maps)| maps.iter().all(|m| !m.is_empty()))
    else {
        return vec!["ranks: the logs have no per-channel running statistics to compare (log them in full)".into()];
    };
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
    if spreads.first().is_some_and(|(s, _)| *s > 0.01) {
        out.push(
            "  the ranks' running statistics differ: each GPU averages only its own batches (no SyncBatchNorm), \
             and evaluation depends on which rank's statistics are saved; use SyncBatchNorm or larger per-GPU \
             batches, or recalibrate after training"
                .into(),
        );
    }
    out
}

/// How often `watch` looks at the file while nothing is written (a `stat` call: ~0 % CPU).
pub const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The file being followed: where we are in it, and which file it is (a rotation replaces it).
struct Followed {
    file: std::fs::File,
    offset: u64,
    ino: u64,
}

/// `bnscope watch FILE` (headless): follows a growing log like `tail -F` and prints each epoch as it is complete.
/// Waits for a file that does not exist yet, starts over when the file is truncated or replaced (a new run, a
/// rotation), and keeps following until a signal (exit 128 + n) or `stop` returns true.
pub fn watch_headless(path: &Path, stop: impl Fn() -> Option<i32>) -> Result<i32> {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;
    let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
    let mut out = std::io::stdout().lock();
    macro_rules! say {
        ($($arg:tt)*) => {
            if writeln!(out, $($arg)*).and_then(|_| out.flush()).is_err() {
                return Ok(0);
            }
        };
    }
    let mut cur: Option<Followed> = None;
    let mut reader = Reader::default();
    let mut waiting_said = false;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if let Some(sig) = stop() {
            return Ok(crate::signals::exit_status(sig));
        }
        let meta = std::fs::metadata(path).ok();
        match (&mut cur, &meta) {
            (None, None) => {
                if !waiting_said {
                    say!("bnscope watch: waiting for {shown} to appear…");
                    waiting_said = true;
                }
            }
            (None, Some(m)) => {
                if let Some(what) = crate::files::not_regular(m) {
                    return Err(usage(format!("{shown}: {what}, not a log file")));
                }
                let file =
                    std::fs::File::open(path).map_err(|e| usage(format!("{shown}: cannot read the log: {e}")))?;
                say!("bnscope watch: following {shown}");
                cur = Some(Followed {
                    file,
                    offset: 0,
                    ino: m.ino(),
                });
                reader = Reader::default();
                continue;
            }
            (Some(f), m) => {
                let replaced = m.as_ref().is_none_or(|m| m.ino() != f.ino);
                let truncated = m.as_ref().is_some_and(|m| m.len() < f.offset);
                if replaced || truncated {
                    say!(
                        "bnscope watch: {shown} was {}; starting over",
                        if replaced { "replaced" } else { "truncated" }
                    );
                    cur = None;
                    waiting_said = false;
                    continue;
                }
                let mut grew = false;
                f.file.seek(SeekFrom::Start(f.offset))?;
                loop {
                    let n = f.file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    grew = true;
                    f.offset += n as u64;
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let records = reader.push(&text).map_err(|e| usage(format!("{shown}: {e}")))?;
                    for rec in records {
                        match rec {
                            Record::Run(run) => say!(
                                "run: source {} · {} · {} BN layers",
                                run.source,
                                run.model.as_deref().map(crate::terminal::printable).unwrap_or_default(),
                                run.bn_layers
                            ),
                            Record::Epoch(e) => say!("{}", epoch_line(&e)),
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
                if grew {
                    continue;
                }
            }
        }
        std::thread::sleep(WATCH_POLL);
    }
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
        assert!(epoch_line(e).contains("eval batch: not in this log"));
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
