//! The user's preferences for the TUI: `ascii`, `mouse`, `fps`, `pace`, `theme` and key bindings, from four places
//! in this order, each over the one before: bnscope's defaults (with the terminal's locale: no UTF-8, no block
//! characters), the config file (`$XDG_CONFIG_HOME/bnscope/config.toml`, else `~/.config/bnscope/config.toml`),
//! the environment (`BNSCOPE_ASCII`, `BNSCOPE_MOUSE`, `BNSCOPE_FPS`, `BNSCOPE_PACE`, `BNSCOPE_THEME`, and
//! `NO_COLOR`), the command line's flags. `bnscope config` prints each with where it came from.
//!
//! An invalid file (TOML syntax, an unknown key, a bad value, two actions on one key) is one line naming the file,
//! the key and the line, exit 2; `--no-config` starts without it.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use crossterm::event::KeyCode;
use serde::Deserialize;
use toml::Spanned;

use crate::error::usage;
use crate::tui::keys::{Action, Binding, Key};

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Default,
    /// The terminal's locale is not UTF-8 (the variable and its value).
    Locale(String),
    /// The config file, at this line.
    File(usize),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Locale(l) => write!(f, "locale {l} is not UTF-8"),
            Source::File(line) => write!(f, "config file, line {line}"),
            Source::Env(v) => write!(f, "environment {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One setting and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Pref<T> {
    pub value: T,
    pub from: Source,
}

impl<T> Pref<T> {
    fn new(value: T) -> Self {
        Pref {
            value,
            from: Source::Default,
        }
    }

    fn set(&mut self, value: T, from: Source) {
        self.value = value;
        self.from = from;
    }
}

/// The colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThemeName {
    /// bnscope's colours.
    Default,
    /// The Okabe–Ito palette: the series and the good/bad tones stay apart with any colour vision.
    Colorblind,
    /// No colours (as `NO_COLOR`).
    Mono,
}

impl ThemeName {
    pub const NAMES: &'static str = "default, colorblind, mono";

    pub fn name(self) -> &'static str {
        match self {
            ThemeName::Default => "default",
            ThemeName::Colorblind => "colorblind",
            ThemeName::Mono => "mono",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "default" => Some(ThemeName::Default),
            "colorblind" | "colourblind" => Some(ThemeName::Colorblind),
            "mono" => Some(ThemeName::Mono),
            _ => None,
        }
    }
}

/// The effective preferences.
#[derive(Clone, Debug, PartialEq)]
pub struct Prefs {
    /// The config file read (`None`: none there, or `--no-config`).
    pub file: Option<PathBuf>,
    pub ascii: Pref<bool>,
    pub mouse: Pref<bool>,
    pub fps: Pref<u32>,
    /// Epochs a second in the TUI (playback of a log; a live run's pace). 0 = full speed (a live run only).
    pub pace: Pref<f64>,
    pub theme: Pref<ThemeName>,
    /// `[keys]`: each remapped action, its keys, the line.
    pub keys: Vec<(Action, Vec<Key>, usize)>,
}

/// The flags that name a preference (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub ascii: bool,
    pub no_mouse: bool,
    pub fps: Option<u32>,
    pub pace: Option<f64>,
    pub no_config: bool,
}

pub const DEFAULT_FPS: u32 = 5;
pub const DEFAULT_PACE: f64 = 7.0;

/// The action names of `[keys]`, as the user writes them.
pub const ACTIONS: &[(&str, Action)] = &[
    ("toggle_eval", Action::ToggleEval),
    ("momentum_up", Action::MomentumUp),
    ("momentum_down", Action::MomentumDown),
    ("toggle_convention", Action::ToggleConvention),
    ("toggle_cumulative", Action::ToggleCumulative),
    ("slower", Action::Slower),
    ("faster", Action::Faster),
    ("pause", Action::PauseResume),
    ("step", Action::Step),
    ("reset_stats", Action::ResetStats),
    ("recalibrate", Action::Recalibrate),
    ("restart", Action::Restart),
    ("up", Action::Up),
    ("down", Action::Down),
    ("page_up", Action::PageUp),
    ("page_down", Action::PageDown),
    ("home", Action::Home),
    ("end", Action::End),
    ("help", Action::Help),
    ("lessons", Action::Lessons),
    ("worst_layer", Action::WorstLayer),
    ("focus", Action::Focus),
    ("zoom", Action::Zoom),
    ("quit", Action::Quit),
    ("epoch_back", Action::EpochBack),
    ("epoch_on", Action::EpochOn),
    ("epoch_back_10", Action::EpochBack10),
    ("epoch_on_10", Action::EpochOn10),
    ("prev_event", Action::PrevEvent),
    ("next_event", Action::NextEvent),
    ("evaluate", Action::Evaluate),
    ("export", Action::Export),
    ("next_rank", Action::NextRank),
];

/// The user's name of an action.
pub fn action_name(a: Action) -> &'static str {
    ACTIONS.iter().find(|(_, x)| *x == a).map_or("?", |(n, _)| n)
}

/// A key as the config file writes it: one character (`x`, `+`), `space`, a named key (`Esc`, `Enter`, `Tab`,
/// `Up`, `Down`, `Left`, `Right`, `PgUp`, `PgDn`, `Home`, `End`, `F1`…`F12`), `Ctrl-x`, `Shift-Left`.
pub fn parse_key(s: &str) -> Option<Key> {
    let named = |n: &str| -> Option<KeyCode> {
        Some(match n.to_ascii_lowercase().as_str() {
            "esc" | "escape" => KeyCode::Esc,
            "enter" | "return" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            f if f.starts_with('f') && f.len() > 1 => KeyCode::F(f[1..].parse().ok().filter(|n| (1..=12).contains(n))?),
            _ => return None,
        })
    };
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_control() => return Some(Key::Char(c)),
        (None, _) => return None,
        _ => {}
    }
    if s.eq_ignore_ascii_case("space") {
        return Some(Key::Char(' '));
    }
    if let Some(rest) = s.strip_prefix("Ctrl-").or_else(|| s.strip_prefix("ctrl-")) {
        let mut c = rest.chars();
        return match (c.next(), c.next()) {
            (Some(c), None) if c.is_ascii_alphanumeric() => Some(Key::Ctrl(c.to_ascii_lowercase())),
            _ => None,
        };
    }
    if let Some(rest) = s.strip_prefix("Shift-").or_else(|| s.strip_prefix("shift-")) {
        return named(rest).map(Key::Shift);
    }
    named(s).map(Key::Code)
}

/// The config file's path: `$XDG_CONFIG_HOME/bnscope/config.toml` (when set and absolute), else
/// `$HOME/.config/bnscope/config.toml`; `None` without either.
pub fn config_path(xdg: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match xdg.filter(|x| x.starts_with('/')) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("bnscope").join("config.toml"))
}

/// Whether the locale the C library would use is UTF-8: the first of `LC_ALL`, `LC_CTYPE`, `LANG` that is set
/// and not empty decides (as setlocale does); none is the `C` locale. Returns the variable and value that
/// decided when it is not UTF-8 (for the notice), `None` when it is.
pub fn not_utf8(lc_all: Option<&str>, lc_ctype: Option<&str>, lang: Option<&str>) -> Option<String> {
    let found = [("LC_ALL", lc_all), ("LC_CTYPE", lc_ctype), ("LANG", lang)]
        .into_iter()
        .find_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)));
    let Some((var, value)) = found else {
        return Some("unset (the C locale)".into());
    };
    // `en_US.UTF-8`, `C.utf8`, `de_DE.UTF-8@euro`: the codeset is between the `.` and an `@`.
    let codeset = value.split_once('.').map(|(_, c)| c.split('@').next().unwrap_or(c));
    let utf8 = codeset.is_some_and(|c| {
        let c = c.to_ascii_lowercase().replace('-', "");
        c == "utf8"
    });
    (!utf8).then(|| format!("{var}={}", crate::terminal::printable(value)))
}

/// The file as written: every key optional; anything else is refused (`deny_unknown_fields`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    ascii: Option<Spanned<bool>>,
    mouse: Option<Spanned<bool>>,
    fps: Option<Spanned<i64>>,
    pace: Option<Spanned<toml::Value>>,
    theme: Option<Spanned<String>>,
    keys: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// The line (from 1) of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn check_fps(n: i64) -> Option<u32> {
    u32::try_from(n).ok().filter(|n| (1..=60).contains(n))
}

fn check_pace(p: f64) -> bool {
    p == 0.0 || (crate::cli::MIN_PACE..=crate::cli::MAX_PACE).contains(&p)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The preferences from the file's `text` over `base`; errors are one line naming `shown` (the file), the key and
/// the line.
fn apply_file(p: &mut Prefs, text: &str, shown: &str) -> Result<()> {
    let bad = |at: usize, what: String| usage(format!("{shown}, line {}: {what}", line_of(text, at)));
    let f: FileText = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        // toml's message without its own excerpt of the file, after the key of that line where it has one.
        let msg = e.message().trim().replace('\n', " ");
        let key = text
            .lines()
            .nth(line_of(text, at) - 1)
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim())
            .filter(|k| !k.is_empty() && !msg.contains(&format!("`{k}`")));
        match key {
            Some(k) => bad(at, format!("{}: {msg}", crate::terminal::printable(k))),
            None => bad(at, msg),
        }
    })?;
    if let Some(v) = f.ascii {
        p.ascii.set(*v.get_ref(), Source::File(line_of(text, v.span().start)));
    }
    if let Some(v) = f.mouse {
        p.mouse.set(*v.get_ref(), Source::File(line_of(text, v.span().start)));
    }
    if let Some(v) = f.fps {
        let n = check_fps(*v.get_ref()).ok_or_else(|| {
            bad(
                v.span().start,
                format!("fps = {}: must be between 1 and 60", v.get_ref()),
            )
        })?;
        p.fps.set(n, Source::File(line_of(text, v.span().start)));
    }
    if let Some(v) = f.pace {
        let x = match v.get_ref() {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(x) => Some(*x),
            _ => None,
        };
        let x = x.filter(|x| check_pace(*x)).ok_or_else(|| {
            bad(
                v.span().start,
                format!(
                    "pace = {}: must be 0 (full speed) or between {} and {} epochs a second",
                    v.get_ref(),
                    crate::cli::MIN_PACE,
                    crate::cli::MAX_PACE
                ),
            )
        })?;
        p.pace.set(x, Source::File(line_of(text, v.span().start)));
    }
    if let Some(v) = f.theme {
        let t = ThemeName::from_name(v.get_ref()).ok_or_else(|| {
            bad(
                v.span().start,
                format!(
                    "theme = {:?}: not a theme (one of {})",
                    crate::terminal::printable(v.get_ref()),
                    ThemeName::NAMES
                ),
            )
        })?;
        p.theme.set(t, Source::File(line_of(text, v.span().start)));
    }
    for (name, v) in f.keys.unwrap_or_default() {
        let at = v.span().start;
        let shown_name = crate::terminal::printable(&name).into_owned();
        let action = ACTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| bad(at, format!("[keys] {shown_name}: not an action (see `bnscope config`)")))?;
        let texts: Vec<&str> = match v.get_ref() {
            toml::Value::String(s) => vec![s.as_str()],
            toml::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap_or("\u{0}")).collect(),
            _ => vec![],
        };
        if texts.is_empty() {
            return Err(bad(at, format!("[keys] {shown_name}: a key (\"x\") or a list of keys")));
        }
        let keys = texts
            .iter()
            .map(|t| {
                parse_key(t).ok_or_else(|| {
                    bad(
                        at,
                        format!(
                            "[keys] {shown_name} = {:?}: not a key (a character, space, Esc, Enter, Tab, Up, Down, \
                             Left, Right, PgUp, PgDn, Home, End, F1-F12, Ctrl-x, Shift-Left)",
                            crate::terminal::printable(t)
                        ),
                    )
                })
            })
            .collect::<Result<Vec<Key>>>()?;
        p.keys.push((action, keys, line_of(text, at)));
    }
    Ok(())
}

/// The binding table with the file's remapping, or the one line that refuses it: a key given to two actions
/// (naming the file, the key and the line).
pub fn remapped(p: &Prefs, shown: &str) -> Result<Vec<Binding>> {
    let mut table: Vec<Binding> = crate::tui::keys::BINDINGS.to_vec();
    for (action, keys, _) in &p.keys {
        let b = table
            .iter_mut()
            .find(|b| b.action == *action)
            .expect("every action has a row");
        // Leaked once at start-up: the table's rows hold `&'static [Key]`, as the built-in ones do.
        b.keys = Box::leak(keys.clone().into_boxed_slice());
    }
    for (i, b) in table.iter().enumerate() {
        for k in b.keys {
            if let Some(other) = table[i + 1..].iter().find(|o| o.keys.contains(k)) {
                // The line of whichever of the two the file remapped.
                let line = p
                    .keys
                    .iter()
                    .rev()
                    .find(|(a, ks, _)| (*a == b.action || *a == other.action) && ks.contains(k))
                    .map_or(0, |(_, _, l)| *l);
                return Err(usage(format!(
                    "{shown}, line {line}: [keys] {} is bound to both {} and {}; give one of them another key",
                    k.label(),
                    action_name(b.action),
                    action_name(other.action)
                )));
            }
        }
    }
    Ok(table)
}

/// The environment that preferences read, as a function (tests give their own).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The effective preferences: defaults (and the locale), the file (unless `--no-config`), the environment, the
/// flags. Errors are one line, exit 2.
pub fn resolve(flags: &Flags, env: Env) -> Result<Prefs> {
    let mut p = Prefs {
        file: None,
        ascii: Pref::new(false),
        mouse: Pref::new(true),
        fps: Pref::new(DEFAULT_FPS),
        pace: Pref::new(DEFAULT_PACE),
        theme: Pref::new(ThemeName::Default),
        keys: Vec::new(),
    };
    if let Some(why) = not_utf8(
        env("LC_ALL").as_deref(),
        env("LC_CTYPE").as_deref(),
        env("LANG").as_deref(),
    ) {
        p.ascii.set(true, Source::Locale(why));
    }
    if !flags.no_config {
        if let Some(path) = config_path(env("XDG_CONFIG_HOME").as_deref(), env("HOME").as_deref()) {
            read_file(&mut p, &path)?;
        }
    }
    let var = |name: &'static str| env(name).filter(|v| !v.is_empty()).map(|v| (name, v));
    let bad_env = |name: &str, v: &str, want: &str| usage(format!("{name}={}: {want}", crate::terminal::printable(v)));
    if let Some((k, v)) = var("BNSCOPE_ASCII") {
        let b = parse_bool(&v).ok_or_else(|| bad_env(k, &v, "must be true or false"))?;
        p.ascii.set(b, Source::Env(k));
    }
    if let Some((k, v)) = var("BNSCOPE_MOUSE") {
        let b = parse_bool(&v).ok_or_else(|| bad_env(k, &v, "must be true or false"))?;
        p.mouse.set(b, Source::Env(k));
    }
    if let Some((k, v)) = var("BNSCOPE_FPS") {
        let n = v
            .parse::<i64>()
            .ok()
            .and_then(check_fps)
            .ok_or_else(|| bad_env(k, &v, "must be between 1 and 60"))?;
        p.fps.set(n, Source::Env(k));
    }
    if let Some((k, v)) = var("BNSCOPE_PACE") {
        let x = v
            .parse::<f64>()
            .ok()
            .filter(|x| check_pace(*x))
            .ok_or_else(|| bad_env(k, &v, "must be 0 (full speed) or between 0.01 and 1000 epochs a second"))?;
        p.pace.set(x, Source::Env(k));
    }
    if let Some((k, v)) = var("BNSCOPE_THEME") {
        let t = ThemeName::from_name(&v)
            .ok_or_else(|| bad_env(k, &v, &format!("not a theme (one of {})", ThemeName::NAMES)))?;
        p.theme.set(t, Source::Env(k));
    }
    if var("NO_COLOR").is_some() {
        p.theme.set(ThemeName::Mono, Source::Env("NO_COLOR"));
    }
    if flags.ascii {
        p.ascii.set(true, Source::Flag("--ascii"));
    }
    if flags.no_mouse {
        p.mouse.set(false, Source::Flag("--no-mouse"));
    }
    if let Some(n) = flags.fps {
        p.fps.set(n, Source::Flag("--fps"));
    }
    if let Some(x) = flags.pace {
        p.pace.set(x, Source::Flag("--pace"));
    }
    Ok(p)
}

fn read_file(p: &mut Prefs, path: &Path) -> Result<()> {
    let shown = crate::terminal::printable(&path.display().to_string()).into_owned();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(usage(format!("{shown}: {}", crate::files::io_reason(&e)))),
    };
    if let Some(kind) = crate::files::not_regular(&meta) {
        return Err(usage(format!("{shown}: not a regular file ({kind})")));
    }
    if meta.len() > 1 << 20 {
        return Err(usage(format!("{shown}: more than 1 MiB; not a bnscope config file")));
    }
    let bytes = std::fs::read(path).map_err(|e| usage(format!("{shown}: {}", crate::files::io_reason(&e))))?;
    let text = String::from_utf8(bytes).map_err(|_| usage(format!("{shown}: not UTF-8 text")))?;
    apply_file(p, &text, &shown)?;
    remapped(p, &shown)?;
    p.file = Some(path.to_path_buf());
    Ok(())
}

/// The process's environment, for [`resolve`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The preferences [`load`] found (for the parts of the program that start the TUI later).
static CURRENT: std::sync::OnceLock<Prefs> = std::sync::OnceLock::new();

/// What [`load`] found; the defaults (and the locale, and the environment) when it was not called.
pub fn current() -> Prefs {
    CURRENT.get().cloned().unwrap_or_else(|| {
        let no_file = Flags {
            no_config: true,
            ..Default::default()
        };
        resolve(&no_file, &process_env).unwrap_or_else(|_| resolve(&no_file, &|_| None).expect("defaults"))
    })
}

/// Resolves the preferences and installs the remapped key table (once, at start-up, before the TUI).
pub fn load(flags: &Flags) -> Result<Prefs> {
    let p = resolve(flags, &process_env)?;
    let _ = CURRENT.set(p.clone());
    let shown = p
        .file
        .as_ref()
        .map(|f| crate::terminal::printable(&f.display().to_string()).into_owned())
        .unwrap_or_default();
    crate::tui::keys::install(remapped(&p, &shown)?);
    Ok(p)
}

/// `bnscope config`: the effective settings, each with where it came from, and the key table.
pub fn report(p: &Prefs, looked_at: Option<&Path>) -> String {
    let mut out = String::new();
    let file = match (&p.file, looked_at) {
        (Some(f), _) => crate::terminal::printable(&f.display().to_string()).into_owned(),
        (None, Some(f)) => format!(
            "{} (not there: defaults)",
            crate::terminal::printable(&f.display().to_string())
        ),
        (None, None) => "none (--no-config, or neither XDG_CONFIG_HOME nor HOME is set)".into(),
    };
    out.push_str(&format!("config file: {file}\n"));
    out.push_str("precedence: default < config file < environment (BNSCOPE_*, NO_COLOR) < flags\n");
    let row = |k: &str, v: String, from: &Source| format!("{k:<7} {v:<12} ({from})\n");
    out.push_str(&row("ascii", p.ascii.value.to_string(), &p.ascii.from));
    out.push_str(&row("mouse", p.mouse.value.to_string(), &p.mouse.from));
    out.push_str(&row("fps", p.fps.value.to_string(), &p.fps.from));
    out.push_str(&row("pace", format!("{} epochs/s", p.pace.value), &p.pace.from));
    out.push_str(&row("theme", p.theme.value.name().into(), &p.theme.from));
    out.push_str("[keys] (action = keys; a remapped one names its line)\n");
    for b in crate::tui::keys::table() {
        let remap = p.keys.iter().find(|(a, _, _)| *a == b.action);
        let from = remap.map_or(String::new(), |(_, _, l)| format!("  (config file, line {l})"));
        out.push_str(&format!("  {:<18} {}{from}\n", action_name(b.action), b.keys_label()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn locale_detection_follows_the_c_library_order() {
        assert_eq!(not_utf8(None, None, Some("en_US.UTF-8")), None);
        assert_eq!(not_utf8(None, None, Some("C.utf8")), None);
        assert_eq!(not_utf8(None, None, Some("de_DE.UTF-8@euro")), None);
        assert_eq!(not_utf8(None, None, Some("C")).as_deref(), Some("LANG=C"));
        assert_eq!(not_utf8(None, None, Some("POSIX")).as_deref(), Some("LANG=POSIX"));
        assert_eq!(
            not_utf8(None, None, Some("en_US.ISO-8859-1")).as_deref(),
            Some("LANG=en_US.ISO-8859-1")
        );
        // LC_ALL over LC_CTYPE over LANG; an empty one does not count.
        assert_eq!(
            not_utf8(Some("C"), Some("en_US.UTF-8"), Some("en_US.UTF-8")).as_deref(),
            Some("LC_ALL=C")
        );
        assert_eq!(
            not_utf8(Some(""), Some("C"), Some("en_US.UTF-8")).as_deref(),
            Some("LC_CTYPE=C")
        );
        assert_eq!(not_utf8(Some("en_GB.utf-8"), Some("C"), Some("C")), None);
        assert!(not_utf8(None, None, None).is_some());
        assert!(not_utf8(Some(""), Some(""), Some("")).is_some());
    }

    #[test]
    fn keys_parse_as_the_help_writes_them() {
        assert_eq!(parse_key("x"), Some(Key::Char('x')));
        assert_eq!(parse_key("space"), Some(Key::Char(' ')));
        assert_eq!(parse_key("Esc"), Some(Key::Code(KeyCode::Esc)));
        assert_eq!(parse_key("PgDn"), Some(Key::Code(KeyCode::PageDown)));
        assert_eq!(parse_key("Ctrl-X"), Some(Key::Ctrl('x')));
        assert_eq!(parse_key("Shift-Left"), Some(Key::Shift(KeyCode::Left)));
        assert_eq!(parse_key("F5"), Some(Key::Code(KeyCode::F(5))));
        for bad in ["", "xy", "Ctrl-", "F13", "Hyper-x", "\u{1b}"] {
            assert_eq!(parse_key(bad), None, "{bad:?}");
        }
        // Every built-in key's label reads back as itself (but the arrows, written with glyphs).
        for b in crate::tui::keys::BINDINGS {
            for k in b.keys {
                if !k.label().contains(['←', '→']) {
                    assert_eq!(parse_key(&k.label()), Some(*k), "{}", k.label());
                }
            }
        }
    }

    #[test]
    fn every_action_has_a_name() {
        for b in crate::tui::keys::BINDINGS {
            assert_ne!(action_name(b.action), "?", "{:?}", b.action);
        }
    }

    fn with_file(text: &str, env: &[(&str, &str)], flags: &Flags) -> Result<Prefs> {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("bnscope");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("config.toml"), text).unwrap();
        let d = dir.path().display().to_string();
        let mut all: Vec<(&str, &str)> = vec![("XDG_CONFIG_HOME", &d), ("LANG", "C.UTF-8")];
        all.extend_from_slice(env);
        resolve(flags, &env_of(&all))
    }

    #[test]
    fn precedence_is_default_file_environment_flag() {
        let none = Flags::default();
        let p = with_file("", &[], &none).unwrap();
        assert_eq!((p.fps.value, &p.fps.from), (5, &Source::Default));
        let text = "fps = 10\npace = 3\nascii = true\ntheme = \"colorblind\"\n";
        let p = with_file(text, &[], &none).unwrap();
        assert_eq!((p.fps.value, &p.fps.from), (10, &Source::File(1)));
        assert_eq!((p.pace.value, &p.pace.from), (3.0, &Source::File(2)));
        assert_eq!((p.ascii.value, &p.ascii.from), (true, &Source::File(3)));
        assert_eq!(p.theme.value, ThemeName::Colorblind);
        let p = with_file(text, &[("BNSCOPE_FPS", "20"), ("NO_COLOR", "1")], &none).unwrap();
        assert_eq!((p.fps.value, &p.fps.from), (20, &Source::Env("BNSCOPE_FPS")));
        assert_eq!(
            (p.theme.value, &p.theme.from),
            (ThemeName::Mono, &Source::Env("NO_COLOR"))
        );
        let flags = Flags {
            fps: Some(30),
            ..Default::default()
        };
        let p = with_file(text, &[("BNSCOPE_FPS", "20")], &flags).unwrap();
        assert_eq!((p.fps.value, &p.fps.from), (30, &Source::Flag("--fps")));
        // --no-config: the file is not read, the environment still is.
        let flags = Flags {
            no_config: true,
            ..Default::default()
        };
        let p = with_file("fps = [", &[("BNSCOPE_PACE", "2")], &flags).unwrap();
        assert_eq!((p.fps.value, p.pace.value, p.file), (5, 2.0, None));
    }

    #[test]
    fn the_locale_turns_ascii_on_and_the_file_or_a_flag_back_off() {
        let flags = Flags::default();
        let p = resolve(&flags, &env_of(&[("LANG", "C")])).unwrap();
        assert_eq!((p.ascii.value, &p.ascii.from), (true, &Source::Locale("LANG=C".into())));
        let p = with_file("ascii = false\n", &[("LANG", "POSIX"), ("LC_ALL", "POSIX")], &flags).unwrap();
        assert_eq!((p.ascii.value, &p.ascii.from), (false, &Source::File(1)));
        let p = resolve(&flags, &env_of(&[("LC_ALL", "C"), ("BNSCOPE_ASCII", "false")])).unwrap();
        assert!(!p.ascii.value);
    }

    fn error(text: &str) -> String {
        format!("{:#}", with_file(text, &[], &Flags::default()).unwrap_err())
    }

    #[test]
    fn an_invalid_file_is_one_line_naming_the_file_the_key_and_the_line() {
        let cases = [
            ("ascii = true\nfps = [\n", "line 2"),
            ("\n\ncolour = \"red\"\n", "line 3"),
            ("fps = 100\n", "fps = 100"),
            ("ascii = \"yes\"\n", "line 1: ascii: "),
            ("pace = -1\n", "pace = -1"),
            ("theme = \"neon\"\n", "theme = \"neon\""),
            ("[keys]\nfly = \"f\"\n", "[keys] fly"),
            ("[keys]\nquit = \"Hyper-q\"\n", "\"Hyper-q\""),
            ("[keys]\n\nquit = \"e\"\n", "[keys] e is bound to both"),
        ];
        for (text, want) in cases {
            let e = error(text);
            assert!(e.contains("config.toml, line "), "{text:?}: {e}");
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: {e}");
        }
        assert!(error("\n\ncolour = \"red\"\n").contains("colour"));
        assert!(error("[keys]\n\nquit = \"e\"\n").contains("line 3"));
        // A conflict that the file resolves itself is fine.
        let p = with_file("[keys]\nquit = \"e\"\ntoggle_eval = \"v\"\n", &[], &Flags::default()).unwrap();
        let table = remapped(&p, "f").unwrap();
        let quit = table.iter().find(|b| b.action == Action::Quit).unwrap();
        assert_eq!(quit.keys_label(), "e");
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let e = resolve(
            &Flags::default(),
            &env_of(&[("LANG", "C.UTF-8"), ("BNSCOPE_FPS", "fast")]),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "BNSCOPE_FPS=fast: must be between 1 and 60");
    }
}
