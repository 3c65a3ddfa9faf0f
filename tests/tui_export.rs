//! `x` (#27): the screen as text and the charts as SVG, from a replayed fixture log; the SVG is read back with an
//! XML parser (well-formed, one `<path>` per series, axes and a legend).
use std::path::PathBuf;

use bnscope::logfile::read_file;
use bnscope::tui::render::svg;
use bnscope::tui::snapshot::buffer_text;
use bnscope::tui::timeline::Timeline;
use bnscope::tui::{App, AppEvent, TuiOptions};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use quick_xml::events::Event;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn replay(name: &str) -> App {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name);
    let mut tl = Timeline::new(vec![name.to_string()], false);
    tl.take(0, read_file(&path).unwrap().0);
    let mut app = App::over_log(&TuiOptions::default(), tl, 7.0);
    app.handle_event(AppEvent::Resize(100, 30));
    app
}

/// The elements of an XML document by name, with their `class` attribute, and the text nodes; panics where it is
/// not well-formed.
fn parse(xml: &str) -> (Vec<(String, Option<String>)>, Vec<String>) {
    let mut r = quick_xml::Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let (mut elems, mut texts, mut text) = (Vec::new(), Vec::new(), String::new());
    let flush = |text: &mut String, texts: &mut Vec<String>| {
        if !text.trim().is_empty() {
            texts.push(std::mem::take(text));
        }
        text.clear();
    };
    loop {
        match r
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed at {}: {e}", r.buffer_position()))
        {
            Event::Start(e) | Event::Empty(e) => {
                flush(&mut text, &mut texts);
                let name = e.name().0.to_string();
                let class = e.try_get_attribute("class").unwrap().map(|a| a.value.to_string());
                elems.push((name, class));
            }
            Event::End(_) => flush(&mut text, &mut texts),
            Event::Text(t) => text.push_str(&t.xml10_content()),
            // quick-xml reports `&lt;` and the like apart from the text around them.
            Event::GeneralRef(g) => text.push_str(match g.as_ref() {
                "lt" => "<",
                "gt" => ">",
                "amp" => "&",
                "quot" => "\"",
                "apos" => "'",
                other => panic!("unknown entity {other}"),
            }),
            Event::Eof => break,
            _ => {}
        }
    }
    (elems, texts)
}

#[test]
fn the_charts_svg_is_well_formed_with_one_path_per_series() {
    let app = replay("bnscope_seed.jsonl");
    let charts = svg::charts(&app);
    assert_eq!(charts.len(), 2);
    // Every epoch of the log is a point of every series.
    for c in &charts {
        for s in &c.series {
            assert_eq!(s.points.len(), 12, "{}", s.name);
        }
    }
    let doc = svg::to_svg("a title with <markup> & \"quotes\"", &charts);
    let (elems, texts) = parse(&doc);
    let paths = elems
        .iter()
        .filter(|(n, c)| n == "path" && c.as_deref() == Some("series"))
        .count();
    assert_eq!(paths, 6, "three series in each of two charts");
    assert_eq!(elems.iter().filter(|(_, c)| c.as_deref() == Some("axes")).count(), 2);
    assert_eq!(elems.iter().filter(|(_, c)| c.as_deref() == Some("legend")).count(), 2);
    assert!(
        texts.iter().any(|t| t == "a title with <markup> & \"quotes\""),
        "{texts:?}"
    );
    for name in [
        "train (batch statistics)",
        "eval, running statistics (model.evaluate)",
        "eval, batch statistics",
    ] {
        // In the legend of both charts, and as the title of both paths.
        assert_eq!(texts.iter().filter(|t| *t == name).count(), 4, "{name}: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("accuracy")) && texts.iter().any(|t| t.starts_with("loss")));
}

#[test]
fn the_text_is_what_the_screen_shows_without_escape_codes() {
    let app = replay("bnscope_seed.jsonl");
    let mut term = Terminal::new(TestBackend::new(100, 30)).unwrap();
    term.draw(|f| f.render_widget(&app, f.area())).unwrap();
    let text = buffer_text(&app.screen_buffer());
    assert_eq!(text, buffer_text(term.backend().buffer()));
    assert_eq!(text.lines().count(), 30);
    assert!(!text.contains('\u{1b}'));
    assert!(text.contains("x export"), "{text}");
}

/// The key itself: both files in the current directory, under names that do not overwrite, said in the status
/// line. (The only test here that changes the current directory.)
#[test]
fn x_writes_both_files_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let mut app = replay("keras_small.jsonl");
    let press = || AppEvent::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE));
    app.handle_event(press());
    let first = app.status_text().unwrap().to_string();
    app.handle_event(press());
    let second = app.status_text().unwrap().to_string();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    for n in &names {
        assert!(
            n.starts_with("bnscope-") && (n.ends_with(".txt") || n.ends_with(".svg")),
            "{n}"
        );
        assert!(
            first.contains(n.as_str()) || second.contains(n.as_str()),
            "{n} not in {first:?} / {second:?}"
        );
    }
    assert_ne!(first, second);
    let txt = names.iter().find(|n| n.ends_with(".txt")).unwrap();
    let text = std::fs::read_to_string(dir.path().join(txt)).unwrap();
    assert!(text.contains("keras_small.jsonl") || text.contains("epoch"), "{text}");
    for svg_name in names.iter().filter(|n| n.ends_with(".svg")) {
        parse(&std::fs::read_to_string(dir.path().join(svg_name)).unwrap());
    }
}
