//! bnscope binary: parse flags, load data, start the trainer thread, run the TUI or headless mode.
use std::io::IsTerminal;

use anyhow::Result;
use bnscope::cli::{self, Cmd};
use bnscope::error::exit_code;
use bnscope::protocol::EndReason;
use bnscope::trainer::{Resume, TrainConfig, Trainer};
use bnscope::{bench, checkpoint, data, device, headless, log::JsonlLog, signals, terminal};

/// Epochs a second in the TUI unless `--pace` says otherwise: at full speed the tiny preset's running statistics
/// converge by themselves within seconds, before a newcomer has read the screen. At 7 the default run's catch-up
/// (about 400 epochs at momentum 0.99) takes about a minute.
const DEFAULT_TUI_PACE: f64 = 7.0;
/// The epoch the TUI pauses after to explain the screen: the seed's moment.
const DEFAULT_PAUSE_AT: usize = 5;

fn main() {
    terminal::install_panic_hook();
    let cli = match cli::parse() {
        Ok(c) => c,
        Err((msg, 0)) => {
            print!("{msg}");
            std::process::exit(0);
        }
        Err((msg, code)) => {
            eprintln!("{msg}");
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
    format!("{e:#}").replace('\n', " ")
}

fn run(cli: cli::Cli) -> Result<i32> {
    if let Some(Cmd::Bench(b)) = &cli.command {
        return if b.breakdown {
            bnscope::profile::run(b)
        } else {
            bench::run(b)
        };
    }
    let a = cli.run;
    a.validate()?;
    let resume = match &a.resume {
        Some(p) => {
            let (tensors, meta) = checkpoint::load(p)?;
            Some(Resume { tensors, meta })
        }
        None => None,
    };
    // Flags, then the checkpoint, then the framework's and bnscope's defaults.
    let (set, notes) = bnscope::settings::resolve(&a, resume.as_ref().map(|r| &r.meta))?;
    for n in notes {
        eprintln!("{n}");
    }
    let size = set.image_size;
    let picked = device::pick(&a.device)?;
    if let Some(n) = &picked.notice {
        eprintln!("{n}");
    }
    let ds = match &a.data {
        Some(dir) => data::load_dir(dir, size)?,
        None => data::embedded(size)?,
    };
    if ds.ignored > 0 {
        eprintln!(
            "bnscope: ignored {} file(s) in {} that are not .png/.jpg/.jpeg",
            ds.ignored, ds.source
        );
    }
    if let Some(c) = &a.checkpoint {
        checkpoint::check_writable(c)?;
    }
    let headless = a.headless || !std::io::stdout().is_terminal();
    if headless && !a.headless {
        eprintln!("bnscope: stdout is not a terminal; running headless (add --headless to silence this notice)");
    }
    let mut cfg = TrainConfig::new(set.model);
    cfg.image_size = size;
    cfg.batch_size = set.batch_size;
    cfg.momentum = set.momentum;
    cfg.cumulative = set.cumulative;
    cfg.lr = set.lr;
    cfg.optimizer = set.optimizer;
    cfg.epochs = a.epochs.or(if headless { Some(20) } else { None });
    cfg.seed = set.seed;
    cfg.framework = set.framework;
    cfg.bn_eps = set.bn_eps;
    cfg.bn_unbiased = set.bn_unbiased;
    cfg.adam_eps = set.adam_eps;
    cfg.checkpoint = a.checkpoint.clone();
    cfg.resumed_from = a.resume.as_ref().map(|p| p.display().to_string());
    cfg.start_paused = a.paused && !headless;
    // The opening: run to the seed's moment, then pause with an explanation (TUI only).
    cfg.pause_after = match a.pause_at {
        _ if headless => None,
        Some(0) => None,
        Some(e) => Some(e),
        None if a.paused || a.resume.is_some() => None,
        None => Some(DEFAULT_PAUSE_AT),
    };
    // The TUI draws the newest state and keeps a bounded history, so a stalled terminal may skip epochs (the log
    // keeps them all); headless output prints every epoch.
    cfg.event_backlog = (!headless).then_some(bnscope::tui::EVENT_BACKLOG);
    cfg.pace = match a.pace {
        Some(p) if p > 0.0 => Some(p),
        Some(_) => None,
        None if headless => None,
        None => Some(DEFAULT_TUI_PACE),
    };
    // The log is created last, so that a bad flag or file never truncates an existing log.
    let log = match &a.log {
        Some(p) => Some(JsonlLog::create(p, a.log_bn)?),
        None => None,
    };
    let trainer = Trainer::new(cfg, ds, picked.device, picked.name, log, resume)?;
    let signals = signals::install()?;
    let (link, handle) = trainer.spawn()?;
    if headless {
        let out = headless::run(link, signals)?;
        let _ = handle.join();
        return Ok(match (out.signal, out.reason) {
            (Some(sig), _) => signals::exit_status(sig),
            (None, EndReason::Error) => 1,
            _ => 0,
        });
    }
    run_tui(link, signals, &a, handle)
}

fn run_tui(
    link: bnscope::protocol::Link,
    signals: crossbeam_channel::Receiver<i32>,
    a: &cli::RunArgs,
    handle: std::thread::JoinHandle<()>,
) -> Result<i32> {
    let opts = bnscope::tui::TuiOptions {
        fps: a.fps,
        ascii: a.ascii,
        no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        data_label: a
            .data
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "embedded seed3".into()),
    };
    let reason = bnscope::tui::run(link, signals, opts)?;
    // The trainer has sent Finished (or was given time to); don't hang on a stuck one.
    if handle.is_finished() {
        let _ = handle.join();
    }
    Ok(match reason {
        EndReason::Error => 1,
        EndReason::Signal => signals::first_signal().map(signals::exit_status).unwrap_or(1),
        _ => 0,
    })
}
