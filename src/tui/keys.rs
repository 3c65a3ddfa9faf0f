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
    Lessons,
    WorstLayer,
    /// Move the focus between the layer list and the channel list.
    Focus,
    /// The charts' time window: all epochs, the last 100, the last 20.
    Zoom,
    Quit,
    /// A log (`bnscope replay`/`watch`): the cursor one epoch back or on.
    EpochBack,
    EpochOn,
    /// Ten epochs back or on.
    EpochBack10,
    EpochOn10,
    /// To the epoch before the previous or next event (a momentum change, a reset, a new run…).
    PrevEvent,
    NextEvent,
    /// A steered run (`bnscope watch` with control on): both evaluations now, with the run's `evaluate` function.
    Evaluate,
    /// Several rank logs: the next rank's BatchNorm record in the layers and channel panels.
    NextRank,
    /// Write the screen as text and the charts as SVG into the current directory.
    Export,
}

/// One physical key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A character typed without Ctrl or Alt (Shift is part of the character).
    Char(char),
    /// Ctrl + a character.
    Ctrl(char),
    /// A named key (arrows, Esc, …) without Ctrl, Alt or Shift (Shift-Tab is `BackTab`).
    Code(KeyCode),
    /// Shift + a named key.
    Shift(KeyCode),
}

impl Key {
    pub fn matches(self, ev: &KeyEvent) -> bool {
        let ctrl_alt = ev.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        match self {
            Key::Char(c) => !ctrl_alt && ev.code == KeyCode::Char(c),
            Key::Ctrl(c) => {
                ev.modifiers.contains(KeyModifiers::CONTROL)
                    && matches!(ev.code, KeyCode::Char(k) if k.eq_ignore_ascii_case(&c))
            }
            Key::Code(code) => {
                let shift = ev.modifiers.contains(KeyModifiers::SHIFT) && code != KeyCode::BackTab;
                !ctrl_alt && !shift && ev.code == code
            }
            Key::Shift(code) => !ctrl_alt && ev.modifiers.contains(KeyModifiers::SHIFT) && ev.code == code,
        }
    }
}

impl Key {
    /// How the help and the footer write the key.
    pub fn label(self) -> String {
        match self {
            Key::Char(' ') => "space".into(),
            Key::Char(c) => c.to_string(),
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::Code(KeyCode::Esc) => "Esc".into(),
            Key::Code(KeyCode::Up) => "Up".into(),
            Key::Code(KeyCode::Down) => "Down".into(),
            Key::Code(KeyCode::Left) => "←".into(),
            Key::Code(KeyCode::Right) => "→".into(),
            Key::Code(KeyCode::PageUp) => "PgUp".into(),
            Key::Code(KeyCode::PageDown) => "PgDn".into(),
            Key::Code(KeyCode::Home) => "Home".into(),
            Key::Code(KeyCode::End) => "End".into(),
            Key::Code(KeyCode::Tab) => "Tab".into(),
            Key::Code(KeyCode::Enter) => "Enter".into(),
            Key::Code(code) => format!("{code:?}"),
            Key::Shift(code) => format!("Shift-{}", Key::Code(code).label()),
        }
    }
}

/// A binding's place in the footer.
#[derive(Clone, Copy, Debug)]
pub struct FooterHint {
    pub words: &'static str,
    /// When the footer is too narrow, the lowest priority goes first.
    pub priority: u8,
    /// Another action whose first key is shown with this one's (`+/-`, `j/k`).
    pub pair: Option<Action>,
}

/// A row of the binding table.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub action: Action,
    pub keys: &'static [Key],
    /// What the help overlay says.
    pub help: &'static str,
    /// The footer hint, in footer order; `None` keeps the binding out of the footer.
    pub footer: Option<FooterHint>,
    /// Whether the binding changes the run (and so needs a live trainer): dimmed in the footer when there is none.
    pub changes_run: bool,
    /// Only for a log (`bnscope replay`/`watch`): left out of a live run's footer and help.
    pub log_only: bool,
}

impl Binding {
    /// All keys, as the help overlay shows them (`q Esc Ctrl-C`).
    pub fn keys_label(&self) -> String {
        self.keys.iter().map(|k| k.label()).collect::<Vec<_>>().join(" ")
    }

    /// The first key typed as a character (what the footer shows), else the first key; the epoch keys show
    /// their arrows.
    fn first_key(&self) -> Key {
        if self.log_only {
            return self.keys[0];
        }
        let typed = self.keys.iter().find(|k| matches!(k, Key::Char(_)));
        *typed.unwrap_or(&self.keys[0])
    }
}

const fn b(
    action: Action,
    keys: &'static [Key],
    help: &'static str,
    footer: Option<FooterHint>,
    changes_run: bool,
) -> Binding {
    Binding {
        action,
        keys,
        help,
        footer,
        changes_run,
        log_only: false,
    }
}

/// A binding for a log only (`bnscope replay`/`watch`): the epoch cursor.
const fn log_key(action: Action, keys: &'static [Key], help: &'static str, footer: Option<FooterHint>) -> Binding {
    Binding {
        action,
        keys,
        help,
        footer,
        changes_run: false,
        log_only: true,
    }
}

const fn hint(words: &'static str, priority: u8) -> Option<FooterHint> {
    Some(FooterHint {
        words,
        priority,
        pair: None,
    })
}

const fn pair(words: &'static str, priority: u8, with: Action) -> Option<FooterHint> {
    Some(FooterHint {
        words,
        priority,
        pair: Some(with),
    })
}

/// The table, in the help overlay's order. No key is bound twice (tested), so the order never decides dispatch.
pub const BINDINGS: &[Binding] = &[
    log_key(
        Action::EpochBack,
        &[Key::Code(KeyCode::Left), Key::Char('h')],
        "replay: the epoch before (every panel shows the epoch under the cursor)",
        None,
    ),
    log_key(
        Action::EpochOn,
        &[Key::Code(KeyCode::Right), Key::Char('l')],
        "replay: the epoch after (at the newest, a watch follows the log again)",
        pair("epoch", 9, Action::EpochBack),
    ),
    log_key(
        Action::EpochBack10,
        &[Key::Shift(KeyCode::Left)],
        "replay: ten epochs back",
        None,
    ),
    log_key(
        Action::EpochOn10,
        &[Key::Shift(KeyCode::Right)],
        "replay: ten epochs on",
        pair("ten", 7, Action::EpochBack10),
    ),
    log_key(
        Action::PrevEvent,
        &[Key::Char('{')],
        "replay: back to the previous event (momentum, reset, recalibration, new run, divergence…)",
        None,
    ),
    log_key(
        Action::NextEvent,
        &[Key::Char('}')],
        "replay: on to the next event",
        pair("event", 8, Action::PrevEvent),
    ),
    log_key(
        Action::NextRank,
        &[Key::Char('N')],
        "rank logs: the next rank's running statistics in the layers and channel panels (the ranks column compares all)",
        None,
    ),
    log_key(
        Action::Evaluate,
        &[Key::Char('E')],
        "watch of a steered run: both evaluations now (the run's evaluate function, in eval() and with batch stats)",
        None,
    ),
    b(
        Action::Quit,
        &[Key::Char('q'), Key::Code(KeyCode::Esc), Key::Ctrl('c')],
        "quit (the trainer writes its checkpoint first)",
        hint("quit", 9),
        false,
    ),
    b(
        Action::ToggleEval,
        &[Key::Char('e')],
        "headline eval: running stats (model.evaluate) <-> batch stats",
        hint("eval", 8),
        false,
    ),
    b(
        Action::MomentumUp,
        &[Key::Char('+'), Key::Char('='), Key::Char(']')],
        "raise the BN momentum one rung up the ladder",
        pair("momentum", 8, Action::MomentumDown),
        true,
    ),
    b(
        Action::MomentumDown,
        &[Key::Char('-'), Key::Char('[')],
        "lower it one rung: the running stats catch up faster",
        None,
        true,
    ),
    b(
        Action::ToggleConvention,
        &[Key::Char('m')],
        "show the Keras or the PyTorch momentum first (+/- follow it)",
        hint("PyTorch m", 1),
        false,
    ),
    b(
        Action::ToggleCumulative,
        &[Key::Char('u')],
        "cumulative averaging on/off (PyTorch momentum=None)",
        hint("cumulative", 2),
        true,
    ),
    b(
        Action::PauseResume,
        &[Key::Char(' ')],
        "pause / resume training",
        hint("pause", 7),
        true,
    ),
    b(
        Action::Slower,
        &[Key::Char('<'), Key::Char(',')],
        "slower: fewer epochs a second (time to watch)",
        pair("speed", 0, Action::Faster),
        true,
    ),
    b(
        Action::Faster,
        &[Key::Char('>'), Key::Char('.')],
        "faster, up to full speed",
        None,
        true,
    ),
    b(
        Action::Step,
        &[Key::Char('n')],
        "one epoch while paused",
        hint("step", 5),
        true,
    ),
    b(
        Action::ResetStats,
        &[Key::Char('r')],
        "reset running stats to mean 0 / var 1, t = 0 (weights stay)",
        hint("reset", 6),
        true,
    ),
    b(
        Action::Recalibrate,
        &[Key::Char('c')],
        "recalibrate the running stats from one pass (PreciseBN)",
        hint("recalibrate", 6),
        true,
    ),
    b(
        Action::Restart,
        &[Key::Char('R')],
        "restart: new weights, optimizer and stats (press R twice)",
        hint("restart", 4),
        true,
    ),
    b(
        Action::Up,
        &[Key::Code(KeyCode::Up), Key::Char('k')],
        "select the previous BatchNorm layer",
        None,
        false,
    ),
    b(
        Action::Down,
        &[Key::Code(KeyCode::Down), Key::Char('j')],
        "select the next BatchNorm layer",
        pair("layer", 0, Action::Up),
        false,
    ),
    b(
        Action::PageUp,
        &[Key::Code(KeyCode::PageUp)],
        "ten layers up",
        None,
        false,
    ),
    b(
        Action::PageDown,
        &[Key::Code(KeyCode::PageDown)],
        "ten layers down",
        None,
        false,
    ),
    b(
        Action::Home,
        &[Key::Code(KeyCode::Home)],
        "first layer (replay: the first epoch)",
        None,
        false,
    ),
    b(
        Action::End,
        &[Key::Code(KeyCode::End)],
        "last layer (replay: the newest epoch; a watch follows the log again)",
        None,
        false,
    ),
    b(
        Action::WorstLayer,
        &[Key::Char('w')],
        "the layer (or, focused on channels, the channel) furthest from its batch stats",
        hint("worst", 3),
        false,
    ),
    b(
        Action::Focus,
        &[Key::Code(KeyCode::Tab), Key::Code(KeyCode::BackTab)],
        "move the arrows between the layer list and its channels",
        hint("focus", 1),
        false,
    ),
    b(
        Action::Zoom,
        &[Key::Char('z')],
        "charts: all epochs, the last 100, the last 20",
        hint("zoom", 3),
        false,
    ),
    b(
        Action::Lessons,
        &[Key::Char('L')],
        "the lessons: the BatchNorm traps to try (small batches, frozen backbone, shifted data, EMA, GroupNorm); \
         a digit or Enter starts one as a new run",
        hint("lessons", 4),
        true,
    ),
    b(
        Action::Export,
        &[Key::Char('x')],
        "export: the screen as text (.txt) and the charts as SVG (.svg), into the current directory",
        hint("export", 0),
        false,
    ),
    b(
        Action::Help,
        &[Key::Char('?')],
        "this help; the run waits while it is open (? or Esc closes it)",
        hint("help", 9),
        false,
    ),
];

/// The table in use: [`BINDINGS`] with the config file's remapping (`prefs`), installed once at start-up.
static TABLE: std::sync::OnceLock<Vec<Binding>> = std::sync::OnceLock::new();

/// Installs the table the user's config file makes (checked: no key bound twice); before any key is read. A second
/// call changes nothing.
pub fn install(table: Vec<Binding>) {
    let _ = TABLE.set(table);
}

/// The table that drives dispatch, the footer and the help.
pub fn table() -> &'static [Binding] {
    TABLE.get().map_or(BINDINGS, Vec::as_slice)
}

/// The binding a key event asks for. Repeats and releases are ignored: only presses count.
pub fn lookup(ev: &KeyEvent) -> Option<&'static Binding> {
    if ev.kind != KeyEventKind::Press {
        return None;
    }
    table().iter().find(|b| b.keys.iter().any(|k| k.matches(ev)))
}

/// One footer hint: the keys as shown, the words, the priority and the binding it stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct Hint {
    pub keys: String,
    pub words: &'static str,
    pub priority: u8,
    pub binding: &'static Binding,
}

impl PartialEq for Binding {
    fn eq(&self, other: &Self) -> bool {
        self.action == other.action
    }
}

/// The binding of an action.
pub fn binding(action: Action) -> &'static Binding {
    table()
        .iter()
        .find(|b| b.action == action)
        .expect("every action has a binding")
}

/// The footer hints in display order: the run keys first, then `? help` and `q quit` last. Key labels come from
/// the key codes (`+/-` is the first typed key of each of a pair). `log`: a replay's footer, with the epoch keys.
pub fn footer_hints(log: bool) -> impl Iterator<Item = Hint> {
    let hint = |b: &'static Binding| {
        b.footer.map(|f| {
            let mut keys = b.first_key().label();
            if let Some(other) = f.pair {
                let other = binding(other).first_key().label();
                keys = if b.log_only {
                    // The epoch keys read "back/on": `←/→`, `Shift-←/→`.
                    format!("{other}/{}", keys.trim_start_matches("Shift-"))
                } else {
                    format!("{keys}/{other}")
                };
            }
            Hint {
                keys,
                words: f.words,
                priority: f.priority,
                binding: b,
            }
        })
    };
    let main = table()
        .iter()
        .filter(move |b| log || !b.log_only)
        .filter(|b| !matches!(b.action, Action::Quit | Action::Help))
        .filter_map(hint);
    let tail = table()
        .iter()
        .filter(|b| matches!(b.action, Action::Help | Action::Quit))
        .rev()
        .filter_map(hint);
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
        assert_eq!(a(KeyCode::Char('x'), KeyModifiers::NONE), Some(Action::Export));
        assert_eq!(a(KeyCode::Char('y'), KeyModifiers::NONE), None);
        let mut release = key(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert!(lookup(&release).is_none());
    }

    #[test]
    fn footer_ends_with_help_and_quit() {
        let hints: Vec<_> = footer_hints(false).map(|h| (h.keys, h.words, h.priority)).collect();
        assert_eq!(hints[0], ("e".to_string(), "eval", 8));
        let last: Vec<_> = hints[hints.len() - 2..]
            .iter()
            .map(|(k, w, _)| (k.as_str(), *w))
            .collect();
        assert_eq!(last, [("?", "help"), ("q", "quit")]);
    }

    #[test]
    fn no_key_is_bound_twice() {
        let mut seen: Vec<(Key, Action)> = Vec::new();
        for b in BINDINGS {
            for &k in b.keys {
                if let Some((_, first)) = seen.iter().find(|(s, _)| *s == k) {
                    panic!("{} is bound to both {first:?} and {:?}", k.label(), b.action);
                }
                seen.push((k, b.action));
            }
        }
        // Every action has exactly one row.
        for b in BINDINGS {
            assert_eq!(
                BINDINGS.iter().filter(|o| o.action == b.action).count(),
                1,
                "{:?}",
                b.action
            );
        }
    }

    #[test]
    fn labels_come_from_the_key_codes() {
        assert_eq!(binding(Action::Quit).keys_label(), "q Esc Ctrl-C");
        assert_eq!(binding(Action::PauseResume).keys_label(), "space");
        assert_eq!(binding(Action::Up).keys_label(), "Up k");
        let keys: Vec<String> = footer_hints(false).map(|h| h.keys).collect();
        for want in ["+/-", "</>", "j/k", "space", "?", "q"] {
            assert!(keys.iter().any(|k| k == want), "{want} missing from {keys:?}");
        }
    }
}
