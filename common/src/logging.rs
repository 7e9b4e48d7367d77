//! A minimal `log` backend writing to stderr, level from `FERRY_LOG`.
//!
//! Lines look like `ferry[rank 2 pid 4711] INFO: message` (the rank part
//! appears once [`set_rank`] was called). Each line is formatted first and
//! written with a single call, so lines of different ranks do not mix.
//! No threads, no allocation unless a record is actually logged.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

struct StderrLogger {
    tag: OnceLock<&'static str>,
}

static LOGGER: StderrLogger = StderrLogger {
    tag: OnceLock::new(),
};
static RANK: AtomicI64 = AtomicI64::new(-1);

/// Parses a `FERRY_LOG` value (`off|error|warn|info|debug|trace`).
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    s.trim().parse().ok()
}

/// Installs the logger once (later calls only adjust the level). The level
/// comes from `FERRY_LOG`, else `default`. An invalid `FERRY_LOG` value is
/// reported once and ignored. `tag` starts every line (e.g. `"ferry"`).
pub fn init(tag: &'static str, default: LevelFilter) {
    let _ = LOGGER.tag.set(tag);
    let _ = log::set_logger(&LOGGER);
    let mut level = default;
    if let Some(v) = crate::env::var(crate::env::FERRY_LOG) {
        match parse_level(&v) {
            Some(l) => level = l,
            None => eprintln!(
                "{tag}: ignoring {}={v:?} (expected off, error, warn, info, debug or trace)",
                crate::env::FERRY_LOG
            ),
        }
    }
    log::set_max_level(level);
}

/// Adds `rank R` to every following line (negative: remove it).
pub fn set_rank(rank: i64) {
    RANK.store(rank, Ordering::Relaxed);
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = self.tag.get().copied().unwrap_or("ferry");
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let rank = RANK.load(Ordering::Relaxed);
        let line = if rank >= 0 {
            format!(
                "{tag}[rank {rank} pid {}] {level}: {}\n",
                std::process::id(),
                record.args()
            )
        } else {
            format!(
                "{tag}[pid {}] {level}: {}\n",
                std::process::id(),
                record.args()
            )
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level(" TRACE "), Some(LevelFilter::Trace));
        assert_eq!(parse_level("off"), Some(LevelFilter::Off));
        assert_eq!(parse_level("loud"), None);
    }
}
