//! `bnscope compare` (#27): the compare view over the committed fixtures (real bnscope runs at momentum 0.99 and
//! 0.9, and one with `--freeze backbone --frozen-bn inference`) drawn into `TestBackend` and kept as insta
//! snapshots (tests/snapshots/tui_compare__*.snap; accept changes with `INSTA_UPDATE=always cargo test --release
//! --test tui_compare`, then review them); the one cursor, the run picker, the bounded store, what differs, and
//! the binary's headless table and errors. The PTY test of the real binary is in `tests/tui_pty.rs`.
mod common;

use std::path::PathBuf;
use std::process::Command;

use bnscope::compare::{self, Series, MAX_POINTS};
use bnscope::logfile::{Epoch, Metric, Record};
use bnscope::tui::compare::CompareView;
use bnscope::tui::theme::Theme;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const M099: &str = "compare_m099.jsonl";
const M09: &str = "compare_m09.jsonl";
const FROZEN: &str = "compare_frozen_inference.jsonl";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name)
}

fn view_with(names: &[&str], ascii: bool) -> CompareView {
    let paths: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    let mut series = compare::read_all(&paths).unwrap();
    // The names as given on the command line (the snapshots must not carry this checkout's path).
    for (s, n) in series.iter_mut().zip(names) {
        s.file = n.to_string();
    }
    CompareView::from_series(series, Theme::new(ascii, true), false)
}

fn view(names: &[&str]) -> CompareView {
    view_with(names, false)
}

fn screen(v: &CompareView, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| f.render_widget(v, f.area())).unwrap();
    term.backend().to_string()
}

fn key(v: &mut CompareView, code: KeyCode) {
    v.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
}

#[test]
fn two_runs_80x24() {
    insta::assert_snapshot!("two_runs_80x24", screen(&view(&[M099, M09]), 80, 24));
}

#[test]
fn two_runs_120x40() {
    insta::assert_snapshot!("two_runs_120x40", screen(&view(&[M099, M09]), 120, 40));
}

#[test]
fn three_runs_80x24() {
    insta::assert_snapshot!("three_runs_80x24", screen(&view(&[M099, M09, FROZEN]), 80, 24));
}

#[test]
fn three_runs_120x40() {
    insta::assert_snapshot!("three_runs_120x40", screen(&view(&[M099, M09, FROZEN]), 120, 40));
}

#[test]
fn three_runs_ascii_at_epoch_10_80x24() {
    let mut v = view_with(&[M099, M09, FROZEN], true);
    key(&mut v, KeyCode::Home);
    for _ in 0..9 {
        key(&mut v, KeyCode::Right);
    }
    let s = screen(&v, 80, 24);
    assert!(s.is_ascii(), "--ascii draws only ASCII:\n{s}");
    insta::assert_snapshot!("three_runs_ascii_epoch10_80x24", s);
}

/// The header says what differs between the runs, from their `run` records, not only their file names.
#[test]
fn the_header_names_what_differs() {
    let s = screen(&view(&[M099, M09]), 120, 40);
    let first = s.lines().next().unwrap();
    assert!(first.contains("momentum 0.99 vs 0.9"), "{first}");
    let s = screen(&view(&[M099, M09, FROZEN]), 120, 40);
    let first = s.lines().next().unwrap();
    assert!(first.contains("frozen-bn none vs none vs inference"), "{first}");
}

/// At a glance: which run's running statistics caught up, and when (momentum 0.9: 0.9⁴⁴ < 1 %).
#[test]
fn the_run_lines_say_which_run_caught_up_and_when() {
    let s = screen(&view(&[M099, M09]), 120, 40);
    let a = s.lines().nth(1).unwrap();
    let b = s.lines().nth(2).unwrap();
    assert!(a.contains("running stats 45.3% of the way"), "{a}");
    assert!(b.contains("running stats 99% caught up at epoch 44"), "{b}");
}

/// One cursor moves every run: Home puts all at epoch 1, → at epoch 2, and the layers are read at that epoch.
#[test]
fn one_cursor_moves_every_run() {
    let mut v = view(&[M099, M09, FROZEN]);
    assert_eq!(v.epoch(), 60);
    key(&mut v, KeyCode::Home);
    assert_eq!(v.epoch(), 1);
    key(&mut v, KeyCode::Right);
    assert_eq!(v.epoch(), 2);
    for i in 0..3 {
        assert_eq!(v.point(i).map(|p| p.epoch), Some(2), "run {i}");
    }
    // The layers of every run at epoch 2: momentum 0.99 has come 1 − 0.99² ≈ 2 % of the way, 0.9 about 19 %.
    let way = |i: usize| 1.0 - v.layers[i].as_ref().unwrap()[0].1.unwrap();
    assert!((0.005..0.05).contains(&way(0)), "{}", way(0));
    assert!((0.1..0.3).contains(&way(1)), "{}", way(1));
    assert_eq!(way(2), 0.0, "frozen-bn inference never moves its running statistics");
    let s = screen(&v, 120, 40);
    assert!(s.lines().next().unwrap().contains("epoch 2 of 60"), "{s}");
    assert!(s.contains("layers at epoch 2"), "{s}");
    key(&mut v, KeyCode::End);
    assert_eq!(v.epoch(), 60);
}

/// The run picker: `2` hides run B from the charts and the layers (its marker is gone from them) and says so in
/// its header line; `2` again shows it.
#[test]
fn digits_hide_and_show_runs() {
    let mut v = view(&[M099, M09]);
    let below_header = |s: &str| s.lines().skip(3).collect::<Vec<_>>().join("\n");
    assert!(below_header(&screen(&v, 120, 40)).contains('✕'));
    v.handle_key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE));
    let s = screen(&v, 120, 40);
    assert!(!below_header(&s).contains('✕'), "{s}");
    assert!(s.lines().nth(2).unwrap().contains("hidden (2)"), "{s}");
    v.handle_key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::NONE));
    assert!(below_header(&screen(&v, 120, 40)).contains('✕'));
}

/// Eight runs: the header sums up what does not fit, the layers name the runs that do not fit.
#[test]
fn eight_runs_fit_with_a_picker() {
    let names = [M099, M09, FROZEN, M099, M09, FROZEN, M099, M09];
    let paths: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    let series = compare::read_all(&paths).unwrap();
    let v = CompareView::from_series(series, Theme::new(false, true), false);
    let s = screen(&v, 80, 24);
    assert!(s.contains("more runs (C-H): 1-8 show or hide a run"), "{s}");
    assert!(s.contains("do not fit here: hide others with 1-8"), "{s}");
}

/// `?` lists every binding of the compare table; any key closes it.
#[test]
fn help_lists_the_keys() {
    let mut v = view(&[M099, M09]);
    v.handle_key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE));
    let s = screen(&v, 120, 40);
    for (keys, help) in bnscope::tui::compare::keys::help_rows() {
        assert!(s.contains(help), "{help} ({keys}) missing:\n{s}");
    }
    key(&mut v, KeyCode::Left);
    assert!(!v.help);
    assert_eq!(v.epoch(), 60, "the key that closes the help does nothing else");
}

fn epoch(e: u64) -> Record {
    Record::Epoch(Epoch {
        epoch: e,
        step: Some(e),
        momentum: Some(0.99),
        cumulative: false,
        t: Some(e),
        init_weight: Some(0.99f64.powi(e as i32)),
        train: Some(Metric {
            loss: Some(0.1),
            acc: Some(1.0),
        }),
        eval_running: None,
        eval_batch: None,
        eval_ema: None,
        predictions_running: None,
        predictions_batch: None,
        has_predictions: false,
        step_ms: None,
        span: Default::default(),
    })
}

/// A long log keeps at most `MAX_POINTS` epochs per run, evenly spread, and its newest; the first epoch the
/// statistics came within 1 % is exact however many were dropped.
#[test]
fn the_store_is_bounded() {
    let mut s = Series::new("long.jsonl".into(), None);
    for chunk in (1..=200_000u64).collect::<Vec<_>>().chunks(1000) {
        s.take(chunk.iter().map(|e| epoch(*e)).collect());
    }
    assert!(s.points.len() <= MAX_POINTS, "{}", s.points.len());
    assert!(s.points.len() >= MAX_POINTS / 2, "{}", s.points.len());
    assert_eq!(s.last.as_ref().unwrap().epoch, 200_000);
    assert_eq!(s.epochs().last().unwrap().epoch, 200_000);
    let gaps: Vec<u64> = s.points.windows(2).map(|w| w[1].epoch - w[0].epoch).collect();
    assert!(gaps.iter().all(|g| *g == s.stride), "even spacing {:?}", &gaps[..5]);
    // ⌈ln 0.01 / ln 0.99⌉ = 459.
    assert_eq!(s.caught_up, Some(459));
}

#[test]
fn what_differs_and_what_is_a_rank() {
    let read = |n: &str| compare::read_all(&[fixture(n)]).unwrap().remove(0).run.unwrap();
    let (a, b, c) = (read(M099), read(M09), read(FROZEN));
    let d = compare::differences(&[Some(&a), Some(&b)]);
    assert_eq!(d.phrases, vec!["momentum 0.99 vs 0.9"]);
    assert_eq!(d.labels, vec!["momentum 0.99", "momentum 0.9"]);
    let d = compare::differences(&[Some(&a), Some(&c)]);
    assert_eq!(d.phrases, vec!["frozen-bn none vs inference"]);
    let d = compare::differences(&[Some(&a), Some(&a)]);
    assert!(d.phrases.is_empty());
    let (r0, r1) = (read("ddp.rank0.jsonl"), read("ddp.rank1.jsonl"));
    assert_eq!(compare::are_ranks(&[Some(&r0), Some(&r1)]), Some(true));
    assert_eq!(compare::are_ranks(&[Some(&r0), Some(&r0)]), Some(false));
    assert_eq!(compare::are_ranks(&[Some(&a), Some(&b)]), Some(false));
    assert_eq!(compare::are_ranks(&[Some(&a), None]), None);
}

fn bnscope(args: &[&str]) -> std::process::Output {
    Command::new(common::BIN).args(args).output().expect("binary runs")
}

fn path(n: &str) -> String {
    fixture(n).display().to_string()
}

/// `compare --headless`: the legend, one row per epoch with a column group per run, and when each caught up.
#[test]
fn headless_table() {
    let out = bnscope(&["compare", "--headless", &path(M099), &path(M09)]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "compare: momentum 0.99 vs 0.9");
    assert!(lines[1].starts_with("A = ") && lines[1].ends_with("compare_m099.jsonl: momentum 0.99"));
    let head = lines
        .iter()
        .position(|l| l.trim_start().starts_with("epoch |"))
        .unwrap();
    assert_eq!(lines[head].matches('|').count(), 2, "{}", lines[head]);
    let rows: Vec<&str> = lines[head + 1..]
        .iter()
        .take_while(|l| !l.starts_with("A:"))
        .copied()
        .collect();
    assert_eq!(rows.len(), 60);
    assert_eq!(rows[0], "     1 | 0.667 0.333 1.000   1.0% | 0.667 0.333 1.000  10.0%");
    assert!(
        text.contains("B: running statistics 99% of the way at epoch 44"),
        "{text}"
    );
    // `replay` of two logs that are not ranks of one run prints the same table.
    let replay = bnscope(&["replay", "--headless", &path(M099), &path(M09)]);
    assert_eq!(String::from_utf8(replay.stdout).unwrap(), text);
    // Rank logs stay the rank view.
    let ranks = bnscope(&[
        "replay",
        "--headless",
        &path("ddp.rank0.jsonl"),
        &path("ddp.rank1.jsonl"),
    ]);
    assert!(!String::from_utf8_lossy(&ranks.stdout).starts_with("compare:"));
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_log = dir.path().join("notes.txt");
    std::fs::write(&not_log, "hello\n").unwrap();
    let missing = dir.path().join("missing.jsonl");
    let nine: Vec<String> = (0..9).map(|_| path(M099)).collect();
    let mut nine_args = vec!["compare", "--headless"];
    nine_args.extend(nine.iter().map(String::as_str));
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "a missing file",
            vec![path(M099), missing.display().to_string()],
            "missing.jsonl",
        ),
        ("the same file twice", vec![path(M099), path(M099)], "the same file"),
        (
            "a non-log",
            vec![path(M099), not_log.display().to_string()],
            "notes.txt",
        ),
        ("one file", vec![path(M099)], "compares 2 to 8"),
    ];
    for (what, files, says) in cases {
        for headless in [true, false] {
            let mut args = vec!["compare".to_string()];
            if headless {
                args.push("--headless".into());
            }
            args.extend(files.iter().cloned());
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = bnscope(&a);
            common::assert_one_line_exit_2(&out, what);
            assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{what}: {out:?}");
        }
    }
    let out = bnscope(&nine_args);
    common::assert_one_line_exit_2(&out, "nine logs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 8"), "{out:?}");
}

/// The ranks of one distributed run can be compared too: every rank drawn, named by its rank.
#[test]
fn rank_logs_compared_120x40() {
    let v = view(&["ddp.rank0.jsonl", "ddp.rank1.jsonl"]);
    let s = screen(&v, 120, 40);
    assert!(s.lines().next().unwrap().contains("rank 0 vs 1"), "{s}");
    insta::assert_snapshot!("rank_logs_120x40", s);
}

/// Before a watched log has its `run` record, the header says so instead of calling the runs the same.
#[test]
fn a_log_not_there_yet_is_waited_for() {
    let v = CompareView::new(
        vec![("a.jsonl".into(), None), ("b.jsonl".into(), None)],
        Theme::new(false, true),
        true,
    );
    let s = screen(&v, 80, 24);
    assert!(s.contains("waiting for every log's `run` record"), "{s}");
    assert!(s.contains("A a.jsonl · no epoch yet"), "{s}");
}

/// Every size from 1×1 up draws without a panic (below 60×16 one line says the terminal is too small), with one,
/// three and eight runs.
#[test]
fn every_size_draws() {
    let eight = [M099, M09, FROZEN, M099, M09, FROZEN, M099, M09];
    for names in [&eight[..1], &eight[..3], &eight[..]] {
        let paths: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
        let v = CompareView::from_series(compare::read_all(&paths).unwrap(), Theme::new(false, true), false);
        for w in (1..=220).step_by(7) {
            for h in (1..=70).step_by(3) {
                let s = screen(&v, w, h);
                if w < 60 || h < 16 {
                    assert!(s.contains("too small") || w < 20 || h < 2, "{w}x{h}: {s}");
                }
            }
        }
    }
}

/// `x` in the compare view (#27): the screen as text and the overlay charts as SVG into the current directory,
/// under new names each time; the footer says where; the SVG is well-formed with one `<path>` per shown run and
/// chart (two charts), named by what differs.
#[test]
fn x_writes_the_screen_and_the_overlay_charts() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = view(&[M099, M09]);
    v.size = (100, 30);
    // The export goes to the current directory: this test's own (the other tests here read absolute paths).
    std::env::set_current_dir(dir.path()).unwrap();
    key(&mut v, KeyCode::Char('x'));
    let status = v.status.clone().expect("the footer says where");
    assert!(status.starts_with("wrote bnscope-"), "{status}");
    assert!(screen(&v, 100, 30).contains("wrote bnscope-"));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(status.contains(&names[0]) && status.contains(&names[1]), "{status}");
    let text = std::fs::read_to_string(dir.path().join(&names[1])).unwrap();
    assert!(
        text.contains("bnscope compare") && text.contains("momentum 0.99 vs 0.9"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 30, "the screen's size");
    let svg = std::fs::read_to_string(dir.path().join(&names[0])).unwrap();
    let mut r = quick_xml::Reader::from_str(&svg);
    r.config_mut().check_end_names = true;
    let mut paths = 0;
    loop {
        match r.read_event().unwrap_or_else(|e| panic!("not well-formed: {e}")) {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) if e.name().0 == "path" => {
                paths += 1
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(paths, 4, "two runs × accuracy and loss");
    assert!(
        svg.contains("momentum 0.99") && svg.contains("momentum 0.9"),
        "each run named by what differs"
    );
    // Any key clears the line; hiding a run leaves its series out of the next export.
    key(&mut v, KeyCode::Char('2'));
    assert!(v.status.is_none());
    let charts = bnscope::tui::render::svg::compare_charts(&v);
    assert!(charts.iter().all(|c| c.series.len() == 1));
}

/// Two torchvision resnet18 runs from the PyTorch hook (scripts/make_log_fixtures.py `torch_pair`: PyTorch momentum
/// 0.01 and 0.1, i.e. Keras 0.99 and 0.9, 12 epochs). The hook writes `t` and the momentum but no `init_weight`:
/// the comparison takes the age as the TUI's timeline does, so "travelled" is the closed form 1 − mᵗ.
#[test]
fn torchvision_hook_runs() {
    const A: &str = "compare_torch_m001.jsonl";
    const B: &str = "compare_torch_m01.jsonl";
    let v = view(&[A, B]);
    let trav = |i: usize| v.series[i].last.as_ref().and_then(|p| p.travelled).unwrap();
    assert!((trav(0) - (1.0 - 0.99f64.powi(12))).abs() < 1e-9, "{}", trav(0));
    assert!((trav(1) - (1.0 - 0.9f64.powi(12))).abs() < 1e-9, "{}", trav(1));
    let s = screen(&v, 80, 24);
    assert!(s.contains("momentum 0.99 vs 0.9"), "{s}");
    assert!(s.contains("11.4% of the way") && s.contains("71.8% of the way"), "{s}");
    insta::assert_snapshot!("torch_hook_runs_80x24", s);
    insta::assert_snapshot!("torch_hook_runs_120x40", screen(&v, 120, 40));
}
