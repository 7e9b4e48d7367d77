//! Wall-clock helpers without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as `YYYY-MM-DD HH:MM:SS.mmmZ` (UTC).
pub fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Formats how long ago `then_ms` was, relative to `now_ms`: `850ms`,
/// `12s`, `3m05s`, `2h14m`, `4d03h`.
pub fn format_age(then_ms: u64, now_ms: u64) -> String {
    let ms = now_ms.saturating_sub(then_ms);
    let s = ms / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a
    // 400-year era's years; then peel off eras, years and months.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00.000Z");
        // 2000-02-29 12:34:56.789 UTC
        assert_eq!(format_utc(951_827_696_789), "2000-02-29 12:34:56.789Z");
        // 2024-12-31 23:59:59 UTC
        assert_eq!(format_utc(1_735_689_599_000), "2024-12-31 23:59:59.000Z");
        // 2100-03-01 00:00:00 UTC (2100 is not a leap year)
        assert_eq!(format_utc(4_107_542_400_000), "2100-03-01 00:00:00.000Z");
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(1000, 1850), "850ms");
        assert_eq!(format_age(0, 12_000), "12s");
        assert_eq!(format_age(0, 185_000), "3m05s");
        assert_eq!(format_age(0, 8_040_000), "2h14m");
        assert_eq!(format_age(0, 356_400_000), "4d03h");
        assert_eq!(format_age(5000, 1000), "0ms");
    }

    #[test]
    fn now_is_sane() {
        assert!(unix_ms() > 1_600_000_000_000);
    }
}
