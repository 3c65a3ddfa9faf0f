//! Colours and glyphs, chosen once from `--ascii`, `NO_COLOR` and the config file's `theme` (`colorblind`: the
//! Okabe–Ito palette, whose series and good/bad tones stay apart with any colour vision).
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

/// How a message or a value should look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Info,
    Good,
    Warn,
    Bad,
}

/// Styles and symbols for one run of the UI.
#[derive(Clone, Copy, Debug)]
pub struct Theme {
    pub color: bool,
    pub ascii: bool,
    /// The colour-blind-safe palette (Okabe–Ito, as xterm-256 colours so that it also shows over tmux and SSH).
    pub colorblind: bool,
}

/// Okabe–Ito's colours as the nearest xterm-256 ones.
mod okabe_ito {
    use ratatui::style::Color;
    pub const ORANGE: Color = Color::Indexed(214);
    pub const SKY_BLUE: Color = Color::Indexed(117);
    pub const BLUISH_GREEN: Color = Color::Indexed(36);
    pub const YELLOW: Color = Color::Indexed(227);
    pub const BLUE: Color = Color::Indexed(32);
    pub const VERMILLION: Color = Color::Indexed(166);
    pub const REDDISH_PURPLE: Color = Color::Indexed(175);
}

const ASCII_BORDER: border::Set<'static> = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Theme {
    pub fn new(ascii: bool, no_color: bool) -> Self {
        Theme {
            color: !no_color,
            ascii,
            colorblind: false,
        }
    }

    /// The same theme with the colour-blind-safe palette.
    pub fn colorblind(self, on: bool) -> Self {
        Theme { colorblind: on, ..self }
    }

    /// `normal`, or its colour-blind-safe stand-in.
    fn pick(&self, normal: Color, safe: Color) -> Color {
        if self.colorblind {
            safe
        } else {
            normal
        }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn text(&self) -> Style {
        Style::new()
    }
    pub fn dim(&self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn label(&self) -> Style {
        self.fg(Color::Gray)
    }
    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn border(&self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn key(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub fn strong(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new().bg(Color::Indexed(236)).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    pub fn running(&self) -> Style {
        self.fg(self.pick(Color::Yellow, okabe_ito::ORANGE))
    }
    pub fn batch(&self) -> Style {
        self.fg(self.pick(Color::Cyan, okabe_ito::SKY_BLUE))
    }
    pub fn train(&self) -> Style {
        self.fg(self.pick(Color::Magenta, okabe_ito::REDDISH_PURPLE))
    }
    pub fn mark(&self) -> Style {
        self.fg(Color::LightBlue).add_modifier(Modifier::BOLD)
    }
    pub fn tone(&self, tone: Tone) -> Style {
        match tone {
            Tone::Info => self.fg(Color::Gray),
            Tone::Good => self.fg(self.pick(Color::Green, okabe_ito::BLUISH_GREEN)),
            Tone::Warn => self.fg(self.pick(Color::Yellow, okabe_ito::YELLOW)),
            Tone::Bad => self
                .fg(self.pick(Color::Red, okabe_ito::VERMILLION))
                .add_modifier(Modifier::BOLD),
        }
    }
    /// A red→green ramp for a fraction in `[0, 1]` (NaN is red).
    pub fn ramp(&self, frac: f32) -> Style {
        if self.colorblind {
            // Vermillion → orange → yellow → sky blue → blue: ordered by lightness and hue for any colour vision.
            let c = if frac.is_nan() || frac < 0.25 {
                okabe_ito::VERMILLION
            } else if frac < 0.5 {
                okabe_ito::ORANGE
            } else if frac < 0.8 {
                okabe_ito::YELLOW
            } else if frac < 0.95 {
                okabe_ito::SKY_BLUE
            } else {
                okabe_ito::BLUE
            };
            return self.fg(c);
        }
        let c = if frac.is_nan() || frac < 0.25 {
            Color::Red
        } else if frac < 0.5 {
            Color::LightRed
        } else if frac < 0.8 {
            Color::Yellow
        } else if frac < 0.95 {
            Color::LightGreen
        } else {
            Color::Green
        };
        self.fg(c)
    }
    /// The error panel: white on red, or reversed without colour.
    pub fn error_panel(&self) -> Style {
        if self.color {
            Style::new().fg(Color::White).bg(Color::Red)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub fn border_set(&self) -> border::Set<'static> {
        if self.ascii {
            ASCII_BORDER
        } else {
            border::PLAIN
        }
    }

    /// Sparkline levels, lowest first.
    pub fn spark_levels(&self) -> &'static [&'static str] {
        if self.ascii {
            &["_", ".", "-", "~", "=", "+", "*", "#"]
        } else {
            &["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
        }
    }
    /// Gauge: full cell, empty cell and partial cells (1/8 … 7/8; empty in ASCII).
    pub fn gauge_full(&self) -> &'static str {
        if self.ascii {
            "#"
        } else {
            "█"
        }
    }
    pub fn gauge_empty(&self) -> &'static str {
        if self.ascii {
            "."
        } else {
            "░"
        }
    }
    pub fn gauge_partial(&self, eighths: usize) -> Option<&'static str> {
        if self.ascii || eighths == 0 {
            return None;
        }
        Some(["▏", "▎", "▍", "▌", "▋", "▊", "▉"][eighths.min(7) - 1])
    }
    pub fn sep(&self) -> &'static str {
        if self.ascii {
            " | "
        } else {
            " · "
        }
    }
    pub fn check(&self) -> &'static str {
        if self.ascii {
            "ok"
        } else {
            "✓"
        }
    }
    pub fn cross(&self) -> &'static str {
        if self.ascii {
            "X"
        } else {
            "✗"
        }
    }
    pub fn warn(&self) -> &'static str {
        if self.ascii {
            "!"
        } else {
            "⚠"
        }
    }
    pub fn play(&self) -> &'static str {
        if self.ascii {
            ">"
        } else {
            "▶"
        }
    }
    pub fn pause(&self) -> &'static str {
        if self.ascii {
            "||"
        } else {
            "‖"
        }
    }
    pub fn pointer(&self) -> &'static str {
        if self.ascii {
            ">"
        } else {
            "▶"
        }
    }
    pub fn left_mark(&self) -> &'static str {
        if self.ascii {
            "<"
        } else {
            "◀"
        }
    }
    /// `×` (ASCII: `x`).
    pub fn times(&self) -> &'static str {
        if self.ascii {
            "x"
        } else {
            "×"
        }
    }
    pub fn arrow(&self) -> &'static str {
        if self.ascii {
            "->"
        } else {
            "→"
        }
    }
    pub fn minus(&self) -> &'static str {
        if self.ascii {
            "-"
        } else {
            "−"
        }
    }
    /// Between the ends of a range: `1–1000`.
    pub fn dash(&self) -> &'static str {
        if self.ascii {
            "-"
        } else {
            "–"
        }
    }
    pub fn ellipsis(&self) -> &'static str {
        if self.ascii {
            "..."
        } else {
            "…"
        }
    }
    pub fn dot(&self) -> &'static str {
        if self.ascii {
            "."
        } else {
            "·"
        }
    }
    pub fn axis(&self) -> &'static str {
        if self.ascii {
            "|"
        } else {
            "┊"
        }
    }
    /// A chart cell whose epochs range wider than its bar (the column's mean) shows: shaded behind the bar, or
    /// underlined without colour.
    pub fn spread(&self, style: Style) -> Style {
        if self.color {
            style.bg(Color::Indexed(238))
        } else {
            style.add_modifier(Modifier::UNDERLINED)
        }
    }
    /// The cursor's column in a chart cell with no bar (a replay).
    pub fn cursor_bar(&self) -> &'static str {
        if self.ascii {
            "|"
        } else {
            "│"
        }
    }
    /// The cursor's epoch on the charts' time axis (a replay).
    pub fn cursor_mark(&self) -> &'static str {
        if self.ascii {
            "^"
        } else {
            "▲"
        }
    }
    pub fn nan_cell(&self) -> &'static str {
        if self.ascii {
            "x"
        } else {
            "×"
        }
    }
    /// Per-channel markers: running, batch, both in one cell.
    pub fn markers(&self) -> (&'static str, &'static str, &'static str) {
        if self.ascii {
            ("r", "b", "*")
        } else {
            ("▮", "▯", "◆")
        }
    }
    /// `t` as a superscript (`^t` in ASCII).
    pub fn power(&self, t: u64) -> String {
        if self.ascii {
            return format!("^{t}");
        }
        const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
        t.to_string()
            .chars()
            .map(|c| SUP[c.to_digit(10).unwrap_or(0) as usize])
            .collect()
    }
}
