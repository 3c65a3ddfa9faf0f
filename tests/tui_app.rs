//! App-level tests: scripted trainer events and keys drive `App`, `TestBackend` renders it, `insta`
//! keeps the screens (tests/snapshots/). Review changed snapshots with `cargo insta review`, or accept
//! them with `INSTA_UPDATE=always cargo test --release --test tui_app`.
use std::sync::Arc;

use bnscope::protocol::{BnSlot, Command, EndReason, EvalMode, Event, Latest, Metric};
use bnscope::tui::fixtures::{self, seed_story};
use bnscope::tui::{App, AppEvent, TuiOptions};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

struct Harness {
    app: App,
    slot: BnSlot,
    sent: Vec<Command>,
}

impl Harness {
    fn new(opts: TuiOptions) -> Self {
        let slot: BnSlot = Arc::new(Latest::default());
        Harness {
            app: App::new(&opts, slot.clone()),
            slot,
            sent: Vec::new(),
        }
    }

    fn seed() -> Self {
        let mut h = Harness::new(TuiOptions::default());
        h.story(5);
        h
    }

    fn story(&mut self, epochs: usize) {
        for (ev, snap) in seed_story(epochs) {
            if let Some(s) = snap {
                self.slot.put(s);
            }
            self.trainer(ev);
        }
    }

    /// The seed story's epochs and snapshots again (after a second `Started`).
    fn story_epochs_after_restart(&mut self) {
        for (ev, snap) in seed_story(5).into_iter().skip(1) {
            if let Some(s) = snap {
                self.slot.put(s);
            }
            self.trainer(ev);
        }
    }

    fn trainer(&mut self, ev: Event) {
        let cmds = self.app.handle_event(AppEvent::Trainer(ev));
        self.sent.extend(cmds);
    }

    fn key_code(&mut self, code: KeyCode, mods: KeyModifiers) -> Vec<Command> {
        let cmds = self.app.handle_event(AppEvent::Key(KeyEvent::new(code, mods)));
        self.sent.extend(cmds.clone());
        cmds
    }

    fn key(&mut self, c: char) -> Vec<Command> {
        let mods = if c.is_ascii_uppercase() || "+?".contains(c) {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        self.key_code(KeyCode::Char(c), mods)
    }

    fn screen(&self, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| f.render_widget(&self.app, f.area())).unwrap();
        term.backend().to_string()
    }
}

/// Snapshots land in tests/snapshots/tui_app__NAME.snap.
fn snapshot(name: &str, screen: &str) {
    insta::assert_snapshot!(name, screen);
}

#[test]
fn seed_story_screens() {
    let mut h = Harness::seed();
    let s = h.screen(120, 40);
    assert!(s.contains("0.99 (Keras) = 0.01 (PyTorch/candle)"), "{s}");
    assert!(s.contains("4.9%"), "{s}");
    assert!(s.contains("1 of 3 right"), "{s}");
    assert!(s.contains("459 updates: 454 to go"), "{s}");
    snapshot("seed_120x40", &s);
    snapshot("seed_80x24", &h.screen(80, 24));

    assert_eq!(h.key('e'), vec![Command::NoteEvalMode(EvalMode::Batch)]);
    let s = h.screen(120, 40);
    assert!(s.contains("BATCH STATS"), "{s}");
    assert!(s.contains("3 of 3 right"), "{s}");
    snapshot("seed_after_e_120x40", &s);

    assert_eq!(h.key('+'), vec![Command::SetMomentum(0.995)]);
    let s = h.screen(120, 40);
    assert!(s.contains("0.995 (Keras) = 0.005 (PyTorch/candle)"), "{s}");
    snapshot("seed_after_plus_120x40", &s);

    assert_eq!(h.key('r'), vec![Command::ResetStats]);
    let s = h.screen(120, 40);
    assert!(s.contains("reset running stats"), "{s}");
    snapshot("seed_after_r_120x40", &s);
    snapshot("seed_after_keys_80x24", &h.screen(80, 24));
}

/// Inside tmux a 24-line terminal is 23 lines: bnscope draws there, and down to 60×16, collapsing panels by
/// priority; the context keys stay in the footer at 80 columns.
#[test]
fn draws_at_80x23_and_down_to_60x16() {
    let h = Harness::seed();
    let s = h.screen(80, 23);
    assert!(!s.contains("too small"), "{s}");
    for want in [
        "1 of 3 right",
        "travelled",
        "bn1",
        "L lessons",
        "n step",
        "R restart",
        "w worst",
        "z zoom",
        "q quit",
    ] {
        assert!(s.contains(want), "{want} missing at 80x23:\n{s}");
    }
    snapshot("seed_80x23", &s);
    let s = h.screen(60, 16);
    assert!(!s.contains("too small"), "{s}");
    for want in ["travelled", "eval running", "bn1", "q quit"] {
        assert!(s.contains(want), "{want} missing at 60x16:\n{s}");
    }
    snapshot("seed_60x16", &s);
    // Every size in between draws without a panic.
    for w in 60..=100 {
        for ht in 16..=30 {
            let s = h.screen(w, ht);
            assert!(!s.contains("too small"), "{w}x{ht}");
        }
    }
}

#[test]
fn too_small_terminal() {
    let h = Harness::seed();
    let s = h.screen(40, 10);
    assert!(s.contains("too small"), "{s}");
    snapshot("too_small_40x10", &s);
    // Degenerate sizes must not panic either.
    for (w, hgt) in [(0, 0), (1, 1), (79, 24), (80, 23), (10, 2)] {
        h.screen(w.max(1), hgt.max(1));
    }
}

#[test]
fn every_size_renders_without_panic() {
    let mut h = Harness::seed();
    h.key('?');
    for w in [1, 10, 20, 79, 80, 81, 99, 100, 101, 119, 120, 160, 250, 400] {
        for hgt in [1, 3, 5, 23, 24, 25, 29, 30, 35, 36, 40, 60, 120] {
            h.screen(w, hgt);
        }
    }
}

#[test]
fn help_overlay() {
    let mut h = Harness::seed();
    // The run waits while the help is read…
    assert_eq!(h.key('?'), vec![Command::Pause]);
    let s = h.screen(120, 40);
    assert!(s.contains("recalibrate the running stats"), "{s}");
    snapshot("help_120x40", &s);
    // …and Esc closes the help (instead of quitting) and runs it again.
    assert_eq!(h.key_code(KeyCode::Esc, KeyModifiers::NONE), vec![Command::Resume]);
    assert!(!h.screen(120, 40).contains("recalibrate the running stats"));
    // Paused by the user before: the help leaves it paused.
    assert_eq!(h.key(' '), vec![Command::Pause]);
    assert!(h.key('?').is_empty());
    assert!(h.key('?').is_empty());
}

#[test]
fn error_panel_stays_until_q() {
    let mut h = Harness::seed();
    h.trainer(Event::Error("candle: shape mismatch in layer2.0.conv1".into()));
    let s = h.screen(120, 40);
    assert!(s.contains("shape mismatch"), "{s}");
    snapshot("error_120x40", &s);
    // Run-changing keys are refused, the UI stays responsive.
    h.key('j');
    assert_eq!(h.app.selected_layer(), 1);
    // The run failed: quitting says so (exit status 1).
    assert_eq!(h.key('q'), vec![Command::Quit(EndReason::Error)]);
    h.app.handle_event(AppEvent::Disconnected);
    assert_eq!(h.app.exit(), Some(EndReason::Error));
}

#[test]
fn disconnect_is_shown_and_q_exits() {
    let mut h = Harness::seed();
    h.app.handle_event(AppEvent::Disconnected);
    let s = h.screen(120, 40);
    assert!(s.contains("trainer disconnected"), "{s}");
    assert!(h.key('+').is_empty());
    assert!(h.key('q').is_empty());
    assert_eq!(h.app.exit(), Some(EndReason::Error));
}

#[test]
fn quit_waits_for_finished() {
    let mut h = Harness::seed();
    assert_eq!(h.key('q'), vec![Command::Quit(EndReason::Quit)]);
    assert_eq!(h.app.shutting_down(), Some(EndReason::Quit));
    assert!(h.app.exit().is_none());
    assert!(h.screen(120, 40).contains("saving…"));
    // Keys that change the run are ignored while saving.
    assert!(h.key('+').is_empty());
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Quit,
        checkpoint: Some("bnscope.ckpt".into()),
    });
    assert_eq!(h.app.exit(), Some(EndReason::Quit));
}

#[test]
fn ctrl_c_quits() {
    let mut h = Harness::seed();
    let cmds = h.key_code(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(cmds, vec![Command::Quit(EndReason::Quit)]);
}

#[test]
fn signal_stops_the_trainer() {
    let mut h = Harness::seed();
    let cmds = h.app.handle_event(AppEvent::Signal(15));
    assert_eq!(cmds, vec![Command::Quit(EndReason::Signal)]);
    assert!(h.screen(120, 40).contains("stopping"));
    // However long the step in flight takes, the UI waits for the trainer's checkpoint.
    assert!(h.app.exit().is_none());
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Signal,
        checkpoint: None,
    });
    assert_eq!(h.app.exit(), Some(EndReason::Signal));
    let o = h.app.outcome().unwrap();
    assert_eq!(o.exit_status(), 128 + 15);
    assert!(o.messages.is_empty(), "{:?}", o.messages);
}

fn with_checkpoint() -> Harness {
    let opts = TuiOptions {
        checkpoint: Some("big.st".into()),
        ..TuiOptions::default()
    };
    let mut h = Harness::new(opts);
    h.story(5);
    h
}

#[test]
fn quit_says_it_waits_for_the_step_and_the_checkpoint() {
    let mut h = with_checkpoint();
    assert_eq!(h.key('q'), vec![Command::Quit(EndReason::Quit)]);
    let s = h.screen(120, 40);
    assert!(
        s.contains("finishing the step in flight, then writing the checkpoint"),
        "{s}"
    );
    assert!(s.contains("q again: quit without the checkpoint"), "{s}");
    // No time limit: only the trainer's Finished (or a second q) ends the wait.
    assert!(h.app.exit().is_none());
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Quit,
        checkpoint: Some("big.st".into()),
    });
    let o = h.app.outcome().unwrap();
    assert_eq!((o.reason, o.exit_status()), (EndReason::Quit, 0));
    assert!(o.messages.is_empty());
}

#[test]
fn a_second_q_gives_up_and_says_the_checkpoint_was_not_written() {
    let mut h = with_checkpoint();
    h.key('q');
    assert!(h.key('q').is_empty());
    let o = h.app.outcome().expect("exits");
    assert_eq!(o.exit_status(), 1);
    assert_eq!(
        o.messages,
        vec!["quit without waiting for the trainer: the checkpoint big.st was not written".to_string()]
    );
}

#[test]
fn a_signal_while_quitting_keeps_waiting_for_the_checkpoint() {
    let mut h = with_checkpoint();
    h.key('q');
    assert!(h.app.handle_event(AppEvent::Signal(15)).is_empty());
    assert!(
        h.app.exit().is_none(),
        "the first signal does not abandon the checkpoint"
    );
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Quit,
        checkpoint: Some("big.st".into()),
    });
    assert_eq!(h.app.outcome().unwrap().exit_status(), 143);
}

#[test]
fn a_checkpoint_that_cannot_be_written_fails_the_quit() {
    let mut h = with_checkpoint();
    h.key('q');
    let msg = "--checkpoint full/ck.st: cannot write the checkpoint: No space left on device (os error 28)";
    h.trainer(Event::Error(msg.into()));
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Error,
        checkpoint: None,
    });
    let o = h.app.outcome().unwrap();
    assert_eq!(o.exit_status(), 1);
    assert_eq!(o.messages, vec![msg.to_string()]);
}

#[test]
fn a_run_finished_by_epochs_then_closed_exits_0() {
    let mut h = Harness::seed();
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Done,
        checkpoint: None,
    });
    // The trainer thread ends after Finished: its channel closing is no error.
    h.app.handle_event(AppEvent::Disconnected);
    assert!(h.key('q').is_empty());
    let o = h.app.outcome().unwrap();
    assert_eq!((o.reason, o.exit_status()), (EndReason::Done, 0));
    assert!(o.messages.is_empty());
}

#[test]
fn trainer_errors_reach_stderr_after_the_screen() {
    let mut h = Harness::seed();
    h.trainer(Event::Error("trainer panicked: injected fault at epoch 3".into()));
    assert_eq!(h.key('q'), vec![Command::Quit(EndReason::Error)]);
    h.trainer(Event::Finished {
        epochs: 3,
        reason: EndReason::Error,
        checkpoint: None,
    });
    let o = h.app.outcome().unwrap();
    assert_eq!(o.exit_status(), 1);
    assert_eq!(
        o.messages,
        vec!["trainer panicked: injected fault at epoch 3".to_string()]
    );
}

#[test]
fn divergence_has_one_wording_and_fails_the_run() {
    let mut h = Harness::seed();
    h.trainer(Event::Diverged {
        epoch: 6,
        loss: 5e9,
        what: "the training loss is over 1000× chance (ln 3)".into(),
    });
    let want =
        "training diverged at epoch 6: the training loss is over 1000× chance (ln 3) (loss 5.0e9); try a smaller --lr";
    let s = h.screen(160, 40);
    assert!(s.contains(want), "{s}");
    assert!(!s.contains("NaN/Inf"), "a finite loss is not called NaN: {s}");
    assert_eq!(h.key('q'), vec![Command::Quit(EndReason::Diverged)]);
    h.trainer(Event::Finished {
        epochs: 6,
        reason: EndReason::Diverged,
        checkpoint: None,
    });
    let o = h.app.outcome().unwrap();
    assert_eq!((o.reason, o.exit_status()), (EndReason::Diverged, 1));
    assert_eq!(o.messages, vec![want.to_string()]);
}

#[test]
fn control_characters_in_names_are_escaped_on_screen() {
    let mut h = Harness::new(TuiOptions::default());
    let mut info = (*fixtures::run_info()).clone();
    info.classes[0] = "\u{1b}[31mred".into();
    info.images[0] = "\u{1b}]0;pwned\u{7}.png".into();
    h.trainer(Event::Started(Arc::new(info)));
    h.trainer(Event::Epoch(fixtures::epoch(1)));
    let s = h.screen(120, 40);
    assert!(s.contains("\\x1b[31mred"), "{s}");
    assert!(!s.contains('\u{1b}'), "no raw escape reaches the screen");
}

#[test]
fn finished_by_itself_stays_open() {
    let mut h = Harness::seed();
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Done,
        checkpoint: None,
    });
    assert!(h.app.exit().is_none());
    let s = h.screen(120, 40);
    assert!(s.contains("finished"), "{s}");
    snapshot("finished_80x24", &h.screen(80, 24));
    assert!(h.key('q').is_empty(), "no trainer left to tell");
    assert_eq!(h.app.exit(), Some(EndReason::Done));
}

#[test]
fn pace_ladder() {
    let mut h = Harness::seed();
    // The fixture runs at full speed: slower starts at the top of the pace ladder.
    assert_eq!(h.key('<'), vec![Command::SetPace(Some(100.0))]);
    assert_eq!(h.key(','), vec![Command::SetPace(Some(50.0))]);
    assert!(h.screen(120, 40).contains("pace 50 epochs/s"));
    assert_eq!(h.key('>'), vec![Command::SetPace(Some(100.0))]);
    assert_eq!(h.key('.'), vec![Command::SetPace(None)]);
    assert!(h.app.status_text().unwrap().contains("full speed"));
    assert!(!h.screen(120, 40).contains("epochs/s"));
}

#[test]
fn momentum_ladder_and_cumulative() {
    let mut h = Harness::seed();
    let ups: Vec<_> = (0..4).flat_map(|_| h.key(']')).collect();
    assert_eq!(
        ups,
        vec![
            Command::SetMomentum(0.995),
            Command::SetMomentum(0.999),
            Command::SetMomentum(0.9999)
        ]
    );
    assert!(h.app.status_text().unwrap().contains("top of the ladder"));
    assert_eq!(h.key('-'), vec![Command::SetMomentum(0.999)]);
    assert_eq!(h.key('['), vec![Command::SetMomentum(0.995)]);
    assert_eq!(h.key('='), vec![Command::SetMomentum(0.999)]);
    // An epoch report with the old momentum does not undo the pending change on screen.
    h.trainer(Event::Epoch(fixtures::epoch(6)));
    assert!(h.screen(120, 40).contains("0.999 (Keras)"));
    assert_eq!(h.key('u'), vec![Command::SetCumulative(true)]);
    let s = h.screen(120, 40);
    assert!(s.contains("cumulative"), "{s}");
    assert_eq!(h.key('m'), vec![]);
    assert_eq!(h.key('u'), vec![Command::SetCumulative(false)]);
    assert!(h.screen(120, 40).contains("0.001 (PyTorch/candle) = 0.999 (Keras)"));
}

#[test]
fn pause_step_and_run_keys() {
    let mut h = Harness::seed();
    assert!(h.key('n').is_empty(), "n only steps while paused");
    assert_eq!(h.key(' '), vec![Command::Pause]);
    assert!(h.screen(120, 40).contains("paused"));
    assert_eq!(h.key('n'), vec![Command::Step]);
    assert_eq!(h.app.status_text(), Some("one epoch…"));
    h.trainer(Event::Epoch(fixtures::epoch(6)));
    assert_eq!(
        h.app.status_text(),
        Some("stepped to epoch 6 · n steps again, space resumes")
    );
    assert_eq!(h.key(' '), vec![Command::Resume]);
    assert_eq!(h.key('c'), vec![Command::Recalibrate]);
    // R asks first: a second R restarts, any other key keeps the run.
    assert!(h.key('R').is_empty());
    assert!(h.app.status_text().unwrap().contains("R again restarts"));
    assert_eq!(
        h.key('e'),
        Vec::<Command>::new()
            .into_iter()
            .chain([Command::NoteEvalMode(EvalMode::Batch)])
            .collect::<Vec<_>>()
    );
    assert!(h.key('R').is_empty());
    assert_eq!(h.key('R'), vec![Command::Restart]);
    h.key('e');
    // Releases and repeats are ignored.
    let mut release = KeyEvent::new(KeyCode::Char('e'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert!(h.app.handle_event(AppEvent::Key(release)).is_empty());
    assert_eq!(h.app.eval_mode(), EvalMode::Running);
}

#[test]
fn unbound_keys_say_so_and_moves_past_the_end_do_not_redraw() {
    let mut h = Harness::seed();
    h.app.take_dirty();
    assert!(h.key('y').is_empty());
    assert_eq!(h.app.status_text(), Some("y: not a key here; ? lists the keys"));
    assert!(h.app.take_dirty());
    h.key('e');
    assert!(h.app.take_dirty());
    // Moving past the end changes nothing either.
    h.key_code(KeyCode::Home, KeyModifiers::NONE);
    h.app.take_dirty();
    h.key('k');
    assert!(!h.app.take_dirty());
}

#[test]
fn nan_is_never_garbage() {
    let mut h = Harness::seed();
    let mut m = fixtures::epoch(6);
    m.train = Metric {
        loss: f32::NAN,
        acc: f32::NAN,
    };
    m.eval_running.loss = f32::INFINITY;
    m.predictions_running[0] = vec![f32::NAN; 3];
    h.trainer(Event::Epoch(m));
    let mut snap = (*fixtures::bn_snapshot(6)).clone();
    snap.layers[0].mean_gap = f32::NAN;
    h.slot.put(Arc::new(snap));
    h.trainer(Event::BnReady);
    h.trainer(Event::Diverged {
        epoch: 6,
        loss: f32::NAN,
        what: "the training loss is not finite".into(),
    });
    let s = h.screen(120, 40);
    assert!(s.contains("NaN"), "{s}");
    assert!(s.contains("diverged"), "{s}");
    assert!(!s.contains("nan") && !s.contains("inf"), "{s}");
    snapshot("diverged_120x40", &s);
}

#[test]
fn many_layers_scroll() {
    let mut h = Harness::seed();
    let mut snap = (*fixtures::bn_snapshot(5)).clone();
    let base = snap.layers.clone();
    snap.layers = (0..53)
        .map(|i| {
            let mut l = base[i % base.len()].clone();
            l.name = format!("layer{}.{}.bn{}", i / 12 + 1, i % 6, i % 3 + 1);
            l
        })
        .collect();
    snap.layers[52].name = "last.layer".into();
    h.slot.put(Arc::new(snap));
    h.trainer(Event::BnReady);
    h.key_code(KeyCode::End, KeyModifiers::NONE);
    assert_eq!(h.app.selected_layer(), 52);
    let s = h.screen(120, 40);
    assert!(s.contains("last.layer"), "{s}");
    assert!(s.contains("of 53"), "{s}");
    h.key_code(KeyCode::PageUp, KeyModifiers::NONE);
    assert_eq!(h.app.selected_layer(), 42);
    assert!(h.screen(80, 24).contains("of 53"));
    h.key_code(KeyCode::Home, KeyModifiers::NONE);
    h.key_code(KeyCode::Down, KeyModifiers::NONE);
    h.key_code(KeyCode::PageDown, KeyModifiers::NONE);
    assert_eq!(h.app.selected_layer(), 11);
}

#[test]
fn ascii_and_no_color() {
    let mut h = Harness::new(TuiOptions {
        ascii: true,
        no_color: true,
        ..TuiOptions::default()
    });
    h.story(5);
    h.key('e');
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    term.draw(|f| f.render_widget(&h.app, f.area())).unwrap();
    let buf = term.backend().buffer().clone();
    for cell in buf.content() {
        assert!(cell.symbol().is_ascii(), "non-ASCII {:?}", cell.symbol());
        assert_eq!(cell.fg, ratatui::style::Color::Reset);
        assert_eq!(cell.bg, ratatui::style::Color::Reset);
    }
    snapshot("ascii_120x40", &term.backend().to_string());
}

#[test]
fn restart_keeps_history_and_marks_it() {
    let mut h = Harness::seed();
    h.key('R');
    h.trainer(Event::Started(fixtures::run_info()));
    for (ev, snap) in seed_story(2).into_iter().skip(1) {
        if let Some(s) = snap {
            h.slot.put(s);
        }
        h.trainer(ev);
    }
    let s = h.screen(120, 40);
    assert!(s.contains('R'), "{s}");
    assert!(!h.app.is_dirty() || h.app.take_dirty());
}

/// Epoch `e` of a longer story: eval with running stats stays at 0.333 until epoch `converge`, then 1.0.
fn long_epoch(e: usize, converge: usize) -> Event {
    let mut m = fixtures::epoch(e);
    // As the trainer reports it: 0.99 until '-' after epoch 100, 0.98 from then on, 'r' after epoch 250.
    let (t, w, c) = match e {
        ..=100 => (e, 0.99f64.powi(e as i32), Some(0.99)),
        101..=250 => (e, 0.99f64.powi(100) * 0.98f64.powi(e as i32 - 100), None),
        _ => (e - 250, 0.98f64.powi(e as i32 - 250), Some(0.98)),
    };
    m.momentum = if e > 100 { 0.98 } else { 0.99 };
    m.t = t as u64;
    m.age = bnscope::protocol::StatsAge {
        t: t as u64,
        init_weight: w,
        constant_momentum: c,
    };
    m.eval_running.acc = if e >= converge { 1.0 } else { 1.0 / 3.0 };
    m.eval_running.loss = if e >= converge { 0.01 } else { 1.1 };
    m.train.loss = 0.01;
    m.eval_batch.loss = 0.01;
    Event::Epoch(m)
}

/// The row of `screen` (TestBackend's quoted lines) that starts with `label` in the accuracy panel, as chars.
fn panel_row(screen: &str, label: &str) -> Vec<char> {
    let line = screen
        .lines()
        .find(|l| l.starts_with(&format!("\"│ {label}")))
        .unwrap_or_else(|| panic!("no row {label}:\n{screen}"));
    line.trim_matches('"').chars().collect()
}

#[test]
fn long_history_is_aggregated_with_marks_in_place() {
    let mut h = Harness::new(TuiOptions::default());
    h.trainer(Event::Started(fixtures::run_info()));
    for e in 1..=300 {
        h.trainer(long_epoch(e, 126));
        if e == 100 {
            h.key('-');
        }
        if e == 250 {
            h.key('r');
        }
    }
    let s = h.screen(120, 40);
    // 300 epochs in 33 columns: 10 per column, the whole run on screen.
    let axis = panel_row(&s, "epoch");
    let axis_s: String = axis.iter().collect();
    assert!(axis_s.contains(" 1 "), "{s}");
    assert!(axis_s.contains("10 epochs/column"), "{s}");
    assert!(axis_s.contains("300 "), "{s}");
    // Column j holds epochs 10j+1..=10j+10; the sparkline starts 16 chars into the line ("│ " + 14).
    let x0 = 16;
    let events = panel_row(&s, "events");
    // '-' (marked m) came after epoch 100 (point index 100: epoch 101, column 10), 'r' after epoch 250 (column 25).
    assert_eq!(events[x0 + 10], 'm', "{s}");
    assert_eq!(events[x0 + 25], 'r', "{s}");
    assert_eq!(events[x0 + 29], '·', "{s}");
    assert_eq!(events[x0 + 30], ' ', "only 30 columns are used: {s}");
    // Eval running: 0.333 until epoch 125, so the column of epochs 121..130 is half and half (mean 0.667).
    let running = panel_row(&s, "eval running");
    assert_eq!(running[x0 + 11], '▃', "{s}");
    assert_eq!(running[x0 + 12], '▆', "{s}");
    assert_eq!(running[x0 + 13], '█', "{s}");
    assert!(s.contains("(bars: means)"), "{s}");
    snapshot("long_run_120x40", &s);
    // At 80×24 there is no axis row: the accuracy title says what the columns span.
    let s = h.screen(80, 24);
    assert!(s.contains("epochs 1–300, 6/col"), "{s}");
    snapshot("long_run_80x24", &s);
}

#[test]
fn short_history_is_one_epoch_per_column() {
    let mut h = Harness::new(TuiOptions::default());
    h.trainer(Event::Started(fixtures::run_info()));
    for e in 1..=33 {
        h.trainer(long_epoch(e, 20));
    }
    let s = h.screen(120, 40);
    let axis: String = panel_row(&s, "epoch").iter().collect();
    assert!(axis.contains(" 1 ") && axis.contains(" 33 "), "{s}");
    assert!(!axis.contains("epochs/column"), "{s}");
    let running = panel_row(&s, "eval running");
    assert_eq!(running[16 + 18], '▃', "{s}");
    assert_eq!(running[16 + 19], '█', "{s}");
}

/// The header's "travelled" figure is `1 − ∏ mᵢ` under momentum changes, and 100 % right after a recalibration
/// while paused (the snapshot the trainer sends after `c` carries the new start weight, before any epoch).
#[test]
fn header_travelled_after_momentum_change_and_recalibration() {
    use bnscope::protocol::{EventKind, StatsAge};
    let mut h = Harness::new(TuiOptions::default());
    h.trainer(Event::Started(fixtures::run_info()));
    // 95 epochs at 0.99, then '-' three times (0.98, 0.95, 0.9) and 80 epochs at 0.9, one update per epoch.
    let mut w = 1.0f64;
    for e in 1..=175usize {
        if e == 96 {
            for _ in 0..3 {
                h.key('-');
            }
            h.trainer(Event::Applied {
                epoch: 95,
                what: EventKind::Momentum,
                value: "0.9".into(),
            });
        }
        let m = if e <= 95 { 0.99 } else { 0.9 };
        w *= m;
        let mut ep = fixtures::epoch(e);
        ep.momentum = m;
        ep.t = e as u64;
        ep.age = StatsAge {
            t: e as u64,
            init_weight: w,
            constant_momentum: if e <= 95 { Some(0.99) } else { None },
        };
        h.trainer(Event::Epoch(ep));
    }
    let s = h.screen(120, 40);
    // 1 − 0.99⁹⁵·0.9⁸⁰ = 1 − 7.9e-5: not the 1 − 0.9¹⁷⁵ the old header claimed.
    assert!(s.contains("t=175 · running stats travelled 1−∏mᵢ = 99.992%"), "{s}");
    assert!(s.contains("within 1% of the batch stats (t=175)"), "{s}");
    snapshot("after_momentum_change_120x40", &s);

    // Paused, then c: the trainer acknowledges and sends a snapshot with t = 1 and w = 0 (one batch).
    h.key(' ');
    h.trainer(Event::Applied {
        epoch: 175,
        what: EventKind::Pause,
        value: String::new(),
    });
    h.key('c');
    h.trainer(Event::Applied {
        epoch: 175,
        what: EventKind::Recalibrate,
        value: "1 batches".into(),
    });
    let mut snap = (*fixtures::bn_snapshot(175)).clone();
    snap.t = 1;
    snap.age = StatsAge {
        t: 1,
        init_weight: 0.0,
        constant_momentum: Some(0.0),
    };
    h.slot.put(Arc::new(snap));
    h.trainer(Event::BnReady);
    h.trainer(Event::Refreshed(Box::new(refresh(175, 1, 0.0))));
    let s = h.screen(120, 40);
    // #23: not "travelled 1−0 = 100%", which reads as converged: the statistics are the recalibration's estimate.
    assert!(
        s.contains("t=1 · running stats = the data's estimate (no start left)"),
        "{s}"
    );
    snapshot("after_recalibrate_120x40", &s);
}

/// The trainer's evaluations after a reset or a recalibration at epoch `e`: `t` updates, `w` of the start left.
fn refresh(e: usize, t: u64, w: f64) -> bnscope::protocol::Refresh {
    let m = fixtures::epoch(e);
    bnscope::protocol::Refresh {
        epoch: e,
        age: bnscope::protocol::StatsAge {
            t,
            init_weight: w,
            constant_momentum: None,
        },
        eval_running: m.eval_running,
        eval_batch: m.eval_batch,
        predictions_running: m.predictions_running.clone(),
        predictions_batch: m.predictions_batch.clone(),
        eval_ema: None,
    }
}

/// #23: `c` says "recalibrating…" until the evaluations with the new statistics are on screen (on resnet18 the
/// trainer's acknowledgement came ~10 s before them, and the status line said "re-estimated" over old numbers);
/// the waiting words do not time out.
#[test]
fn recalibration_is_confirmed_once_its_numbers_are_on_screen() {
    use bnscope::protocol::EventKind;
    let mut h = Harness::seed();
    h.key('c');
    assert!(
        h.app.status_text().unwrap().starts_with("recalibrating…"),
        "{:?}",
        h.app.status_text()
    );
    h.trainer(Event::Applied {
        epoch: 5,
        what: EventKind::Recalibrate,
        value: "2 batches".into(),
    });
    let s = h.screen(120, 40);
    assert!(s.contains("recalibrating…") && !s.contains("re-estimated"), "{s}");
    h.app
        .expire_status(std::time::Instant::now() + std::time::Duration::from_secs(60));
    assert!(h.app.status_text().is_some_and(|t| t.starts_with("recalibrating…")));
    h.trainer(Event::Refreshed(Box::new(refresh(5, 2, 0.0))));
    let s = h.screen(120, 40);
    assert!(
        s.contains("running stats re-estimated from the data (2 batches)"),
        "{s}"
    );
}

/// #23: `Tab`, `w` names a channel ("channel 4: the furthest…") and marks its row in the channel list (no row was
/// marked before).
#[test]
fn w_marks_the_channel_it_names() {
    let mut h = Harness::seed();
    let before = h.screen(120, 40);
    h.key_code(KeyCode::Tab, KeyModifiers::NONE);
    h.key('w');
    let status = h.app.status_text().expect("a status").to_string();
    let c: usize = status
        .strip_prefix("channel ")
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    let s = h.screen(120, 40);
    let marked = format!("│ ▶{c:>2} ");
    assert!(s.lines().any(|l| l.contains(&marked)), "no row {marked:?}:\n{s}");
    assert!(!before.contains(&marked), "{before}");
}

/// #23: a live run's header has its elapsed time, an ETA with `--epochs` and the process's RSS where the title
/// still fits beside them, and stays whole at every size.
#[test]
fn header_has_the_clock_and_rss_where_they_fit() {
    let mut h = Harness::new(TuiOptions {
        clock: true,
        ..TuiOptions::default()
    });
    let mut info = (*fixtures::run_info()).clone();
    info.epochs = Some(100);
    h.trainer(Event::Started(Arc::new(info)));
    for e in 1..=5 {
        h.trainer(Event::Epoch(fixtures::epoch(e)));
    }
    let s = h.screen(200, 60);
    let top = s.lines().next().unwrap();
    assert!(
        top.contains("epoch 5/100 · 0 s, ETA 0 s · RSS ") && top.contains(" MB · step 5"),
        "{top}"
    );
    for (w, ht) in [(60, 16), (80, 23), (120, 40)] {
        let s = h.screen(w, ht);
        let top = s.lines().next().unwrap();
        assert!(
            top.contains("epoch 5/100") && top.contains("running"),
            "{w}×{ht}: {top}"
        );
    }
}

/// The seed's screen at every size from 80×24 to 200×60: nothing cut in the middle of a word, no two columns
/// running into each other, the pace visible, the help whole (a snapshot per size).
#[test]
fn every_size_from_80x24_to_200x60() {
    let mut h = Harness::seed();
    h.trainer(Event::Applied {
        epoch: 5,
        what: bnscope::protocol::EventKind::Pace,
        value: "7 epochs/s".into(),
    });
    let mut info = (*fixtures::run_info()).clone();
    info.pace = Some(7.0);
    h.trainer(Event::Started(std::sync::Arc::new(info)));
    h.story_epochs_after_restart();
    for (w, hgt) in [(80u16, 24u16), (100, 30), (120, 40), (160, 50), (200, 60)] {
        let s = h.screen(w, hgt);
        let first = s.lines().next().unwrap();
        assert!(!first.contains('…'), "{w}x{hgt}: title cut: {first}");
        if w >= 100 {
            assert!(first.contains("images"), "{w}x{hgt}: {first}");
            assert!(w < 120 || first.contains("(cat, coffee, rocket)"), "{w}x{hgt}: {first}");
            // The channel panel's two headings stay apart.
            let head = s.lines().find(|l| l.contains("ch  mean")).unwrap();
            assert!(head.contains("mean:") && head.contains("var:"), "{w}x{hgt}: {head}");
            assert!(!head.contains("batvar") && !head.contains("bavar"), "{w}x{hgt}: {head}");
            let summary = s.lines().find(|l| l.contains("vs batch: mean")).unwrap();
            assert!(summary.contains("apart"), "{w}x{hgt}: {summary}");
        }
        assert!(s.contains("pace 7 epochs/s"), "{w}x{hgt}: no pace\n{s}");
        snapshot(&format!("size_{w}x{hgt}"), &s);
    }
    h.app.handle_event(AppEvent::Resize(80, 24));
    h.key('?');
    let s = h.screen(80, 24);
    assert!(s.contains("q Esc Ctrl-C"), "{s}");
    snapshot("help_80x24", &s);
    // The rest is a scroll away.
    h.key_code(KeyCode::End, KeyModifiers::NONE);
    assert!(h.screen(80, 24).contains("momentum ladder"));
    h.key('?');
}

/// The interactions people expect from btop/gitui: Tab moves the arrows to the channel list (which scrolls to
/// every channel), w jumps to the worst channel, z zooms the charts, a click selects a layer, the wheel scrolls.
#[test]
fn focus_zoom_and_mouse() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut h = Harness::seed();
    // 64 channels in the selected layer: more than the panel shows.
    let mut snap = (*fixtures::bn_snapshot(5)).clone();
    let l0 = snap.layers[0].clone();
    snap.layers[0] = bnscope::protocol::BnLayerSnapshot {
        running_mean: (0..64)
            .map(|c| l0.running_mean[c % 16] + if c == 37 { 5.0 } else { 0.0 })
            .collect(),
        running_var: (0..64).map(|c| l0.running_var[c % 16]).collect(),
        batch_mean: (0..64).map(|c| l0.batch_mean[c % 16]).collect(),
        batch_var: (0..64).map(|c| l0.batch_var[c % 16]).collect(),
        ..l0
    };
    h.slot.put(Arc::new(snap));
    h.trainer(Event::BnReady);
    h.app.handle_event(AppEvent::Resize(120, 40));
    let s = h.screen(120, 40);
    assert!(s.contains("channels 0–"), "{s}");
    assert!(s.contains("furthest: ch 37 (w)"), "{s}");
    h.key_code(KeyCode::Tab, KeyModifiers::NONE);
    h.key('w');
    let s = h.screen(120, 40);
    assert!(s.contains(" 37 "), "the worst channel is on screen: {s}");
    assert!(s.contains("▶ arrows"), "{s}");
    // j moves the channels now, not the layers.
    h.key('j');
    assert_eq!(h.app.selected_layer(), 0);
    h.key_code(KeyCode::Tab, KeyModifiers::NONE);
    h.key('j');
    assert_eq!(h.app.selected_layer(), 1);
    // z: the last 100, then the last 20 epochs, then all.
    h.key('z');
    assert!(h.screen(120, 40).contains("last 100 epochs (z)"));
    h.key('z');
    assert!(h.screen(120, 40).contains("last 20 epochs (z)"));
    h.key('z');
    assert!(!h.screen(120, 40).contains("epochs (z)"));
    // A click on the fourth layer row selects it (rows start two below the panel's top border).
    let mouse = |kind, column, row| {
        AppEvent::Mouse(MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    let s = h.screen(120, 40);
    let y = s.lines().position(|l| l.contains("layer2.0.bn1")).unwrap() as u16;
    h.app
        .handle_event(mouse(MouseEventKind::Down(MouseButton::Left), 10, y));
    assert_eq!(h.app.selected_layer(), 3);
    // The wheel over the layers moves the selection; over the charts it zooms.
    h.app.handle_event(mouse(MouseEventKind::ScrollDown, 10, y));
    assert_eq!(h.app.selected_layer(), 4);
    h.app.handle_event(mouse(MouseEventKind::ScrollUp, 10, 8));
    assert!(h.screen(120, 40).contains("last 100 epochs (z)"));
}

#[test]
fn lessons_overlay_lists_them_and_a_digit_starts_one() {
    let mut h = Harness::seed();
    assert!(h.key('L').is_empty());
    let s = h.screen(120, 40);
    for l in &bnscope::lesson::LESSONS {
        assert!(s.contains(l.scenario.name()), "{} missing:\n{s}", l.scenario.name());
    }
    snapshot("lessons_120x40", &s);
    // Arrows move the selection; Esc closes the list without ending the run.
    h.key_code(KeyCode::Down, KeyModifiers::NONE);
    assert!(
        h.screen(120, 40).contains("Training at batch 2"),
        "the selected lesson's text"
    );
    assert!(h.key_code(KeyCode::Esc, KeyModifiers::NONE).is_empty());
    assert!(!h.screen(120, 40).contains("Training at batch 2"));
    assert!(h.app.outcome().is_none(), "Esc closes the list, nothing else");
    // A digit starts that lesson: this run quits, and the outcome asks main to start the lesson.
    h.key('L');
    let cmds = h.key('4');
    assert!(cmds.contains(&Command::Quit(EndReason::Quit)), "{cmds:?}");
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Quit,
        checkpoint: None,
    });
    let o = h.app.outcome().expect("the run ended");
    assert_eq!(o.relaunch.as_deref(), Some("shifted-eval"));
    assert_eq!(o.exit_status(), 0);
}

/// `z z`: the charts show the last 20 epochs, and the axis (or, at 80×24, the title) names those epochs, not the
/// whole history's.
#[test]
fn zoomed_axis_names_the_zoomed_epochs() {
    let mut h = Harness::new(TuiOptions::default());
    h.story(60);
    h.key('z');
    h.key('z');
    let s = h.screen(120, 40);
    assert!(s.contains("last 20 epochs (z)"), "{s}");
    let axis = s.lines().find(|l| l.starts_with("\"│ epoch ")).expect("an axis row");
    assert!(
        axis.contains(" 41 ") && axis.contains(" 60 "),
        "axis from epoch 41: {axis}\n{s}"
    );
    assert!(!axis.contains(" 1 "), "not from epoch 1: {axis}");
    // The title drops a field that does not fit rather than cutting it mid-number ("running 0.6").
    let title = s.lines().find(|l| l.contains("accuracy")).unwrap();
    assert!(!title.contains("gap") || title.contains("0.667"), "{title}");
}

/// A snapshot as the trainer has it before any batch (just after `R R`): running 0/1, batch statistics NaN.
fn before_any_batch() -> Arc<bnscope::protocol::BnSnapshot> {
    let mut snap = (*fixtures::bn_snapshot(0)).clone();
    for l in &mut snap.layers {
        l.running_mean.iter_mut().for_each(|v| *v = 0.0);
        l.running_var.iter_mut().for_each(|v| *v = 1.0);
        l.batch_mean.iter_mut().for_each(|v| *v = f32::NAN);
        l.batch_var.iter_mut().for_each(|v| *v = f32::NAN);
        l.mean_gap = f32::NAN;
        l.var_gap = f32::NAN;
    }
    Arc::new(snap)
}

/// `R R`: before the first batch the BatchNorm panels say "no batch yet", never `0.00→NaN` or "mean NaN off".
#[test]
fn restart_says_no_batch_yet_instead_of_nan() {
    let mut h = Harness::seed();
    h.key('R');
    h.key('R');
    h.trainer(Event::Started(fixtures::run_info()));
    h.slot.put(before_any_batch());
    h.trainer(Event::BnReady);
    let s = h.screen(120, 40);
    assert!(s.contains("no batch yet"), "{s}");
    for bad in ["→NaN", "NaN off", "var – apart", " NaN "] {
        assert!(!s.contains(bad), "{bad}:\n{s}");
    }
}

/// The groupnorm lesson: no running statistics, so no "1% needs 459 updates", no NaN gauges.
#[test]
fn groupnorm_says_it_has_no_running_statistics() {
    let mut h = Harness::new(TuiOptions::default());
    let mut info = (*fixtures::run_info()).clone();
    info.norm = "group".into();
    h.trainer(Event::Started(Arc::new(info)));
    for (ev, snap) in seed_story(5).into_iter().skip(1) {
        if snap.is_some() {
            h.slot.put(before_any_batch());
        }
        h.trainer(ev);
    }
    let s = h.screen(120, 40);
    assert!(s.contains("GroupNorm: no running statistics"), "{s}");
    for bad in ["needs 459 updates", "to go", "→NaN", "NaN off", " NaN "] {
        assert!(!s.contains(bad), "{bad}:\n{s}");
    }
}

/// Frozen statistics (`--frozen-bn inference`): the header says they never move and what moves them, instead of
/// counting updates to go.
#[test]
fn frozen_statistics_say_they_never_move() {
    let mut h = Harness::new(TuiOptions::default());
    let mut info = (*fixtures::run_info()).clone();
    info.frozen_bn = Some("inference".into());
    h.trainer(Event::Started(Arc::new(info)));
    h.story_epochs_after_restart();
    let s = h.screen(120, 40);
    assert!(s.contains("never move"), "{s}");
    assert!(s.contains("(c re-estimates them)"), "{s}");
    assert!(!s.contains("to go"), "{s}");
}

/// The help owns its keys: the arrows scroll it (the legend is reachable at 80×24) instead of moving the layer
/// selection behind it, other keys wait, and at 120×40 its lines wrap instead of being cut.
#[test]
fn help_scrolls_and_owns_its_keys() {
    let mut h = Harness::seed();
    h.app.handle_event(AppEvent::Resize(80, 24));
    h.key('?');
    let s = h.screen(80, 24);
    assert!(
        !s.contains("Gauges: mean"),
        "the legend is below the fold at first:\n{s}"
    );
    assert!(s.contains("scroll"), "the overlay says it scrolls:\n{s}");
    for _ in 0..60 {
        h.key('j');
    }
    assert_eq!(h.app.selected_layer(), 0, "j scrolled the help, not the layers");
    let s = h.screen(80, 24);
    assert!(
        s.contains("how many times apart"),
        "the legend's end after scrolling:\n{s}"
    );
    // Other keys do nothing behind the help.
    assert!(h.key('+').is_empty());
    assert!(h.key('c').is_empty());
    h.key_code(KeyCode::Esc, KeyModifiers::NONE);
    h.key('j');
    assert_eq!(h.app.selected_layer(), 1, "closed: j moves the layers again");
    // 120×40: every help text is whole (the longest, L's, ends "a new run").
    h.app.handle_event(AppEvent::Resize(120, 40));
    h.key('?');
    let s = h.screen(120, 40);
    assert!(s.contains("a new run"), "{s}");
}

/// `n n n u n` at momentum 0.9: four updates, the fourth at 1/4 (PyTorch's momentum=None counts all of them), so
/// 0.9³ · 3/4 = 54.7% of the start is left: the header must not call that "the mean of 4 batches".
#[test]
fn cumulative_after_a_switch_is_not_a_mean() {
    let mut h = Harness::new(TuiOptions::default());
    h.story(3);
    let mut m = fixtures::epoch(4);
    m.cumulative = true;
    m.t = 4;
    m.age = bnscope::protocol::StatsAge {
        t: 4,
        init_weight: 0.9f64.powi(3) * 0.75,
        constant_momentum: None,
    };
    h.trainer(Event::Epoch(m));
    let s = h.screen(120, 40);
    assert!(!s.contains("mean of 4"), "{s}");
    assert!(s.contains("54.7% still the start"), "{s}");
}

/// `--save-weights`: the file the trainer wrote is said after the screen is gone (a line for stderr), not only in
/// a status line that vanishes with the TUI.
#[test]
fn saved_weights_are_said_after_the_screen() {
    let mut h = Harness::seed();
    h.trainer(Event::Applied {
        epoch: 5,
        what: bnscope::protocol::EventKind::SaveWeights,
        value: "out/model.safetensors".into(),
    });
    h.trainer(Event::Finished {
        epochs: 5,
        reason: EndReason::Done,
        checkpoint: None,
    });
    h.key('q');
    let o = h.app.outcome().expect("an outcome after q");
    assert_eq!(
        o.notes,
        vec!["weights written to out/model.safetensors (a PyTorch state_dict)".to_string()]
    );
    assert!(o.messages.is_empty() && !o.failed);
}
