//! Looking at a model on the data without training (`bnscope inspect`, and the TUI's epoch 0 with `--weights`):
//! the three evaluations, how far each BatchNorm layer's running statistics are from the data's, and a diagnosis
//! in words.
//!
//! The data's statistics per layer are what a recalibration on the data gives (PreciseBN: every batch's mean and
//! variance weighted by its size, in `--batch-size` batches, as `c` does). They are taken on a copy of the
//! statistics: the model leaves `inspect` with the running statistics it came with.
use anyhow::Result;

use super::Trainer;
use crate::model::{relative_gap, BnMode, BnState};
use crate::protocol::{BlameFigure, LayerBlame, BLAME_SAMPLES};
use crate::protocol::{BnLayerSnapshot, BnSnapshot, InspectPass, Inspection, LayerGap};

/// A gap (relative L2 distance) from which the running statistics no longer describe the data.
pub const FAR: f32 = 0.5;
/// Accuracy differences smaller than this are not called a difference.
const ACC_MARGIN: f32 = 0.1;

/// One layer's statistics: running, and the data's.
struct LayerFacts {
    name: String,
    running: (Vec<f32>, Vec<f32>),
    /// Values per channel in the data's last batch.
    n: usize,
    gap: LayerGap,
}

impl Trainer {
    /// Evaluates with running statistics, with batch statistics and after a recalibration on the data, compares
    /// each layer's running statistics with the data's, and says which layer to blame (two more evaluations per
    /// layer: `Inspection::blame`). Changes nothing in the model.
    /// The blame on the first [`BLAME_SAMPLES`] evaluated images.
    pub fn inspect(&mut self) -> Result<Inspection> {
        self.inspect_blamed(BLAME_SAMPLES, &|_, _| {})
    }

    /// [`Self::inspect`] with the blame pass on the first `cap` evaluated images (all of them when there are
    /// fewer); `progress(done, layers)` is called after each layer's two evaluations.
    pub fn inspect_blamed(&mut self, cap: usize, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Inspection> {
        self.ready()?;
        let dev = self.device.clone();
        Ok(crate::runtime::in_pool(&dev, || self.inspect_here(Some((cap, progress))))?.0)
    }

    /// [`Self::inspect`], with a BatchNorm snapshot whose batch statistics are the data's (as a recalibration
    /// estimates them): what the layer gauges show at epoch 0 (the TUI's inspect view, which sorts its layers by
    /// the blame: on the first [`BLAME_SAMPLES`] images, two evaluations of them per layer).
    pub fn inspect_with_snapshot(&mut self) -> Result<(Inspection, BnSnapshot)> {
        self.ready()?;
        let dev = self.device.clone();
        crate::runtime::in_pool(&dev, || self.inspect_here(Some((BLAME_SAMPLES, &|_, _| {}))))
    }

    /// `blame`: compute `Inspection::blame` on at most this many images, reporting progress (`None`: leave it
    /// empty).
    #[allow(clippy::type_complexity)]
    fn inspect_here(
        &mut self,
        blame: Option<(usize, &(dyn Fn(usize, usize) + Sync))>,
    ) -> Result<(Inspection, BnSnapshot)> {
        let running = self.pass(BnMode::EvalRunning, true)?;
        let batch = self.pass(BnMode::EvalBatch, true)?;
        let saved: Vec<BnState> = self.model.bn_layers().iter().map(|b| b.state()).collect();
        let before = self.running_stats()?;
        let order = self.recalibration_order();
        let recalibrated = self.recalibrate(&order).and_then(|_| {
            let after = self.running_stats()?;
            let ns: Vec<usize> = self.model.bn_layers().iter().map(|b| b.n()).collect();
            Ok((after, ns))
        });
        let evaluated = match &recalibrated {
            Ok(_) => Some(self.pass(BnMode::EvalRunning, true)),
            Err(_) => None,
        };
        for (bn, s) in self.model.bn_layers_mut().into_iter().zip(saved) {
            bn.set_state(s);
        }
        let (after, ns) = recalibrated?;
        let snapshot = BnSnapshot {
            epoch: self.epoch,
            t: self.model.bn_t(),
            age: self.model.stats_age(),
            layers: self
                .model
                .bn_layers()
                .iter()
                .zip(before.iter().zip(&after))
                .zip(&ns)
                .map(|((bn, (r, d)), &n)| BnLayerSnapshot {
                    name: bn.name().to_string(),
                    n,
                    mean_gap: relative_gap(&r.0, &d.0),
                    var_gap: relative_gap(&r.1, &d.1),
                    running_mean: r.0.clone(),
                    running_var: r.1.clone(),
                    batch_mean: d.0.clone(),
                    batch_var: d.1.clone(),
                })
                .collect(),
        };
        let recal = evaluated.expect("evaluated after a recalibration")?;
        let mut layers: Vec<LayerFacts> = self
            .model
            .bn_layers()
            .iter()
            .zip(before.into_iter().zip(after))
            .zip(ns)
            .map(|((bn, (running, data)), n)| LayerFacts {
                gap: LayerGap {
                    name: bn.name().to_string(),
                    mean_gap: relative_gap(&running.0, &data.0),
                    var_gap: relative_gap(&running.1, &data.1),
                },
                name: bn.name().to_string(),
                running,

                n,
            })
            .collect();
        let pass = |p: super::Pass| InspectPass {
            loss: p.metric.loss,
            acc: p.metric.acc,
            logits: p.logits,
        };
        let eval_running = pass(running);
        let eval_batch = pass(batch);
        let recalibrated = pass(recal);
        let total = self.eval_data().0.len();
        let (blame, blame_samples) = match blame {
            Some((cap, progress)) => self.blame(&eval_running, &eval_batch, cap.clamp(1, total.max(1)), progress)?,
            None => (Vec::new(), 0),
        };
        let (mut findings, summary) = self.findings(&layers, &eval_running, &eval_batch, &recalibrated)?;
        findings.extend(blame_findings(&blame));
        // Forward order was needed for "the first layer"; the report lists the largest gap first (NaN first).
        let key = |g: &LayerGap| {
            let v = g.mean_gap.max(g.var_gap);
            if v.is_nan() || g.mean_gap.is_nan() || g.var_gap.is_nan() {
                f32::INFINITY
            } else {
                v
            }
        };
        layers.sort_by(|a, b| key(&b.gap).total_cmp(&key(&a.gap)));
        let inspection = Inspection {
            model: self.cfg.preset.name().into(),
            images: self.eval_data().0.names.clone(),
            classes: self.data.classes.clone(),
            labels: self.eval_data().0.labels.clone(),
            eval_running,
            eval_batch,
            recalibrated,
            layers: layers.into_iter().map(|l| l.gap).collect(),
            blame_samples,
            blame,
            diagnosis: findings.join(" "),
            findings,
            summary,
            age: self.model.stats_age(),
        };
        Ok((inspection, snapshot))
    }

    /// Which layer to blame (`Inspection::blame`): each layer alone, then the first k in forward order, switched to
    /// batch statistics in an evaluation with running statistics (nothing updated; the layers' flags are put back).
    /// Two evaluations per layer, with the evaluation's own batches, on the first `n` images (the all-running and
    /// all-batch ends evaluated on those too, so the last prefix equals their `eval_batch`). Returns the blame and
    /// `n`.
    fn blame(
        &mut self,
        running: &InspectPass,
        batch: &InspectPass,
        n: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(Vec<LayerBlame>, usize)> {
        let names: Vec<String> = self.model.bn_layers().iter().map(|b| b.name().to_string()).collect();
        let all = n >= self.eval_data().0.len();
        let (running, batch) = if all {
            (
                crate::protocol::Metric {
                    loss: running.loss,
                    acc: running.acc,
                },
                crate::protocol::Metric {
                    loss: batch.loss,
                    acc: batch.acc,
                },
            )
        } else {
            (
                self.first_images(BnMode::EvalRunning, n)?,
                self.first_images(BnMode::EvalBatch, n)?,
            )
        };
        let share = |run: f32, all: f32, got: f32| {
            let d = all - run;
            if d.abs() < 1e-6 || !d.is_finite() {
                f32::NAN
            } else {
                (got - run) / d
            }
        };
        let figure = |m: crate::protocol::Metric| BlameFigure {
            loss: m.loss,
            acc: m.acc,
            loss_share: share(running.loss, batch.loss, m.loss),
            acc_share: share(running.acc, batch.acc, m.acc),
        };
        let set = |t: &mut Self, on: &dyn Fn(usize) -> bool| {
            for (i, bn) in t.model.bn_layers_mut().into_iter().enumerate() {
                bn.set_batch_in_eval(on(i));
            }
        };
        let mut out = Vec::with_capacity(names.len());
        let result = (|| -> Result<()> {
            for (i, name) in names.iter().enumerate() {
                set(self, &|j| j == i);
                let alone = self.first_images(BnMode::EvalRunning, n)?;
                set(self, &|j| j <= i);
                let prefix = self.first_images(BnMode::EvalRunning, n)?;
                out.push(LayerBlame {
                    name: name.clone(),
                    alone: figure(alone),
                    prefix: figure(prefix),
                });
                progress(i + 1, names.len());
            }
            Ok(())
        })();
        set(self, &|_| false);
        result.map(|()| (out, n))
    }

    /// Loss and accuracy of an evaluation of the first `n` evaluated images, in the evaluation's batches: the
    /// trainer's `pass` (exactly it when `n` is all of them) cut short, for the blame's capped passes.
    fn first_images(&mut self, mode: BnMode, n: usize) -> Result<crate::protocol::Metric> {
        if n >= self.eval_data().0.len() {
            return Ok(self.pass(mode, false)?.metric);
        }
        let bs = self.eval_batch_size();
        let transform = self.cfg.val_transform;
        // The fields one by one (not `eval_data()`), so that the model can be borrowed mutably beside them.
        let (data, y) = match &self.val {
            Some((d, y)) => (d, y),
            None => (&self.data, &self.y),
        };
        let (mut loss_sum, mut correct, mut i) = (0f64, 0usize, 0usize);
        while i < n {
            let len = bs.min(n - i);
            let batch: Vec<u32> = (i as u32..(i + len) as u32).collect();
            let xb = transform.apply(&data.batch(&batch, &self.device)?, data.normalize)?;
            let yb = y.narrow(0, i, len)?;
            let logits = self.model.eval_forward(&xb, mode)?;
            let loss = crate::model::cross_entropy(&logits, &yb)?
                .to_dtype(candle_core::DType::F32)?
                .to_scalar::<f32>()?;
            loss_sum += loss as f64 * len as f64;
            let truth = yb.to_vec1::<u32>()?;
            correct += crate::model::argmax_rows(&logits)?
                .iter()
                .zip(&truth)
                .filter(|(a, b)| a == b)
                .count();
            i += len;
        }
        Ok(crate::protocol::Metric {
            loss: (loss_sum / n as f64) as f32,
            acc: correct as f32 / n as f32,
        })
    }

    /// Whether the inputs are normalised as ImageNet models expect.
    fn inputs_normalized(&self) -> bool {
        self.data.normalize == crate::data::Normalize::Imagenet
    }

    fn running_stats(&self) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        self.model
            .bn_layers()
            .iter()
            .map(|b| Ok((b.running_mean().to_vec1::<f32>()?, b.running_var().to_vec1::<f32>()?)))
            .collect()
    }

    /// The diagnosis, most important first.
    fn findings(
        &self,
        layers: &[LayerFacts],
        running: &InspectPass,
        batch: &InspectPass,
        recal: &InspectPass,
    ) -> Result<(Vec<String>, String)> {
        let mut f = Findings::default();
        let pct = |x: f32| format!("{:.0} %", 100.0 * x);
        // Broken numbers first: nothing else means much while they are there.
        let bad_stats: Vec<&str> = layers
            .iter()
            .filter(|l| l.running.0.iter().chain(&l.running.1).any(|v| !v.is_finite()))
            .map(|l| l.name.as_str())
            .collect();
        if let Some(first) = bad_stats.first() {
            f.add(
                format!("NaN/Inf in the running stats of {first}"),
                format!(
                "NaN or Inf in the running statistics of {} layer(s), first {first}: every evaluation with running \
                 statistics passes them on to the output.",
                bad_stats.len()
            ),
            );
        }
        if let Some(p) = crate::weights::first_non_finite(&self.model.state_dict()?)?
            .filter(|p| !p.ends_with("running_mean") && !p.ends_with("running_var"))
        {
            f.add(
                format!("NaN/Inf in {p}"),
                format!("NaN or Inf in {p}: the weights themselves are broken."),
            );
        }
        let at_start = layers
            .iter()
            .all(|l| l.running.0.iter().all(|&v| v == 0.0) && l.running.1.iter().all(|&v| v == 1.0));
        if at_start {
            f.add(
                "running stats never updated (still mean 0, var 1)".to_string(),
                format!(
                "The running statistics are still at their start (mean 0, variance 1; num_batches_tracked {}): they \
                 were never updated, so evaluation normalises with numbers that describe nothing. Recalibrate them \
                 on your data (c in the TUI, torch.optim.swa_utils.update_bn).",
                self.model.bn_t()
            ),
            );
        }
        let zero: Vec<(&str, usize)> = layers
            .iter()
            .map(|l| (l.name.as_str(), l.running.1.iter().filter(|&&v| v <= 0.0).count()))
            .filter(|(_, k)| *k > 0)
            .collect();
        if let Some((first, _)) = zero.first() {
            let k: usize = zero.iter().map(|(_, k)| k).sum();
            f.add(
                format!("running variance 0 in {first}"),
                format!(
                    "{k} channel(s) in {} layer(s) have running variance 0 or less (first {first}): such a channel is \
                 scaled by 1/√ε = {:.0} as soon as anything reaches it.",
                    zero.len(),
                    1.0 / self.cfg.bn_eps.sqrt()
                ),
            );
        }
        if let Some(l) = layers.iter().find(|l| l.n == 1) {
            f.add(
                format!("one value per channel in {}", l.name),
                format!(
                "{} sees one value per channel in a batch: its batch statistics are degenerate (PyTorch refuses to \
                 train it: \"Expected more than 1 value per channel\"); use larger batches or images.",
                l.name
            ),
            );
        }
        let first = layers.first();
        let first_far = first.is_some_and(|l| l.gap.mean_gap.max(l.gap.var_gap) > FAR);
        let far: Vec<&LayerFacts> = layers
            .iter()
            .filter(|l| l.gap.mean_gap.max(l.gap.var_gap) > FAR)
            .collect();
        if !at_start && first_far {
            let l = first.expect("first layer");
            let mut s = format!(
                "The first BatchNorm layer ({}) already sees inputs unlike its running statistics (mean {} off, \
                 variance {} off): the preprocessing or the kind of images differs from what the model was trained \
                 on, and every later layer inherits it.",
                l.name,
                pct(l.gap.mean_gap),
                pct(l.gap.var_gap)
            );
            if !self.inputs_normalized() {
                s.push_str(" Weights trained on ImageNet expect --normalize imagenet.");
            }
            f.add(
                format!(
                    "inputs unlike {}'s running stats: preprocessing or domain shift",
                    l.name
                ),
                s,
            );
        } else if !at_start && !far.is_empty() {
            let worst = far
                .iter()
                .max_by(|a, b| {
                    a.gap
                        .mean_gap
                        .max(a.gap.var_gap)
                        .total_cmp(&b.gap.mean_gap.max(b.gap.var_gap))
                })
                .expect("a far layer");
            f.add(
                format!("stale running stats: {} of {} layers far off", far.len(), layers.len()),
                format!(
                "The running statistics of {} of {} layers are far from this data's (largest {}: mean {} off, variance \
                 {} off) while the first layer's fit: stale or unconverged statistics (too few updates at a high \
                 momentum, or weights that changed after the statistics were taken).",
                far.len(),
                layers.len(),
                worst.name,
                pct(worst.gap.mean_gap),
                pct(worst.gap.var_gap)
            ),
            );
        }
        if self
            .cfg
            .weights
            .as_ref()
            .is_some_and(|w| w.classes != self.data.classes.len())
        {
            f.add(
                "new classifier: accuracy is chance until it trains".to_string(),
                format!(
                    "The classifier is new (the file's has {} classes, the data {}), so accuracy is chance until it \
                 trains; the layer gaps above do not depend on it.",
                    self.cfg.weights.as_ref().map_or(0, |w| w.classes),
                    self.data.classes.len()
                ),
            );
        } else if recal.acc - running.acc >= ACC_MARGIN {
            f.add(
                format!(
                    "recalibrating lifts eval from {} to {}",
                    pct(running.acc),
                    pct(recal.acc)
                ),
                format!(
                "Recalibrating the statistics on this data (AdaBN) takes accuracy with running statistics from {} to \
                 {} (batch statistics: {}): the statistics, not the weights, are what is wrong.",
                pct(running.acc),
                pct(recal.acc),
                pct(batch.acc)
            ),
            );
        } else if batch.acc - running.acc >= ACC_MARGIN {
            f.add(
                format!(
                    "batch stats score {}, running stats {}",
                    pct(batch.acc),
                    pct(running.acc)
                ),
                format!(
                "Evaluation with batch statistics scores {} against {} with running statistics, and a recalibration \
                 {}: the batch statistics of these batches differ from the data set's as a whole.",
                pct(batch.acc),
                pct(running.acc),
                pct(recal.acc)
            ),
            );
        } else if f.is_empty() {
            f.add(
                "running stats fit this data".to_string(),
                format!(
                "The running statistics fit this data: evaluation with them ({}) agrees with batch statistics ({}) \
                 and with a recalibration ({}).",
                pct(running.acc),
                pct(batch.acc),
                pct(recal.acc)
            ),
            );
        }
        let summary = f.short.first().cloned().unwrap_or_default();
        Ok((f.long, summary))
    }
}

/// The diagnosis's sentences, each with a few words for a narrow screen.
#[derive(Default)]
struct Findings {
    long: Vec<String>,
    short: Vec<String>,
}

impl Findings {
    fn add(&mut self, short: String, long: String) {
        self.short.push(short);
        self.long.push(long);
    }
    fn is_empty(&self) -> bool {
        self.long.is_empty()
    }
}

/// The blame in words: where along the network the gap is made (the largest steps of the prefix curve) and the
/// layer that closes most of it alone. Nothing when running and batch statistics agree.
fn blame_findings(blame: &[LayerBlame]) -> Vec<String> {
    let Some(last) = blame.last() else {
        return Vec::new();
    };
    if last.prefix.loss_share.is_nan() {
        return Vec::new();
    }
    let pct = |v: f32| format!("{:.0}%", 100.0 * v);
    // Steps of the prefix curve (share closed by adding each layer), largest first.
    let mut steps: Vec<(f32, &str)> = blame
        .iter()
        .scan(0.0f32, |prev, b| {
            let step = b.prefix.loss_share - *prev;
            *prev = b.prefix.loss_share;
            Some((step, b.name.as_str()))
        })
        .filter(|(s, _)| s.is_finite())
        .collect();
    steps.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out = Vec::new();
    let top: Vec<String> = steps
        .iter()
        .take(3)
        .filter(|(s, _)| *s > 0.05)
        .map(|(s, n)| format!("{n} (+{})", pct(*s)))
        .collect();
    let half = blame
        .iter()
        .position(|b| b.prefix.loss_share >= 0.5)
        .map(|i| (i + 1, blame[i].name.as_str()));
    if let Some((k, name)) = half {
        out.push(format!(
            "Where the gap is made: switching the first {k} of {} BatchNorm layers to batch statistics (up to {name}) closes half of the loss gap{}.",
            blame.len(),
            if top.is_empty() {
                String::new()
            } else {
                format!("; the largest steps are at {}", top.join(", "))
            }
        ));
    }
    let alone = blame
        .iter()
        .filter(|b| b.alone.loss_share.is_finite())
        .max_by(|a, b| a.alone.loss_share.total_cmp(&b.alone.loss_share));
    if let Some(b) = alone {
        if b.alone.loss_share >= 0.25 {
            out.push(format!(
                "Alone, {} on batch statistics closes {} of the loss gap: its running statistics carry the most of it.",
                b.name,
                pct(b.alone.loss_share)
            ));
        } else {
            out.push(format!(
                "No single layer closes much of the gap alone (at most {}, {}): it builds up across layers.",
                pct(b.alone.loss_share),
                b.name
            ));
        }
    }
    out
}
