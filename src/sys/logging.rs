//! Logging: the `log` crate to stderr through the shared logger of
//! `ferry_common` (`FERRY_LOG=error|warn|info|debug|trace`, default `warn`),
//! each line tagged with the rank and pid. Panics are reported through it
//! too (and caught at the boundary).

/// Installs the logger and the panic hook, once, at `MPI_Init`.
pub fn init() {
    ferry_common::logging::init("ferry", log::LevelFilter::Warn);
    // Panics are caught and reported at the boundary; keep the default
    // hook from printing them a second time in another format.
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
    }));
}

/// Tags the lines that follow with the process's world rank.
pub fn set_rank(rank: i32) {
    ferry_common::logging::set_rank(rank as i64);
}
