//! The event log: one JSON object per line for every migration, regroup,
//! checkpoint or restart, written by the rank that led it.
//!
//! ```json
//! {"event":"migrate","rank":2,"from_host":"a","to_host":"b","old_pid":1,"new_pid":2,
//!  "global_superstep":17,"drained_messages":3,"drained_bytes":4096,"image_bytes":1234567,
//!  "phases_us":{"notify":5,"collective_sync":40,"p2p_sync":12,"drain":30,"spawn":90000,
//!               "group":800,"state_transfer":2000,"restore":300,"total":93187}}
//! ```
//! Fields that do not apply are absent (`None`). Unknown fields are kept in
//! [`Event::extra`] so that newer writers do not break older readers.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Migrate,
    Regroup,
    Checkpoint,
    Restart,
    /// A migration or checkpoint refused (or given up) for a reason, which
    /// the line holds: `{"event":"refused","rank":R,"operation":
    /// "migration"|"checkpoint","reason":"..."}`, written by the process
    /// that knows the reason.
    Refused,
    /// `ferry evacuate` of a host: `from_host`, `ranks_moved`,
    /// `ranks_stayed`, `to_hosts`, `outcome` and the total time (written
    /// by the command).
    Evacuate,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Migrate => "migrate",
            EventKind::Regroup => "regroup",
            EventKind::Checkpoint => "checkpoint",
            EventKind::Restart => "restart",
            EventKind::Refused => "refused",
            EventKind::Evacuate => "evacuate",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<crate::spec::OpKind> for EventKind {
    fn from(k: crate::spec::OpKind) -> Self {
        match k {
            crate::spec::OpKind::Migrate => EventKind::Migrate,
            crate::spec::OpKind::Regroup => EventKind::Regroup,
        }
    }
}

/// Duration of each protocol phase in microseconds. Phases that did not
/// run (e.g. `spawn` in a regroup) are `None` and absent from the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phases {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective_sync: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_sync: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_transfer: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<u64>,
    /// Wall time of the whole operation (may exceed the sum of the phases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

impl Phases {
    /// The phase names in protocol order (without `total`).
    pub const NAMES: [&'static str; 8] = [
        "notify",
        "collective_sync",
        "p2p_sync",
        "drain",
        "spawn",
        "group",
        "state_transfer",
        "restore",
    ];

    /// Each phase in protocol order with its duration (without `total`).
    pub fn in_order(&self) -> [(&'static str, Option<u64>); 8] {
        [
            ("notify", self.notify),
            ("collective_sync", self.collective_sync),
            ("p2p_sync", self.p2p_sync),
            ("drain", self.drain),
            ("spawn", self.spawn),
            ("group", self.group),
            ("state_transfer", self.state_transfer),
            ("restore", self.restore),
        ]
    }

    /// Mutable access by name (`total` included); `None` for unknown names.
    pub fn slot_mut(&mut self, name: &str) -> Option<&mut Option<u64>> {
        Some(match name {
            "notify" => &mut self.notify,
            "collective_sync" => &mut self.collective_sync,
            "p2p_sync" => &mut self.p2p_sync,
            "drain" => &mut self.drain,
            "spawn" => &mut self.spawn,
            "group" => &mut self.group,
            "state_transfer" => &mut self.state_transfer,
            "restore" => &mut self.restore,
            "total" => &mut self.total,
            _ => return None,
        })
    }

    /// Sum of the phases that are present (without `total`).
    pub fn sum(&self) -> u64 {
        self.in_order().iter().filter_map(|(_, v)| *v).sum()
    }

    /// `total` if present, else the sum of the phases if any is present.
    pub fn total_or_sum(&self) -> Option<u64> {
        self.total.or_else(|| {
            self.in_order()
                .iter()
                .any(|(_, v)| v.is_some())
                .then(|| self.sum())
        })
    }

    /// True when no phase and no total is present.
    pub fn is_empty(&self) -> bool {
        self == &Phases::default()
    }
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_superstep: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained_messages: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Phases::is_empty")]
    pub phases_us: Phases,
    /// Fields this version does not know, kept as they were read.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// An event of this kind with every optional field absent.
    pub fn new(event: EventKind) -> Self {
        Event {
            event,
            rank: None,
            from_host: None,
            to_host: None,
            old_pid: None,
            new_pid: None,
            global_superstep: None,
            drained_messages: None,
            drained_bytes: None,
            image_bytes: None,
            phases_us: Phases::default(),
            extra: serde_json::Map::new(),
        }
    }

    /// A refusal: what was refused, of which rank, and why.
    pub fn refused(operation: &str, rank: Option<u32>, reason: &str) -> Self {
        let mut ev = Event::new(EventKind::Refused);
        ev.rank = rank;
        ev.extra.insert("operation".into(), operation.into());
        ev.extra.insert("reason".into(), reason.into());
        ev
    }

    /// For a refusal: the operation refused and the reason.
    pub fn refusal(&self) -> Option<(&str, &str)> {
        if self.event != EventKind::Refused {
            return None;
        }
        Some((
            self.extra.get("operation")?.as_str()?,
            self.extra.get("reason")?.as_str()?,
        ))
    }

    /// The record as one JSON line, newline included.
    pub fn to_line(&self) -> String {
        // Serializing plain data into a String cannot fail.
        let mut s = serde_json::to_string(self).expect("event serializes");
        s.push('\n');
        s
    }
}

/// Appends events to a JSONL file. Each event is one `write(2)` on a file
/// opened with `O_APPEND`, so lines of concurrent writers do not interleave.
#[derive(Debug)]
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| annotate(e, "cannot open event log", &path))?;
        Ok(EventWriter { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as one line.
    pub fn append(&mut self, event: &Event) -> io::Result<()> {
        write_line(&mut self.file, event.to_line().as_bytes())
            .map_err(|e| annotate(e, "cannot append to event log", &self.path))
    }
}

/// Opens `path`, appends one event, closes it (for rare writers such as the
/// library, which should not keep a descriptor across a migration).
pub fn append_event(path: impl AsRef<Path>, event: &Event) -> io::Result<()> {
    EventWriter::open(path)?.append(event)
}

fn write_line(file: &mut File, line: &[u8]) -> io::Result<()> {
    loop {
        match file.write(line) {
            Ok(n) if n == line.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("short write ({n} of {} bytes)", line.len()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Why an event log could not be read.
#[derive(Debug)]
pub enum EventsError {
    /// The file could not be read.
    Io { path: PathBuf, source: io::Error },
    /// Line `line` (1-based) is not a valid event.
    Parse {
        path: Option<PathBuf>,
        line: usize,
        message: String,
    },
}

impl fmt::Display for EventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventsError::Io { path, source } => {
                write!(f, "cannot read event log {}: {source}", path.display())
            }
            EventsError::Parse {
                path: Some(p),
                line,
                message,
            } => write!(f, "{}:{line}: invalid event: {message}", p.display()),
            EventsError::Parse {
                path: None,
                line,
                message,
            } => write!(f, "line {line}: invalid event: {message}"),
        }
    }
}

impl std::error::Error for EventsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EventsError::Io { source, .. } => Some(source),
            EventsError::Parse { .. } => None,
        }
    }
}

/// Parses JSONL text; blank lines are skipped.
pub fn parse_events(text: &str) -> Result<Vec<Event>, EventsError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ev = serde_json::from_str::<Event>(line).map_err(|e| EventsError::Parse {
            path: None,
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(ev);
    }
    Ok(out)
}

/// Reads and parses a JSONL event log.
pub fn read_events(path: impl AsRef<Path>) -> Result<Vec<Event>, EventsError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| EventsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_events(&text).map_err(|e| match e {
        EventsError::Parse { line, message, .. } => EventsError::Parse {
            path: Some(path.to_path_buf()),
            line,
            message,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut ev = Event::new(EventKind::Migrate);
        ev.rank = Some(2);
        ev.from_host = Some("a".into());
        ev.to_host = Some("b".into());
        ev.old_pid = Some(1);
        ev.new_pid = Some(2);
        ev.global_superstep = Some(17);
        ev.drained_messages = Some(3);
        ev.drained_bytes = Some(4096);
        ev.image_bytes = Some(1_234_567);
        ev.phases_us = Phases {
            notify: Some(5),
            collective_sync: Some(40),
            p2p_sync: Some(12),
            drain: Some(30),
            spawn: Some(90_000),
            group: Some(800),
            state_transfer: Some(2000),
            restore: Some(300),
            total: Some(93_187),
        };
        ev
    }

    #[test]
    fn serializes_design_shape() {
        let line = sample().to_line();
        assert_eq!(
            line,
            concat!(
                r#"{"event":"migrate","rank":2,"from_host":"a","to_host":"b","old_pid":1,"new_pid":2,"#,
                r#""global_superstep":17,"drained_messages":3,"drained_bytes":4096,"image_bytes":1234567,"#,
                r#""phases_us":{"notify":5,"collective_sync":40,"p2p_sync":12,"drain":30,"spawn":90000,"#,
                r#""group":800,"state_transfer":2000,"restore":300,"total":93187}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn absent_fields_are_omitted() {
        let mut ev = Event::new(EventKind::Regroup);
        ev.rank = Some(0);
        ev.phases_us.notify = Some(3);
        ev.phases_us.total = Some(9);
        assert_eq!(
            ev.to_line(),
            "{\"event\":\"regroup\",\"rank\":0,\"phases_us\":{\"notify\":3,\"total\":9}}\n"
        );
        assert_eq!(
            Event::new(EventKind::Checkpoint).to_line(),
            "{\"event\":\"checkpoint\"}\n"
        );
    }

    #[test]
    fn round_trip_and_unknown_fields() {
        let ev = sample();
        let back = parse_events(&ev.to_line()).unwrap();
        assert_eq!(back, vec![ev]);
        let evs = parse_events("{\"event\":\"restart\",\"job\":\"x-1\",\"dir\":\"/d\"}").unwrap();
        assert_eq!(evs[0].event, EventKind::Restart);
        assert_eq!(evs[0].extra.get("job").unwrap(), "x-1");
        // Unknown fields survive a round trip.
        assert!(evs[0].to_line().contains("\"dir\":\"/d\""));
    }

    #[test]
    fn parse_errors_have_line_numbers() {
        let text = "\n{\"event\":\"migrate\",\"rank\":1}\n   \n{\"event\":\"teleport\"}\n";
        let e = parse_events(text).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("line 4: invalid event: unknown variant `teleport`"),
            "{msg}"
        );
        let e = parse_events("{\"rank\":1}").unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("missing field `event`"),
            "{e}"
        );
        let e = parse_events("{\"event\":\"migrate\",\"rank\":-1}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = parse_events("not json").unwrap_err().to_string();
        assert!(e.starts_with("line 1: invalid event"), "{e}");
    }

    #[test]
    fn phases_helpers() {
        let p = sample().phases_us;
        assert_eq!(p.sum(), 93_187);
        assert_eq!(p.in_order().map(|(n, _)| n), Phases::NAMES);
        let mut q = Phases::default();
        assert!(q.is_empty());
        assert_eq!(q.total_or_sum(), None);
        *q.slot_mut("drain").unwrap() = Some(7);
        *q.slot_mut("spawn").unwrap() = Some(3);
        assert_eq!(q.total_or_sum(), Some(10));
        q.total = Some(50);
        assert_eq!(q.total_or_sum(), Some(50));
        assert!(q.slot_mut("nope").is_none());
    }

    #[test]
    fn writer_appends_lines() {
        let dir = std::env::temp_dir().join(format!("ferry-ev-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut w = EventWriter::open(&path).unwrap();
        w.append(&sample()).unwrap();
        append_event(&path, &Event::new(EventKind::Regroup)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let evs = read_events(&path).unwrap();
        assert_eq!(evs[0], sample());
        assert_eq!(evs[1].event, EventKind::Regroup);

        std::fs::write(&path, "{\"event\":\"migrate\"}\n{oops\n").unwrap();
        let msg = read_events(&path).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}:2: invalid event", path.display())),
            "{msg}"
        );
        let missing = dir.join("missing.jsonl");
        let msg = read_events(&missing).unwrap_err().to_string();
        assert!(msg.starts_with("cannot read event log"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
