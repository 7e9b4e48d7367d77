//! `ferry report`: a table of an event log, and optionally a timeline SVG.

use crate::table::{self, Align};
use crate::Failure;
use ferry_common::events::{read_events, Event, EventKind};
use std::path::Path;

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn pair(a: Option<String>, b: Option<String>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => format!("{a}->{b}"),
        (Some(a), None) => a,
        (None, Some(b)) => format!("->{b}"),
        (None, None) => "-".into(),
    }
}

/// Short column headers of the phases, in protocol order.
pub const PHASE_HEADERS: [&str; 8] = [
    "notify",
    "coll_sync",
    "p2p_sync",
    "drain",
    "spawn",
    "group",
    "state_xfer",
    "restore",
];

/// The event table as text.
pub fn render_table(events: &[Event]) -> String {
    let mut headers = vec![
        ("#", Align::Right),
        ("event", Align::Left),
        ("rank", Align::Right),
        ("hosts", Align::Left),
        ("pids", Align::Left),
        ("superstep", Align::Right),
        ("drained", Align::Right),
        ("image", Align::Right),
    ];
    headers.extend(PHASE_HEADERS.iter().map(|h| (*h, Align::Right)));
    headers.push(("total", Align::Right));
    let rows: Vec<Vec<String>> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let drained = match (e.drained_messages, e.drained_bytes) {
                (None, None) => "-".to_string(),
                (m, b) => format!(
                    "{} msg / {}",
                    opt(m),
                    b.map(table::bytes).unwrap_or_else(|| "-".into())
                ),
            };
            let mut row = vec![
                (i + 1).to_string(),
                e.event.to_string(),
                opt(e.rank),
                pair(e.from_host.clone(), e.to_host.clone()),
                pair(
                    e.old_pid.map(|p| p.to_string()),
                    e.new_pid.map(|p| p.to_string()),
                ),
                opt(e.global_superstep),
                drained,
                e.image_bytes
                    .map(table::bytes)
                    .unwrap_or_else(|| "-".into()),
            ];
            row.extend(
                e.phases_us
                    .in_order()
                    .iter()
                    .map(|(_, v)| v.map(table::ms).unwrap_or_else(|| "-".into())),
            );
            row.push(match (e.phases_us.total, e.phases_us.total_or_sum()) {
                (Some(t), _) => table::ms(t),
                (None, Some(s)) => format!("{}*", table::ms(s)),
                (None, None) => "-".into(),
            });
            row
        })
        .collect();
    let mut out = table::render(&headers, &rows);
    out.push_str("phase times and total in ms");
    if events
        .iter()
        .any(|e| e.phases_us.total.is_none() && e.phases_us.total_or_sum().is_some())
    {
        out.push_str(" (* = no total recorded: sum of the phases)");
    }
    out.push('\n');
    out.push_str(&summary(events));
    out
}

/// One line: how many events of each kind and their mean total.
fn summary(events: &[Event]) -> String {
    let mut parts = Vec::new();
    for kind in [
        EventKind::Migrate,
        EventKind::Regroup,
        EventKind::Checkpoint,
        EventKind::Restart,
        EventKind::Refused,
        EventKind::Evacuate,
    ] {
        let of_kind: Vec<&Event> = events.iter().filter(|e| e.event == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let totals: Vec<u64> = of_kind
            .iter()
            .filter_map(|e| e.phases_us.total_or_sum())
            .collect();
        let mut part = format!("{} {kind}", of_kind.len());
        if !totals.is_empty() {
            let mean = totals.iter().sum::<u64>() / totals.len() as u64;
            part.push_str(&format!(" (mean total {} ms)", table::ms(mean)));
        }
        parts.push(part);
    }
    let noun = if events.len() == 1 { "event" } else { "events" };
    let mut out = format!("{} {noun}: {}\n", events.len(), parts.join(", "));
    for e in events {
        if let Some((op, why)) = e.refusal() {
            let rank = e.rank.map(|r| format!(" of rank {r}")).unwrap_or_default();
            out.push_str(&format!("refused: {op}{rank}: {why}\n"));
        }
    }
    out
}

pub fn report(path: &Path, svg_out: Option<&Path>) -> Result<i32, Failure> {
    let events = read_events(path).map_err(|e| Failure::other(e.to_string()))?;
    if events.is_empty() {
        println!("no events in {}", path.display());
    } else {
        print!("{}", render_table(&events));
    }
    if let Some(out) = svg_out {
        let title = format!("ferry events — {}", path.display());
        let svg = crate::svg::timeline(&events, &title);
        std::fs::write(out, svg)
            .map_err(|e| Failure::other(format!("cannot write {}: {e}", out.display())))?;
        eprintln!("ferry: wrote timeline {}", out.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_common::events::parse_events;

    #[test]
    fn table_shows_every_field() {
        let evs = parse_events(concat!(
            r#"{"event":"migrate","rank":2,"from_host":"a","to_host":"b","old_pid":11,"new_pid":22,"global_superstep":17,"drained_messages":3,"drained_bytes":4096,"image_bytes":1234567,"phases_us":{"notify":5,"collective_sync":40,"p2p_sync":12,"drain":30,"spawn":90000,"group":800,"state_transfer":2000,"restore":300,"total":93187}}"#,
            "\n",
            r#"{"event":"regroup","rank":0,"phases_us":{"notify":4,"group":1000}}"#,
            "\n",
            r#"{"event":"refused","rank":1,"operation":"migration","reason":"the program runs 1 thread of its own"}"#,
            "\n"
        ))
        .unwrap();
        let t = render_table(&evs);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("#  event"), "{t}");
        assert!(
            lines[0].contains("superstep") && lines[0].ends_with("total"),
            "{t}"
        );
        let row1: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            row1,
            [
                "1", "migrate", "2", "a->b", "11->22", "17", "3", "msg", "/", "4.0", "KiB", "1.2",
                "MiB", "0.005", "0.040", "0.012", "0.030", "90.000", "0.800", "2.000", "0.300",
                "93.187"
            ]
        );
        let row2: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row2,
            [
                "2", "regroup", "0", "-", "-", "-", "-", "-", "0.004", "-", "-", "-", "-", "1.000",
                "-", "-", "1.004*"
            ]
        );
        assert!(t.contains("* = no total recorded"), "{t}");
        assert!(
            t.contains(
                "3 events: 1 migrate (mean total 93.187 ms), 1 regroup (mean total 1.004 ms), 1 refused"
            ),
            "{t}"
        );
        assert!(
            t.contains("refused: migration of rank 1: the program runs 1 thread of its own"),
            "{t}"
        );
    }
}
