//! The compare view's one binding table: it drives dispatch, the footer and the `?` help of `bnscope compare`
//! (the run view's table in `tui/keys.rs` is about one run and its trainer; none of its command keys apply here).
use crossterm::event::{KeyCode, KeyEvent};

use crate::tui::keys::Key;

/// Everything a key can ask for in the compare view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    EpochBack,
    EpochOn,
    EpochBack10,
    EpochOn10,
    First,
    /// The newest epoch; a watch follows it again.
    Last,
    /// Show or hide run `n` (0-based) in the charts and the layers panel: the run picker.
    Toggle(usize),
    LayersUp,
    LayersDown,
    /// Write the screen as text and the charts as SVG into the current directory.
    Export,
    Help,
    Quit,
}

/// A row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub act: Act,
    pub keys: &'static [Key],
    pub help: &'static str,
    /// The footer's words (`None`: help only).
    pub footer: Option<&'static str>,
}

const fn b(act: Act, keys: &'static [Key], help: &'static str, footer: Option<&'static str>) -> Binding {
    Binding {
        act,
        keys,
        help,
        footer,
    }
}

/// The table.
pub const BINDINGS: &[Binding] = &[
    b(
        Act::EpochBack,
        &[Key::Code(KeyCode::Left), Key::Char('h')],
        "one epoch back, every run",
        Some("epoch"),
    ),
    b(
        Act::EpochOn,
        &[Key::Code(KeyCode::Right), Key::Char('l')],
        "one epoch on, every run",
        None,
    ),
    b(
        Act::EpochBack10,
        &[Key::Shift(KeyCode::Left), Key::Code(KeyCode::PageUp)],
        "ten epochs back",
        None,
    ),
    b(
        Act::EpochOn10,
        &[Key::Shift(KeyCode::Right), Key::Code(KeyCode::PageDown)],
        "ten epochs on",
        None,
    ),
    b(
        Act::First,
        &[Key::Code(KeyCode::Home), Key::Char('g')],
        "the first epoch",
        None,
    ),
    b(
        Act::Last,
        &[Key::Code(KeyCode::End), Key::Char('G')],
        "the newest epoch (a watch follows it again)",
        None,
    ),
    b(
        Act::Toggle(0),
        &[Key::Char('1')],
        "show or hide run A (the run picker: 1 to 8)",
        Some("show/hide run"),
    ),
    b(Act::Toggle(1), &[Key::Char('2')], "show or hide run B", None),
    b(Act::Toggle(2), &[Key::Char('3')], "show or hide run C", None),
    b(Act::Toggle(3), &[Key::Char('4')], "show or hide run D", None),
    b(Act::Toggle(4), &[Key::Char('5')], "show or hide run E", None),
    b(Act::Toggle(5), &[Key::Char('6')], "show or hide run F", None),
    b(Act::Toggle(6), &[Key::Char('7')], "show or hide run G", None),
    b(Act::Toggle(7), &[Key::Char('8')], "show or hide run H", None),
    b(
        Act::LayersUp,
        &[Key::Code(KeyCode::Up), Key::Char('k')],
        "scroll the layers up",
        Some("layers"),
    ),
    b(
        Act::LayersDown,
        &[Key::Code(KeyCode::Down), Key::Char('j')],
        "scroll the layers down",
        None,
    ),
    b(
        Act::Export,
        &[Key::Char('x')],
        "write the screen as text (.txt) and the charts as SVG (.svg) into the current directory",
        Some("export"),
    ),
    b(
        Act::Help,
        &[Key::Char('?')],
        "this help (any key closes it)",
        Some("help"),
    ),
    b(
        Act::Quit,
        &[Key::Char('q'), Key::Code(KeyCode::Esc), Key::Ctrl('c')],
        "quit",
        Some("quit"),
    ),
];

/// The binding a key event asks for.
pub fn lookup(ev: &KeyEvent) -> Option<&'static Binding> {
    BINDINGS.iter().find(|b| b.keys.iter().any(|k| k.matches(ev)))
}

/// The footer: `(keys, words)` in table order. The first key of a footer row stands for its group (`←/→`, `1-8`,
/// `Up/Down`).
pub fn footer(ascii: bool) -> Vec<(String, &'static str)> {
    BINDINGS
        .iter()
        .filter_map(|b| {
            let words = b.footer?;
            let keys = match b.act {
                Act::EpochBack if ascii => "Left/Right".to_string(),
                Act::EpochBack => "←/→".to_string(),
                Act::Toggle(_) => "1-8".to_string(),
                Act::LayersUp if ascii => "Up/Down".to_string(),
                Act::LayersUp => "↑/↓".to_string(),
                _ => b.keys[0].label(),
            };
            Some((keys, words))
        })
        .collect()
}

/// The help overlay's rows: `(all keys, what they do)`.
pub fn help_rows() -> Vec<(String, &'static str)> {
    BINDINGS
        .iter()
        .map(|b| (b.keys.iter().map(|k| k.label()).collect::<Vec<_>>().join(" "), b.help))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    #[test]
    fn no_key_is_bound_twice() {
        let mut seen: Vec<Key> = Vec::new();
        for b in BINDINGS {
            for k in b.keys {
                assert!(!seen.contains(k), "{k:?} bound twice");
                seen.push(*k);
            }
        }
    }

    #[test]
    fn digits_pick_runs() {
        let ev = KeyEvent::new(KeyCode::Char('3'), KeyModifiers::NONE);
        assert_eq!(lookup(&ev).map(|b| b.act), Some(Act::Toggle(2)));
        let ev = KeyEvent::new(KeyCode::Left, KeyModifiers::SHIFT);
        assert_eq!(lookup(&ev).map(|b| b.act), Some(Act::EpochBack10));
    }
}
