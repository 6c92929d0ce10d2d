//! Inline SVG charts. Every mark (bar, segment, point) carries the panel, the
//! row it stands for, the column it shows (`data-series`) and the exact
//! machine value (`data-value`), and a `<title>` a browser shows on hover.

use std::fmt::Write;

use crate::format::{compact, decimal};
use crate::html::{attr, escape};

/// Width of every chart's coordinate system; charts scale to the page.
const WIDTH: f64 = 960.0;
/// About how wide one character of 12px label text is.
const CHAR: f64 = 6.8;

pub const PALETTE: &[&str] = &[
    "#3b6fd8", "#22a39f", "#e8833a", "#8e5cc4", "#d6457a", "#7a8796",
];

/// One value drawn as a mark.
#[derive(Debug, Clone)]
pub struct Mark {
    /// The row of the panel it comes from.
    pub row: usize,
    pub value: f64,
    /// The exact value, JSON text.
    pub machine: String,
    /// The value as people read it.
    pub text: String,
}

/// One column of a panel drawn as marks: one per category (`None` for null).
#[derive(Debug, Clone)]
pub struct Series {
    pub column: String,
    pub name: String,
    pub color: &'static str,
    pub marks: Vec<Option<Mark>>,
}

fn open_svg(out: &mut String, height: f64, label: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height:.0}\" width=\"100%\" role=\"img\"{} preserveAspectRatio=\"xMinYMin meet\">",
        attr("aria-label", label)
    );
}

fn mark_attrs(panel: u64, series: &Series, mark: &Mark) -> String {
    format!(
        " class=\"mark\" data-panel=\"{panel}\" data-row=\"{}\"{}{}",
        mark.row,
        attr("data-series", &series.column),
        attr("data-value", &mark.machine)
    )
}

fn tooltip(category: &str, series: &Series, mark: &Mark) -> String {
    format!(
        "<title>{}</title>",
        escape(&format!("{category} \u{b7} {}: {}", series.name, mark.text))
    )
}

/// `text` cut to about `width` units, with an ellipsis when cut.
fn fit(text: &str, width: f64) -> String {
    let max = ((width / CHAR) as usize).max(2);
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('\u{2026}');
        cut
    }
}

fn legend(out: &mut String, series: &[Series], x: f64, y: f64) {
    let mut x = x;
    for s in series {
        let _ = write!(
            out,
            "<rect class=\"legend\" x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{y:.1}\" class=\"legend-label\">{}</text>",
            y - 10.0,
            s.color,
            x + 17.0,
            escape(&s.name)
        );
        x += 17.0 + s.name.chars().count() as f64 * CHAR + 22.0;
    }
}

/// Round tick values covering `lo..=hi`, about `count` of them.
pub fn ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return vec![lo.min(0.0), lo.max(0.0).max(1.0)];
    }
    let rough = span / count.max(1) as f64;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn extent<'a>(series: impl IntoIterator<Item = &'a Series>) -> (f64, f64) {
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for s in series {
        for m in s.marks.iter().flatten() {
            lo = lo.min(m.value);
            hi = hi.max(m.value);
        }
    }
    (lo, hi)
}

/// Horizontal bars: a row per category, and per series a column of bars
/// with its own scale (a funnel's deals next to its value).
pub fn bar_columns(panel: u64, label: &str, categories: &[String], series: &[Series]) -> String {
    let row_h = 26.0;
    let top = 30.0;
    let label_w = 230.0;
    let gap = 28.0;
    let columns = series.len().max(1) as f64;
    let column_w = (WIDTH - label_w - gap * columns) / columns;
    let height = top + row_h * categories.len() as f64 + 8.0;
    let mut out = String::new();
    open_svg(&mut out, height, label);
    for (i, category) in categories.iter().enumerate() {
        let y = top + row_h * i as f64;
        if i % 2 == 1 {
            let _ = write!(
                out,
                "<rect class=\"band\" x=\"0\" y=\"{y:.1}\" width=\"{WIDTH}\" height=\"{row_h}\"/>"
            );
        }
        let _ = write!(
            out,
            "<text class=\"category\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>",
            label_w - 10.0,
            y + row_h / 2.0 + 4.0,
            escape(category),
            escape(&fit(category, label_w - 14.0))
        );
    }
    for (c, s) in series.iter().enumerate() {
        let x0 = label_w + (column_w + gap) * c as f64;
        let (_, hi) = extent([s]);
        let room = column_w - 64.0;
        let _ = write!(
            out,
            "<text class=\"series-title\" x=\"{x0:.1}\" y=\"16\" fill=\"{}\">{}</text>",
            s.color,
            escape(&s.name)
        );
        for (i, mark) in s.marks.iter().enumerate() {
            let Some(mark) = mark else { continue };
            let y = top + row_h * i as f64 + 5.0;
            let w = if hi > 0.0 {
                (mark.value.max(0.0) / hi * room).max(1.0)
            } else {
                1.0
            };
            let _ = write!(
                out,
                "<rect{} x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{}\">{}</rect><text class=\"bar-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                mark_attrs(panel, s, mark),
                row_h - 10.0,
                s.color,
                tooltip(&categories[i], s, mark),
                x0 + w + 6.0,
                y + (row_h - 10.0) / 2.0 + 4.0,
                escape(&mark.text)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Vertical bars, grouped per category, on one shared scale with gridlines.
pub fn grouped_columns(
    panel: u64,
    label: &str,
    categories: &[String],
    series: &[Series],
) -> String {
    let height = 320.0;
    let (left, right, top, bottom) = (70.0, 12.0, 34.0, 44.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let (lo, hi) = extent(series);
    let ticks = ticks(lo, hi, 5);
    let (t0, t1) = (ticks[0], ticks[ticks.len() - 1]);
    let y = |v: f64| top + plot_h - (v - t0) / (t1 - t0) * plot_h;
    let mut out = String::new();
    open_svg(&mut out, height, label);
    legend(&mut out, series, left, 16.0);
    for t in &ticks {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - right,
            y(*t),
            y(*t),
            left - 8.0,
            y(*t) + 4.0,
            escape(&compact(*t))
        );
    }
    let n = categories.len().max(1) as f64;
    let group = plot_w / n;
    let bar = (group * 0.8 / series.len().max(1) as f64).min(44.0);
    let every = (categories.len() as f64 * 64.0 / plot_w).ceil().max(1.0) as usize;
    for (i, category) in categories.iter().enumerate() {
        let center = left + group * (i as f64 + 0.5);
        let start = center - bar * series.len() as f64 / 2.0;
        for (k, s) in series.iter().enumerate() {
            let Some(mark) = &s.marks[i] else { continue };
            let (a, b) = (y(mark.value.max(0.0)), y(mark.value.min(0.0)));
            let _ = write!(
                out,
                "<rect{} x=\"{:.1}\" y=\"{a:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">{}</rect>",
                mark_attrs(panel, s, mark),
                start + bar * k as f64,
                (bar - 2.0).max(1.0),
                (b - a).max(0.5),
                s.color,
                tooltip(category, s, mark)
            );
        }
        if i % every == 0 {
            let _ = write!(
                out,
                "<text class=\"tick\" x=\"{center:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                height - bottom + 18.0,
                escape(&fit(category, group * every as f64 - 4.0))
            );
        }
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/></svg>",
        WIDTH - right,
        y(0.0),
        y(0.0)
    );
    out
}

/// A line with a point per category at `positions` (e.g. days since epoch,
/// so gaps between weeks stay gaps), and optionally a band of bars below it
/// sharing the x axis (e.g. how many deals each point stands for).
pub fn line_chart(
    panel: u64,
    label: &str,
    categories: &[String],
    positions: &[f64],
    line: &Series,
    bars: Option<&Series>,
) -> String {
    let height = 340.0;
    let (left, right, top) = (70.0, 24.0, 34.0);
    let line_bottom = if bars.is_some() { 210.0 } else { 290.0 };
    let (band_top, band_bottom) = (232.0, 290.0);
    let plot_w = WIDTH - left - right;
    let (p0, p1) = positions
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(*p), b.max(*p))
        });
    let x = |p: f64| {
        if p1 > p0 {
            left + 10.0 + (p - p0) / (p1 - p0) * (plot_w - 20.0)
        } else {
            left + plot_w / 2.0
        }
    };
    let (lo, hi) = extent([line]);
    let ticks = ticks(lo, hi, 4);
    let (t0, t1) = (ticks[0], ticks[ticks.len() - 1]);
    let y = |v: f64| line_bottom - (v - t0) / (t1 - t0) * (line_bottom - top);
    let mut out = String::new();
    open_svg(&mut out, height, label);
    let mut shown: Vec<Series> = vec![line.clone()];
    shown.extend(bars.cloned());
    legend(&mut out, &shown, left, 16.0);
    for t in &ticks {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - right,
            y(*t),
            y(*t),
            left - 8.0,
            y(*t) + 4.0,
            escape(&compact(*t))
        );
    }
    if let Some(bars) = bars {
        let (_, most) = extent([bars]);
        let step = if positions.len() > 1 {
            (plot_w - 20.0) / (positions.len() as f64 - 1.0)
        } else {
            40.0
        };
        let w = (step * 0.6).clamp(2.0, 28.0);
        for (i, mark) in bars.marks.iter().enumerate() {
            let Some(mark) = mark else { continue };
            let h = if most > 0.0 {
                (mark.value.max(0.0) / most * (band_bottom - band_top)).max(1.0)
            } else {
                1.0
            };
            let _ = write!(
                out,
                "<rect{} x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\" opacity=\"0.75\">{}</rect>",
                mark_attrs(panel, bars, mark),
                x(positions[i]) - w / 2.0,
                band_bottom - h,
                bars.color,
                tooltip(&categories[i], bars, mark)
            );
        }
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            band_top + 10.0,
            escape(&compact(most))
        );
    }
    let points: Vec<String> = line
        .marks
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            m.as_ref()
                .map(|m| format!("{:.1},{:.1}", x(positions[i]), y(m.value)))
        })
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"line\" fill=\"none\" stroke=\"{}\" stroke-width=\"2.5\" points=\"{}\"/>",
        line.color,
        points.join(" ")
    );
    for (i, mark) in line.marks.iter().enumerate() {
        let Some(mark) = mark else { continue };
        let _ = write!(
            out,
            "<circle{} cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"2\">{}</circle>",
            mark_attrs(panel, line, mark),
            x(positions[i]),
            y(mark.value),
            line.color,
            tooltip(&categories[i], line, mark)
        );
    }
    let every = (categories.len() as f64 * 80.0 / plot_w).ceil().max(1.0) as usize;
    for (i, category) in categories.iter().enumerate().step_by(every) {
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(positions[i]),
            height - 26.0,
            escape(category)
        );
    }
    out.push_str("</svg>");
    out
}

/// A horizontal bar per category made of one segment per series (a rep's
/// calls, emails, meetings and other activities), on one scale.
pub fn stacked_bars(panel: u64, label: &str, categories: &[String], series: &[Series]) -> String {
    let row_h = 24.0;
    let top = 34.0;
    let label_w = 200.0;
    let room = WIDTH - label_w - 70.0;
    let totals: Vec<f64> = (0..categories.len())
        .map(|i| {
            series
                .iter()
                .filter_map(|s| s.marks[i].as_ref())
                .map(|m| m.value.max(0.0))
                .sum()
        })
        .collect();
    let most = totals.iter().copied().fold(0.0, f64::max);
    let height = top + row_h * categories.len() as f64 + 8.0;
    let mut out = String::new();
    open_svg(&mut out, height, label);
    legend(&mut out, series, label_w, 16.0);
    for (i, category) in categories.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = write!(
            out,
            "<text class=\"category\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>",
            label_w - 10.0,
            y + row_h / 2.0 + 4.0,
            escape(category),
            escape(&fit(category, label_w - 14.0))
        );
        let mut x = label_w;
        for s in series {
            let Some(mark) = &s.marks[i] else { continue };
            if mark.value <= 0.0 || most <= 0.0 {
                continue;
            }
            let w = mark.value / most * room;
            let _ = write!(
                out,
                "<rect{} x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\">{}</rect>",
                mark_attrs(panel, s, mark),
                y + 4.0,
                row_h - 8.0,
                s.color,
                tooltip(category, s, mark)
            );
            x += w;
        }
        let _ = write!(
            out,
            "<text class=\"bar-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 6.0,
            y + row_h / 2.0 + 4.0,
            escape(&decimal(totals[i], 0))
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(column: &str, values: &[Option<f64>]) -> Series {
        Series {
            column: column.into(),
            name: column.into(),
            color: PALETTE[0],
            marks: values
                .iter()
                .enumerate()
                .map(|(row, v)| {
                    v.map(|value| Mark {
                        row,
                        value,
                        machine: value.to_string(),
                        text: value.to_string(),
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 93.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(ticks(0.0, 0.0, 5), vec![0.0, 1.0]);
        let t = ticks(-120.0, 950.0, 5);
        assert!(t[0] <= -120.0 && *t.last().unwrap() >= 950.0, "{t:?}");
    }

    #[test]
    fn one_mark_per_non_null_value_with_its_row_and_exact_value() {
        let cats = vec!["a".to_owned(), "<b>".to_owned(), "c".to_owned()];
        let s = series("deals", &[Some(3.0), None, Some(0.0)]);
        let svg = bar_columns(7, "x", &cats, std::slice::from_ref(&s));
        assert_eq!(svg.matches("<rect class=\"mark\"").count(), 2);
        assert!(
            svg.contains("data-panel=\"7\" data-row=\"2\" data-series=\"deals\" data-value=\"0\"")
        );
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        let svg = grouped_columns(
            7,
            "x",
            &cats,
            &[s.clone(), series("v", &[Some(-1.0), Some(2.0), None])],
        );
        assert_eq!(svg.matches("<rect class=\"mark\"").count(), 4);
        let svg = line_chart(7, "x", &cats, &[0.0, 7.0, 21.0], &s, Some(&s));
        assert_eq!(svg.matches("<circle class=\"mark\"").count(), 2);
        assert_eq!(svg.matches("<rect class=\"mark\"").count(), 2);
        let svg = stacked_bars(
            7,
            "x",
            &cats,
            &[s.clone(), series("w", &[Some(1.0), Some(1.0), Some(1.0)])],
        );
        // Zero-length segments are not drawn.
        assert_eq!(svg.matches("<rect class=\"mark\"").count(), 4);
    }
}
