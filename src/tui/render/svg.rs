//! The charts as an SVG file (`x`, #27): accuracy and loss over the epochs the UI holds, one `<path>` per series,
//! with axes, their figures and a legend. Pure: the series come from the store's history ([`charts`]), the text
//! from [`to_svg`].
//!
//! Written by hand rather than with an SVG crate: the document is two panels of lines, rectangles and a little
//! text, and the only care it needs is escaping the text ([`escape`]); a test reads it back with an XML parser.
use std::fmt::Write;

use crate::tui::app::App;

/// One line of a chart: its name and its points (epoch, value); NaN and missing values break the line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// An SVG colour, and a dash pattern so that the lines differ without colour too.
    pub colour: &'static str,
    pub dash: &'static str,
    pub points: Vec<(f64, Option<f64>)>,
}

/// One panel: a title (what the numbers are) and its series.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    /// The y axis: fixed (accuracy 0..1) or from the data.
    pub range: Option<(f64, f64)>,
    pub series: Vec<Series>,
}

// Okabe–Ito colours, told apart with any colour vision; the dashes tell them apart in grey too.
const TRAIN: (&str, &str) = ("#CC79A7", "2 3");
const RUNNING: (&str, &str) = ("#E69F00", "");
const BATCH: (&str, &str) = ("#56B4E9", "6 3");

/// The accuracy and loss charts of the epochs the UI holds (the store's history), as the screen's chart shows
/// them: the training pass (batch statistics), the evaluation with the running statistics (`model.evaluate`) and
/// with the batch's own statistics.
pub fn charts(app: &App) -> Vec<Chart> {
    let on = app
        .store
        .info
        .as_ref()
        .map_or(crate::protocol::EvalOn::Train, |i| i.eval_on);
    let w = on.word();
    // The whole run, as the screen's charts draw it: the downsampled series (each bucket's mean at its middle
    // epoch; the loss's mean is geometric, as on screen). Epochs are numbered on from the run's first.
    let h = &app.store.history;
    let first = h.series.first_epoch().unwrap_or(0) as f64;
    let buckets = h.series.buckets();
    let series = |acc: bool| {
        let make = |name: String, (colour, dash): (&'static str, &'static str), c: usize| Series {
            name,
            colour,
            dash,
            points: buckets
                .iter()
                .map(|(start, n, b)| {
                    let x = first + *start as f64 + (n.saturating_sub(1)) as f64 / 2.0;
                    let y = if acc {
                        b.acc[c].mean().map(f64::from)
                    } else {
                        b.loss[c].mean().map(|l| 10f64.powf(f64::from(l)))
                    };
                    (x, y)
                })
                .collect(),
        };
        vec![
            make("train (batch statistics)".into(), TRAIN, 0),
            make(format!("{w}, running statistics (model.evaluate)"), RUNNING, 1),
            make(format!("{w}, batch statistics"), BATCH, 2),
        ]
    };
    vec![
        Chart {
            title: format!("accuracy ({w} data for the two evaluations)"),
            range: Some((0.0, 1.0)),
            series: series(true),
        },
        Chart {
            title: "loss (cross-entropy)".into(),
            range: None,
            series: series(false),
        },
    ]
}

/// One colour and dash pattern per run of a comparison (Okabe–Ito, then black; the dashes tell them apart in grey).
const RUNS: [(&str, &str); 8] = [
    ("#E69F00", ""),
    ("#56B4E9", "6 3"),
    ("#009E73", "2 3"),
    ("#CC79A7", "8 3 2 3"),
    ("#0072B2", "1 2"),
    ("#D55E00", "10 4"),
    ("#F0E442", "4 2 1 2"),
    ("#000000", "12 3 3 3"),
];

/// The compare view's charts as its screen draws them: per shown run, evaluation with the running statistics
/// (`model.eval()`, Keras `evaluate`), accuracy and loss, over the epochs the comparison keeps.
pub fn compare_charts(v: &crate::tui::compare::CompareView) -> Vec<Chart> {
    let d = crate::compare::differences(&v.series.iter().map(|s| s.run.as_deref()).collect::<Vec<_>>());
    let series = |acc: bool| -> Vec<Series> {
        v.series
            .iter()
            .enumerate()
            .filter(|(i, _)| v.shown.get(*i).copied().unwrap_or(true))
            .map(|(i, s)| {
                let label = d
                    .labels
                    .get(i)
                    .filter(|l| !l.is_empty())
                    .cloned()
                    .unwrap_or_else(|| s.file.clone());
                let (colour, dash) = RUNS[i % RUNS.len()];
                Series {
                    name: format!("{} {label}", crate::compare::letter(i)),
                    colour,
                    dash,
                    points: s
                        .epochs()
                        .map(|p| {
                            let m = p.running.as_ref();
                            let y = if acc {
                                m.and_then(|m| m.acc)
                            } else {
                                m.and_then(|m| m.loss)
                            };
                            (p.epoch as f64, y)
                        })
                        .collect(),
                }
            })
            .collect()
    };
    vec![
        Chart {
            title: "accuracy: evaluation with the running statistics".into(),
            range: Some((0.0, 1.0)),
            series: series(true),
        },
        Chart {
            title: "loss: evaluation with the running statistics".into(),
            range: None,
            series: series(false),
        },
    ]
}

/// Text for an SVG text node or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for other control characters.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A figure for an axis.
fn tick(x: f64) -> String {
    if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

const WIDTH: f64 = 900.0;
const PANEL: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const LEGEND: f64 = 70.0;

/// The SVG document: `title` on top, the charts one under the other.
pub fn to_svg(title: &str, charts: &[Chart]) -> String {
    let height = 30.0 + charts.len() as f64 * (PANEL + TOP + LEGEND);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(s, "<text x=\"10\" y=\"20\" font-size=\"14\">{}</text>", escape(title));
    for (i, chart) in charts.iter().enumerate() {
        let top = 30.0 + i as f64 * (PANEL + TOP + LEGEND) + TOP;
        panel(&mut s, chart, top);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, chart: &Chart, top: f64) {
    let (x0, x1) = (LEFT, WIDTH - RIGHT);
    let (y0, y1) = (top, top + PANEL);
    let all = || chart.series.iter().flat_map(|se| se.points.iter());
    let xs: Vec<f64> = all().map(|p| p.0).collect();
    let (ex0, ex1) = match (xs.iter().cloned().reduce(f64::min), xs.iter().cloned().reduce(f64::max)) {
        (Some(a), Some(b)) if b > a => (a, b),
        (Some(a), _) => (a - 1.0, a + 1.0),
        _ => (0.0, 1.0),
    };
    let ys: Vec<f64> = all().filter_map(|p| p.1).filter(|y| y.is_finite()).collect();
    let (vy0, vy1) = chart.range.unwrap_or_else(|| {
        let lo = ys.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi > lo {
            (lo.min(0.0), hi)
        } else if lo.is_finite() {
            (lo - 1.0, lo + 1.0)
        } else {
            (0.0, 1.0)
        }
    });
    let px = |x: f64| x0 + (x - ex0) / (ex1 - ex0) * (x1 - x0);
    let py = |y: f64| y1 - (y.clamp(vy0, vy1) - vy0) / (vy1 - vy0) * (y1 - y0);
    let _ = writeln!(s, "<g class=\"chart\">");
    let _ = writeln!(
        s,
        "<text x=\"{x0}\" y=\"{}\" font-size=\"13\">{}</text>",
        y0 - 10.0,
        escape(&chart.title)
    );
    // Axes, with their figures at the ends and the middle.
    let _ = writeln!(
        s,
        "<g class=\"axes\" stroke=\"#444\" fill=\"none\"><line x1=\"{x0}\" y1=\"{y1}\" x2=\"{x1}\" y2=\"{y1}\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\"/></g>"
    );
    for f in [0.0, 0.5, 1.0] {
        let v = vy0 + f * (vy1 - vy0);
        let y = py(v);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            tick(v)
        );
        let e = ex0 + f * (ex1 - ex0);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(e),
            y1 + 16.0,
            tick(e)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>",
        (x0 + x1) / 2.0,
        y1 + 32.0
    );
    for se in &chart.series {
        let mut d = String::new();
        let mut pen_down = false;
        for &(x, y) in &se.points {
            match y.filter(|y| y.is_finite()) {
                Some(y) => {
                    let _ = write!(d, "{}{:.1} {:.1} ", if pen_down { "L" } else { "M" }, px(x), py(y));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let dash = if se.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", se.dash)
        };
        let _ = writeln!(
            s,
            "<path class=\"series\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}><title>{}</title></path>",
            d.trim_end(),
            se.colour,
            escape(&se.name)
        );
    }
    // The legend, under the axis.
    let _ = writeln!(s, "<g class=\"legend\">");
    for (i, se) in chart.series.iter().enumerate() {
        let y = y1 + 48.0 + i as f64 * 14.0;
        let dash = if se.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", se.dash)
        };
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>",
            y - 4.0,
            x0 + 30.0,
            y - 4.0,
            se.colour,
            x0 + 36.0,
            y,
            escape(&se.name)
        );
    }
    let _ = writeln!(s, "</g>\n</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup_and_no_control_characters() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(escape("\u{1b}[31m"), "\u{FFFD}[31m");
    }

    #[test]
    fn a_gap_in_a_series_lifts_the_pen() {
        let c = Chart {
            title: "t".into(),
            range: Some((0.0, 1.0)),
            series: vec![Series {
                name: "s".into(),
                colour: "#000",
                dash: "",
                points: vec![
                    (1.0, Some(0.0)),
                    (2.0, None),
                    (3.0, Some(f64::NAN)),
                    (4.0, Some(1.0)),
                    (5.0, Some(0.5)),
                ],
            }],
        };
        let svg = to_svg("x", &[c]);
        let d = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
    }
}
