//! End-to-end tests of the real binary in a pseudo-terminal (portable-pty + vt100).
//!
//! * `keys_then_q`, `sigterm_restores_terminal`, `sighup_restores_terminal`: launch `bnscope --device cpu`
//!   at 120×40 with TERM=xterm-256color, drive it, and check that the terminal is restored (alternate
//!   screen left, cursor shown) and the exit status.
//! * `measure` (ignored; run by `scripts/tui-measure.sh`): bytes/s written to the terminal during steady
//!   training, CPU % of the UI thread, key-to-screen latency.
//!
//! Run: `cargo test --release --test tui_pty` (add `-- --nocapture` to see the screens on failure).
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bnscope::protocol::{BnSlot, Command, Event, EventKind, Latest, Link};
use bnscope::tui::{fixtures, TuiOptions};
use crossbeam_channel::{unbounded, Receiver, Sender};
use portable_pty::{native_pty_system, Child, CommandBuilder, ExitStatus, MasterPty, PtySize};

const COLS: u16 = 120;
const ROWS: u16 = 40;
/// The first frame needs the trainer to build the model; generous for a loaded 2-core CI box.
const FIRST_FRAME: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(10);

struct Session {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    parser: Arc<Mutex<vt100::Parser>>,
    /// Bytes the program wrote to the terminal so far.
    bytes: Arc<AtomicU64>,
    /// The first MiB of them, raw (to look for escape sequences).
    raw: Arc<Mutex<Vec<u8>>>,
    /// One message per chunk processed by the reader.
    chunks: Receiver<()>,
    reader: Option<thread::JoinHandle<()>>,
    /// While set, the reader stops reading: the terminal stalls like a frozen SSH connection.
    stalled: Arc<AtomicBool>,
    master: Box<dyn MasterPty + Send>,
    _dir: tempfile::TempDir,
}

impl Session {
    fn spawn(args: &[&str]) -> Session {
        // BNSCOPE_BIN tests another build of the binary (scripts/gpu-check.sh runs the CUDA build this way).
        let bin = std::env::var("BNSCOPE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bnscope").to_string());
        Session::spawn_program(&bin, args, &[])
    }

    /// This test binary re-run as a child that runs `bnscope::tui::run` against a scripted trainer
    /// (see `fake_child`): tests the UI loop end to end without the real trainer.
    fn spawn_fake(hz: u32) -> Session {
        let exe = std::env::current_exe().expect("current_exe");
        let hz = hz.to_string();
        Session::spawn_program(
            exe.to_str().expect("utf-8 path"),
            &["--exact", "fake_child", "--ignored", "--nocapture", "--test-threads=1"],
            &[("BNSCOPE_FAKE_CHILD", "1"), ("BNSCOPE_FAKE_HZ", hz.as_str())],
        )
    }

    fn spawn_program(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Session {
        let pty = native_pty_system();
        let pair = pty
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        cmd.cwd(dir.path());
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        // A UTF-8 locale and no config file of the user's (#27: either would change what is drawn).
        cmd.env("LANG", "C.UTF-8");
        cmd.env_remove("LC_ALL");
        cmd.env_remove("LC_CTYPE");
        cmd.env("XDG_CONFIG_HOME", dir.path());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawn bnscope");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let parser = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let bytes = Arc::new(AtomicU64::new(0));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (tx, chunks) = unbounded();
        let stalled = Arc::new(AtomicBool::new(false));
        // Read in the background so that the child never blocks on a full PTY buffer.
        let reader = {
            let parser = parser.clone();
            let bytes = bytes.clone();
            let raw = raw.clone();
            let stalled = stalled.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    while stalled.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(10));
                    }
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            parser.lock().unwrap().process(&buf[..n]);
                            let mut r = raw.lock().unwrap();
                            let room = (1usize << 20).saturating_sub(r.len()).min(n);
                            r.extend_from_slice(&buf[..room]);
                            bytes.fetch_add(n as u64, Ordering::Relaxed);
                            let _ = tx.send(());
                        }
                    }
                }
            })
        };
        Session {
            child,
            writer,
            parser,
            bytes,
            raw,
            chunks,
            reader: Some(reader),
            stalled,
            master: pair.master,
            _dir: dir,
        }
    }

    /// Resizes the terminal (the child gets SIGWINCH). The emulator keeps its 120×40 grid: frames drawn for the
    /// other sizes land in it as garbage, and the last resize back to 120×40 must produce a whole clean frame.
    /// (vt100 0.16 itself panics when output for a bigger grid arrives after shrinking it to 1×1.)
    fn resize(&self, rows: u16, cols: u16) {
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize");
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::Relaxed);
    }

    fn pid(&self) -> i32 {
        self.child.process_id().expect("pid") as i32
    }

    fn screen(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Waits until the screen satisfies `pred`; returns how long that took, or None on timeout.
    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if pred(&self.screen()) {
                return Some(start.elapsed());
            }
            let left = timeout.checked_sub(start.elapsed())?;
            // Woken by the next chunk, or re-check every 50 ms.
            let _ = self.chunks.recv_timeout(left.min(Duration::from_millis(50)));
        }
    }

    fn expect(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        if self.wait_for(timeout, pred).is_none() {
            panic!("timed out waiting for {what}; screen:\n{}", self.screen());
        }
    }

    fn press(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("write key");
        self.writer.flush().expect("flush key");
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    /// Waits for the child to exit and the reader to drain its output.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("bnscope did not exit in {timeout:?}; screen:\n{}", self.screen());
            }
            thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            // EOF/EIO arrives once the child (the slave's last holder) is gone.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !r.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
        status
    }

    fn assert_restored(&self) {
        let p = self.parser.lock().unwrap();
        let s = p.screen();
        assert!(!s.alternate_screen(), "still on the alternate screen");
        assert!(!s.hide_cursor(), "cursor still hidden");
        assert_eq!(
            s.mouse_protocol_mode(),
            vt100::MouseProtocolMode::None,
            "mouse reporting still on"
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
    }
}

/// The scripted trainer: `Started`, then one epoch every `1/hz` s with a BN snapshot; obeys commands and
/// answers `Quit` with `Finished`.
fn fake_trainer(commands: Receiver<Command>, events: Sender<Event>, slot: BnSlot, hz: u32) {
    let _ = events.send(Event::Started(fixtures::run_info()));
    let (mut epoch, mut paused, mut step, mut momentum, mut t) = (0usize, false, false, 0.99f64, 0u64);
    loop {
        while let Ok(c) = commands.try_recv() {
            let applied = |what, value: String| Event::Applied { epoch, what, value };
            let ev = match c {
                Command::Quit(reason) => {
                    let _ = events.send(Event::Finished {
                        epochs: epoch,
                        reason,
                        checkpoint: None,
                    });
                    return;
                }
                Command::Pause => {
                    paused = true;
                    applied(EventKind::Pause, String::new())
                }
                Command::Resume => {
                    paused = false;
                    applied(EventKind::Resume, String::new())
                }
                Command::Step => {
                    step = true;
                    continue;
                }
                Command::SetMomentum(m) => {
                    momentum = m;
                    applied(EventKind::Momentum, format!("{m}"))
                }
                Command::ResetStats => {
                    t = 0;
                    applied(EventKind::ResetStats, String::new())
                }
                Command::NoteEvalMode(m) => applied(EventKind::EvalMode, m.as_str().to_string()),
                other => applied(EventKind::Recalibrate, format!("{other:?}")),
            };
            let _ = events.send(ev);
        }
        if !paused || step {
            step = false;
            epoch += 1;
            t += 1;
            let mut m = fixtures::epoch(epoch);
            m.momentum = momentum;
            m.t = t;
            m.step_ms = 8.0 + (epoch % 7) as f64 / 10.0;
            m.eval_running.loss = 1.09 + (epoch % 13) as f32 / 100.0;
            if events.send(Event::Epoch(m)).is_err() {
                return;
            }
            if slot.put(fixtures::bn_snapshot(epoch)) && events.send(Event::BnReady).is_err() {
                return;
            }
        }
        thread::sleep(Duration::from_secs_f64(1.0 / hz.max(1) as f64));
    }
}

/// Not a test on its own: the child process of the `fake_*` tests (does nothing without the env var).
#[test]
#[ignore = "child process of the fake_* tests"]
fn fake_child() {
    if std::env::var("BNSCOPE_FAKE_CHILD").is_err() {
        return;
    }
    let hz: u32 = std::env::var("BNSCOPE_FAKE_HZ")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let (cmd_tx, cmd_rx) = unbounded();
    let (ev_tx, ev_rx) = unbounded();
    let slot: BnSlot = Arc::new(Latest::default());
    let trainer_slot = slot.clone();
    thread::Builder::new()
        .name("bnscope-trainer".into())
        .spawn(move || fake_trainer(cmd_rx, ev_tx, trainer_slot, hz))
        .unwrap();
    let (sig_tx, sig_rx) = unbounded();
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP]).unwrap();
    thread::spawn(move || {
        for s in signals.forever() {
            let _ = sig_tx.send(s);
        }
    });
    let link = Link {
        commands: cmd_tx,
        events: ev_rx,
        bn: slot,
    };
    let out = bnscope::tui::run(link, sig_rx, TuiOptions::default()).expect("tui::run");
    println!("end reason: {}", out.reason.as_str());
}

#[test]
fn fake_keys_then_q() {
    let mut s = Session::spawn_fake(50);
    first_frame(&s);
    s.press("e");
    s.expect("eval mode BATCH STATS", STEP, |t| t.contains("BATCH STATS"));
    s.press("+");
    s.expect("momentum 0.995", STEP, |t| t.contains("0.995 (Keras)"));
    s.press(" ");
    s.expect("paused", STEP, |t| t.contains("‖ paused"));
    s.press("n");
    s.press("?");
    s.expect("help overlay", STEP, |t| {
        t.contains("this help") && t.contains("momentum ladder")
    });
    s.press("\x1b");
    s.expect("help closed", STEP, |t| !t.contains("momentum ladder"));
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}");
    assert!(s.screen().contains("end reason: quit"), "{}", s.screen());
}

#[test]
fn fake_sigterm() {
    let mut s = Session::spawn_fake(50);
    first_frame(&s);
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(15));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}");
    assert!(s.screen().contains("end reason: signal"), "{}", s.screen());
}

#[test]
fn fake_sighup() {
    let mut s = Session::spawn_fake(50);
    first_frame(&s);
    s.signal(libc::SIGHUP);
    let status = s.wait_exit(Duration::from_secs(15));
    s.assert_restored();
    assert!(s.screen().contains("end reason: signal"), "{}", s.screen());
    assert!(status.success(), "exit status {status:?}");
}

/// The device the real-binary tests use: `cpu`, or `BNSCOPE_PTY_DEVICE` (e.g. `cuda` in scripts/gpu-check.sh).
fn device() -> String {
    std::env::var("BNSCOPE_PTY_DEVICE").unwrap_or_else(|_| "cpu".into())
}

fn first_frame(s: &Session) {
    s.expect("the first frame with an epoch", FIRST_FRAME, |t| {
        t.contains("bnscope") && t.contains("epoch") && t.contains("momentum")
    });
}

#[test]
fn keys_then_q() {
    let mut s = Session::spawn(&["--device", &device(), "--pause-at", "0"]);
    first_frame(&s);
    assert!(s.parser.lock().unwrap().screen().alternate_screen());
    // Clicks and the wheel are reported while the TUI runs (and switched off again on the way out).
    assert_ne!(
        s.parser.lock().unwrap().screen().mouse_protocol_mode(),
        vt100::MouseProtocolMode::None
    );

    s.press("e");
    s.expect("eval mode BATCH STATS", STEP, |t| t.contains("BATCH STATS"));
    s.press("+");
    s.expect("momentum 0.995", STEP, |t| t.contains("0.995 (Keras)"));
    s.press(" ");
    s.expect("paused", STEP, |t| t.contains("paused"));
    s.press("?");
    s.expect("help overlay", STEP, |t| {
        t.contains("this help") && t.contains("momentum ladder")
    });
    s.press("?");
    s.expect("help closed", STEP, |t| !t.contains("momentum ladder"));
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}");
}

/// #23: the frozen-backbone lesson pre-trains for a while before its first epoch. The TUI is up at once and says
/// what it does, with a gauge, and `q` quits during the phase (it used to be a blank screen that ignored `q` for
/// 15–85 s).
#[test]
fn pretraining_shows_progress_and_quits() {
    let mut s = Session::spawn(&["--device", &device(), "--scenario", "frozen-backbone"]);
    s.expect("pre-training progress", FIRST_FRAME, |t| {
        t.contains("pre-training the backbone") && t.contains(" of 30") && t.contains("q quits")
    });
    let pressed = Instant::now();
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(5));
    let took = pressed.elapsed();
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "quit took {took:?}");
}

/// #23: `--weights … --paused` shows epoch 0's numbers in every panel (the charts' rows, the predictions), the
/// inspection's diagnosis, and says paused (it said "▶ running" during the inspection and "waiting for the first
/// epoch" in the predictions).
#[test]
fn imported_weights_paused_show_epoch_0_everywhere() {
    let w = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/weights/tiny_torchvision.safetensors"
    );
    let mut s = Session::spawn(&["--device", &device(), "--weights", w, "--paused"]);
    s.expect("epoch 0's predictions", FIRST_FRAME, |t| t.contains("of 3 right"));
    let t = s.screen();
    assert!(t.contains("‖ paused") && !t.contains("▶ running"), "{t}");
    assert!(!t.contains("waiting for the first epoch"), "{t}");
    assert!(t.contains("Epoch 0, imported weights"), "{t}");
    let row = t.lines().find(|l| l.starts_with("│ eval running")).expect("chart row");
    assert!(row.contains("0.333"), "{t}");
    s.press("q");
    assert!(s.wait_exit(Duration::from_secs(10)).success());
    s.assert_restored();
}

fn signal_test(sig: i32) {
    let mut s = Session::spawn(&["--device", &device()]);
    first_frame(&s);
    s.signal(sig);
    let status = s.wait_exit(Duration::from_secs(15));
    s.assert_restored();
    // An orderly shutdown on a signal exits with the shell's 128 + signal.
    let code = status.exit_code();
    assert!(
        status.signal().is_none() && code == 128 + sig as u32,
        "exit status {status:?}"
    );
}

#[test]
fn sigterm_restores_terminal() {
    signal_test(libc::SIGTERM);
}

#[test]
fn sighup_restores_terminal() {
    signal_test(libc::SIGHUP);
}

/// utime + stime (clock ticks) and name of every thread of `pid`.
fn thread_ticks(pid: i32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses and may contain spaces: split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // Fields after the name start at field 3 (state); utime is field 14, stime 15.
        let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        out.push((name, ticks));
    }
    out
}

fn ticks_of(v: &[(String, u64)], name: &str) -> u64 {
    v.iter().filter(|(n, _)| n == name).map(|(_, t)| t).sum()
}

/// Steady-state cost of the UI. `BNSCOPE_MEASURE_SECS` (default 30) sets the window; extra flags for the
/// binary go in `BNSCOPE_MEASURE_ARGS` (whitespace-separated, default `--device cpu`).
#[test]
#[ignore = "measurement; run scripts/tui-measure.sh"]
fn measure() {
    let secs: u64 = std::env::var("BNSCOPE_MEASURE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let args_s = std::env::var("BNSCOPE_MEASURE_ARGS").unwrap_or_else(|_| "--device cpu".into());
    let args: Vec<&str> = args_s.split_whitespace().collect();
    let fake_hz: Option<u32> = std::env::var("BNSCOPE_MEASURE_FAKE_HZ")
        .ok()
        .and_then(|s| s.parse().ok());
    let mut s = match fake_hz {
        Some(hz) => Session::spawn_fake(hz),
        None => Session::spawn(&args),
    };
    let args_s = match fake_hz {
        Some(hz) => format!("scripted trainer at {hz} epochs/s"),
        None => args_s.clone(),
    };
    let t0 = Instant::now();
    first_frame(&s);
    let first_frame_s = t0.elapsed().as_secs_f64();
    thread::sleep(Duration::from_secs(3)); // warm-up: allocations, first snapshots
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let pid = s.pid();
    let ticks0 = thread_ticks(pid);
    let bytes0 = s.bytes.load(Ordering::Relaxed);
    let start = Instant::now();
    let epoch_of = |t: &str| -> Option<u64> {
        let i = t.find("epoch ")?;
        t[i + 6..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let epoch0 = epoch_of(&s.screen());
    thread::sleep(Duration::from_secs(secs));
    let elapsed = start.elapsed().as_secs_f64();
    let bytes = s.bytes.load(Ordering::Relaxed) - bytes0;
    let ticks1 = thread_ticks(pid);
    let epoch1 = epoch_of(&s.screen());
    let cpu =
        |name: &str| (ticks_of(&ticks1, name).saturating_sub(ticks_of(&ticks0, name))) as f64 / hz / elapsed * 100.0;
    let total: u64 = ticks1.iter().map(|(_, t)| t).sum::<u64>() - ticks0.iter().map(|(_, t)| t).sum::<u64>();

    // Key-to-screen latency: `m` swaps which momentum convention is shown first.
    let mut lat = Vec::new();
    for i in 0..10 {
        let want_torch_first = i % 2 == 0;
        s.press("m");
        let d = s.wait_for(Duration::from_secs(5), |t| {
            let k = t.find("(Keras)");
            let p = t.find("(PyTorch");
            match (k, p) {
                (Some(k), Some(p)) => (p < k) == want_torch_first,
                _ => false,
            }
        });
        match d {
            Some(d) => lat.push(d.as_secs_f64() * 1000.0),
            None => panic!("key m did not change the screen in 5 s:\n{}", s.screen()),
        }
        thread::sleep(Duration::from_millis(150));
    }
    lat.sort_by(f64::total_cmp);
    let threads: Vec<String> = ticks1.iter().map(|(n, _)| n.clone()).collect();

    println!("bnscope TUI measurement ({COLS}x{ROWS}, {elapsed:.1} s of steady training, args: {args_s})");
    println!("  first frame after        {first_frame_s:.1} s");
    if let (Some(a), Some(b)) = (epoch0, epoch1) {
        println!(
            "  epochs/s                 {:.1}",
            (b.saturating_sub(a)) as f64 / elapsed
        );
    }
    println!(
        "  terminal output          {:.1} KB/s  (target <= 5 KB/s)",
        bytes as f64 / 1000.0 / elapsed
    );
    println!("  UI thread (bnscope-ui)   {:.1} % CPU", cpu("bnscope-ui"));
    println!("  key reader (bnscope-keys){:.1} % CPU", cpu("bnscope-keys"));
    println!("  trainer (bnscope-trainer){:.1} % CPU", cpu("bnscope-trainer"));
    println!(
        "  whole process            {:.1} % CPU",
        total as f64 / hz / elapsed * 100.0
    );
    println!(
        "  key->screen latency      median {:.1} ms, max {:.1} ms ({} presses of m)",
        lat[lat.len() / 2],
        lat[lat.len() - 1],
        lat.len()
    );
    println!(
        "  latencies (ms, sorted)   {}",
        lat.iter().map(|l| format!("{l:.1}")).collect::<Vec<_>>().join(" ")
    );
    println!(
        "  load average at the end  {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("  threads                  {threads:?}");
    if !threads.iter().any(|n| n == "bnscope-ui") {
        println!("  note: no thread named bnscope-ui (is main.rs calling bnscope::tui::run?)");
    }
    println!("  final screen:\n{}", s.screen());
    s.press("q");
    let _ = s.wait_exit(Duration::from_secs(20));
}

#[test]
fn rapid_resizes_from_10x3_to_400x120() {
    let mut s = Session::spawn(&["--device", &device()]);
    first_frame(&s);
    let sizes = [
        (3, 10),
        (120, 400),
        (5, 20),
        (24, 80),
        (1, 1),
        (40, 120),
        (23, 79),
        (60, 200),
        (10, 30),
    ];
    for _ in 0..3 {
        for &(r, c) in &sizes {
            s.resize(r, c);
            thread::sleep(Duration::from_millis(5));
        }
    }
    s.resize(ROWS, COLS);
    s.expect("a whole frame after the resizes", STEP, |t| {
        t.contains("BatchNorm layers") && t.contains("predictions") && t.contains("q quit")
    });
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}");
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn logged_epochs(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("\"type\":\"epoch\"")
        .count()
}

/// The epoch in the header (`… epoch 215 · step 215 …`).
fn screen_epoch(screen: &str) -> usize {
    let first = screen.lines().next().unwrap_or("");
    first
        .split("epoch ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_stalled_terminal_neither_stops_training_nor_grows_memory() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stall.jsonl");
    let mut s = Session::spawn(&[
        "--device",
        &device(),
        "--pace",
        "0",
        "--pause-at",
        "0",
        "--log",
        log.to_str().unwrap(),
    ]);
    first_frame(&s);
    thread::sleep(Duration::from_millis(500));
    let (rss0, e0) = (rss_kib(s.pid()), logged_epochs(&log));
    // Stop reading the terminal for 10 s, as a frozen SSH connection does.
    s.stall(true);
    thread::sleep(Duration::from_secs(10));
    let (rss1, e1) = (rss_kib(s.pid()), logged_epochs(&log));
    s.stall(false);
    eprintln!("stall: epochs {e0} -> {e1}, RSS {rss0} -> {rss1} KiB");
    assert!(e1 >= e0 + 20, "training went on during the stall: {e0} -> {e1}");
    assert!(rss1 < rss0 + 64 * 1024, "memory stayed bounded: {rss0} -> {rss1} KiB");
    // The UI catches up at once (it draws the latest state, not every missed frame).
    s.expect("the screen caught up", Duration::from_secs(5), |t| {
        screen_epoch(t) >= e1
    });
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_trainer_panic_is_shown_in_place_and_q_still_quits() {
    let bin = std::env::var("BNSCOPE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bnscope").to_string());
    let dev = device();
    let mut s = Session::spawn_program(&bin, &["--device", &dev], &[("BNSCOPE_FAULT", "panic@3")]);
    s.expect("the error in place", STEP, |t| t.contains("injected fault at epoch 3"));
    {
        let p = s.parser.lock().unwrap();
        assert!(
            p.screen().alternate_screen(),
            "the UI still owns the screen after the trainer's panic"
        );
    }
    // The UI stays responsive: help opens and closes.
    s.press("?");
    s.expect("help", STEP, |t| t.contains("this help"));
    s.press("?");
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert_eq!(status.exit_code(), 1, "a failed run exits 1");
    // Once the screen is restored, the error is on stderr as headless would print it.
    let screen = s.screen();
    assert!(
        screen.contains("bnscope: error: trainer panicked: injected fault at epoch 3"),
        "{screen}"
    );
}

fn bin() -> String {
    std::env::var("BNSCOPE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_bnscope").to_string())
}

/// The header's epoch has reached `n`.
fn at_epoch(s: &Session, n: usize) {
    s.expect(&format!("epoch {n}"), FIRST_FRAME, |t| screen_epoch(t) >= n);
}

fn read_jsonl(p: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}")))
        .collect()
}

/// Files in the session's working directory (to see that nothing was left behind).
fn files_in(s: &Session) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s._dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `BNSCOPE_FAULT=slow@3` makes epoch 3's step last 12 s, longer than the 10 s a quit used to wait: the quit
/// waits for it, says so, and the checkpoint and the `end` record are written.
#[test]
fn quit_waits_for_a_slow_step_and_writes_the_checkpoint() {
    let dev = device();
    let mut s = Session::spawn_program(
        &bin(),
        &[
            "--device",
            &dev,
            "--pace",
            "0",
            "--checkpoint",
            "ck.st",
            "--log",
            "run.jsonl",
        ],
        &[("BNSCOPE_FAULT", "slow@3")],
    );
    at_epoch(&s, 2);
    let t0 = Instant::now();
    s.press("q");
    s.expect("the waiting line", STEP, |t| {
        t.contains("finishing the step in flight, then writing the checkpoint")
    });
    let status = s.wait_exit(Duration::from_secs(60));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}; screen:\n{}", s.screen());
    assert!(t0.elapsed() > Duration::from_secs(5), "it waited for the step");
    let dir = s._dir.path().to_path_buf();
    assert!(dir.join("ck.st").is_file(), "checkpoint written: {:?}", files_in(&s));
    let end = read_jsonl(&dir.join("run.jsonl")).pop().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("end"), Some("quit"))
    );
    assert_eq!(end["epochs"], 3, "the step in flight completed its epoch");
    assert_eq!(files_in(&s), ["ck.st", "run.jsonl"], "no temporary file left");
}

/// A second `q` stops waiting: the user is told on stderr that the checkpoint was not written, exit 1.
#[test]
fn a_second_q_gives_up_and_says_so() {
    let dev = device();
    let mut s = Session::spawn_program(
        &bin(),
        &["--device", &dev, "--pace", "0", "--checkpoint", "ck.st"],
        &[("BNSCOPE_FAULT", "slow@3")],
    );
    at_epoch(&s, 2);
    s.press("q");
    s.expect("the waiting line", STEP, |t| {
        t.contains("q again: quit without the checkpoint")
    });
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(10));
    s.assert_restored();
    assert_eq!(status.exit_code(), 1, "{}", s.screen());
    let screen = s.screen();
    assert!(
        screen.contains("bnscope: error: quit without waiting for the trainer: the checkpoint ck.st was not written"),
        "{screen}"
    );
    assert!(!s._dir.path().join("ck.st").exists());
}

/// SIGTERM waits for the step in flight as a quit does, writes the checkpoint and exits 143.
#[test]
fn sigterm_waits_for_a_slow_step_and_writes_the_checkpoint() {
    let dev = device();
    let mut s = Session::spawn_program(
        &bin(),
        &["--device", &dev, "--pace", "0", "--checkpoint", "ck.st"],
        &[("BNSCOPE_FAULT", "slow@3")],
    );
    at_epoch(&s, 2);
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(60));
    s.assert_restored();
    assert_eq!(status.exit_code(), 128 + libc::SIGTERM as u32, "{}", s.screen());
    assert!(s._dir.path().join("ck.st").is_file(), "{:?}", files_in(&s));
}

/// A checkpoint that cannot be written on quit (here: over the file-size limit, as a full disk would be) is
/// reported after the screen is restored, exit 1, and leaves no temporary file.
#[test]
fn a_failed_checkpoint_on_quit_is_reported() {
    let dev = device();
    // 200 blocks of 512 bytes: the log would fit, the ~1 MB checkpoint does not. SIGXFSZ ignored, so that the
    // write fails with EFBIG instead of killing the process.
    let script = format!("ulimit -f 200; trap '' XFSZ; exec '{}' \"$@\"", bin());
    let mut s = Session::spawn_program(
        "/bin/sh",
        &[
            "-c",
            &script,
            "sh",
            "--device",
            &dev,
            "--pace",
            "1",
            "--checkpoint",
            "ck.st",
        ],
        &[],
    );
    first_frame(&s);
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(30));
    s.assert_restored();
    assert_eq!(status.exit_code(), 1, "{}", s.screen());
    let screen = s.screen();
    assert!(
        screen.contains("bnscope: error: --checkpoint ck.st: cannot write the checkpoint: File too large"),
        "{screen}"
    );
    assert!(files_in(&s).is_empty(), "{:?}", files_in(&s));
}

/// A run that ends by `--epochs` and is then closed with `q` exits 0, as its log says `done`.
#[test]
fn a_run_finished_by_epochs_exits_0() {
    let dev = device();
    let mut s = Session::spawn(&["--device", &dev, "--epochs", "3", "--log", "run.jsonl"]);
    s.expect("finished", FIRST_FRAME, |t| t.contains("finished"));
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}; screen:\n{}", s.screen());
    let end = read_jsonl(&s._dir.path().join("run.jsonl")).pop().unwrap();
    assert_eq!(end["reason"], "done");
}

/// Divergence in the TUI: the same words as headless, exit 1, `end` reason `diverged`.
#[test]
fn divergence_in_the_tui_fails_the_run_like_headless() {
    let dev = device();
    let mut s = Session::spawn(&["--device", &dev, "--pace", "0", "--lr", "10", "--log", "run.jsonl"]);
    s.expect("the divergence", FIRST_FRAME, |t| {
        t.contains("training diverged at epoch")
    });
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert_eq!(status.exit_code(), 1, "{}", s.screen());
    let screen = s.screen();
    assert!(
        screen.contains("bnscope: error: training diverged at epoch"),
        "{screen}"
    );
    let recs = read_jsonl(&s._dir.path().join("run.jsonl"));
    assert!(recs.iter().any(|r| r["type"] == "event" && r["what"] == "diverged"));
    assert_eq!(recs.last().unwrap()["reason"], "diverged");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `TERM=dumb` (no cursor movement, no colours): headless with a notice, not a screen of escape codes.
#[test]
fn a_dumb_terminal_gets_headless_output() {
    let dev = device();
    let mut s = Session::spawn_program(&bin(), &["--device", &dev, "--epochs", "2"], &[("TERM", "dumb")]);
    let status = s.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", s.screen());
    let screen = s.screen();
    assert!(
        screen.contains("TERM=dumb: this terminal cannot show the TUI; running headless"),
        "{screen}"
    );
    assert!(screen.contains("epoch 2/2"), "{screen}");
    let raw = s.raw.lock().unwrap();
    assert!(
        !contains(&raw, b"\x1b"),
        "no escape sequence at all: {:?}",
        String::from_utf8_lossy(&raw)
    );
}

/// Class and file names can hold control characters: they are drawn escaped, never sent to the terminal.
#[test]
fn names_cannot_drive_the_terminal() {
    let dev = device();
    let data = tempfile::tempdir().unwrap();
    let evil = "\x1b]0;pwned\x07\x1b[31mred";
    for (class, src) in [(evil, "cat/cat.png"), ("plain", "coffee/coffee.png")] {
        std::fs::create_dir(data.path().join(class)).unwrap();
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/seed3")
            .join(src);
        std::fs::copy(from, data.path().join(class).join(format!("{evil}.png"))).unwrap();
    }
    let d = data.path().display().to_string();
    let mut s = Session::spawn(&["--device", &dev, "--data", &d, "--epochs", "2"]);
    s.expect("the escaped class name", FIRST_FRAME, |t| t.contains("\\x1b]0;pwned"));
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert!(status.success(), "{status:?}");
    let raw = s.raw.lock().unwrap();
    assert!(
        !contains(&raw, b"\x1b]0;pwned"),
        "the name's escape sequence reached the terminal"
    );
}

/// The opening a newcomer sees: the run stops at the seed's moment (epoch 5) and says what the screen shows; space
/// lets the running statistics catch up.
#[test]
fn the_opening_pauses_at_the_seeds_moment() {
    let mut s = Session::spawn(&["--device", &device()]);
    s.expect("paused at epoch 5 with the explanation", Duration::from_secs(30), |t| {
        t.contains("epoch 5 ") && t.contains("paused") && t.contains("This is the seed's situation")
    });
    let screen = s.screen();
    assert!(screen.contains("1 of 3 right"), "{screen}");
    assert!(screen.contains("travelled only 4.9%"), "{screen}");
    s.press(" ");
    s.expect("running again, past epoch 5", STEP, |t| {
        t.contains("running") && !t.contains("seed's situation")
    });
    s.press("q");
    let status = s.wait_exit(Duration::from_secs(20));
    s.assert_restored();
    assert!(status.success(), "exit status {status:?}");
}

/// `bnscope watch` in the TUI, as a person uses it next to a training run: the log appears after the watch starts
/// (the screen says it waits), grows line by line with a line split across two writes (taken only once whole), the
/// user scrolls back (the cursor stays while the log grows) and End follows again, the file is truncated and a
/// new run starts; `q` exits 0 with the terminal restored.
#[test]
fn watch_follows_a_log_that_appears_late_grows_and_starts_over() {
    use std::fs::OpenOptions;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/logs/keras_small.jsonl"
    ))
    .expect("fixture");
    let lines: Vec<&str> = fixture.lines().collect();
    let mut s = Session::spawn(&["watch", "run.jsonl"]);
    let log = s._dir.path().join("run.jsonl");
    s.expect("the waiting notice", STEP, |t| {
        t.contains("WATCH · run.jsonl") && t.contains("waiting for run.jsonl")
    });
    let append = |text: &str| {
        let mut f = OpenOptions::new().create(true).append(true).open(&log).expect("log");
        f.write_all(text.as_bytes()).expect("write");
        f.flush().expect("flush");
    };
    // The run record and epoch 1 (with its bn record).
    append(&format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]));
    s.expect("epoch 1", STEP, |t| {
        t.contains("epoch 1 (1 of 1)") && t.contains("following")
    });
    // Epoch 2 split across two writes: nothing until the line is whole.
    let (a, b) = lines[3].split_at(lines[3].len() / 2);
    append(a);
    thread::sleep(Duration::from_millis(700));
    assert!(
        s.screen().contains("epoch 1 (1 of 1)"),
        "a half line is not an epoch:\n{}",
        s.screen()
    );
    append(&format!("{b}\n{}\n", lines[4]));
    s.expect("epoch 2", STEP, |t| t.contains("epoch 2 (2 of 2)"));
    // Scrolled back, the cursor stays while the log grows; End follows again.
    s.press("\x1b[D");
    s.expect("scrolled back", STEP, |t| {
        t.contains("epoch 1 (1 of 2)") && t.contains("scrolled back")
    });
    append(&format!("{}\n{}\n", lines[5], lines[6]));
    s.expect("the cursor kept", STEP, |t| t.contains("epoch 1 (1 of 3)"));
    s.press("\x1b[F");
    s.expect("following again", STEP, |t| {
        t.contains("epoch 3 (3 of 3)") && t.contains("following")
    });
    // Truncated and restarted: a new run from epoch 1.
    OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("log")
        .set_len(0)
        .expect("truncate");
    s.expect("starting over", STEP, |t| {
        t.contains("run.jsonl was truncated: starting over")
    });
    append(&format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]));
    s.expect("the new run", STEP, |t| t.contains("epoch 1 (1 of 1)"));
    s.press("q");
    let status = s.wait_exit(STEP);
    assert_eq!(status.exit_code(), 0);
    s.assert_restored();
}

/// `bnscope replay` of a file that is not a bnscope log: one line naming it, exit 2, before any screen.
#[test]
fn replay_of_a_file_that_is_not_a_log_exits_2_in_a_terminal() {
    let mut s = Session::spawn(&["replay", "/etc/hostname"]);
    let status = s.wait_exit(STEP);
    assert_eq!(status.exit_code(), 2, "{}", s.screen());
    assert!(
        s.screen().contains("/etc/hostname: not a bnscope log"),
        "{}",
        s.screen()
    );
    s.assert_restored();
}

/// `bnscope watch` of a run whose log names a control channel (docs/CONTROL.md): the run keys become commands in
/// the command file, the status says "sent" and then "applied at step N" once the run's ledger event arrives; a
/// control path that is not a bnscope control file is never written to.
#[test]
fn watch_steers_a_run_through_its_control_channel() {
    use std::fs::OpenOptions;
    use std::os::unix::fs::PermissionsExt;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/logs/keras_small.jsonl"
    ))
    .expect("fixture");
    let lines: Vec<&str> = fixture.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let ctl = dir.path().join("run.jsonl.control");
    std::fs::write(&ctl, "bnscope-control 1\n").unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A file the log must not make bnscope append to.
    let victim = dir.path().join("victim.sh");
    std::fs::write(&victim, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with_control = |path: &std::path::Path| {
        let mut run: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        run["control"] = serde_json::json!({
            "path": path, "pid": std::process::id(), "host": "testhost", "recalibrate": true, "evaluate": false
        });
        run.to_string()
    };
    let log = dir.path().join("run.jsonl");
    std::fs::write(&log, format!("{}\n{}\n{}\n", with_control(&ctl), lines[1], lines[2])).unwrap();
    let mut s = Session::spawn(&["watch", &log.display().to_string()]);
    s.expect("steering", STEP, |t| {
        t.contains("WATCHING · steering pid") && t.contains("on testhost")
    });
    s.press("-");
    s.expect("sent", STEP, |t| t.contains("sent: momentum"));
    let sent = std::fs::read_to_string(&ctl).unwrap();
    let line = sent.lines().nth(1).expect("a command line");
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!((words[0], words[2]), ("cmd", "momentum"), "{sent}");
    let m: f64 = words[3].parse().unwrap();
    assert!((0.0..1.0).contains(&m), "{sent}");
    // The run applies it and says so in its log.
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(
        f,
        r#"{{"type":"event","epoch":1,"step":77,"what":"momentum","value":{m},"id":"{}","source":"control"}}"#,
        words[1]
    )
    .unwrap();
    s.expect("applied", STEP, |t| t.contains("applied at step 77"));
    // E without an evaluate function: dimmed with the reason, nothing written.
    s.press("E");
    s.expect("no evaluate", STEP, |t| t.contains("gave no evaluate function"));
    assert_eq!(std::fs::read_to_string(&ctl).unwrap().lines().count(), 2);
    // A new run in the same log whose control path is not a control file: read-only, the file untouched.
    writeln!(f, "{}\n{}", with_control(&victim), lines[1]).unwrap();
    s.expect("refused", STEP, |t| t.contains("not a bnscope control file"));
    s.press("r");
    s.expect("read-only", STEP, |t| t.contains("cannot be steered"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "#!/bin/sh\n");
    s.press("q");
    assert_eq!(s.wait_exit(STEP).exit_code(), 0);
    s.assert_restored();
}

/// `bnscope compare a b` in a terminal (#27): it opens on the newest epoch with both runs named by what differs,
/// Home and → move the one cursor (every run's line follows), `q` quits with exit 0 and the terminal restored.
#[test]
fn compare_opens_moves_the_cursor_and_quits_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/logs/");
    let a = format!("{dir}compare_m099.jsonl");
    let b = format!("{dir}compare_m09.jsonl");
    let mut s = Session::spawn(&["compare", &a, &b]);
    s.expect("the compare view", STEP, |t| {
        t.contains("bnscope compare") && t.contains("momentum 0.99 vs 0.9") && t.contains("epoch 60 of 60")
    });
    assert!(
        s.screen().contains("running stats 99% caught up at epoch 44"),
        "{}",
        s.screen()
    );
    s.press("\x1b[H");
    s.expect("the first epoch", STEP, |t| {
        t.contains("epoch 1 of 60") && t.contains("layers at epoch 1")
    });
    s.press("\x1b[C");
    s.expect("epoch 2", STEP, |t| {
        t.contains("epoch 2 of 60") && t.contains("layers at epoch 2")
    });
    s.press("q");
    let status = s.wait_exit(STEP);
    assert_eq!(status.exit_code(), 0, "{}", s.screen());
}

/// #27 as a user meets it: a config file with `ascii = true` and `quit = "Q"` takes effect (the footer says `Q
/// quit`, no block characters), `x` writes the screen and the charts into the current directory and says so, `Q`
/// quits.
#[test]
fn config_file_and_x_in_a_terminal() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/logs/bnscope_seed.jsonl");
    let cfg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cfg.path().join("bnscope")).unwrap();
    std::fs::write(
        cfg.path().join("bnscope/config.toml"),
        "ascii = true\n[keys]\nquit = \"Q\"\n",
    )
    .unwrap();
    let xdg = cfg.path().display().to_string();
    let bin = env!("CARGO_BIN_EXE_bnscope");
    let mut s = Session::spawn_program(bin, &["replay", fixture], &[("XDG_CONFIG_HOME", &xdg)]);
    s.expect("Q quit in the footer", STEP, |sc| sc.contains("Q quit"));
    let sc = s.screen();
    assert!(!sc.contains("q quit") && !sc.contains('█') && !sc.contains('│'), "{sc}");
    s.press("x");
    s.expect("the files named", STEP, |sc| sc.contains("wrote bnscope-"));
    s.press("Q");
    assert_eq!(s.wait_exit(STEP).exit_code(), 0, "{}", s.screen());
    s.assert_restored();
    let mut names: Vec<String> = std::fs::read_dir(s._dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bnscope-"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with(".svg") && names[1].ends_with(".txt"), "{names:?}");
    let text = std::fs::read_to_string(s._dir.path().join(&names[1])).unwrap();
    assert!(
        text.contains("REPLAY") && text.contains("Q quit") && !text.contains('\u{1b}'),
        "{text}"
    );
}

/// A terminal whose locale is not UTF-8 (`LANG=C`) gets ASCII by itself, said once in the status line.
#[test]
fn a_c_locale_draws_in_ascii_and_says_so() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/logs/bnscope_seed.jsonl");
    let bin = env!("CARGO_BIN_EXE_bnscope");
    let mut s = Session::spawn_program(bin, &["replay", fixture], &[("LANG", "C")]);
    // The whole frame in ASCII with the notice (waited for as one condition: a frame may arrive in pieces).
    s.expect("the notice over an ASCII frame", STEP, |sc| {
        sc.contains("LANG=C is not UTF-8: drawing in ASCII")
            && sc.contains("+---")
            && !sc.contains('█')
            && !sc.contains('│')
    });
    s.press("q");
    assert_eq!(s.wait_exit(STEP).exit_code(), 0);
    s.assert_restored();
}

/// A watch of a log whose writer has gone (#23): the `run` record names a process on this host that no longer
/// exists, and the header says so instead of "following".
#[test]
fn watch_says_when_the_writer_has_exited() {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/logs/bnscope_seed.jsonl"
    ))
    .expect("fixture");
    let mut lines = fixture.lines();
    let mut run: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // Past the kernel's largest pid (2^22): no such process.
    run["pid"] = serde_json::json!(4_194_311u64);
    run["host"] = serde_json::json!(host.trim());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let rest: Vec<&str> = lines.filter(|l| !l.contains("\"type\":\"end\"")).collect();
    std::fs::write(&log, format!("{run}\n{}\n", rest.join("\n"))).unwrap();
    let mut s = Session::spawn(&["watch", &log.display().to_string()]);
    s.expect("the writer has exited", STEP, |t| {
        t.contains("the writer (pid 4194311) has exited")
    });
    s.press("q");
    assert_eq!(s.wait_exit(STEP).exit_code(), 0);
    s.assert_restored();
}
