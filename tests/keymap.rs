//! A config file's `[keys]` remapping (#27) reaches dispatch, the footer and the help: the one key table is
//! replaced at start-up (`keys::install`), and everything reads it. Its own test binary: the table is installed
//! once per process.
use std::path::PathBuf;

use bnscope::logfile::read_file;
use bnscope::prefs::{self, Flags};
use bnscope::tui::keys::{self, Action};
use bnscope::tui::timeline::Timeline;
use bnscope::tui::{App, AppEvent, TuiOptions};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| f.render_widget(app, f.area())).unwrap();
    term.backend().to_string()
}

#[test]
fn remapped_keys_reach_dispatch_footer_and_help() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bnscope")).unwrap();
    std::fs::write(
        dir.path().join("bnscope/config.toml"),
        "[keys]\nquit = [\"Q\", \"Ctrl-c\"]\nzoom = \"Z\"\ndown = \"J\"\nup = \"K\"\n",
    )
    .unwrap();
    let xdg = dir.path().display().to_string();
    let env = move |k: &str| match k {
        "XDG_CONFIG_HOME" => Some(xdg.clone()),
        "LANG" => Some("C.UTF-8".into()),
        _ => None,
    };
    let p = prefs::resolve(&Flags::default(), &env).unwrap();
    keys::install(prefs::remapped(&p, "config.toml").unwrap());

    let press = |c: char| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert_eq!(keys::lookup(&press('Q')).map(|b| b.action), Some(Action::Quit));
    assert_eq!(keys::lookup(&press('Z')).map(|b| b.action), Some(Action::Zoom));
    assert!(keys::lookup(&press('q')).is_none(), "q is no longer quit");
    assert!(keys::lookup(&press('z')).is_none());
    assert_eq!(
        keys::lookup(&press('e')).map(|b| b.action),
        Some(Action::ToggleEval),
        "the rest stay"
    );

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs/bnscope_seed.jsonl");
    let mut tl = Timeline::new(vec!["bnscope_seed.jsonl".into()], false);
    tl.take(0, read_file(&path).unwrap().0);
    let mut app = App::over_log(&TuiOptions::default(), tl, 7.0);
    let s = screen(&app, 120, 40);
    let footer: String = s.lines().rev().skip(1).take(2).collect::<Vec<_>>().join("\n");
    assert!(
        footer.contains("Q quit") && footer.contains("Z zoom") && footer.contains("J/K layer"),
        "{footer}"
    );
    assert!(!footer.contains("q quit") && !footer.contains("z zoom"), "{footer}");

    app.handle_event(AppEvent::Key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::SHIFT)));
    let help = screen(&app, 120, 40);
    let row = |keys: &str, words: &str| {
        help.lines()
            .any(|l| l.contains(&format!("│ {keys} ")) && l.contains(words))
    };
    assert!(row("Q Ctrl-C", "quit"), "{help}");
    assert!(row("Z", "charts: all epochs"), "{help}");
    assert!(!row("q Esc Ctrl-C", "quit"), "{help}");
    assert!(help.contains("K / J"), "{help}");
    // q no longer quits: it is not a key here.
    app.handle_event(AppEvent::Key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::SHIFT)));
    app.handle_event(AppEvent::Key(press('q')));
    assert_eq!(app.status_text(), Some("q: not a key here; ? lists the keys"));
}
