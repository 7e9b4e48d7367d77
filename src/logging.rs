//! Logging through the `log` crate to stderr, prefixed with the rank:
//! `FERRY_LOG=error|warn|info|debug|trace` (default `warn`).
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};

static RANK: AtomicI32 = AtomicI32::new(-1);

struct Logger;

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let rank = RANK.load(Ordering::Relaxed);
        let who = if rank >= 0 {
            format!("ferry[{rank}]")
        } else {
            "ferry".to_string()
        };
        let lvl = match r.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        // One write per line, so lines of different ranks do not interleave.
        let line = format!("{who} {lvl}: {}\n", r.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Parses a `FERRY_LOG` value.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// Installs the logger (once) at the level of `FERRY_LOG`.
pub fn init() {
    let env = std::env::var("FERRY_LOG").ok();
    let level = env
        .as_deref()
        .and_then(parse_level)
        .unwrap_or(LevelFilter::Warn);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
    if let Some(v) = env {
        if parse_level(&v).is_none() {
            log::warn!(
                "FERRY_LOG='{v}' is not one of off, error, warn, info, debug, trace; using warn"
            );
        }
    }
    // Panics are caught and reported at the boundary; keep the default
    // hook from printing them a second time.
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
    }));
}

pub fn set_rank(rank: i32) {
    RANK.store(rank, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn levels() {
        assert_eq!(parse_level("DEBUG"), Some(LevelFilter::Debug));
        assert_eq!(parse_level(" warn "), Some(LevelFilter::Warn));
        assert_eq!(parse_level("loud"), None);
    }
}
