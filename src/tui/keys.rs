//! The one key binding table: it drives dispatch, the footer hints and the `?` help overlay.
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Everything a key can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ToggleEval,
    MomentumUp,
    MomentumDown,
    ToggleConvention,
    ToggleCumulative,
    Slower,
    Faster,
    PauseResume,
    Step,
    ResetStats,
    Recalibrate,
    Restart,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Help,
    Quit,
}

/// One physical key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A character typed without Ctrl or Alt (Shift is part of the character).
    Char(char),
    /// Ctrl + a character.
    Ctrl(char),
    /// A named key (arrows, Esc, …) without Ctrl or Alt.
    Code(KeyCode),
}

impl Key {
    fn matches(self, ev: &KeyEvent) -> bool {
        let ctrl_alt = ev.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        match self {
            Key::Char(c) => !ctrl_alt && ev.code == KeyCode::Char(c),
            Key::Ctrl(c) => {
                ev.modifiers.contains(KeyModifiers::CONTROL)
                    && matches!(ev.code, KeyCode::Char(k) if k.eq_ignore_ascii_case(&c))
            }
            Key::Code(code) => !ctrl_alt && ev.code == code,
        }
    }
}

/// A row of the binding table.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub action: Action,
    pub keys: &'static [Key],
    /// The keys as the help overlay shows them.
    pub keys_label: &'static str,
    /// What the help overlay says.
    pub help: &'static str,
    /// `(keys, words, priority)` for the footer, in footer order; `None` keeps the binding out of the
    /// footer. When the footer is too narrow, the lowest priority goes first.
    pub footer: Option<(&'static str, &'static str, u8)>,
    /// Whether the binding changes the run (and so needs a live trainer).
    pub changes_run: bool,
}

const fn b(
    action: Action,
    keys: &'static [Key],
    keys_label: &'static str,
    help: &'static str,
    footer: Option<(&'static str, &'static str, u8)>,
    changes_run: bool,
) -> Binding {
    Binding {
        action,
        keys,
        keys_label,
        help,
        footer,
        changes_run,
    }
}

/// The table. Order matters: Ctrl-C is matched before `c`, and this is the help overlay's order.
pub const BINDINGS: &[Binding] = &[
    b(
        Action::Quit,
        &[Key::Char('q'), Key::Code(KeyCode::Esc), Key::Ctrl('c')],
        "q Esc Ctrl-C",
        "quit (the trainer writes its checkpoint first)",
        Some(("q", "quit", 9)),
        false,
    ),
    b(
        Action::ToggleEval,
        &[Key::Char('e')],
        "e",
        "headline eval: running stats (model.evaluate) <-> batch stats",
        Some(("e", "eval", 8)),
        false,
    ),
    b(
        Action::MomentumUp,
        &[Key::Char('+'), Key::Char('='), Key::Char(']')],
        "+ = ]",
        "raise BN momentum (Keras convention) one rung up the ladder",
        Some(("+/-", "momentum", 8)),
        true,
    ),
    b(
        Action::MomentumDown,
        &[Key::Char('-'), Key::Char('[')],
        "- [",
        "lower BN momentum one rung: running stats catch up faster",
        None,
        true,
    ),
    b(
        Action::ToggleConvention,
        &[Key::Char('m')],
        "m",
        "show the Keras or the PyTorch/candle momentum first",
        Some(("m", "conv.", 2)),
        false,
    ),
    b(
        Action::ToggleCumulative,
        &[Key::Char('u')],
        "u",
        "cumulative averaging on/off (PyTorch momentum=None)",
        Some(("u", "cumul.", 3)),
        true,
    ),
    b(
        Action::PauseResume,
        &[Key::Char(' ')],
        "space",
        "pause / resume training",
        Some(("space", "pause", 7)),
        true,
    ),
    b(
        Action::Slower,
        &[Key::Char('<'), Key::Char(',')],
        "< ,",
        "slower: fewer epochs a second (time to watch)",
        Some(("</>", "speed", 0)),
        true,
    ),
    b(
        Action::Faster,
        &[Key::Char('>'), Key::Char('.')],
        "> .",
        "faster, up to full speed",
        None,
        true,
    ),
    b(
        Action::Step,
        &[Key::Char('n')],
        "n",
        "one epoch while paused",
        Some(("n", "step", 5)),
        true,
    ),
    b(
        Action::ResetStats,
        &[Key::Char('r')],
        "r",
        "reset running stats to mean 0 / var 1, t = 0 (weights stay)",
        Some(("r", "reset", 6)),
        true,
    ),
    b(
        Action::Recalibrate,
        &[Key::Char('c')],
        "c",
        "recalibrate: re-estimate running stats from one pass over the data",
        Some(("c", "recal.", 6)),
        true,
    ),
    b(
        Action::Restart,
        &[Key::Char('R')],
        "R",
        "restart with new weights (fresh optimizer and stats)",
        Some(("R", "restart", 4)),
        true,
    ),
    b(
        Action::Up,
        &[Key::Code(KeyCode::Up), Key::Char('k')],
        "Up k",
        "select the previous BatchNorm layer",
        Some(("j/k", "layer", 1)),
        false,
    ),
    b(
        Action::Down,
        &[Key::Code(KeyCode::Down), Key::Char('j')],
        "Down j",
        "select the next BatchNorm layer",
        None,
        false,
    ),
    b(
        Action::PageUp,
        &[Key::Code(KeyCode::PageUp)],
        "PgUp",
        "ten layers up",
        None,
        false,
    ),
    b(
        Action::PageDown,
        &[Key::Code(KeyCode::PageDown)],
        "PgDn",
        "ten layers down",
        None,
        false,
    ),
    b(
        Action::Home,
        &[Key::Code(KeyCode::Home)],
        "Home",
        "first layer",
        None,
        false,
    ),
    b(
        Action::End,
        &[Key::Code(KeyCode::End)],
        "End",
        "last layer",
        None,
        false,
    ),
    b(
        Action::Help,
        &[Key::Char('?')],
        "?",
        "this help (? or Esc closes it)",
        Some(("?", "help", 9)),
        false,
    ),
];

/// The binding a key event asks for. Repeats and releases are ignored: only presses count.
pub fn lookup(ev: &KeyEvent) -> Option<&'static Binding> {
    if ev.kind != KeyEventKind::Press {
        return None;
    }
    BINDINGS.iter().find(|b| b.keys.iter().any(|k| k.matches(ev)))
}

/// The footer hints in display order: the run keys first, then `? help` and `q quit` last.
pub fn footer_hints() -> impl Iterator<Item = (&'static str, &'static str, u8)> {
    let main = BINDINGS
        .iter()
        .filter(|b| !matches!(b.action, Action::Quit | Action::Help))
        .filter_map(|b| b.footer);
    let tail = BINDINGS
        .iter()
        .filter(|b| matches!(b.action, Action::Help | Action::Quit))
        .rev()
        .filter_map(|b| b.footer);
    main.chain(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn dispatch() {
        let a = |code, m| lookup(&key(code, m)).map(|b| b.action);
        assert_eq!(a(KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Action::Quit));
        assert_eq!(a(KeyCode::Char('c'), KeyModifiers::NONE), Some(Action::Recalibrate));
        assert_eq!(a(KeyCode::Char('R'), KeyModifiers::SHIFT), Some(Action::Restart));
        assert_eq!(a(KeyCode::Char('+'), KeyModifiers::SHIFT), Some(Action::MomentumUp));
        assert_eq!(a(KeyCode::Char('='), KeyModifiers::NONE), Some(Action::MomentumUp));
        assert_eq!(a(KeyCode::Char('?'), KeyModifiers::SHIFT), Some(Action::Help));
        assert_eq!(a(KeyCode::Esc, KeyModifiers::NONE), Some(Action::Quit));
        assert_eq!(a(KeyCode::Char('x'), KeyModifiers::NONE), None);
        let mut release = key(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert!(lookup(&release).is_none());
    }

    #[test]
    fn footer_ends_with_help_and_quit() {
        let hints: Vec<_> = footer_hints().collect();
        assert_eq!(hints[0], ("e", "eval", 8));
        assert_eq!(&hints[hints.len() - 2..], &[("?", "help", 9), ("q", "quit", 9)]);
    }
}
