//! The generator's policy as data: `spec/overlay.toml`.
//!
//! The spec says what each MPI function takes; the overlay says what the
//! library does about it, for the functions that depart from the defaults:
//! which template builds the C wrapper's body, and the flags of the few
//! functions the protocol or the Fortran entry points treat apart. One entry
//! per function (`MPI_Send = { template = "send", ... }`); the format is
//! described at the top of the file itself and in `docs/codegen.md`.
//!
//! [`Overlay::parse`] checks the entries against the spec: a function the
//! spec does not have, an unknown template, flag or value, a function listed
//! twice, or flags that do not go together are errors naming the entry.
use serde::Deserialize;
use std::collections::BTreeMap;

/// How a C wrapper's body is built (`template = "..."`; `plain` when the
/// function has no entry).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// Handles translated, nothing else.
    #[default]
    Plain,
    /// A collective operation on its communicator: counts a superstep.
    Collective,
    /// A blocking send: counts the message on its channel.
    Send,
    /// A nonblocking send: counts it and registers the request.
    Isend,
    /// A persistent send: the message is counted at each start.
    SendInit,
    /// A nonblocking receive: the request completes through the library.
    Irecv,
    /// A persistent receive.
    RecvInit,
    /// A blocking receive, made wakeable.
    Recv,
    /// A blocking probe, made wakeable.
    Probe,
    Iprobe,
    /// A blocking matched probe, made wakeable.
    Mprobe,
    /// A nonblocking matched probe: the message remembers its channel.
    Improbe,
    /// A blocking receive of a matched message.
    Mrecv,
    /// A nonblocking receive of a matched message.
    Imrecv,
    /// A blocking send-receive.
    Sendrecv,
    /// Hand-written in `crate::entry::special`.
    Special,
}

impl Template {
    /// The template's name in the overlay (and in the generated comment).
    pub fn name(self) -> &'static str {
        match self {
            Template::Plain => "plain",
            Template::Collective => "collective",
            Template::Send => "send",
            Template::Isend => "isend",
            Template::SendInit => "send_init",
            Template::Irecv => "irecv",
            Template::RecvInit => "recv_init",
            Template::Recv => "recv",
            Template::Probe => "probe",
            Template::Iprobe => "iprobe",
            Template::Mprobe => "mprobe",
            Template::Improbe => "improbe",
            Template::Mrecv => "mrecv",
            Template::Imrecv => "imrecv",
            Template::Sendrecv => "sendrecv",
            Template::Special => "special",
        }
    }
}

/// What a window call does besides its template (`window = "..."`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Collective over the window's group: counted as a superstep of the
    /// window (`handles::win_slot`), not of a communicator.
    Collective,
    /// As `collective`, and the window's slot is released after.
    Free,
    /// Makes a window: registered after MPI made it.
    Constructor,
}

/// An access or exposure epoch of the program's windows
/// (`epoch = "..."`): a regroup does not freeze a process at a call
/// boundary inside one (peers may be waiting in MPI for its unlock).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Epoch {
    Opens,
    Closes,
    /// Closes when the call's `flag` says so (`MPI_Win_test`).
    ClosesIfFlag,
}

/// The Fortran entry point (`fortran = "..."`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fortran {
    /// Must get a converted entry point: the generator fails if it cannot.
    Required,
    /// Forwarded to the MPI's own Fortran function although its arguments
    /// convert (`fortran_why` says why: it goes into the generated file).
    Forward,
}

/// How many statuses of an array argument a completion call wrote
/// (`fortran_statuses = "..."`), for the Fortran conversion back.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statuses {
    /// All of them (`MPI_Waitall`).
    All,
    /// All of them when `flag` is set (`MPI_Testall`).
    AllIfFlag,
    /// `outcount` of them (`MPI_Waitsome`).
    Outcount,
}

/// One function's entry. Every field is optional; an absent flag is false.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The C wrapper's template.
    #[serde(default)]
    pub template: Template,
    /// Why the entry is there: for the reader, not used by the generator.
    #[serde(default)]
    pub why: Option<String>,
    /// `send`: the nonblocking form a wakeable blocking send posts (its
    /// `PMPI_` function); without it the blocking call is made as it is.
    #[serde(default)]
    pub send_via: Option<String>,
    /// `send` with `send_via`: the send is synchronous (`MPI_Ssend`).
    #[serde(default)]
    pub synchronous: bool,
    /// The receive is posted through `crate::calls::anysource` (MPICH's
    /// posted `MPI_ANY_SOURCE` receives fail after a migration), which is
    /// `PMPI_Irecv` everywhere else.
    #[serde(default)]
    pub anysource: bool,
    #[serde(default)]
    pub window: Option<Window>,
    #[serde(default)]
    pub epoch: Option<Epoch>,
    /// A communicator constructor collective over the new group only, not
    /// over the communicator it is given: noted as a creation.
    #[serde(default)]
    pub note_creation: bool,
    /// The world-swap test switch counts the call (`MPI_Barrier`).
    #[serde(default)]
    pub after_barrier: bool,
    /// Releases the tracked object it is given through an `inout` handle
    /// (as every `*_free` function does without an entry).
    #[serde(default)]
    pub releases: bool,
    #[serde(default)]
    pub fortran: Option<Fortran>,
    /// With `fortran = "forward"`: the reason, written into the generated
    /// file's closing list.
    #[serde(default)]
    pub fortran_why: Option<String>,
    /// Open MPI's `use mpi_f08` procedure calls `pmpi_x_` (the functions
    /// with `LOGICAL` arguments): exported under that name too.
    #[serde(default)]
    pub f08_via_pmpi: bool,
    /// `INDEX` results 0-based in C, 1-based in Fortran.
    #[serde(default)]
    pub fortran_index_results: bool,
    #[serde(default)]
    pub fortran_statuses: Option<Statuses>,
    /// Forwarded in Fortran, makes an object the library never sees (nor
    /// its release): counted, so that a process image refuses it.
    #[serde(default)]
    pub fortran_forwarded_makes: bool,
    /// Forwarded in Fortran, makes a keyval: recorded as the program's own
    /// (its attributes are carried over rebuilds).
    #[serde(default)]
    pub fortran_keyval: bool,
    /// `argc`/`argv` are not in the Fortran binding: passed as null.
    #[serde(default)]
    pub fortran_no_argv: bool,
    /// Under MPICH, the `mpif.h` function gets an entry point forwarded to
    /// MPICH's own `pmpi_x_` with real handles. Generated in the order of
    /// the overlay.
    #[serde(default)]
    pub mpich_f77_forward: bool,
}

/// The parsed, checked overlay.
#[derive(Debug, Default)]
pub struct Overlay {
    /// In the file's order.
    entries: Vec<(String, Entry)>,
    index: BTreeMap<String, usize>,
    default: Entry,
}

/// The overlay's path, relative to the repository.
pub const PATH: &str = "spec/overlay.toml";

impl Overlay {
    /// Parses `text` and checks it against the spec's function names.
    pub fn parse<'a>(
        text: &str,
        spec: impl IntoIterator<Item = &'a str>,
    ) -> Result<Overlay, String> {
        let known: std::collections::BTreeSet<&str> = spec.into_iter().collect();
        // A key given twice is refused by the TOML parser itself, with the
        // key's name and line.
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| format!("{PATH}: {}", e.to_string().trim_end()))?;
        let mut overlay = Overlay::default();
        for (name, value) in table {
            let entry: Entry = value
                .try_into()
                .map_err(|e: toml::de::Error| format!("{PATH}: {name}: {}", e.message()))?;
            let bad = |what: String| Err(format!("{PATH}: {name}: {what}"));
            if !known.contains(name.as_str()) {
                return bad("not a function of spec/mpi-c-api.json".into());
            }
            if overlay.index.contains_key(&name) {
                return bad("listed twice".into());
            }
            if entry.why.as_deref().is_some_and(|w| w.trim().is_empty()) {
                return bad("an empty why".into());
            }
            if let Some(via) = &entry.send_via {
                if entry.template != Template::Send {
                    return bad("send_via needs template = \"send\"".into());
                }
                if !known.contains(via.as_str()) {
                    return bad(format!("send_via: {via} is not a function of the spec"));
                }
            } else if entry.synchronous {
                return bad("synchronous needs send_via".into());
            }
            if entry.template == Template::Special
                && (entry.send_via.is_some()
                    || entry.anysource
                    || entry.window.is_some()
                    || entry.epoch.is_some()
                    || entry.note_creation
                    || entry.after_barrier
                    || entry.releases)
            {
                return bad("a special function's C wrapper is hand-written: no C flags".into());
            }
            if matches!(entry.window, Some(Window::Collective | Window::Free))
                && entry.template != Template::Collective
            {
                return bad("a collective window call needs template = \"collective\"".into());
            }
            match (entry.fortran, &entry.fortran_why) {
                (Some(Fortran::Forward), None) => {
                    return bad("fortran = \"forward\" needs fortran_why".into())
                }
                (Some(Fortran::Forward), Some(_)) | (_, None) => {}
                (_, Some(_)) => return bad("fortran_why needs fortran = \"forward\"".into()),
            }
            overlay.index.insert(name.clone(), overlay.entries.len());
            overlay.entries.push((name, entry));
        }
        Ok(overlay)
    }

    /// The entry of `name` (the defaults when it has none).
    pub fn get(&self, name: &str) -> &Entry {
        self.index
            .get(name)
            .map_or(&self.default, |&i| &self.entries[i].1)
    }

    /// The functions whose entry satisfies `which`, in the file's order.
    pub fn names(&self, which: impl Fn(&Entry) -> bool) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|(_, e)| which(e))
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[&str] = &["MPI_Send", "MPI_Isend", "MPI_Barrier", "MPI_Win_fence"];

    fn parse(text: &str) -> Result<Overlay, String> {
        Overlay::parse(text, SPEC.iter().copied())
    }

    #[test]
    fn good_overlay() {
        let o = parse(
            "# a comment\nMPI_Send = { template = \"send\", send_via = \"MPI_Isend\" }\n\
             MPI_Barrier = { template = \"collective\", after_barrier = true, why = \"test\" }\n",
        )
        .unwrap();
        assert_eq!(o.get("MPI_Send").template, Template::Send);
        assert_eq!(o.get("MPI_Isend").template, Template::Plain);
        assert!(o.get("MPI_Barrier").after_barrier);
        assert_eq!(
            o.names(|e| e.template != Template::Plain),
            ["MPI_Send", "MPI_Barrier"]
        );
    }

    fn rejected(text: &str, words: &[&str]) {
        let e = parse(text).expect_err("a bad overlay is accepted");
        for w in words {
            assert!(e.contains(w), "error {e:?} does not say {w:?}");
        }
    }

    #[test]
    fn unknown_function() {
        rejected(
            "MPI_Sned = { template = \"send\" }\n",
            &["spec/overlay.toml", "MPI_Sned", "not a function"],
        );
    }

    #[test]
    fn unknown_template() {
        rejected(
            "MPI_Barrier = { template = \"colective\" }\n",
            &["MPI_Barrier", "colective", "collective"],
        );
    }

    #[test]
    fn unknown_flag() {
        rejected(
            "MPI_Barrier = { template = \"collective\", after_barier = true }\n",
            &["MPI_Barrier", "after_barier"],
        );
    }

    #[test]
    fn listed_twice() {
        rejected(
            "MPI_Send = { template = \"send\" }\nMPI_Barrier = { template = \"collective\" }\n\
             MPI_Send = { template = \"isend\" }\n",
            &["spec/overlay.toml", "MPI_Send", "duplicate"],
        );
        rejected(
            "MPI_Send = { template = \"send\" }\n[MPI_Send]\ntemplate = \"isend\"\n",
            &["MPI_Send"],
        );
    }

    #[test]
    fn flags_that_do_not_go_together() {
        rejected(
            "MPI_Barrier = { template = \"collective\", send_via = \"MPI_Isend\" }\n",
            &["MPI_Barrier", "send_via"],
        );
        rejected(
            "MPI_Send = { template = \"send\", send_via = \"MPI_Isendd\" }\n",
            &["MPI_Send", "MPI_Isendd"],
        );
        rejected(
            "MPI_Win_fence = { window = \"collective\" }\n",
            &["MPI_Win_fence", "collective"],
        );
        rejected(
            "MPI_Send = { fortran = \"forward\" }\n",
            &["MPI_Send", "fortran_why"],
        );
        rejected(
            "MPI_Send = { template = \"special\", anysource = true }\n",
            &["MPI_Send", "special"],
        );
    }
}
