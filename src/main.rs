//! bnscope binary: parse flags, load data, start the trainer thread, run the TUI or headless mode.
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;
use bnscope::cli::{self, Cmd};
use bnscope::error::{exit_code, usage};
#[cfg(feature = "train")]
use bnscope::outcome::Outcome;
#[cfg(feature = "train")]
use bnscope::trainer::{Resume, TrainConfig, Trainer};
#[cfg(feature = "train")]
use bnscope::{bench, checkpoint, data, device, headless, log::JsonlLog, weights};
use bnscope::{signals, terminal};

/// The epoch the TUI pauses after to explain the screen: the seed's moment.
#[cfg(feature = "train")]
const DEFAULT_PAUSE_AT: usize = 5;

/// Allocation failure is a one-line error and exit 2, not an abort (see `bnscope::alloc`).
#[cfg(feature = "train")]
#[global_allocator]
static ALLOCATOR: bnscope::alloc::Guarded = bnscope::alloc::Guarded;

fn main() {
    terminal::install_panic_hook();
    let cli = match cli::parse() {
        Ok(c) => c,
        Err((msg, 0)) => {
            print!("{msg}");
            std::process::exit(0);
        }
        Err((msg, code)) => {
            eprintln!("{}", terminal::printable(&msg));
            std::process::exit(code);
        }
    };
    // Before any thread starts: candle's element-wise pool and the allocator settings (see `runtime::init`).
    // `bench` does this itself, and not at all with `--kernels candle`, so that column stays candle's own.
    if cli.command.is_none() {
        bnscope::runtime::init();
        // After `init`, which may set an environment variable: that must happen before other threads exist.
        bnscope::runtime::name_pool();
    }
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            terminal::restore();
            eprintln!("bnscope: error: {}", one_line(&e));
            exit_code(&e)
        }
    };
    std::process::exit(code);
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    terminal::printable(&format!("{e:#}").replace('\n', " ")).into_owned()
}

fn run(cli: cli::Cli) -> Result<i32> {
    if let Some(Cmd::Config(c)) = &cli.command {
        let flags = bnscope::prefs::Flags {
            no_config: c.no_config,
            ..Default::default()
        };
        let p = bnscope::prefs::load(&flags)?;
        let env = bnscope::prefs::process_env;
        let looked_at = bnscope::prefs::config_path(env("XDG_CONFIG_HOME").as_deref(), env("HOME").as_deref())
            .filter(|_| !c.no_config);
        print!("{}", bnscope::prefs::report(&p, looked_at.as_deref()));
        return Ok(0);
    }
    if let Some(Cmd::Compare(c)) = &cli.command {
        c.view.pace()?;
        compare_checks(&c.files)?;
        let prefs = view_prefs(&c.view)?;
        if !c.follow {
            write_csv(&c.view, &c.files)?;
        }
        if log_headless(&c.view) {
            return bnscope::compare::run_headless(&c.files);
        }
        let csv = if c.follow { csv_table(&c.view, &c.files)? } else { None };
        let code = compare_tui(&c.files, c.follow, &prefs)?;
        write_csv_at_end(csv, &c.files)?;
        return Ok(code);
    }
    if let Some(Cmd::Replay(r)) = &cli.command {
        r.view.pace()?;
        let prefs = view_prefs(&r.view)?;
        let pace = log_pace(&prefs);
        if not_ranks(&r.files)? {
            if r.epoch.is_some() {
                return Err(usage(
                    "--epoch: not with several runs that are not ranks of one run (the compare view)",
                ));
            }
            compare_checks(&r.files)?;
            write_csv(&r.view, &r.files)?;
            if log_headless(&r.view) {
                return bnscope::compare::run_headless(&r.files);
            }
            return compare_tui(&r.files, false, &prefs);
        }
        if log_headless(&r.view) {
            distinct_logs(&r.files)?;
            if let Some(e) = r.epoch {
                // A TUI flag, but a wrong one is still an error.
                let mut has = false;
                bnscope::logfile::read::stream_file(&r.files[0], false, |recs| {
                    has |= recs
                        .iter()
                        .any(|x| matches!(x, bnscope::logfile::Record::Epoch(ep) if ep.epoch == e));
                    Ok(())
                })?;
                if !has {
                    return Err(usage(format!("--epoch {e}: {} has no epoch {e}", shown(&r.files[0]))));
                }
            }
            write_csv(&r.view, &r.files)?;
            return bnscope::logfile::run_headless(&r.files);
        }
        write_csv(&r.view, &r.files)?;
        return replay_tui(r, pace, &prefs);
    }
    if let Some(Cmd::Watch(w)) = &cli.command {
        w.view.pace()?;
        let prefs = view_prefs(&w.view)?;
        let pace = log_pace(&prefs);
        if log_headless(&w.view) {
            let [file] = w.files.as_slice() else {
                return Err(usage(format!(
                    "watch --headless follows one file ({} given); the TUI follows several",
                    w.files.len()
                )));
            };
            let mut csv = csv_table(&w.view, &w.files)?;
            let mut rows = bnscope::export::Rows::new(&shown(file));
            // A row an epoch as it is printed, flushed each time; a log written anew starts at run 1 again.
            let each = |rec: Option<&bnscope::logfile::Record>| {
                let Some(t) = csv.as_mut() else { return Ok(()) };
                match rec {
                    None => rows.restart(),
                    Some(r) => {
                        if let Some(row) = rows.record(r) {
                            t.write(&row)?;
                            t.flush()?;
                        }
                    }
                }
                Ok(())
            };
            let signals = signals::install(None)?;
            return bnscope::logfile::watch_headless(file, each, || signals.try_recv().ok());
        }
        let csv = csv_table(&w.view, &w.files)?;
        let code = if not_ranks(&w.files)? {
            compare_checks(&w.files)?;
            compare_tui(&w.files, true, &prefs)?
        } else {
            watch_tui(w, pace, &prefs)?
        };
        write_csv_at_end(csv, &w.files)?;
        return Ok(code);
    }
    if let Some(Cmd::Completions(c)) = &cli.command {
        bnscope::about::completions(c.shell, bnscope::cli::command())?;
        return Ok(0);
    }
    if let Some(Cmd::Man) = &cli.command {
        bnscope::about::man(bnscope::cli::command())?;
        return Ok(0);
    }
    #[cfg(feature = "train")]
    if cli.command.is_none() {
        // A training run's TUI: the config file's preferences (a bad file stops here, exit 2).
        let a = &cli.run;
        bnscope::prefs::load(&bnscope::prefs::Flags {
            ascii: a.ascii,
            no_mouse: a.no_mouse,
            fps: a.fps,
            pace: a.pace,
            no_config: a.no_config,
        })?;
    }
    train(cli)
}

/// The viewer-only build (`--no-default-features`): `cli::parse` has already refused what would train.
#[cfg(not(feature = "train"))]
fn train(_: cli::Cli) -> Result<i32> {
    Err(usage(cli::VIEWER_ONLY))
}

/// A training run, `inspect` or `bench`.
#[cfg(feature = "train")]
fn train(cli: cli::Cli) -> Result<i32> {
    if let Some(Cmd::Bench(b)) = &cli.command {
        return if b.breakdown {
            bnscope::profile::run(b)
        } else {
            bench::run(b)
        };
    }
    let (mut a, inspect) = match cli.command {
        Some(Cmd::Inspect(i)) => (i.run, Some((i.json, i.blame_samples))),
        _ => (cli.run, None),
    };
    // A lesson fills in the flags it needs (explicit ones win), before anything is checked.
    let pretrain = bnscope::settings::apply_scenario(&mut a)?;
    a.validate()?;
    if inspect.is_some() && a.weights.is_none() {
        return Err(usage(
            "inspect: needs --weights FILE.safetensors (a PyTorch state_dict; see scripts/export_torchvision.py)",
        ));
    }
    let imported = match &a.weights {
        Some(p) => Some(std::sync::Arc::new(weights::import(p, a.model)?)),
        None => None,
    };
    let resume = match &a.resume {
        Some(p) => {
            let (tensors, meta) = checkpoint::load(p)?;
            Some(Resume { tensors, meta })
        }
        None => None,
    };
    // Flags, then the checkpoint, then the framework's and bnscope's defaults.
    let (set, notes) = bnscope::settings::resolve(
        &a,
        resume.as_ref().map(|r| &r.meta),
        imported.as_ref().map(|w| w.preset),
    )?;
    // Notices are printed once every start-up check has passed, so that a refused start stays one line.
    let mut notices = notes;
    let size = set.image_size;
    // Memory that user input asks for: checked before loading, and any later failure one line (bnscope::alloc).
    let eval_batch = a.eval_batch_size.unwrap_or(set.batch_size);
    bnscope::alloc::set_context(format!(
        "{} at --image-size {size}, --batch-size {}, eval batch {eval_batch}{}",
        set.model,
        set.batch_size,
        a.data
            .as_ref()
            .map_or(String::new(), |d| format!(", --data {}", shown(d)))
    ));
    let picked = device::pick(&a.device)?;
    bnscope::alloc::check_room(set.model, size, (set.batch_size, eval_batch), picked.device.is_cpu())?;
    notices.extend(picked.notice.clone());
    let spec = data::DataSpec::parse(a.data.as_deref())?;
    let val_transform = a.val_transform.unwrap_or_default();
    val_transform.check(set.normalize)?;
    let (ds, val) = {
        let mut opts = data::LoadOptions::new(size);
        opts.normalize = set.normalize;
        opts.memory_bound = data::LoadOptions::memory_bound_from_env()?;
        let held = bnscope::loading::HeldOut {
            dir: a.val.as_deref(),
            split: a.val_split,
        };
        bnscope::loading::load_sets(&spec, held, set.seed, &opts)?
    };
    for d in std::iter::once(&ds).chain(&val).filter(|d| d.ignored > 0) {
        notices.push(format!(
            "bnscope: ignored {} file(s) in {} that are not .png/.jpg/.jpeg",
            d.ignored,
            terminal::printable(&d.source)
        ));
    }
    if let Some(w) = &imported {
        for n in weights::notices(w, ds.classes.len())? {
            notices.push(terminal::printable(&n).into_owned());
        }
    }
    if let Some(json) = inspect {
        for n in notices {
            eprintln!("{n}");
        }
        return run_inspect(
            &set,
            (ds, val),
            picked,
            imported,
            json,
            (a.eval_batch_size, val_transform),
        );
    }
    let headless = a.headless || !std::io::stdout().is_terminal() || dumb_terminal();
    if headless && !a.headless {
        let why = if std::io::stdout().is_terminal() {
            "TERM=dumb: this terminal cannot show the TUI"
        } else {
            "stdout is not a terminal"
        };
        notices.push(format!(
            "bnscope: {why}; running headless (add --headless to silence this notice)"
        ));
    }
    let epochs = a.epochs.or(if headless { Some(20) } else { None });
    if let (Some(p), Some(r)) = (&a.resume, &resume) {
        check_epochs_left(p, r.meta.epoch, a.epochs, epochs)?;
    }
    // No output over an input or another output; the checkpoint and the weights file writable and locked, held
    // until the run ends (another bnscope writing the same file is refused at its start).
    let mut sets = vec![("--data", &ds)];
    sets.extend(
        val.as_ref()
            .map(|v| (if a.val.is_some() { "--val" } else { "--data" }, v)),
    );
    let _output_locks = bnscope::outputs::prepare(&a, &sets)?;
    let mut cfg = train_config(&set);
    cfg.epochs = epochs;
    cfg.checkpoint = a.checkpoint.clone();
    cfg.weights = imported;
    cfg.frozen_bn = set.frozen_bn;
    cfg.norm = a.norm.unwrap_or(bnscope::model::Norm::Batch);
    cfg.ema = a.ema;
    cfg.lesson = a.scenario;
    cfg.pretrain = pretrain;
    cfg.save_weights = a.save_weights.clone();
    cfg.resumed_from = a.resume.as_ref().map(|p| p.display().to_string());
    cfg.eval_batch_size = a.eval_batch_size;
    cfg.val_transform = val_transform;
    cfg.start_paused = a.paused && !headless;
    // The opening: run to the seed's moment, then pause with an explanation (TUI only).
    cfg.pause_after = match a.pause_at {
        _ if headless => None,
        Some(0) => None,
        Some(e) => Some(e),
        None if a.paused || a.resume.is_some() => None,
        // The explanation is about the seed (or a lesson): not for a folder of your own.
        None if a.data.is_some() && a.scenario.is_none() => None,
        None => Some(DEFAULT_PAUSE_AT),
    };
    // The TUI draws the newest state and keeps a bounded history, so a stalled terminal may skip epochs (the log
    // keeps them all); headless output prints every epoch.
    cfg.event_backlog = (!headless).then_some(bnscope::tui::EVENT_BACKLOG);
    cfg.pace = match a.pace {
        Some(p) if p > 0.0 => Some(p),
        Some(_) => None,
        None if headless => None,
        // The config file's or the environment's pace, else 7 (`prefs::DEFAULT_PACE`: at full speed the tiny
        // preset's running statistics converge within seconds, before a newcomer has read the screen); 0 is full
        // speed.
        None => Some(bnscope::prefs::current().pace.value).filter(|&p| p > 0.0),
    };
    // The log is opened last, so that a bad flag or file never creates one; it is only ever appended to (or, with
    // --overwrite-log, emptied).
    let log = match &a.log {
        Some(p) => Some(JsonlLog::open(p, a.log_bn, a.overwrite_log)?),
        None => None,
    };
    let mut loaded: Vec<String> = notices;
    loaded.extend(a.data.iter().map(|_| bnscope::loading::summary_line(&ds)));
    loaded.extend(val.as_ref().map(bnscope::loading::held_out_line));
    let mut trainer = Trainer::new(cfg, ds, picked.device, picked.name, log, resume)?;
    if let Some(v) = val {
        trainer.set_held_out(v)?;
    }
    for line in loaded {
        eprintln!("{line}");
    }
    let signals = signals::install(a.checkpoint.as_deref())?;
    let (link, handle) = trainer.spawn()?;
    let out = if headless {
        let out = headless::run(link, signals)?;
        let _ = handle.join();
        out
    } else {
        run_tui(link, signals, &a, handle)?
    };
    // The TUI prints nothing while it owns the screen: its errors come here, after the terminal is restored.
    for n in &out.notes {
        eprintln!("bnscope: {}", terminal::printable(n));
    }
    for m in &out.messages {
        eprintln!("bnscope: error: {}", terminal::printable(m));
    }
    if let Some(lesson) = &out.relaunch {
        return relaunch(lesson, &a);
    }
    Ok(out.exit_status())
}

/// The trainer's configuration from the resolved settings (what a run and `inspect` share).
#[cfg(feature = "train")]
fn train_config(set: &bnscope::settings::Settings) -> TrainConfig {
    let mut cfg = TrainConfig::new(set.model);
    cfg.image_size = set.image_size;
    cfg.batch_size = set.batch_size;
    cfg.momentum = set.momentum;
    cfg.cumulative = set.cumulative;
    cfg.lr = set.lr;
    cfg.optimizer = set.optimizer;
    cfg.seed = set.seed;
    cfg.framework = set.framework;
    cfg.bn_eps = set.bn_eps;
    cfg.bn_unbiased = set.bn_unbiased;
    cfg.adam_eps = set.adam_eps;
    cfg
}

/// `bnscope inspect`: the imported model on the data, no training; a report or one JSON object on stdout.
#[cfg(feature = "train")]
fn run_inspect(
    set: &bnscope::settings::Settings,
    (ds, val): (data::Dataset, Option<data::Dataset>),
    picked: device::Picked,
    imported: Option<std::sync::Arc<weights::Imported>>,
    (json, blame_samples): (bool, usize),
    (eval_batch_size, val_transform): (Option<usize>, data::ValTransform),
) -> Result<i32> {
    let mut cfg = train_config(set);
    cfg.weights = imported;
    cfg.eval_batch_size = eval_batch_size;
    cfg.val_transform = val_transform;
    let mut trainer = Trainer::new(cfg, ds, picked.device, picked.name, None, None)?;
    if let Some(v) = val {
        trainer.set_held_out(v)?;
    }
    // Progress of the blame pass (two evaluations per layer) on one line of stderr, where it is a terminal; stdout
    // (the report or the JSON) gets nothing of it.
    let tty = std::io::stderr().is_terminal();
    let progress = |done: usize, layers: usize| {
        if tty {
            eprint!("\rbnscope inspect: which layer to blame: layer {done} of {layers} ({blame_samples} images)…");
            if done == layers {
                eprint!("\r\x1b[K");
            }
        }
    };
    let report = trainer.inspect_blamed(blame_samples, &progress)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", bnscope::inspect::report(&report));
    }
    Ok(0)
}

/// `--csv FILE`: the table created (checked against the logs and refused when it exists), or `None`.
fn csv_table(v: &cli::LogViewArgs, logs: &[std::path::PathBuf]) -> Result<Option<bnscope::export::Table>> {
    v.csv
        .as_deref()
        .map(|p| bnscope::export::Table::create("--csv", p, logs))
        .transpose()
}

/// A followed view's `--csv`: the table of what the logs hold when the view ends (a log that never appeared: no
/// rows).
fn write_csv_at_end(csv: Option<bnscope::export::Table>, logs: &[std::path::PathBuf]) -> Result<()> {
    if let Some(mut t) = csv {
        let present: Vec<_> = logs.iter().filter(|f| f.exists()).cloned().collect();
        bnscope::export::write_logs(&mut t, &present)?;
    }
    Ok(())
}

/// `replay --csv FILE`: the whole table, written before the logs are shown.
fn write_csv(v: &cli::LogViewArgs, logs: &[std::path::PathBuf]) -> Result<()> {
    if let Some(mut t) = csv_table(v, logs)? {
        bnscope::export::write_logs(&mut t, logs)?;
    }
    Ok(())
}

/// `replay`/`watch` print lines instead of the TUI: asked to, or stdout is not a terminal, or TERM=dumb (no notice:
/// piping a replay is as ordinary as piping `git log`).
fn log_headless(v: &cli::LogViewArgs) -> bool {
    v.headless || !std::io::stdout().is_terminal() || dumb_terminal()
}

/// The preferences of `replay`/`watch` (config file, environment, their flags); the key table installed.
fn view_prefs(v: &cli::LogViewArgs) -> Result<bnscope::prefs::Prefs> {
    bnscope::prefs::load(&bnscope::prefs::Flags {
        ascii: v.ascii,
        no_mouse: v.no_mouse,
        fps: None,
        pace: v.pace,
        no_config: v.no_config,
    })
}

/// Playback pace: the flag's, the environment's or the config file's (whose 0, full speed for a live run, is the
/// fastest playback here).
fn log_pace(p: &bnscope::prefs::Prefs) -> f64 {
    match p.pace.value {
        x if x > 0.0 => x,
        _ => cli::MAX_PACE,
    }
}

/// The TUI's look from the preferences; the locale's switch to ASCII is said once in the status line.
fn tui_options(p: &bnscope::prefs::Prefs) -> bnscope::tui::TuiOptions {
    use bnscope::prefs::{Source, ThemeName};
    bnscope::tui::TuiOptions {
        fps: p.fps.value,
        ascii: p.ascii.value,
        no_color: p.theme.value == ThemeName::Mono,
        colorblind: p.theme.value == ThemeName::Colorblind,
        mouse: p.mouse.value,
        notice: match &p.ascii.from {
            Source::Locale(why) => Some(format!(
                "locale {why} is not UTF-8: drawing in ASCII (config.toml: ascii = false)"
            )),
            _ => None,
        },
        ..Default::default()
    }
}

fn shown(p: &Path) -> String {
    terminal::printable(&p.display().to_string()).into_owned()
}

/// The same file given twice (also through a link) would be drawn as two ranks that agree.
fn distinct_logs(files: &[std::path::PathBuf]) -> Result<()> {
    for (i, a) in files.iter().enumerate() {
        for b in &files[..i] {
            if bnscope::files::same_file(a, b) {
                return Err(usage(format!(
                    "{} and {} are the same file: give each log once",
                    shown(b),
                    shown(a)
                )));
            }
        }
    }
    Ok(())
}

/// Several logs that are not the ranks of one run (their `run` records say so): `replay` and `watch` show them in
/// the compare view. A log whose `run` record is not there yet (a watch of a file still to come) leaves the
/// rank view as it was.
fn not_ranks(files: &[std::path::PathBuf]) -> Result<bool> {
    if files.len() < 2 {
        return Ok(false);
    }
    let mut runs = Vec::new();
    for f in files {
        runs.push(first_run(f));
    }
    let refs: Vec<Option<&bnscope::logfile::Run>> = runs.iter().map(|r| r.as_deref()).collect();
    Ok(bnscope::compare::are_ranks(&refs) == Some(false))
}

/// A log's `run` record, from its first megabyte (`None`: not there, not readable, not a log).
fn first_run(path: &Path) -> Option<Box<bnscope::logfile::Run>> {
    use std::io::Read;
    let (f, _) = bnscope::logfile::read::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(bnscope::logfile::read::CHUNK as u64)
        .read_to_end(&mut buf)
        .ok()?;
    let mut r = bnscope::logfile::Reader::lite();
    let mut recs = r.push_bytes(&buf).ok()?;
    recs.extend(r.finish().ok()?);
    recs.into_iter().find_map(|x| match x {
        bnscope::logfile::Record::Run(r) => Some(r),
        _ => None,
    })
}

/// What `compare` refuses (one line, exit 2): fewer than two logs, more than it shows, a file given twice.
fn compare_checks(files: &[std::path::PathBuf]) -> Result<()> {
    use bnscope::compare::MAX_RUNS;
    if files.len() < 2 {
        return Err(usage(format!(
            "compare: {} log given: it compares 2 to {MAX_RUNS} (`bnscope replay FILE` shows one)",
            files.len()
        )));
    }
    if files.len() > MAX_RUNS {
        return Err(usage(format!(
            "compare: {} logs given: it compares at most {MAX_RUNS} (one colour and marker each)",
            files.len()
        )));
    }
    distinct_logs(files)
}

/// The compare view in the TUI: a first look at each file (a replay: what is not a log is exit 2), then one
/// follower thread per file.
fn compare_tui(files: &[std::path::PathBuf], follow: bool, prefs: &bnscope::prefs::Prefs) -> Result<i32> {
    // The first look refuses what cannot be shown; the view then reads each file from its start with its own
    // followers (what the first look read is in the timeline of the one-run view, which compare does not use).
    first_look(files, follow)?;
    let opts = tui_options(prefs);
    let theme = bnscope::tui::theme::Theme::new(opts.ascii, opts.no_color);
    let names = files.iter().map(|p| (shown(p), Some(p.clone()))).collect();
    let v = bnscope::tui::compare::CompareView::new(names, theme, follow);
    let signals = signals::install(None)?;
    let source = bnscope::tui::compare::CompareSource {
        view: v,
        followers: files.iter().map(|p| bnscope::logfile::Follower::new(p)).collect(),
        once: !follow,
    };
    let out = bnscope::tui::compare::run(source, signals)?;
    Ok(out.exit_status())
}

/// A first look at each log before the screen opens: what cannot be shown is exit 2 (a replay also needs the
/// file to be there, and a `run` record). Returns the timeline so far and the followers that read on.
fn first_look(
    files: &[std::path::PathBuf],
    watch: bool,
) -> Result<(bnscope::tui::timeline::Timeline, Vec<bnscope::logfile::Follower>)> {
    use bnscope::logfile::{Followed, Follower};
    use bnscope::tui::timeline::{FileState, Timeline};
    distinct_logs(files)?;
    let mut tl = Timeline::new(files.iter().map(|p| shown(p)).collect(), watch);
    let mut followers = Vec::new();
    for (i, path) in files.iter().enumerate() {
        if !watch {
            bnscope::logfile::read::open(path)?;
        }
        let mut f = Follower::new(path);
        tl.files[i].path = Some(path.clone());
        let mut found = f.poll();
        if !watch && !f.behind() {
            found.extend(f.finish());
        }
        for x in found {
            match x {
                Followed::Refused(msg) => return Err(usage(msg)),
                Followed::Waiting => tl.files[i].state = FileState::Waiting,
                Followed::Records(recs) => {
                    tl.files[i].state = FileState::Reading;
                    tl.take(i, recs);
                }
                Followed::Skipped {
                    bad_lines,
                    unknown,
                    long_lines,
                } => {
                    tl.files[i].skipped = (bad_lines, unknown);
                    tl.files[i].long_lines = long_lines;
                }
                Followed::Progress { read, size } => tl.files[i].progress = Some((read, size)),
                Followed::Following | Followed::StartingOver { .. } => tl.files[i].state = FileState::Reading,
            }
        }
        if !watch && !f.behind() && !f.seen_run() {
            return Err(usage(format!("{}: empty: no `run` record", shown(path))));
        }
        followers.push(f);
    }
    Ok((tl, followers))
}

/// `bnscope replay FILE…` in the TUI: a first look at every file (what is not a log: exit 2), then the screen
/// opens at once while the rest is read in the background (a long log shows its first epochs within a second).
/// `--epoch N` reads the whole first file first, to open there.
fn replay_tui(r: &cli::ReplayArgs, pace: f64, prefs: &bnscope::prefs::Prefs) -> Result<i32> {
    use bnscope::logfile::Followed;
    let (mut tl, mut followers) = first_look(&r.files, false)?;
    if let Some(e) = r.epoch {
        let f = &mut followers[0];
        while f.behind() {
            for x in f.poll() {
                match x {
                    Followed::Records(recs) => {
                        tl.take(0, recs);
                    }
                    Followed::Refused(msg) => return Err(usage(msg)),
                    _ => {}
                }
            }
        }
        for x in f.finish() {
            if let Followed::Records(recs) = x {
                tl.take(0, recs);
            }
        }
        let Some(i) = tl.entries.iter().position(|x| x.epoch == e) else {
            let last = tl.entries.last().map_or(0, |x| x.epoch);
            return Err(usage(format!(
                "--epoch {e}: {} has no epoch {e} (its epochs end at {last})",
                shown(&r.files[0])
            )));
        };
        tl.go(i);
    }
    let signals = signals::install(None)?;
    let source = bnscope::tui::LogSource {
        timeline: tl,
        followers,
        pace,
        once: true,
    };
    let out = bnscope::tui::run_log(source, signals, tui_options(prefs))?;
    Ok(out.exit_status())
}

/// `bnscope watch FILE…` in the TUI: a first look at each file before the screen opens (a file that is there but
/// is not a bnscope log: exit 2), then one follower thread per file.
fn watch_tui(w: &cli::WatchArgs, pace: f64, prefs: &bnscope::prefs::Prefs) -> Result<i32> {
    let (tl, followers) = first_look(&w.files, true)?;
    let signals = signals::install(None)?;
    let source = bnscope::tui::LogSource {
        timeline: tl,
        followers,
        pace,
        once: false,
    };
    let out = bnscope::tui::run_log(source, signals, tui_options(prefs))?;
    Ok(out.exit_status())
}

/// `L` chose a lesson: this process becomes `bnscope --scenario NAME` (with the same display flags). The run that
/// ended has written its log, checkpoint and weights; the files bnscope holds are closed on exec.
#[cfg(feature = "train")]
fn relaunch(lesson: &str, a: &cli::RunArgs) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    // The running binary; if it was replaced meanwhile (a rebuild), whatever the shell started as argv[0].
    let exe = std::env::current_exe()
        .ok()
        .filter(|p| p.exists())
        .or_else(|| std::env::args_os().next().map(std::path::PathBuf::from))
        .ok_or_else(|| anyhow::anyhow!("cannot start the lesson {lesson}: where is the bnscope binary?"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--scenario", lesson, "--device", &a.device]);
    if let Some(fps) = a.fps {
        cmd.args(["--fps", &fps.to_string()]);
    }
    if a.no_config {
        cmd.arg("--no-config");
    }
    if a.ascii {
        cmd.arg("--ascii");
    }
    if a.no_mouse {
        cmd.arg("--no-mouse");
    }
    let err = cmd.exec();
    Err(anyhow::anyhow!("cannot start the lesson {lesson}: {err}"))
}

/// `TERM=dumb`: no cursor movement, no alternate screen, no colours (Emacs' shell, some CI consoles).
fn dumb_terminal() -> bool {
    std::env::var("TERM").is_ok_and(|t| t == "dumb")
}

/// A resumed run must have epochs left to train: `--epochs` counts the resumed ones.
#[cfg(feature = "train")]
fn check_epochs_left(resume: &Path, at: usize, given: Option<usize>, total: Option<usize>) -> Result<()> {
    let Some(total) = total else { return Ok(()) };
    if at < total {
        return Ok(());
    }
    let shown = terminal::printable(&resume.display().to_string()).into_owned();
    Err(usage(match given {
        Some(n) => format!(
            "--epochs {n}: the checkpoint {shown} is already at epoch {at} (--epochs counts the resumed ones); pass \
             --epochs {} or more to train on",
            at + 1
        ),
        None => format!(
            "--resume {shown}: the checkpoint is already at epoch {at}, past the {total} a headless run trains by \
             default; pass --epochs {} or more to train on",
            at + 1
        ),
    }))
}

#[cfg(feature = "train")]
fn run_tui(
    link: bnscope::protocol::Link,
    signals: crossbeam_channel::Receiver<i32>,
    a: &cli::RunArgs,
    handle: std::thread::JoinHandle<()>,
) -> Result<Outcome> {
    let opts = bnscope::tui::TuiOptions {
        data_label: a
            .data
            .as_ref()
            .map(|d| terminal::printable(&d.display().to_string()).into_owned())
            .unwrap_or_else(|| "embedded seed3".into()),
        checkpoint: a.checkpoint.as_ref().map(|c| c.display().to_string()),
        clock: true,
        ..tui_options(&bnscope::prefs::current())
    };
    let out = bnscope::tui::run(link, signals, opts)?;
    // The trainer has sent Finished, unless the user stopped waiting for it: then don't wait here either.
    if handle.is_finished() {
        let _ = handle.join();
    }
    Ok(out)
}
