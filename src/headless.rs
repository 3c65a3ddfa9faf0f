//! Headless mode: one line per epoch on stdout, like Keras `fit(verbose=2)`.
use anyhow::Result;
use crossbeam_channel::{select, Receiver};

use crate::format::{line_loss as loss, momentum as fmt_m, momentum_label};
use crate::outcome::{diverged_message, Outcome};
use crate::protocol::*;
use crate::terminal::printable;

/// How many of the latest epochs the closing "median ms/step" covers.
const STEP_WINDOW: usize = 10_000;

/// One epoch line; the evaluations are called `val running`/`val batch` on held-out data.
pub fn epoch_line(m: &EpochMetrics, total: Option<usize>, on: EvalOn) -> String {
    let of = total.map(|n| format!("/{n}")).unwrap_or_default();
    let w = on.word();
    let ema = m.eval_ema.map_or(String::new(), |e| {
        format!(" | ema running: loss {} acc {:.3}", loss(e.loss), e.acc)
    });
    format!(
        "epoch {}{of}  loss {} acc {:.3} | {w} running: loss {} acc {:.3} | {w} batch: loss {} acc {:.3}{ema} | {} | {:.1} ms/step",
        m.epoch,
        loss(m.train.loss),
        m.train.acc,
        loss(m.eval_running.loss),
        m.eval_running.acc,
        loss(m.eval_batch.loss),
        m.eval_batch.acc,
        momentum_label(m.momentum, m.cumulative),
        m.step_ms
    )
}

/// `bnscope: evaluating on 60 held-out images (shapes:20 (seed 1, held-out)) · eval batch 1 · val-transform
/// scale255`: what the evaluations read, when that is not simply the training set in training batches.
pub fn evaluation_line(info: &RunInfo) -> Option<String> {
    let mut parts = Vec::new();
    if info.eval_on == EvalOn::Val {
        let from = info
            .val_data
            .as_deref()
            .map(|d| format!(" ({})", printable(d)))
            .unwrap_or_default();
        parts.push(format!("evaluating on {} held-out images{from}", info.images.len()));
    }
    if info.eval_batch_size != info.batch_size {
        parts.push(format!("eval batch size {}", info.eval_batch_size));
    }
    if info.val_transform != "none" {
        parts.push(format!(
            "--val-transform {} on the evaluation inputs",
            printable(&info.val_transform)
        ));
    }
    (!parts.is_empty()).then(|| format!("bnscope: {}", parts.join(" · ")))
}

/// Runs until the trainer finishes, printing as it goes (errors on stderr as they happen).
#[allow(unused_assignments)] // the last `say!` may set `stdout_gone` for nobody to read
pub fn run(link: Link, signals: Receiver<i32>) -> Result<Outcome> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut stdout_gone = false;
    // stdout may be a pipe that closes (`bnscope --headless | head`): then stop the run quietly.
    macro_rules! say {
        ($($arg:tt)*) => {
            if !stdout_gone && writeln!(out, $($arg)*).and_then(|_| out.flush()).is_err() {
                stdout_gone = true;
                let _ = link.commands.send(Command::Quit(EndReason::Quit));
            }
        };
    }
    let mut total = None;
    let mut on = EvalOn::Train;
    let mut signal = None;
    let mut failed = false;
    let mut first_converged: Option<usize> = None;
    let mut last: Option<Box<EpochMetrics>> = None;
    // The last STEP_WINDOW step times, for the closing median (bounded: runs can last millions of epochs).
    let mut step_ms: std::collections::VecDeque<f64> = std::collections::VecDeque::with_capacity(STEP_WINDOW);
    loop {
        select! {
            recv(link.events) -> ev => {
                let Ok(ev) = ev else {
                    let mut o = Outcome::new(EndReason::Error);
                    o.signal = signal;
                    o.messages.push("the trainer stopped without finishing the run".into());
                    return Ok(o);
                };
                match ev {
                    Event::Started(info) => {
                        total = info.epochs;
                        on = info.eval_on;
                        // GroupNorm has no running statistics: no momentum, no variance convention.
                        let (norm, layers) = match info.norm.as_str() {
                            "batch" => (
                                format!(
                                    "{} · {} BN (ε {:e}, {} variance)",
                                    if info.cumulative { "momentum cumulative".to_string() } else {
                                        format!("momentum {} (Keras) = {} (PyTorch/candle)", fmt_m(info.momentum), fmt_m(keras_to_torch(info.momentum)))
                                    },
                                    info.framework,
                                    info.bn_eps,
                                    info.bn_variance
                                ),
                                "BN",
                            ),
                            n => {
                                let name = if n == "layer" { "LayerNorm" } else { "GroupNorm" };
                                (format!("{name} (ε {:e}, no running statistics)", info.bn_eps), name)
                            }
                        };
                        say!(
                            "bnscope: {} on {} ({} images, classes {}{}) · {} · {norm} · {} lr {}{} · {} params · {} {layers} layers",
                            info.model,
                            printable(&info.data),
                            info.train_images,
                            printable(&info.classes.join(", ")),
                            if info.normalize == "none" { String::new() } else { format!(", normalize {}", info.normalize) },
                            info.device,
                            info.optimizer,
                            info.lr,
                            if info.optimizer == "adam" { format!(" (ε {:e})", info.adam_eps) } else { String::new() },
                            info.params,
                            info.bn_layers.len()
                        );
                        if let Some(l) = info.lesson.as_deref().and_then(crate::lesson::Scenario::from_name) {
                            let l = l.lesson();
                            say!("lesson: {}", l.title);
                            say!("  {}", l.text);
                        }
                        if info.norm != "batch" {
                            say!("bnscope: {}Norm instead of BatchNorm: no running statistics, so evaluation normalises as training does", if info.norm == "group" { "Group" } else { "Layer" });
                        }
                        if let Some(p) = &info.pretrain {
                            say!("bnscope: pre-trained {p} (other contrast and brightness), then a fresh classifier");
                        }
                        if let Some(d) = info.ema {
                            say!("bnscope: also evaluating an EMA of the weights (decay {d}), its BatchNorm buffers copied from the trained model");
                        }
                        if let Some(w) = &info.weights {
                            say!("bnscope: weights from {}", printable(w));
                        }
                        if let Some(line) = evaluation_line(&info) {
                            say!("{line}");
                        }
                        if let Some(f) = &info.frozen_bn {
                            if info.norm == "batch" {
                                say!("bnscope: backbone frozen (only fc trains), its BatchNorm layers in {f} mode");
                            } else {
                                say!("bnscope: backbone frozen (only fc trains); its normalisation layers have no running statistics to freeze and normalise each image as in training");
                            }
                        }
                    }
                    Event::Epoch(m) => {
                        say!("{}", epoch_line(&m, total, on));
                        if first_converged.is_none() && m.eval_running.acc >= 1.0 {
                            first_converged = Some(m.epoch);
                        }
                        if step_ms.len() == STEP_WINDOW {
                            step_ms.pop_front();
                        }
                        step_ms.push_back(m.step_ms);
                        last = Some(m);
                    }
                    Event::BnReady => { link.bn.take(); }
                    // A slow phase's progress is for the TUI; the headless output starts with the run's epochs.
                    Event::Refreshed(_) | Event::Progress(_) => {}
                    Event::Inspected(r) => {
                        let pct = |v: f32| format!("{:.3}", v);
                        say!(
                            "epoch 0 (imported weights) eval running acc {} · eval batch acc {} · recalibrated acc {}",
                            pct(r.eval_running.acc),
                            pct(r.eval_batch.acc),
                            pct(r.recalibrated.acc)
                        );
                        for f in &r.findings {
                            say!("  diagnosis: {}", printable(f));
                        }
                    }
                    Event::Applied {
                        what: EventKind::SaveWeights,
                        value,
                        ..
                    } => say!("weights written to {} (a PyTorch state_dict)", printable(&value)),
                    Event::Applied { .. } => {}
                    Event::Warning { text, .. } => eprintln!("bnscope: warning: {text}"),
                    Event::Diverged { epoch, loss, what } => {
                        eprintln!("bnscope: error: {}", diverged_message(epoch, loss, &what));
                        failed = true;
                        let _ = link.commands.send(Command::Quit(EndReason::Diverged));
                    }
                    Event::Error(msg) => {
                        eprintln!("bnscope: error: {}", printable(&msg));
                        failed = true;
                        let _ = link.commands.send(Command::Quit(EndReason::Error));
                    }
                    Event::Finished { reason, checkpoint, .. } => {
                        if let Some(m) = &last {
                            match first_converged {
                                Some(e) => say!("{} with running stats first reached acc 1.000 at epoch {e}", on.word()),
                                None => {
                                    say!("{} with running stats never reached acc 1.000 (last {:.3})", on.word(), m.eval_running.acc);
                                    // The same hint as the TUI's: how far the statistics still have to go.
                                    if !failed && !m.cumulative && m.train.acc - m.eval_running.acc > 0.2 {
                                        if let Some(n) = m.age.updates_to_one_percent(m.momentum).filter(|&n| n > 0) {
                                            say!(
                                                "the running stats travelled {:.1}% of the way: momentum {} needs {n} more updates to get within 1%; try --momentum 0.9",
                                                100.0 * m.age.travelled(),
                                                fmt_m(m.momentum)
                                            );
                                        }
                                    }
                                }
                            }
                            if !step_ms.is_empty() {
                                let mut s: Vec<f64> = step_ms.iter().copied().collect();
                                s.sort_by(|a, b| a.total_cmp(b));
                                say!("median {:.1} ms/step over {} epochs", s[s.len() / 2], s.len());
                            }
                        }
                        if let Some(c) = checkpoint {
                            say!("checkpoint written to {}", printable(&c));
                        }
                        let mut o = Outcome::new(reason);
                        o.signal = signal;
                        o.failed = failed;
                        return Ok(o);
                    }
                }
            }
            recv(signals) -> sig => {
                if let Ok(sig) = sig {
                    if signal.is_none() {
                        eprintln!("bnscope: signal {sig}; stopping after the current step");
                        signal = Some(sig);
                        let _ = link.commands.send(Command::Quit(EndReason::Signal));
                    }
                }
            }
        }
    }
}
