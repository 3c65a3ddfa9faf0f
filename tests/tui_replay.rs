//! The TUI over a log (`bnscope replay`/`watch`): the committed log fixtures (bnscope's own, the PyTorch hook's,
//! the Keras callback's, two gloo rank logs) replayed at a chosen epoch into `TestBackend`, kept as insta snapshots
//! (tests/snapshots/tui_replay__*.snap; accept changes with `INSTA_UPDATE=always cargo test --release --test
//! tui_replay`, then review them); the cursor keys, playback, read-only keys, what a log lacks, and a watch's
//! findings arriving as events.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bnscope::logfile::{read_file, Followed, Reader};
use bnscope::tui::timeline::Timeline;
use bnscope::tui::{App, AppEvent, TuiOptions};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name)
}

/// A replay of fixture files, as `bnscope replay` opens it (the cursor on the last epoch).
fn replay(names: &[&str]) -> App {
    let mut tl = Timeline::new(names.iter().map(|n| n.to_string()).collect(), false);
    for (i, n) in names.iter().enumerate() {
        let (records, _) = read_file(&fixture(n)).unwrap();
        tl.take(i, records);
    }
    App::over_log(&TuiOptions::default(), tl, 7.0)
}

/// A replay of log text (one file).
fn replay_text(text: &str) -> App {
    let mut r = Reader::default();
    let mut recs = r.push(text).unwrap();
    recs.extend(r.finish().unwrap());
    let mut tl = Timeline::new(vec!["run.jsonl".into()], false);
    tl.take(0, recs);
    App::over_log(&TuiOptions::default(), tl, 7.0)
}

fn key(app: &mut App, code: KeyCode, mods: KeyModifiers) {
    let cmds = app.handle_event(AppEvent::Key(KeyEvent::new(code, mods)));
    assert!(cmds.is_empty(), "a log sends no commands: {cmds:?}");
}

fn ch(app: &mut App, c: char) {
    let mods = if c.is_ascii_uppercase() || "{}?+<>".contains(c) {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    key(app, KeyCode::Char(c), mods);
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| f.render_widget(app, f.area())).unwrap();
    term.backend().to_string()
}

/// Moves the cursor to `epoch` with the arrow keys from the last one.
fn go_to(app: &mut App, epoch: usize, last: usize) {
    for _ in epoch..last {
        key(app, KeyCode::Left, KeyModifiers::NONE);
    }
}

fn header(s: &str) -> &str {
    s.lines().next().unwrap()
}

#[test]
fn bnscope_own_log_at_epoch_5() {
    let mut app = replay(&["bnscope_seed.jsonl"]);
    go_to(&mut app, 5, 12);
    let s = screen(&app, 120, 40);
    assert!(header(&s).contains("REPLAY · bnscope_seed.jsonl · tiny ResNet"), "{s}");
    assert!(header(&s).contains("epoch 5 (5 of 12)"), "{s}");
    // The seed's moment: trained, but evaluation with the running statistics is poor.
    assert!(s.contains("travelled 1−0.99⁵ = 4.9%"), "{s}");
    // bnscope's default log has gaps only: the channel panel says so, the variance gauge shows the gap.
    assert!(s.contains("per-channel statistics: not in this log"), "{s}");
    assert!(s.contains("var close"), "{s}");
    insta::assert_snapshot!("bnscope_epoch5_120x40", s);
}

#[test]
fn pytorch_hook_log_shows_20_layers_and_the_gap() {
    let mut app = replay(&["torch_resnet18.jsonl"]);
    let s = screen(&app, 120, 40);
    assert!(s.contains("BatchNorm layers (20)"), "{s}");
    assert!(s.contains("ResNet-18"), "{s}");
    let acc = s.lines().find(|l| l.contains("│ train (batch)")).unwrap();
    assert!(acc.contains("1.000"), "{acc}");
    let run = s.lines().find(|l| l.contains("│ eval running")).unwrap();
    assert!(run.contains("0.333"), "{run}");
    // No predictions in this log: said, not drawn as zeros.
    assert!(s.contains("predictions: not in this log"), "{s}");
    insta::assert_snapshot!("torch_resnet18_epoch5_120x40", s);
    // Epoch 2: no per-channel arrays in that record.
    go_to(&mut app, 2, 5);
    let s = screen(&app, 120, 40);
    assert!(header(&s).contains("epoch 2 (2 of 5)"), "{s}");
    assert!(s.contains("per-channel statistics: not in this log"), "{s}");
    insta::assert_snapshot!("torch_resnet18_epoch2_120x40", s);
}

#[test]
fn keras_callback_log_at_epoch_3() {
    let mut app = replay(&["keras_small.jsonl"]);
    go_to(&mut app, 3, 5);
    let s = screen(&app, 120, 40);
    assert!(header(&s).contains("keras_small"), "{s}");
    assert!(s.contains("BatchNorm layers (2)"), "{s}");
    // Keras writes no `t`: one moving-statistics update per training step, so t is the step.
    assert!(s.contains("updates t=3"), "{s}");
    assert!(s.contains("1 of 3 right"), "{s}");
    insta::assert_snapshot!("keras_small_epoch3_120x40", s);
}

#[test]
fn rank_logs_show_how_far_the_ranks_are_apart() {
    let app = replay(&["ddp.rank0.jsonl", "ddp.rank1.jsonl"]);
    let s = screen(&app, 120, 40);
    assert!(header(&s).contains("ddp.rank0.jsonl +1 rank log"), "{s}");
    assert!(s.contains("ranks ≤8.0% apart (epoch 5)"), "{s}");
    assert!(
        s.contains("Ranks apart: their running means differ by up to 8.0%"),
        "{s}"
    );
    // Every layer has its own spread; the headless replay's numbers (tests/cli.rs) are the same computation.
    let row = |name: &str| {
        s.lines()
            .find(|l| l.contains(&format!("│   {name} ")))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        s.contains("│ ▶ 1 ") && s.lines().any(|l| l.contains("│ ▶ 1 ") && l.contains("8.0% │")),
        "{s}"
    );
    assert!(row("6.bn2").contains("5.6% │"), "{s}");
    assert!(row("4.bn2").contains("1.1% │"), "{s}");
    insta::assert_snapshot!("ddp_ranks_epoch5_120x40", s);
    insta::assert_snapshot!("ddp_ranks_epoch5_80x24", screen(&app, 80, 24));
}

#[test]
fn cursor_keys_move_every_panel() {
    let mut app = replay(&["bnscope_seed.jsonl"]);
    let epoch = |app: &App| {
        let s = screen(app, 120, 40);
        let h = header(&s).to_string();
        let e = h.split("epoch ").nth(1).unwrap().split(' ').next().unwrap().to_string();
        e.parse::<usize>().unwrap()
    };
    assert_eq!(epoch(&app), 12);
    key(&mut app, KeyCode::Home, KeyModifiers::NONE);
    assert_eq!(epoch(&app), 1);
    let s = screen(&app, 120, 40);
    // At epoch 1 the history has one point and the step count says 1.
    assert!(s.contains("step 1 "), "{s}");
    key(&mut app, KeyCode::Right, KeyModifiers::SHIFT);
    assert_eq!(epoch(&app), 11);
    key(&mut app, KeyCode::Right, KeyModifiers::SHIFT);
    assert_eq!(epoch(&app), 12, "clamped at the end");
    key(&mut app, KeyCode::Left, KeyModifiers::SHIFT);
    assert_eq!(epoch(&app), 2);
    key(&mut app, KeyCode::Right, KeyModifiers::NONE);
    assert_eq!(epoch(&app), 3);
    key(&mut app, KeyCode::End, KeyModifiers::NONE);
    assert_eq!(epoch(&app), 12);
    // Layers still move with the arrows up and down.
    key(&mut app, KeyCode::Down, KeyModifiers::NONE);
    assert_eq!(app.selected_layer(), 1);
}

#[test]
fn run_keys_are_dimmed_and_refused() {
    let mut app = replay(&["bnscope_seed.jsonl"]);
    for c in ['+', '-', 'r', 'c', 'R', 'n', 'u'] {
        ch(&mut app, c);
        assert_eq!(
            app.status_text(),
            Some("replay: this log is read-only (that key changes a live run)"),
            "{c}"
        );
    }
    // `e` still switches the headline (a view, not the run).
    ch(&mut app, 'e');
    assert!(screen(&app, 120, 40).contains("BATCH STATS"));
    // The footer: the epoch keys, playback, and the momentum shown but dimmed.
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    term.draw(|f| f.render_widget(&app, f.area())).unwrap();
    let buf = term.backend().buffer().clone();
    let row_at = |y: u16| -> String { (0..120).map(|x| buf[(x, y)].symbol().to_string()).collect() };
    let footer_y = (30..40).find(|&y| row_at(y).contains("←/→ epoch")).expect("the footer");
    let row = row_at(footer_y);
    assert!(
        row.contains("←/→ epoch") && row.contains("{/} event") && row.contains("space play"),
        "{row}"
    );
    let at = row.find("+/-").expect("momentum in the footer");
    let x = row[..at].chars().count() as u16;
    let plus = &buf[(x, footer_y)];
    let left = row.find("←/→").map(|a| row[..a].chars().count() as u16).unwrap();
    assert_ne!(
        plus.style(),
        buf[(left, footer_y)].style(),
        "the momentum key is dimmed, the epoch key is not"
    );
}

/// A log with events: `{`/`}` jump to them and the status line says what happened.
#[test]
fn event_keys_jump_to_momentum_change_and_reset() {
    let mut text = String::from(
        r#"{"type":"run","schema":1,"convention":"keras","source":"bnscope","model":"tiny","momentum":0.99,"bn_layers":[{"name":"bn","channels":2}]}"#,
    );
    text.push('\n');
    for e in 1..=9 {
        let m = if e > 3 { 0.9 } else { 0.99 };
        let t = if e > 6 { e - 6 } else { e };
        text.push_str(&format!(
            r#"{{"type":"epoch","epoch":{e},"t":{t},"momentum":{m},"train":{{"loss":0.5,"acc":1.0}},"eval_running":{{"loss":1.0,"acc":0.333}}}}"#
        ));
        text.push('\n');
        if e == 3 {
            text.push_str(r#"{"type":"event","epoch":3,"what":"momentum","value":"0.9"}"#);
            text.push('\n');
        }
        if e == 6 {
            text.push_str(r#"{"type":"event","epoch":6,"what":"reset_stats","value":null}"#);
            text.push('\n');
        }
    }
    let mut app = replay_text(&text);
    ch(&mut app, '{');
    assert_eq!(app.status_text(), Some("after epoch 6: reset_stats"));
    assert!(header(&screen(&app, 120, 40)).contains("epoch 6 (6 of 9)"));
    ch(&mut app, '{');
    assert_eq!(app.status_text(), Some("after epoch 3: momentum 0.9"));
    let s = screen(&app, 120, 40);
    assert!(header(&s).contains("epoch 3 (3 of 9)"), "{s}");
    // The mark of the change sits on the events row, right after the cursor's `▲` (epoch 3).
    let events = s.lines().find(|l| l.contains("events")).unwrap();
    assert!(events.contains("··▲m"), "{events}");
    ch(&mut app, '{');
    assert_eq!(app.status_text(), Some("no event before this epoch"));
    ch(&mut app, '}');
    ch(&mut app, '}');
    assert!(header(&screen(&app, 120, 40)).contains("epoch 6 (6 of 9)"));
    // No eval_batch, no predictions, no step in this log: said, never zeros.
    let s = screen(&app, 120, 40);
    let batch = s.lines().find(|l| l.contains("eval batch")).unwrap();
    assert!(batch.contains("not in this log"), "{batch}");
    assert!(s.contains("predictions: not in this log"), "{s}");
    assert!(!header(&s).contains("step"), "{s}");
    // After the reset t starts again (the log's t = 1 at epoch 7), and so does the travelled fraction.
    key(&mut app, KeyCode::Right, KeyModifiers::NONE);
    let s = screen(&app, 120, 40);
    assert!(s.contains("updates t=1"), "{s}");
    assert!(s.contains("travelled 1−0.9¹ = 10.0%"), "{s}");
}

#[test]
fn a_log_without_t_or_momentum_says_so() {
    let text = concat!(
        r#"{"type":"run","schema":1,"convention":"keras","source":"torch","bn_layers":[{"name":"bn","channels":2}]}"#,
        "\n",
        r#"{"type":"epoch","epoch":1,"train":{"loss":0.5}}"#,
        "\n",
        r#"{"type":"bn","epoch":1,"layers":[{"name":"bn"}]}"#,
        "\n"
    );
    let app = replay_text(text);
    let s = screen(&app, 120, 40);
    assert!(s.contains("momentum not in this log"), "{s}");
    assert!(s.contains("updates t: not in this log"), "{s}");
    assert!(s.contains("This log has no training accuracy"), "{s}");
    assert!(s.contains("n/a: not in this log"), "{s}");
    assert!(!s.contains("NaN"), "missing is not a divergence: {s}");
    insta::assert_snapshot!("sparse_log_120x40", s);
}

#[test]
fn space_plays_back_at_the_pace() {
    let mut app = replay(&["bnscope_seed.jsonl"]);
    key(&mut app, KeyCode::Home, KeyModifiers::NONE);
    ch(&mut app, ' ');
    let at = app.play_deadline().expect("playing");
    // 7 epochs a second: one epoch per 1/7 s; a late tick catches up on the epochs due.
    app.handle_tick(at);
    assert!(header(&screen(&app, 120, 40)).contains("epoch 2 "));
    // 300 ms later: two more epochs were due (at 1/7 s and 2/7 s after the first).
    app.handle_tick(at + Duration::from_millis(300));
    assert!(
        header(&screen(&app, 120, 40)).contains("epoch 4 "),
        "{}",
        header(&screen(&app, 120, 40))
    );
    ch(&mut app, ' ');
    assert!(app.play_deadline().is_none(), "space stops");
    ch(&mut app, ' ');
    app.handle_tick(Instant::now() + Duration::from_secs(10));
    let s = screen(&app, 120, 40);
    assert!(header(&s).contains("epoch 12 (12 of 12)"), "{s}");
    assert!(app.play_deadline().is_none(), "stops at the end");
}

#[test]
fn a_watch_waits_follows_and_stays_where_the_user_scrolled() {
    let mut tl = Timeline::new(vec!["run.jsonl".into()], true);
    tl.files[0].state = bnscope::tui::timeline::FileState::Opening;
    let mut app = App::over_log(&TuiOptions::default(), tl, 7.0);
    app.handle_event(AppEvent::Log(0, Followed::Waiting));
    let s = screen(&app, 120, 40);
    assert!(header(&s).contains("WATCH · run.jsonl"), "{s}");
    assert!(header(&s).contains("waiting for run.jsonl…"), "{s}");
    let text = std::fs::read_to_string(fixture("keras_small.jsonl")).unwrap();
    let mut lines = text.lines();
    let mut reader = Reader::default();
    let mut feed = |app: &mut App, n: usize| {
        let chunk: String = lines.by_ref().take(n).map(|l| format!("{l}\n")).collect();
        let recs = reader.push(&chunk).unwrap();
        app.handle_event(AppEvent::Log(0, Followed::Records(recs)));
    };
    app.handle_event(AppEvent::Log(0, Followed::Following));
    feed(&mut app, 5); // run, epoch 1, bn 1, epoch 2, bn 2
    let s = screen(&app, 120, 40);
    assert!(
        header(&s).contains("epoch 2 (2 of 2)") && header(&s).contains("following"),
        "{s}"
    );
    key(&mut app, KeyCode::Left, KeyModifiers::NONE);
    assert!(header(&screen(&app, 120, 40)).contains("scrolled back"));
    feed(&mut app, 4); // epochs 3 and 4
    let s = screen(&app, 120, 40);
    assert!(
        header(&s).contains("epoch 1 (1 of 4)"),
        "the cursor stays where the user put it: {s}"
    );
    key(&mut app, KeyCode::End, KeyModifiers::NONE);
    let s = screen(&app, 120, 40);
    assert!(
        header(&s).contains("epoch 4 (4 of 4)") && header(&s).contains("following"),
        "{s}"
    );
    // Truncated: everything goes, and the screen says so.
    app.handle_event(AppEvent::Log(0, Followed::StartingOver { replaced: false }));
    assert_eq!(app.status_text(), Some("run.jsonl was truncated: starting over"));
    assert!(!header(&screen(&app, 120, 40)).contains("epoch"));
}

#[test]
fn help_over_a_log_lists_the_epoch_keys() {
    let mut app = replay(&["bnscope_seed.jsonl"]);
    ch(&mut app, '?');
    let s = screen(&app, 120, 40);
    assert!(s.contains("replay: the epoch before"), "{s}");
    assert!(s.contains("play the log back from the cursor"), "{s}");
    assert!(s.contains("change a live run; a log is read-only"), "{s}");
    assert!(!s.contains("pause / resume training"), "{s}");
    insta::assert_snapshot!("help_replay_120x40", s);
}

/// A Keras log without class names (nor image names): the header says "3 images" (not "3 images ()") and the
/// predictions' columns are labelled by class index, with their probabilities.
#[test]
fn a_log_without_class_names_labels_columns_by_index() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/logs/keras_small.jsonl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replacen(
        r#""classes":["cat","coffee","rocket"],"image_names":["cat.png","coffee.png","rocket.png"],"#,
        "",
        1,
    );
    assert!(!text.contains("\"classes\""));
    let mut app = replay_text(&text);
    go_to(&mut app, 3, 5);
    let s = screen(&app, 120, 40);
    assert!(!s.contains("images ()"), "{s}");
    let head = s
        .lines()
        .find(|l| l.contains("class 0"))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(head.contains("class 1") && head.contains("class 2"), "{head}");
    let row = s
        .lines()
        .find(|l| l.contains("image 1"))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(row.contains("0."), "probabilities in the row: {row}");
}

/// Rank logs read as `bnscope replay` reads them (lite records, arrays read again by span): `N` shows the next
/// rank's running statistics in the layers and channel panels and the header names it; the header's figures and the
/// charts stay the first log's; `N` again returns to the first (#27).
#[test]
fn n_cycles_the_rank_in_the_detail_panels() {
    let names = ["ddp.rank0.jsonl", "ddp.rank1.jsonl"];
    let mut tl = Timeline::new(names.iter().map(|n| n.to_string()).collect(), false);
    for (i, n) in names.iter().enumerate() {
        tl.files[i].path = Some(fixture(n));
        bnscope::logfile::read::stream_file(&fixture(n), false, |recs| {
            tl.take(i, recs);
            Ok(())
        })
        .unwrap();
    }
    let mut app = App::over_log(&TuiOptions::default(), tl, 7.0);
    let rank0 = screen(&app, 120, 40);
    ch(&mut app, 'N');
    let rank1 = screen(&app, 120, 40);
    assert!(
        rank1.lines().next().unwrap().contains("layers: ddp.rank1.jsonl"),
        "{rank1}"
    );
    let layers = |s: &str| s.lines().skip(13).take(9).collect::<Vec<_>>().join("\n");
    assert_ne!(layers(&rank0), layers(&rank1), "the layers show rank 1's statistics");
    // The charts (rank 0's figures) do not change.
    let charts = |s: &str| s.lines().skip(6).take(6).collect::<Vec<_>>().join("\n");
    assert_eq!(charts(&rank0), charts(&rank1));
    insta::assert_snapshot!("ddp_rank1_detail_120x40", rank1);
    ch(&mut app, 'N');
    let back = screen(&app, 120, 40);
    assert!(!back.lines().next().unwrap().contains("layers:"), "{back}");
    assert_eq!(layers(&back), layers(&rank0));
}

/// A long replay (#28, #23): the charts draw the whole run whatever the cursor's epoch, the cursor's column is
/// reversed with `▲` under it, the panels show the cursor's epoch, and a one-epoch loss spike among 20,000
/// (after the cursor) stays visible: on the loss scale and as a shaded column.
#[test]
fn long_replay_draws_the_whole_run_with_the_cursor_marked() {
    use ratatui::style::{Color, Modifier};
    let mut text = String::from(concat!(
        r#"{"type":"run","schema":1,"convention":"keras","source":"torch","momentum":0.99,"bn_layers":[{"name":"bn","channels":2}]}"#,
        "\n"
    ));
    let n = 20_000;
    for e in 1..=n {
        let loss = if e == 15_001 { 5000.0 } else { 0.5 };
        let acc = if e <= 10_000 { 0.0 } else { 1.0 };
        text.push_str(&format!(
            "{{\"type\":\"epoch\",\"epoch\":{e},\"t\":{e},\"train\":{{\"loss\":{loss},\"acc\":{acc}}}}}\n"
        ));
    }
    let mut app = replay_text(&text);
    // The cursor at epoch 5000 (a quarter of the run).
    key(&mut app, KeyCode::Home, KeyModifiers::NONE);
    for _ in 1..5000 {
        key(&mut app, KeyCode::Right, KeyModifiers::NONE);
    }
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    term.draw(|f| f.render_widget(&app, f.area())).unwrap();
    let s = term.backend().to_string();
    assert!(header(&s).contains("epoch 5000 (5000 of 20000)"), "{s}");
    let buf = term.backend().buffer();
    let find = |label: &str| -> u16 {
        (0..buf.area.height)
            .find(|&y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .starts_with(&format!("│ {label}"))
            })
            .unwrap_or_else(|| panic!("no row {label}:\n{s}"))
    };
    let row = |y: u16| -> Vec<String> { (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect() };
    // The whole run: the axis runs from epoch 1 to 20000, and the training accuracy (0 then 1) fills the width.
    let axis: String = row(find("epoch")).concat();
    assert!(axis.contains(" 1 ") && axis.contains("20000"), "{axis}\n{s}");
    let x0 = 16u16;
    let train = row(find("train (batch)"));
    let cols = train[x0 as usize..].iter().take_while(|c| c.as_str() != " ").count();
    assert!(cols > 20, "{cols} columns:\n{s}");
    assert_eq!(train[x0 as usize + cols - 1], "█", "after the cursor too:\n{s}");
    // The cursor's column: a quarter of the way, reversed in the curve rows, `▲` on the axis.
    let marked: Vec<u16> = (x0..x0 + cols as u16)
        .filter(|&x| buf[(x, find("train (batch)"))].modifier.contains(Modifier::REVERSED))
        .collect();
    assert_eq!(marked.len(), 1, "{s}");
    let c = marked[0] - x0;
    assert!((c as usize).abs_diff(cols / 4) <= 1, "cursor column {c} of {cols}");
    assert_eq!(buf[(marked[0], find("events"))].symbol(), "▲", "{s}");
    // The panels show the cursor's epoch: training accuracy 0 there (1 at the end of the run).
    let acc_line: String = row(find("train (batch)"))[..60].concat();
    assert!(acc_line.contains("0.000"), "{acc_line}");
    // The spike at epoch 15001: the loss scale reaches 5000 and its column is shaded.
    assert!(s.contains("→ 5.0e3"), "{s}");
    let loss_y = (0..buf.area.height)
        .find(|&y| row(y)[60..].concat().starts_with("│ train (batch)"))
        .expect("the loss panel");
    let shaded: Vec<u16> = (60..120)
        .filter(|&x| buf[(x, loss_y)].bg == Color::Indexed(238))
        .collect();
    assert_eq!(shaded.len(), 1, "one shaded column: {shaded:?}\n{s}");
}

/// A replayed epoch is kept packed (#28): a million-epoch log keeps 128 MB of entries, not the ~350 MB of
/// `Shown`s it took before.
#[test]
fn a_replayed_epoch_takes_at_most_128_bytes() {
    assert!(std::mem::size_of::<bnscope::tui::timeline::Entry>() <= 128);
}

/// The inspect view (#25): a replayed `inspect` log (as the Python `bnscope.inspect` writes it) lists its layers by
/// blame, the largest step of the first-k curve first, with the share closed by the layer alone and by the first k
/// layers up to it; the selection keys walk the rows in that order.
#[test]
fn inspect_log_lists_layers_by_blame_with_the_prefix_curve() {
    let layer = |name: &str| {
        format!(
            r#"{{"name":"{name}","mean_gap":0.5,"var_gap":0.5,"n":4,"running_mean":[0,0],"running_var":[1,1],"data_mean":[1,1],"data_var":[2,2]}}"#
        )
    };
    let blame = |name: &str, alone: f64, prefix: f64| {
        format!(
            r#"{{"name":"{name}","alone":{{"loss":1,"acc":0.5,"loss_share":{alone}}},"prefix":{{"loss":1,"acc":0.5,"loss_share":{prefix}}}}}"#
        )
    };
    // Forward order a, b, c: the first-k curve 0.1, 0.8, 1.0, so b makes most of the gap (step 0.7), then c (0.2).
    let run = r#"{"type":"run","schema":1,"convention":"keras","source":"torch","model":"Net","bn_layers":[{"name":"a","channels":2},{"name":"b","channels":2},{"name":"c","channels":2}]}"#;
    let inspect = format!(
        r#"{{"type":"inspect","model":"Net","samples":8,"blame_samples":8,"eval_running":{{"loss":2.0,"acc":0.1}},"eval_batch":{{"loss":0.5,"acc":0.9}},"recalibrated":{{"loss":0.6,"acc":0.8}},"layers":[{},{},{}],"blame":[{},{},{}],"findings":["b makes the gap."]}}"#,
        layer("a"),
        layer("b"),
        layer("c"),
        blame("a", 0.1, 0.1),
        blame("b", 0.05, 0.8),
        blame("c", 0.3, 1.0)
    );
    let text = format!("{run}\n{inspect}\n");
    let mut app = replay_text(&text);
    let s = screen(&app, 120, 40);
    assert!(s.contains("by blame (b: loss gap share)"), "{s}");
    assert!(
        s.contains("b alone (only it)") && s.contains("b first k (to it)"),
        "{s}"
    );
    let rows: Vec<&str> = s
        .lines()
        .filter(|l| l.contains("│ ▶ ") || l.starts_with("\"│   ") && l.contains(" %"))
        .collect();
    let first = |name: &str| {
        rows.iter()
            .position(|l| l.contains(&format!(" {name}  ")))
            .unwrap_or(99)
    };
    assert!(
        first("b") < first("c") && first("c") < first("a"),
        "by blame b, c, a: {rows:#?}\n{s}"
    );
    let b = rows[first("b")];
    assert!(
        b.contains(" 5 %") && b.contains(" 2 ") && b.contains("80 %"),
        "alone 5 %, k=2, first 2: 80 %: {b}"
    );
    // The selection (layer 0, a: the third row) goes up the rows: to c, then b.
    assert!(rows[2].contains("▶ a"), "{rows:#?}");
    ch(&mut app, 'k');
    assert_eq!(app.selected_layer(), 2, "c is the second row");
    ch(&mut app, 'k');
    assert_eq!(app.selected_layer(), 1, "b is the first row");
    insta::assert_snapshot!("inspect_by_blame_120x40", screen(&app, 120, 40));
}
