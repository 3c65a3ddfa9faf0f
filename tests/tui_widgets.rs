//! Widget-level tests: render single widgets into a `Buffer` and look at the cells.
use std::sync::Arc;

use bnscope::protocol::{BnSlot, Event, Latest};
use bnscope::tui::fixtures::seed_story;
use bnscope::tui::gauges::convergence;
use bnscope::tui::render::layers::ConvergenceGauge;
use bnscope::tui::render::predictions::Predictions;
use bnscope::tui::theme::Theme;
use bnscope::tui::{App, AppEvent, TuiOptions};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::widgets::Widget;

fn row(buf: &Buffer, y: u16) -> String {
    (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect()
}

fn gauge(theme: &Theme, value: Option<f32>, width: u16) -> Buffer {
    let area = Rect::new(0, 0, width, 1);
    let mut buf = Buffer::empty(area);
    ConvergenceGauge {
        theme,
        value: value.map(Some),
    }
    .render(area, &mut buf);
    buf
}

#[test]
fn convergence_is_one_minus_clamped_gap() {
    assert_eq!(convergence(0.0), 1.0);
    assert!((convergence(0.95) - 0.05).abs() < 1e-6);
    assert_eq!(convergence(3.0), 0.0);
    assert!(convergence(f32::NAN).is_nan());
}

#[test]
fn gauge_cells() {
    let th = Theme::new(false, false);
    let buf = gauge(&th, Some(0.5), 16);
    assert_eq!(row(&buf, 0), "█████░░░░░  50 %");
    // Half is yellow on the red→green ramp; the empty part is dim.
    assert_eq!(buf[(0, 0)].fg, Color::Yellow);
    assert_eq!(buf[(9, 0)].fg, Color::DarkGray);
    assert_eq!(buf[(15, 0)].fg, Color::Yellow);

    let buf = gauge(&th, Some(0.05), 16);
    assert_eq!(row(&buf, 0), "▌░░░░░░░░░   5 %");
    assert_eq!(buf[(0, 0)].fg, Color::Red);

    let buf = gauge(&th, Some(1.0), 16);
    assert_eq!(row(&buf, 0), "██████████ 100 %");
    assert_eq!(buf[(0, 0)].fg, Color::Green);

    let buf = gauge(&th, Some(f32::NAN), 16);
    assert_eq!(row(&buf, 0), "░░░░░░░░░░   NaN");
    assert_eq!(buf[(13, 0)].fg, Color::Red);

    let buf = gauge(&th, None, 16);
    assert_eq!(row(&buf, 0), "░░░░░░░░░░     –");
}

#[test]
fn gauge_ascii_no_color_and_tiny_widths() {
    let th = Theme::new(true, true);
    let buf = gauge(&th, Some(0.5), 16);
    assert_eq!(row(&buf, 0), "#####.....  50 %");
    assert!(buf.content().iter().all(|c| c.fg == Color::Reset));
    for w in 0..8 {
        gauge(&th, Some(0.7), w);
    }
}

fn seed_app(opts: TuiOptions) -> App {
    let slot: BnSlot = Arc::new(Latest::default());
    let mut app = App::new(&opts, slot.clone());
    for (ev, snap) in seed_story(5) {
        if let Some(s) = snap {
            slot.put(s);
        }
        app.handle_event(AppEvent::Trainer(ev));
    }
    app
}

fn predictions(app: &App, w: u16, h: u16) -> Buffer {
    let area = Rect::new(0, 0, w, h);
    let mut buf = Buffer::empty(area);
    Predictions(app).render(area, &mut buf);
    buf
}

#[test]
fn predictions_running_stats() {
    let app = seed_app(TuiOptions::default());
    let buf = predictions(&app, 80, 6);
    let rows: Vec<String> = (0..6).map(|y| row(&buf, y)).collect();
    assert!(
        rows[0].contains("predictions · eval: running stats · 1 of 3 right"),
        "{rows:#?}"
    );
    assert!(rows[1].contains("cat") && rows[1].contains("coffee") && rows[1].contains("rocket"));
    // Everything is predicted as coffee: wrong for cat and rocket, right for coffee.
    assert!(rows[2].starts_with("│ cat.png    0.01    0.98 ✗  0.01"), "{rows:#?}");
    assert!(rows[3].starts_with("│ coffee.png 0.00    1.00 ✓  0.00"), "{rows:#?}");
    assert!(rows[4].starts_with("│ rocket.png 0.02    0.97 ✗  0.01"), "{rows:#?}");
    assert!(rows[1].contains("1 of 3 right with running stats"), "{rows:#?}");
    // ✓ is green, ✗ red, the true class is underlined.
    let x_check = rows[3].chars().position(|c| c == '✓').unwrap() as u16;
    assert_eq!(buf[(x_check, 3)].fg, Color::Green);
    let x_cross = rows[2].chars().position(|c| c == '✗').unwrap() as u16;
    assert_eq!(buf[(x_cross, 2)].fg, Color::Red);
    assert!(buf[(13, 2)].modifier.contains(ratatui::style::Modifier::UNDERLINED));
}

#[test]
fn predictions_follow_the_eval_mode() {
    let mut app = seed_app(TuiOptions {
        ascii: true,
        ..TuiOptions::default()
    });
    app.handle_event(AppEvent::Key(KeyEvent::new(KeyCode::Char('e'), KeyModifiers::NONE)));
    let buf = predictions(&app, 80, 6);
    let rows: Vec<String> = (0..6).map(|y| row(&buf, y)).collect();
    assert!(rows[0].contains("eval: batch stats | 3 of 3 right"), "{rows:#?}");
    assert!(rows[2].starts_with("| cat.png    0.97 ok 0.02"), "{rows:#?}");
    assert!(rows[4].contains("0.99 ok"), "{rows:#?}");
    assert!(!rows[2..5].iter().any(|r| r[..38].contains(" X ")), "{rows:#?}");
}

#[test]
fn predictions_before_data_and_many_images() {
    let app = App::new(&TuiOptions::default(), Arc::new(Latest::default()));
    let buf = predictions(&app, 80, 6);
    assert!(row(&buf, 1).contains("waiting for the first epoch"));

    // 10 images in a 3-row panel: two shown, then "… 8 more" (img4 and img7 are right).
    let slot: BnSlot = Arc::new(Latest::default());
    let mut app = App::new(&TuiOptions::default(), slot);
    let mut info = (*bnscope::tui::fixtures::run_info()).clone();
    info.images = (0..10).map(|i| format!("img{i}.png")).collect();
    info.labels = (0..10).map(|i| i % 3).collect();
    app.handle_event(AppEvent::Trainer(Event::Started(Arc::new(info))));
    let mut m = bnscope::tui::fixtures::epoch(5);
    m.predictions_running = (0..10).map(|_| vec![0.1, 0.8, 0.1]).collect();
    app.handle_event(AppEvent::Trainer(Event::Epoch(m)));
    let buf = predictions(&app, 80, 6);
    let rows: Vec<String> = (0..6).map(|y| row(&buf, y)).collect();
    assert!(rows[0].contains("3 of 10 right"), "{rows:#?}");
    assert!(rows[4].contains("… 8 more images, 6 wrong"), "{rows:#?}");
}

fn app_with_epochs(n: usize) -> App {
    let mut app = App::new(&TuiOptions::default(), Arc::new(Latest::default()));
    app.handle_event(AppEvent::Trainer(Event::Started(bnscope::tui::fixtures::run_info())));
    for e in 1..=n {
        app.handle_event(AppEvent::Trainer(Event::Epoch(bnscope::tui::fixtures::epoch(e))));
    }
    app
}

#[test]
fn history_window_aggregates_only_when_needed() {
    use bnscope::tui::render::history::Window;
    // Up to one epoch per column: as is.
    let w = Window::new(&app_with_epochs(33), 33);
    assert_eq!((w.per_col, w.cols, w.abs0), (1, 33, 0));
    assert_eq!(w.column(32), Some(32));
    // One more: two per column, aligned to even point numbers.
    let w = Window::new(&app_with_epochs(34), 33);
    assert_eq!((w.per_col, w.cols), (2, 17));
    assert_eq!(w.bucket(16), 32..34);
    // A mark waiting for its first point gets a column too.
    let mut app = app_with_epochs(33);
    app.handle_event(AppEvent::Key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::NONE)));
    let w = Window::new(&app, 33);
    assert_eq!((w.per_col, w.cols), (2, 17));
    assert_eq!(w.column(33), Some(16));
    // A run longer than the exact history (1100 epochs, 1000 kept exactly): the whole run, in at most 33 columns.
    let app = app_with_epochs(1100);
    let w = Window::new(&app, 33);
    assert_eq!(w.per_col, 34);
    assert!(w.cols <= 33);
    assert_eq!(w.bucket(0), 0..34);
    assert_eq!(w.bucket(w.cols - 1).end, 1100);
    assert_eq!(w.column(0), Some(0), "the first epoch is still drawn");
    assert_eq!(w.column(99), Some(2));
    // Nothing yet, or no room: nothing drawn.
    assert_eq!(Window::new(&app_with_epochs(0), 33).cols, 0);
    assert_eq!(Window::new(&app, 0).cols, 0);
}

/// The downsampled history: a fixed number of buckets that merge pairwise, each with the exact min, max and mean
/// of its epochs, so a one-epoch spike among 10⁵ stays in its bucket's max and the whole run's sums are exact.
#[test]
fn series_merges_pairwise_and_keeps_spikes() {
    use bnscope::tui::store::{Point, Series, Val, SERIES_CAP};
    let val = |acc: f32, loss: f32| Val {
        acc: Some(acc),
        loss: Some(loss),
    };
    let n = 100_000u64;
    let mut s = Series::default();
    for i in 0..n {
        let loss = if i == 77_777 { 1000.0 } else { 0.1 };
        let acc = (i % 3) as f32 / 2.0;
        s.push(Point {
            epoch: i as usize + 1,
            train: val(acc, loss),
            running: Val { acc: None, loss: None },
            batch: val(1.0, f32::NAN),
        });
    }
    assert_eq!(s.len(), n);
    // 100k points in at most SERIES_CAP buckets: a power-of-two width with more than half the buckets used.
    assert!(s.width.is_power_of_two());
    assert!(n.div_ceil(s.width) as usize <= SERIES_CAP);
    assert!(n.div_ceil(s.width) as usize > SERIES_CAP / 2, "width {}", s.width);
    let all = s.sum(0..n);
    assert_eq!(all.acc[0].n as u64, n);
    assert_eq!(all.acc[0].min, 0.0);
    assert_eq!(all.acc[0].max, 1.0);
    let mean = all.acc[0].mean().unwrap();
    assert!((mean - 0.5).abs() < 1e-4, "{mean}");
    // The spike: log10(1000) = 3 in the max of its bucket, and only there.
    let w = s.width;
    let at = 77_777 / w * w;
    assert_eq!(s.sum(at..at + w).loss[0].max, 3.0);
    assert!((s.sum(at + w..at + 2 * w).loss[0].max + 1.0).abs() < 1e-6);
    assert_eq!(all.loss[0].max, 3.0);
    // A curve the log lacks has no values; NaN marks its buckets bad.
    assert_eq!(all.acc[1].n, 0);
    assert!(all.loss[2].bad && !all.acc[2].bad);
    assert_eq!(
        (s.first_epoch(), s.last().map(|p| p.epoch)),
        (Some(1), Some(n as usize))
    );
}
