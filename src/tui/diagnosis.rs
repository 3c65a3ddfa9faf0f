//! The derived words: the header's diagnosis (what the numbers mean and which key helps) and the convergence
//! line. Pure functions of the app state; nothing here changes it.
use crate::protocol::{steps_to_one_percent, EvalMode, EvalOn, EventKind};

use super::app::App;
use super::store::Phase;
use super::theme::Tone;

impl App {
    /// The lesson this run shows (`--scenario`, `L`).
    pub(crate) fn lesson(&self) -> Option<&'static crate::lesson::Lesson> {
        let name = self.store.info.as_ref()?.lesson.as_deref()?;
        crate::lesson::Scenario::from_name(name).map(|s| s.lesson())
    }

    /// The diagnosis: what the numbers mean and which key helps.
    pub(crate) fn diagnosis(&self) -> Diagnosis {
        use super::fmt::{acc, acc_or_missing, percent};
        let th = &self.theme;
        let warn = th.warn();
        let d = |tone, long: String, short: String| Diagnosis { tone, long, short };
        // `eval` on the training images, `val` on held-out ones (the evaluation rows' own labels).
        let on = self.store.info.as_ref().map_or(EvalOn::Train, |i| i.eval_on);
        let (w, w_cap) = match on {
            EvalOn::Train => ("eval", "Eval"),
            EvalOn::Val => ("val", "Val"),
        };
        if let Some(e) = &self.store.error {
            let first = e.lines().next().unwrap_or("");
            let t = format!("{warn} The trainer failed: {first}");
            return d(Tone::Bad, t.clone(), t);
        }
        if self.store.disconnected && !matches!(self.store.phase, Phase::Finished { .. }) {
            return d(
                Tone::Bad,
                format!("{warn} The trainer went away without saying goodbye. Press q to quit."),
                format!("{warn} The trainer went away. Press q to quit."),
            );
        }
        // Imported weights at epoch 0, their evaluations on screen (not yet changed by `c` or `r`).
        let inspected = self.store.inspection.as_ref().filter(|r| {
            self.store.latest.as_ref().is_none_or(|m| {
                m.epoch == 0
                    && m.eval_running.acc == Some(r.eval_running.acc)
                    && m.eval_running.loss == Some(r.eval_running.loss)
            })
        });
        let latest = self.store.latest.as_ref().filter(|_| inspected.is_none());
        let Some(m) = latest else {
            if let Some(r) = inspected {
                // Imported weights at epoch 0: the inspection's numbers and first finding.
                let head = format!(
                    "Epoch 0, imported weights: {w} with running stats {}, batch stats {}, recalibrated {}.",
                    acc(r.eval_running.acc),
                    acc(r.eval_batch.acc),
                    acc(r.recalibrated.acc)
                );
                // A finding may start in lower case (it is a clause in `inspect`'s report): a sentence here. A
                // finding that starts with a layer's name keeps it as written (`b makes the gap`, not `B`).
                let names: Vec<&str> = r.layers.iter().map(|l| l.name.as_str()).collect();
                let sentence = |f: &str| {
                    let first_word = f.split([' ', ',', ':']).next().unwrap_or("");
                    if names.contains(&first_word) {
                        return f.to_string();
                    }
                    let mut c = f.chars();
                    c.next()
                        .map_or(String::new(), |h| h.to_uppercase().chain(c).collect::<String>())
                };
                let first = r.findings.first().map_or(String::new(), |f| sentence(f));
                let keys = if self.paused {
                    " space trains, c recalibrates."
                } else {
                    ""
                };
                let short = format!("{head} {}.", sentence(&r.summary));
                return d(Tone::Info, format!("{head} {first}{keys}"), short);
            }
            if self.store.info.as_ref().is_some_and(|i| i.weights.is_some()) {
                // The trainer looks at imported weights before its first step: on a large folder that takes a while.
                let t = "Inspecting the imported weights on the data (evaluations with running and batch statistics, \
                         a recalibration) before the first step…"
                    .to_string();
                return d(Tone::Info, t, "Inspecting the imported weights…".into());
            }
            if let Some(l) = self.lesson() {
                let t = format!("Lesson: {}. {}", l.title, l.text);
                return d(Tone::Info, t, format!("Lesson: {}.", l.title));
            }
            let t = if self.paused {
                "Paused before the first epoch: space runs the training, n runs one epoch.".to_string()
            } else {
                "Waiting for the first epoch…".to_string()
            };
            return d(Tone::Info, t.clone(), t);
        };
        let (prefix, short_prefix) = match (&self.store.phase, self.paused) {
            (Phase::Finished { epochs, .. }, _) => {
                (format!("Finished after {epochs} epochs. "), "Finished. ".to_string())
            }
            (_, true) if self.store.diverged.is_none() => (
                "Paused: n runs one epoch, space resumes. ".to_string(),
                "Paused. ".to_string(),
            ),
            _ => (String::new(), String::new()),
        };
        let (p, sp) = (prefix.as_str(), short_prefix.as_str());
        let losses = [m.train.loss, m.eval_running.loss, m.eval_batch.loss];
        let log = self.store.from_log;
        if let Some((epoch, loss, what)) = &self.store.diverged {
            // The same words as on stderr and in headless runs.
            let msg = crate::outcome::diverged_message(*epoch, *loss, what);
            // Capitalised at the start of the line, the same words after.
            let msg = format!("{}{}", msg[..1].to_uppercase(), &msg[1..]);
            let paused = if self.paused { " The trainer paused:" } else { "" };
            let (keys, short_keys) = if log {
                ("", "")
            } else {
                (" R restarts with new weights, q quits.", " R restarts.")
            };
            return d(
                Tone::Bad,
                format!("{warn} {p}{msg}.{paused}{keys}"),
                format!("{warn} {sp}{msg}.{short_keys}"),
            );
        }
        if let Some(words) = self.rank_diagnosis() {
            return words;
        }
        if let Some((_, text)) = self
            .store
            .warnings
            .iter()
            .find(|(k, _)| *k == EventKind::OneValuePerChannel)
        {
            let layers = text
                .split(" in ")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .unwrap_or("some layers");
            return d(
                Tone::Warn,
                format!(
                    "{warn} {p}One value per channel: a training batch reached {layers} as a 1×1 map of one image, \
                     so its batch variance is 0 and pulls the running variance toward 0 (PyTorch refuses this). \
                     Use a larger batch or larger images."
                ),
                format!("{warn} {sp}One value per channel in {layers}: use a larger batch or larger images."),
            );
        }
        if losses.iter().flatten().any(|l| !l.is_finite()) {
            return if log {
                d(
                    Tone::Bad,
                    format!("{warn} A loss is not finite (NaN/Inf) at this epoch: the run diverged; a smaller learning rate helps."),
                    format!("{warn} A loss is NaN/Inf at this epoch."),
                )
            } else {
                d(
                    Tone::Bad,
                    format!(
                        "{warn} {p}A loss is not finite (NaN/Inf). Restart with new weights (R), or run again with a \
                         smaller --lr."
                    ),
                    format!("{warn} {sp}A loss is NaN/Inf. R restarts with new weights."),
                )
            };
        }
        if self.store.info.as_ref().is_some_and(|i| i.batch_size == 1) {
            return d(
                Tone::Warn,
                format!(
                    "{warn} {p}Batch size 1: each batch's statistics are one image's, so train-mode BatchNorm \
                     is degenerate and the running stats chase single images. Use a larger batch."
                ),
                format!("{warn} {sp}Batch size 1: train-mode BN is degenerate; running stats chase single images."),
            );
        }
        let sep = th.sep();
        // A log may lack either side of the gap: then say what it has and what it lacks.
        let (Some(train), Some(run)) = (m.train.acc, m.eval_running.acc) else {
            let lacks = match (m.train.acc, m.eval_running.acc) {
                (None, None) => "training accuracy and no evaluation with running statistics",
                (None, _) => "training accuracy",
                _ => "evaluation with running statistics",
            };
            let figures = format!(
                "train {}{sep}{w} running {}{sep}{w} batch {}",
                acc_or_missing(m.train.acc),
                acc_or_missing(m.eval_running.acc),
                acc_or_missing(m.eval_batch.acc)
            );
            return d(
                Tone::Info,
                format!("{p}This log has no {lacks}, so the train/eval gap cannot be shown: {figures}."),
                format!("{sp}No {lacks} in this log: {figures}."),
            );
        };
        let bat = m.eval_batch.acc;
        let gap = train - run;
        let age = self.store.age;
        let trav = age.map(|a| a.travelled());
        let trav_text = trav.map_or_else(|| format!("(how far: {})", super::fmt::MISSING), percent);
        if let Some(l) = self.lesson().filter(|l| l.scenario != crate::lesson::Scenario::Seed) {
            let why = l.scenario.diagnose(train, run, bat.unwrap_or(f32::NAN), m.eval_ema);
            let long = if self.intro_active() {
                let ema = m
                    .eval_ema
                    .map_or(String::new(), |e| format!(" Now: EMA model {}.", acc(e.acc)));
                format!("Lesson: {}. {}{ema}", l.title, l.text)
            } else {
                format!("{p}{}: {why}", l.title)
            };
            let ema = m
                .eval_ema
                .map_or(String::new(), |e| format!("{sep}EMA model {}", acc(e.acc)));
            let short = format!(
                "{sp}{}: train {}{sep}running {}{sep}batch {}{ema}",
                l.title,
                acc(train),
                acc(run),
                acc_or_missing(bat)
            );
            return d(Tone::Info, long, short);
        }
        if self.intro_active() {
            if let (Some(trav), Some(age), Some(bat)) = (trav, age, bat) {
                let right = self
                    .right_count(EvalMode::Running)
                    .map_or(String::new(), |(r, n)| format!(" ({r} of {n} right)"));
                let pace = self
                    .pace
                    .map_or("at full speed".to_string(), |p| format!("at {}", super::fmt::pace(p)));
                let left = age.updates_to_one_percent(self.momentum).unwrap_or(0);
                return d(
                    Tone::Warn,
                    format!(
                        "{warn} This is the seed's situation: after {} epochs training accuracy is {} and evaluation \
                         with batch statistics {}, but evaluation with the running statistics (model.evaluate, \
                         PyTorch eval()) gives {}{right}: at momentum {} they have travelled only {} from their start \
                         (mean 0, variance 1). Space watches them catch up ({left} more updates, {pace}); - lowers \
                         the momentum; c recalibrates.",
                        m.epoch,
                        acc(train),
                        acc(bat),
                        acc(run),
                        super::fmt::momentum(self.momentum),
                        percent(trav)
                    ),
                    format!(
                        "{warn} The seed's situation: train {} but eval with running stats {}: they travelled only \
                         {}. Space: watch them catch up; -: lower momentum; c: recalibrate.",
                        acc(train),
                        acc(run),
                        percent(trav)
                    ),
                );
            }
        }
        if let (EvalMode::Batch, Some(bat)) = (self.eval_mode, bat) {
            if gap > 0.2 {
                return d(
                    Tone::Warn,
                    format!(
                        "{p}The headline uses batch statistics ({}), like Keras learning_phase=1. model.evaluate \
                         would use the running stats and report {}: press e to see it.",
                        acc(bat),
                        acc(run)
                    ),
                    format!(
                        "{sp}Headline: batch stats ({}). model.evaluate (running stats) reports {}: press e.",
                        acc(bat),
                        acc(run)
                    ),
                );
            }
        }
        let start = self.store.age.map_or(0.0, |a| a.init_weight);
        if self.cumulative && start > 1e-12 {
            // Switched to cumulative mid-run: PyTorch's rule (update t weighs 1/t) does not make a mean then.
            let t = self.store.t().unwrap_or(0);
            let left = percent(start);
            return d(
                if gap > 0.2 { Tone::Warn } else { Tone::Info },
                format!(
                    "{p}Cumulative averaging (PyTorch momentum=None): update t weighs 1/t, t={t} counting every update \
                     since the reset, so after a switch mid-run the running stats are not the mean of {t} batches: \
                     {left} is still the start (0, 1). r resets them (then they are a plain mean). {w_cap} with \
                     running stats {} vs train {}.",
                    acc(run),
                    acc(train)
                ),
                format!(
                    "{sp}Cumulative after a switch: 1/t per update, {left} still the start. {w_cap} running {} vs \
                     train {}.",
                    acc(run),
                    acc(train)
                ),
            );
        }
        if self.cumulative {
            let t = self
                .store
                .t()
                .map_or_else(|| "its".to_string(), |t| format!("all {}", super::fmt::batches(t)));
            return d(
                if gap > 0.2 { Tone::Warn } else { Tone::Info },
                format!(
                    "{p}Cumulative averaging: the running stats are the plain mean of {t} since the \
                     reset, so early batches (older weights) weigh as much as new ones. {w_cap} with running stats \
                     {} vs train {}.",
                    acc(run),
                    acc(train)
                ),
                format!(
                    "{sp}Cumulative: running stats = mean of {t}. {w_cap} running {} vs train {}.",
                    acc(run),
                    acc(train)
                ),
            );
        }
        // On held-out images a gap that batch statistics do not close is the network's, not BatchNorm's: it does
        // not generalise to those images (too few training images, overfitting).
        if let (EvalOn::Val, Some(bat)) = (on, bat) {
            if gap > 0.2 && bat - run < 0.1 && train - bat > 0.2 {
                return d(
                    Tone::Info,
                    format!(
                        "{p}Training accuracy is {} but on the held-out images both evaluations are low (running \
                         stats {}, batch stats {}): the network does not generalise to them (too few training \
                         images, overfitting); the running statistics are not the cause. The BatchNorm gap on this \
                         data is val batch − val running.",
                        acc(train),
                        acc(run),
                        acc(bat)
                    ),
                    format!(
                        "{sp}Train {} but val running {} and val batch {}: a generalisation gap, not BatchNorm's.",
                        acc(train),
                        acc(run),
                        acc(bat)
                    ),
                );
            }
        }
        if let Some(norm) = self.store.norm_without_running() {
            return d(
                if gap > 0.2 { Tone::Warn } else { Tone::Info },
                format!(
                    "{p}{norm}: no running statistics, so evaluation normalises each image as training does. Train \
                     {}{sep}{w} {}: a gap here is the network's, not the normalisation's.",
                    acc(train),
                    acc(run)
                ),
                format!(
                    "{sp}{norm}: no running statistics. Train {}{sep}{w} {}.",
                    acc(train),
                    acc(run)
                ),
            );
        }
        if let Some(f) = self.store.frozen_stats() {
            if gap > 0.2 {
                return d(
                    Tone::Warn,
                    format!(
                        "{warn} {p}Frozen BatchNorm ({f}): the running statistics never move in training, so \
                         evaluation ({}) uses statistics from before the fine-tuning while training ({}) does not. \
                         c re-estimates them from the data.",
                        acc(run),
                        acc(train)
                    ),
                    format!(
                        "{warn} {sp}Frozen BN ({f}): running stats never move; {w} {} vs train {}. c re-estimates \
                         them.",
                        acc(run),
                        acc(train)
                    ),
                );
            }
        }
        if gap > 0.2 {
            return match trav {
                Some(trav) if trav < 0.9 => d(
                    Tone::Warn,
                    format!(
                        "{warn} {p}Training accuracy is {} but evaluation uses moving statistics that are only {} \
                         of the way from their start to the batch statistics: the network sees inputs it was never \
                         trained on. {}",
                        acc(train),
                        percent(trav),
                        self.catch_up_advice()
                    ),
                    format!(
                        "{warn} {sp}Train acc {} but {w} with running stats {}: they travelled only {}. {}",
                        acc(train),
                        acc(run),
                        percent(trav),
                        self.catch_up_advice()
                    ),
                ),
                _ => {
                    let (fix, short_fix) = if log {
                        (
                            "Recalibrate them after training (a pass over training data in train mode, weights \
                             frozen), or use a lower momentum so that they follow the weights more closely.",
                            "recalibrate after training.",
                        )
                    } else {
                        (
                            "Recalibrate (c) to re-estimate them with today's weights, or lower the momentum (-) so \
                             that they follow the weights more closely.",
                            "recalibrate (c).",
                        )
                    };
                    let why = if trav.is_some() {
                        "but they average batches computed with older weights"
                    } else {
                        "they are not the statistics the network trained with"
                    };
                    d(
                        Tone::Warn,
                        format!(
                            "{warn} {p}Training accuracy is {} but evaluation with running stats gives {}: the stats \
                             have travelled {trav_text}, {why}. {fix}",
                            acc(train),
                            acc(run),
                        ),
                        format!(
                            "{warn} {sp}Train acc {} but {w} with running stats {} although they travelled \
                             {trav_text}: {short_fix}",
                            acc(train),
                            acc(run),
                        ),
                    )
                }
            };
        }
        if train >= 0.99 && gap.abs() <= 0.05 {
            let check = th.check();
            return d(
                Tone::Good,
                format!(
                    "{check} {p}Converged: evaluation with running stats matches training ({} vs {}); the running \
                     stats have travelled {trav_text}.",
                    acc(run),
                    acc(train),
                ),
                format!(
                    "{check} {sp}Converged: {w} with running stats {} = train {} (travelled {trav_text}).",
                    acc(run),
                    acc(train),
                ),
            );
        }
        d(
            Tone::Info,
            format!(
                "{p}Training: train {}{sep}{w} running {}{sep}{w} batch {}. Running stats travelled {trav_text}.",
                acc(train),
                acc(run),
                acc_or_missing(bat),
            ),
            format!(
                "{sp}Train {}{sep}{w} running {}{sep}{w} batch {}{sep}travelled {trav_text}.",
                acc(train),
                acc(run),
                acc_or_missing(bat),
            ),
        )
    }

    /// Several rank logs whose running statistics are apart: the diagnosis says so first (the classic "no
    /// SyncBatchNorm, small per-GPU batch" problem).
    fn rank_diagnosis(&self) -> Option<Diagnosis> {
        let (epoch, spreads) = self.rank_spread()?;
        let (worst, name) = spreads.first()?;
        if *worst <= crate::logfile::RANK_SPREAD_WARN {
            return None;
        }
        let warn = self.theme.warn();
        let pct = format!("{:.1}%", 100.0 * worst);
        Some(Diagnosis {
            tone: Tone::Warn,
            long: format!(
                "{warn} Ranks apart: their running means differ by up to {pct} ({name}, epoch {epoch}). Each GPU \
                 averages only its own batches (no SyncBatchNorm): use SyncBatchNorm or larger per-GPU batches, or \
                 recalibrate after training."
            ),
            short: format!("{warn} Ranks apart: running means up to {pct} ({name}); use SyncBatchNorm."),
        })
    }

    /// `1 % needs 459 updates: 454 to go`, or why not.
    /// What helps the running stats catch up, given where they are: with many updates left, lowering the
    /// momentum or recalibrating; with few left at a lowered momentum, just letting it run.
    fn catch_up_advice(&self) -> String {
        let Some(age) = self.store.age else {
            return String::new();
        };
        let left = age.updates_to_one_percent(self.momentum);
        if self.store.from_log {
            // A log cannot be changed: what the user can do in their own code.
            return match left {
                Some(n) => format!(
                    "At momentum {} they needed {n} more update{}: a lower momentum, or a recalibration after \
                     training, closes the gap.",
                    super::fmt::momentum(self.momentum),
                    if n == 1 { "" } else { "s" }
                ),
                None => "At momentum 1 they never move: lower it, or recalibrate after training.".to_string(),
            };
        }
        match left {
            Some(n) if n <= 50 && !self.paused => {
                format!(
                    "At momentum {} they catch up in {n} more update{}; c re-estimates them at once.",
                    super::fmt::momentum(self.momentum),
                    if n == 1 { "" } else { "s" }
                )
            }
            Some(n) if n <= 50 => format!(
                "At momentum {} they catch up in {n} more update{} (space runs); c re-estimates them at once.",
                super::fmt::momentum(self.momentum),
                if n == 1 { "" } else { "s" }
            ),
            Some(n) => format!(
                "{n} more updates at momentum {}: lower it (-) to catch up faster, or recalibrate (c) now.",
                super::fmt::momentum(self.momentum)
            ),
            None => "At momentum 1 they never move: lower it (-) or recalibrate (c).".to_string(),
        }
    }

    /// How many more updates at the current momentum until the start weighs at most 1 %: from the exact start
    /// weight `w` (`⌈ln(0.01/w)/ln m⌉`), so it stays right after momentum changes, resets and recalibrations.
    pub(crate) fn convergence_words(&self) -> String {
        let Some(age) = &self.store.age else {
            return format!("updates t: {}", super::fmt::MISSING);
        };
        let t = age.t;
        if let Some(norm) = self.store.norm_without_running() {
            return format!("{norm}: no running statistics");
        }
        if let Some(f) = self.store.frozen_stats() {
            return format!("frozen BN ({f}): running stats never move in training (c re-estimates them)");
        }
        if self.cumulative {
            return if age.init_weight > 1e-12 {
                format!("cumulative: 1/t per update (t={t})")
            } else {
                format!(
                    "cumulative: the mean of t={t} {}",
                    if t == 1 { "batch" } else { "batches" }
                )
            };
        }
        let m = self.momentum;
        let Some(to_go) = age.updates_to_one_percent(m) else {
            return "m = 1: the running stats never move".to_string();
        };
        // While every update so far used this momentum, say it as the closed form the seed story uses.
        let constant = t == 0 || age.constant_momentum == Some(m);
        match (steps_to_one_percent(m), to_go) {
            (Some(n), 0) if constant => format!("within 1% after {n} updates (t={t})"),
            (_, 0) => format!("within 1% of the batch stats (t={t})"),
            (Some(n), _) if constant => format!("1% needs {n} updates: {to_go} to go"),
            _ => format!(
                "1% in {to_go} more update{} at m {}",
                if to_go == 1 { "" } else { "s" },
                super::fmt::momentum(m)
            ),
        }
    }
}

/// The header's diagnosis line, in a long and a short form (for narrow terminals).
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnosis {
    pub tone: Tone,
    pub long: String,
    pub short: String,
}
