//! Deliberate breakage, for the test harness only: with
//! `FERRY_TEST_BREAK=NAME[,NAME...]` the library does one named thing
//! wrong, so that the harness can show it notices (a test that cannot fail
//! proves nothing). Each break fires at a rare point of the protocol, never
//! on the per-call path, and says so: a line on stderr and one in the file
//! `FERRY_TEST_BREAK_MARK` names, if set.
//!
//! | name | what goes wrong |
//! |---|---|
//! | `drop-drained` | a drain loses the first message it received |
//! | `lose-request` | a regroup does not post again the first request it put aside |
//! | `reorder` | a regroup's new world has the ranks in reverse order |
use std::sync::OnceLock;

/// The breaks asked for (empty: none, the normal case).
fn asked() -> &'static [String] {
    static ASKED: OnceLock<Vec<String>> = OnceLock::new();
    ASKED.get_or_init(|| {
        std::env::var("FERRY_TEST_BREAK")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Whether the break `name` is asked for.
pub fn on(name: &str) -> bool {
    asked().iter().any(|a| a == name)
}

/// The break `name` fired: said on stderr and in the mark file.
pub fn fired(name: &str, what: &str) {
    let line = format!("ferry: FERRY_TEST_BREAK={name}: {what}\n");
    eprint!("{line}");
    if let Ok(path) = std::env::var("FERRY_TEST_BREAK_MARK") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
