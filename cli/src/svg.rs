//! A self-contained timeline SVG of an event log: one horizontal bar per
//! event, split into one coloured segment per protocol phase, on a common
//! millisecond axis starting at the operation's start.

use ferry_common::events::{Event, Phases};
use std::fmt::Write;

/// Colour of each phase (protocol order), then of the unaccounted rest.
pub const PHASE_COLORS: [(&str, &str); 9] = [
    ("notify", "#4e79a7"),
    ("collective_sync", "#f28e2b"),
    ("p2p_sync", "#e15759"),
    ("drain", "#76b7b2"),
    ("spawn", "#59a14f"),
    ("group", "#edc948"),
    ("state_transfer", "#b07aa1"),
    ("restore", "#ff9da7"),
    ("other", "#bab0ac"),
];

const WIDTH: f64 = 1000.0;
const LABEL_X: f64 = 12.0;
const PLOT_X0: f64 = 270.0;
const PLOT_X1: f64 = WIDTH - 30.0;
const ROW_H: f64 = 36.0;
const BAR_H: f64 = 20.0;
const LEGEND_ENTRY_W: f64 = 140.0;

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" step (1, 2 or 5 times a power of ten) of at least `x`.
fn nice_step(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let exp = 10f64.powf(x.log10().floor());
    let f = x / exp;
    let nf = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nf * exp
}

/// A tick label with as many decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil().max(0.0) as usize
    };
    format!("{v:.decimals$}")
}

fn ms_text(us: u64) -> String {
    crate::table::ms(us)
}

fn color(name: &str) -> &'static str {
    PHASE_COLORS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or("#999999")
}

/// The segments of one event's bar: present, non-zero phases in protocol
/// order, then `other` for the part of `total` the phases do not cover.
pub fn segments(p: &Phases) -> Vec<(&'static str, u64)> {
    let mut segs: Vec<(&'static str, u64)> = p
        .in_order()
        .iter()
        .filter_map(|(n, v)| v.filter(|v| *v > 0).map(|v| (*n, v)))
        .collect();
    if let Some(total) = p.total {
        let sum = p.sum();
        if total > sum {
            segs.push(("other", total - sum));
        }
    }
    segs
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The timeline of `events` as an SVG document.
pub fn timeline(events: &[Event], title: &str) -> String {
    let all_segs: Vec<Vec<(&str, u64)>> = events.iter().map(|e| segments(&e.phases_us)).collect();
    let max_us = all_segs
        .iter()
        .map(|s| s.iter().map(|(_, v)| *v).sum::<u64>())
        .max()
        .unwrap_or(0);
    let max_ms = (max_us as f64 / 1000.0).max(0.001);
    let step = nice_step(max_ms / 6.0);
    let axis_max_ms = (max_ms / step).ceil().max(1.0) * step;
    let px_per_us = (PLOT_X1 - PLOT_X0) / (axis_max_ms * 1000.0);

    let uses_other = all_segs
        .iter()
        .any(|s| s.iter().any(|(n, _)| *n == "other"));
    let legend: Vec<&(&str, &str)> = PHASE_COLORS
        .iter()
        .filter(|(n, _)| *n != "other" || uses_other)
        .collect();
    let per_row = (((WIDTH - 2.0 * LABEL_X) / LEGEND_ENTRY_W).floor() as usize).max(1);
    let legend_rows = legend.len().div_ceil(per_row);
    let legend_y = 48.0;
    let bars_y = legend_y + legend_rows as f64 * 20.0 + 14.0;
    let rows = events.len().max(1);
    let axis_y = bars_y + rows as f64 * ROW_H + 4.0;
    let height = axis_y + 52.0;

    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(s, "<title>{}</title>", escape(title));
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r##"<text x="{LABEL_X}" y="26" font-size="16" font-weight="bold" fill="#222">{}</text>"##,
        escape(&shorten(title, 110))
    );

    // Legend.
    let _ = writeln!(s, r##"<g class="legend" font-size="12" fill="#222">"##);
    for (i, (name, col)) in legend.iter().enumerate() {
        let x = LABEL_X + (i % per_row) as f64 * LEGEND_ENTRY_W;
        let y = legend_y + (i / per_row) as f64 * 20.0;
        let label = if *name == "other" {
            "other (unaccounted)"
        } else {
            name
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{col}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            x + 17.0,
            y,
            escape(label)
        );
    }
    let _ = writeln!(s, "</g>");

    // Grid and axis.
    let _ = writeln!(s, r##"<g class="axis" font-size="11" fill="#444">"##);
    let ticks = (axis_max_ms / step).round() as usize;
    for t in 0..=ticks {
        let v = t as f64 * step;
        let x = PLOT_X0 + v * 1000.0 * px_per_us;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.2}" y1="{bars_y}" x2="{x:.2}" y2="{axis_y}" stroke="#e0e0e0" stroke-width="1"/><text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"##,
            axis_y + 16.0,
            tick_label(v, step)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{PLOT_X0}" y1="{axis_y}" x2="{PLOT_X1}" y2="{axis_y}" stroke="#444" stroke-width="1"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">time since the operation started (ms)</text>"#,
        (PLOT_X0 + PLOT_X1) / 2.0,
        axis_y + 36.0
    );
    let _ = writeln!(s, "</g>");

    // One bar per event.
    if events.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{PLOT_X0}" y="{}" font-size="13" font-style="italic" fill="#666">no events</text>"##,
            bars_y + 22.0
        );
    }
    for (i, (ev, segs)) in events.iter().zip(&all_segs).enumerate() {
        let y = bars_y + i as f64 * ROW_H;
        let mut head = format!("#{} {}", i + 1, ev.event);
        if let Some(r) = ev.rank {
            let _ = write!(head, " rank {r}");
        }
        let mut sub = Vec::new();
        match (&ev.from_host, &ev.to_host) {
            (Some(a), Some(b)) if a != b => sub.push(format!("{a} → {b}")),
            (Some(a), _) | (None, Some(a)) => sub.push(a.clone()),
            _ => {}
        }
        if let Some(t) = ev.phases_us.total_or_sum() {
            sub.push(format!("{} ms", ms_text(t)));
        }
        let _ = writeln!(s, r#"<g class="event" data-index="{}">"#, i + 1);
        let _ = writeln!(
            s,
            r##"<text x="{LABEL_X}" y="{}" font-size="12" font-weight="bold" fill="#222">{}</text>"##,
            y + 14.0,
            escape(&shorten(&head, 38))
        );
        let _ = writeln!(
            s,
            r##"<text x="{LABEL_X}" y="{}" font-size="10" fill="#666">{}</text>"##,
            y + 28.0,
            escape(&shorten(&sub.join(" · "), 44))
        );
        if segs.is_empty() {
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" font-size="11" font-style="italic" fill="#888">no timing recorded</text>"##,
                PLOT_X0 + 4.0,
                y + 20.0
            );
        }
        let mut x = PLOT_X0;
        for (name, us) in segs {
            let w = *us as f64 * px_per_us;
            let _ = writeln!(
                s,
                r#"<rect class="seg" data-phase="{name}" data-us="{us}" x="{x:.3}" y="{}" width="{w:.3}" height="{BAR_H}" fill="{}" stroke="white" stroke-width="0.5"><title>{}: {} ms</title></rect>"#,
                y + 5.0,
                color(name),
                escape(name),
                ms_text(*us)
            );
            x += w;
        }
        let _ = writeln!(s, "</g>");
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_common::events::parse_events;

    const SAMPLE: &str = concat!(
        r#"{"event":"migrate","rank":2,"from_host":"a","to_host":"b<&>","old_pid":1,"new_pid":2,"phases_us":{"notify":5000,"collective_sync":40000,"p2p_sync":12000,"drain":30000,"spawn":90000,"group":8000,"state_transfer":20000,"restore":3000,"total":210000}}"#,
        "\n",
        r#"{"event":"regroup","rank":0,"phases_us":{"notify":2000,"collective_sync":1000,"p2p_sync":1000,"drain":500,"group":6000}}"#,
        "\n",
        r#"{"event":"checkpoint"}"#,
        "\n"
    );

    fn attr(n: &roxmltree::Node<'_, '_>, a: &str) -> f64 {
        n.attribute(a).unwrap().parse().unwrap()
    }

    #[test]
    fn well_formed_and_proportional() {
        let evs = parse_events(SAMPLE).unwrap();
        let svg = timeline(&evs, "test <title> & co");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );

        let segs: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("seg"))
            .collect();
        // 8 phases + "other" (210000 - 208000) for the migrate, 5 for the regroup.
        assert_eq!(segs.len(), 14);
        // One scale for every segment: width / duration is constant.
        let k = attr(&segs[0], "width") / attr(&segs[0], "data-us");
        for s in &segs {
            let ratio = attr(s, "width") / attr(s, "data-us");
            assert!(
                (ratio - k).abs() / k < 1e-3,
                "segment {:?} not proportional",
                s.attribute("data-phase")
            );
        }
        // Segments of a bar are contiguous, in protocol order.
        let first_bar: Vec<_> = segs.iter().take(9).collect();
        let names: Vec<&str> = first_bar
            .iter()
            .map(|s| s.attribute("data-phase").unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "notify",
                "collective_sync",
                "p2p_sync",
                "drain",
                "spawn",
                "group",
                "state_transfer",
                "restore",
                "other"
            ]
        );
        for w in first_bar.windows(2) {
            let end = attr(w[0], "x") + attr(w[0], "width");
            assert!((end - attr(w[1], "x")).abs() < 0.01);
        }
        // The longest bar fits in the plot and fills most of it.
        let end = attr(first_bar[8], "x") + attr(first_bar[8], "width");
        assert!(
            end <= PLOT_X1 + 0.01 && end > PLOT_X0 + 0.5 * (PLOT_X1 - PLOT_X0),
            "{end}"
        );
        // Legend, axis title, labels and escaped text are there.
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(str::to_string))
            .collect();
        for want in [
            "notify",
            "restore",
            "other (unaccounted)",
            "time since the operation started (ms)",
            "#1 migrate rank 2",
            "a → b<&> · 210.000 ms",
            "#3 checkpoint",
            "no timing recorded",
            "test <title> & co",
        ] {
            assert!(
                texts.iter().any(|t| t == want),
                "missing text {want:?} in {texts:?}"
            );
        }
        // Axis ticks are nice numbers up to at least the longest bar (210 ms).
        let ticks: Vec<f64> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some("middle"))
            .filter_map(|n| n.text()?.parse().ok())
            .collect();
        assert_eq!(ticks.first(), Some(&0.0));
        assert!(*ticks.last().unwrap() >= 210.0, "{ticks:?}");
        assert!(ticks.len() >= 4 && ticks.len() <= 12, "{ticks:?}");
    }

    #[test]
    fn empty_log_still_renders() {
        let svg = timeline(&[], "empty");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert!(doc.descendants().any(|n| n.text() == Some("no events")));
    }

    #[test]
    fn helpers() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.5), 2.0);
        assert_eq!(nice_step(35.0), 50.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(150.0, 50.0), "150");
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
