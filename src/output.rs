//! Human-readable output in the shape of Helm's experimental `helm chart
//! list`, so that chartcache's listings read the same as Helm's.
//!
//! Helm formats sizes with its own binary-unit helper (`454 B`, `4.3 KiB`),
//! ages with docker/go-units `HumanDuration` (`About an hour`, `3 weeks`),
//! timestamps as RFC 3339 in UTC, and tables with gosuri/uitable
//! (`MaxColWidth = 60`). The functions here reproduce those formats,
//! including Go's rounding and integer arithmetic at the boundaries.
//!
//! Differences from uitable: widths are counted in `char`s rather than
//! terminal cells (uitable uses go-runewidth, so East Asian wide characters
//! count 2 there), truncation keeps whole `char`s (uitable cuts bytes), and
//! cells are expected to be single-line (uitable splits cells on `\n`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, PrimitiveDateTime};

/// Format a byte count like Helm: `454 B` below 1024, otherwise one decimal
/// in base 1024 (`4.3 KiB`, `28.1 KiB`, `1.0 MiB`).
///
/// Go's `%.1f` rounds the exact binary value and breaks exact ties to even
/// (1280 B is 1.25 KiB and prints `1.2 KiB`); Rust's `{:.1}` does the same.
pub fn human_size(bytes: u64) -> String {
    const UNIT: u64 = 1024;
    if bytes < UNIT {
        return format!("{bytes} B");
    }
    let mut div = UNIT;
    let mut exp = 0;
    let mut n = bytes / UNIT;
    while n >= UNIT {
        div *= UNIT;
        exp += 1;
        n /= UNIT;
    }
    // u64::MAX is 16 EiB, so `exp` stays within "KMGTPE".
    let prefix = "KMGTPE".chars().nth(exp).unwrap_or('E');
    format!("{:.1} {prefix}iB", bytes as f64 / div as f64)
}

/// Approximate a duration in words like docker/go-units `HumanDuration`
/// (v0.4.0): `Less than a second`, `1 second`, `N seconds`,
/// `About a minute`, `N minutes`, `About an hour`, `N hours`, `N days`,
/// `N weeks`, `N months`, `N years`.
///
/// Go computes `int(d.Seconds())`, `int(d.Minutes())` and
/// `int(d.Hours() + 0.5)` in floating point; this does the same operations
/// so that the results agree even at the edges.
pub fn human_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let seconds = go_float_units(nanos, 1_000_000_000) as i64;
    if seconds < 1 {
        return "Less than a second".to_owned();
    }
    if seconds == 1 {
        return "1 second".to_owned();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = go_float_units(nanos, 60 * 1_000_000_000) as i64;
    if minutes == 1 {
        return "About a minute".to_owned();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours_f = go_float_units(nanos, 60 * 60 * 1_000_000_000);
    let hours = (hours_f + 0.5) as i64;
    if hours == 1 {
        "About an hour".to_owned()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours_f as i64 / 24 / 365)
    }
}

/// Go's `Duration.Seconds/Minutes/Hours`: whole units plus the remainder
/// as a fraction, both as `float64`.
fn go_float_units(nanos: u128, unit: u128) -> f64 {
    (nanos / unit) as f64 + (nanos % unit) as f64 / unit as f64
}

/// RFC 3339 in UTC with second precision, e.g. `2026-11-21T14:15:19Z`
/// (sub-second digits are dropped, as by Go's `time.RFC3339` layout).
///
/// Instants beyond the range of the `time` crate (±9999 years) are clamped.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            // Round towards the past, like Go's wall clock seconds.
            let carry = i64::from(before.subsec_nanos() > 0);
            whole.saturating_neg().saturating_sub(carry)
        }
    };
    let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or_else(|_| {
        if secs < 0 {
            PrimitiveDateTime::MIN.assume_utc()
        } else {
            PrimitiveDateTime::MAX.assume_utc()
        }
    });
    let year = dt.year();
    let year = if year < 0 {
        format!("-{:04}", year.unsigned_abs())
    } else {
        format!("{year:04}")
    };
    format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// A plain-text table like gosuri/uitable with `MaxColWidth = 60`.
///
/// Columns are separated by `\t`; every cell, the last one of a row
/// included, is padded with spaces to its column's width; a cell wider than
/// [`Table::MAX_COL_WIDTH`] is cut to its first 57 characters followed by
/// `...`. Rows are joined with `\n`, and the rendering ends with a final
/// `\n`. A row shorter than others simply has fewer cells.
#[derive(Debug, Clone)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Widest a column gets; longer cells are truncated with `...`.
    pub const MAX_COL_WIDTH: usize = 60;

    /// A table whose first row is `header`.
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|&cell| cell.to_owned()).collect()],
        }
    }

    /// Append a row. Cells are made terminal-safe: names and versions can come from outside.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| match terminal_safe(&c) {
                    std::borrow::Cow::Owned(escaped) => escaped,
                    std::borrow::Cow::Borrowed(_) => c,
                })
                .collect(),
        );
    }

    fn column_widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                let width = cell.chars().count().min(Self::MAX_COL_WIDTH);
                match widths.get_mut(i) {
                    Some(w) => *w = (*w).max(width),
                    None => widths.push(width),
                }
            }
        }
        widths
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.column_widths();
        for row in &self.rows {
            for (i, (cell, &width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    f.write_str("\t")?;
                }
                let len = cell.chars().count();
                if len > width {
                    let kept: String = cell.chars().take(width.saturating_sub(3)).collect();
                    write!(f, "{kept}...")?;
                } else {
                    write!(f, "{cell}{:pad$}", "", pad = width - len)?;
                }
            }
            f.write_str("\n")?;
        }
        Ok(())
    }
}

/// Text from outside made safe for a terminal: every control character except newline and
/// tab (escape sequences, carriage returns, backspaces, C1 controls, DEL) is written as an
/// escape like `\u{1b}`, so a chart, registry or server can never move the cursor, recolour,
/// retitle or rewrite what the user sees. Text without them is borrowed unchanged.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_safe_escapes_controls_but_not_newlines() {
        assert_eq!(terminal_safe("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            terminal_safe("a\x1b[31mred\r\x07\u{9b}"),
            "a\\u{1b}[31mred\\u{d}\\u{7}\\u{9b}"
        );
        let mut t = Table::new(&["NAME"]);
        t.row(vec!["evil\x1b]0;title\x07".into()]);
        assert!(!t.to_string().contains('\x1b'));
    }

    #[test]
    fn sizes() {
        for (bytes, expected) in [
            (0, "0 B"),
            (1, "1 B"),
            (454, "454 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1075, "1.0 KiB"),
            (1126, "1.1 KiB"),
            (4403, "4.3 KiB"),
            (28_774, "28.1 KiB"),
            (1024 * 1024 - 1, "1024.0 KiB"),
            (1024 * 1024, "1.0 MiB"),
            (5 * 1024 * 1024 * 1024, "5.0 GiB"),
            (1 << 40, "1.0 TiB"),
            (1 << 50, "1.0 PiB"),
            (1 << 60, "1.0 EiB"),
            (u64::MAX, "16.0 EiB"),
        ] {
            assert_eq!(human_size(bytes), expected, "{bytes}");
        }
    }

    #[test]
    fn size_ties_round_half_to_even() {
        // Exact ties (x.25 and x.75 are the only ones possible in base 1024).
        assert_eq!(human_size(1280), "1.2 KiB"); // 1.25
        assert_eq!(human_size(1792), "1.8 KiB"); // 1.75
        assert_eq!(human_size(2304), "2.2 KiB"); // 2.25
        assert_eq!(human_size(2816), "2.8 KiB"); // 2.75
        assert_eq!(human_size(5 * 1024 * 1024 / 4), "1.2 MiB"); // 1.25
        // Near ties round by the exact binary value.
        assert_eq!(human_size(1281), "1.3 KiB");
        assert_eq!(human_size(1279), "1.2 KiB");
        assert_eq!(human_size(1331), "1.3 KiB");
        // Rust's own formatting, which human_size relies on.
        assert_eq!(format!("{:.1}", 0.25_f64), "0.2");
        assert_eq!(format!("{:.1}", 0.75_f64), "0.8");
        assert_eq!(format!("{:.1}", 0.45_f64), "0.5"); // 0.450000000000000011...
        assert_eq!(format!("{:.1}", 0.35_f64), "0.3"); // 0.349999999999999977...
    }

    #[test]
    fn durations_from_go_units_tests() {
        const S: u64 = 1;
        const MIN: u64 = 60 * S;
        const H: u64 = 60 * MIN;
        const DAY: u64 = 24 * H;
        const WEEK: u64 = 7 * DAY;
        const MONTH: u64 = 30 * DAY;
        const YEAR: u64 = 365 * DAY;
        let secs = Duration::from_secs;
        for (d, expected) in [
            (Duration::from_millis(450), "Less than a second"),
            (secs(S), "1 second"),
            (secs(45 * S), "45 seconds"),
            (secs(46 * S), "46 seconds"),
            (secs(59 * S), "59 seconds"),
            (secs(60 * S), "About a minute"),
            (secs(MIN), "About a minute"),
            (secs(3 * MIN), "3 minutes"),
            (secs(35 * MIN), "35 minutes"),
            (secs(35 * MIN + 40 * S), "35 minutes"),
            (secs(45 * MIN), "45 minutes"),
            (secs(45 * MIN + 40 * S), "45 minutes"),
            (secs(46 * MIN), "46 minutes"),
            (secs(59 * MIN), "59 minutes"),
            (secs(H), "About an hour"),
            (secs(H + 29 * MIN), "About an hour"),
            (secs(H + 31 * MIN), "2 hours"),
            (secs(H + 59 * MIN), "2 hours"),
            (secs(3 * H), "3 hours"),
            (secs(3 * H + 29 * MIN), "3 hours"),
            (secs(3 * H + 31 * MIN), "4 hours"),
            (secs(3 * H + 59 * MIN), "4 hours"),
            (secs(3 * H + 60 * MIN), "4 hours"),
            (secs(24 * H), "24 hours"),
            (secs(DAY + 12 * H), "36 hours"),
            (secs(2 * DAY), "2 days"),
            (secs(7 * DAY), "7 days"),
            (secs(13 * DAY + 5 * H), "13 days"),
            (secs(2 * WEEK), "2 weeks"),
            (secs(2 * WEEK + 4 * DAY), "2 weeks"),
            (secs(3 * WEEK), "3 weeks"),
            (secs(4 * WEEK), "4 weeks"),
            (secs(4 * WEEK + 3 * DAY), "4 weeks"),
            (secs(MONTH), "4 weeks"),
            (secs(MONTH + 2 * WEEK), "6 weeks"),
            (secs(2 * MONTH), "2 months"),
            (secs(2 * MONTH + 2 * WEEK), "2 months"),
            (secs(3 * MONTH), "3 months"),
            (secs(3 * MONTH + WEEK), "3 months"),
            (secs(5 * MONTH + 2 * WEEK), "5 months"),
            (secs(13 * MONTH), "13 months"),
            (secs(23 * MONTH), "23 months"),
            (secs(24 * MONTH), "24 months"),
            (secs(24 * MONTH + 2 * WEEK), "2 years"),
            (secs(3 * YEAR + 2 * MONTH), "3 years"),
        ] {
            assert_eq!(human_duration(d), expected, "{d:?}");
        }
    }

    #[test]
    fn duration_boundaries() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        for (d, expected) in [
            (Duration::ZERO, "Less than a second"),
            (ms(999), "Less than a second"),
            (Duration::from_nanos(999_999_999), "Less than a second"),
            (ms(1_999), "1 second"),
            (ms(2_000), "2 seconds"),
            (ms(59_999), "59 seconds"),
            (ms(119_999), "About a minute"),
            (secs(120), "2 minutes"),
            (ms(3_599_999), "59 minutes"),
            (secs(3_600), "About an hour"),
            // ⌊hours + 0.5⌋: 1h29m59.999s is still "About an hour".
            (ms(5_399_999), "About an hour"),
            (secs(5_400), "2 hours"),
            (secs(47 * 3600 + 29 * 60 + 59), "47 hours"),
            // 47.5 h rounds to 48 hours, which is already "2 days".
            (secs(47 * 3600 + 30 * 60), "2 days"),
            (secs((13 * 24 + 23) * 3600 + 29 * 60), "13 days"),
            (secs((13 * 24 + 23) * 3600 + 30 * 60), "2 weeks"),
            (secs((59 * 24 + 23) * 3600 + 29 * 60), "8 weeks"),
            (secs((59 * 24 + 23) * 3600 + 30 * 60), "2 months"),
            (secs((729 * 24 + 23) * 3600 + 29 * 60), "24 months"),
            // Rounded hours reach two years while truncated hours do not.
            (secs((729 * 24 + 23) * 3600 + 30 * 60), "1 years"),
            (secs(730 * 24 * 3600), "2 years"),
            (secs(100 * 365 * 24 * 3600), "100 years"),
        ] {
            assert_eq!(human_duration(d), expected, "{d:?}");
        }
    }

    #[test]
    fn rfc3339_formats_utc_seconds() {
        let at = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
        assert_eq!(rfc3339(at(1_795_270_519, 0)), "2026-11-21T14:15:19Z");
        assert_eq!(
            rfc3339(at(1_795_270_519, 999_999_999)),
            "2026-11-21T14:15:19Z"
        );
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(951_868_799, 0)), "2000-02-29T23:59:59Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_millis(500)),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(86_400)),
            "1969-12-31T00:00:00Z"
        );
        assert_eq!(rfc3339(at(253_402_300_799, 0)), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(at(253_402_300_800, 0)), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn table_pads_every_cell() {
        let mut table = Table::new(&["NAME", "VERSION", "SIZE"]);
        table.row(vec!["nginx".into(), "15.4.2".into(), "28.1 KiB".into()]);
        table.row(vec!["redis-cluster".into(), "1.0".into(), "454 B".into()]);
        assert_eq!(
            table.to_string(),
            "NAME         \tVERSION\tSIZE    \n\
             nginx        \t15.4.2 \t28.1 KiB\n\
             redis-cluster\t1.0    \t454 B   \n"
        );
    }

    #[test]
    fn table_header_only() {
        assert_eq!(Table::new(&["A", "BB"]).to_string(), "A\tBB\n");
    }

    #[test]
    fn table_truncates_long_cells() {
        let sixty = "x".repeat(60);
        let sixty_one = format!("{}y", "z".repeat(60));
        let mut table = Table::new(&["REF", "N"]);
        table.row(vec![sixty.clone(), "1".into()]);
        let lines = |t: &Table| t.to_string().lines().map(str::to_owned).collect::<Vec<_>>();
        // Exactly 60 characters fit.
        assert_eq!(lines(&table)[1], format!("{sixty}\t1"));
        table.row(vec![sixty_one, "2".into()]);
        let out = lines(&table);
        assert_eq!(out[2], format!("{}...\t2", "z".repeat(57)));
        assert_eq!(out[0], format!("REF{}\tN", " ".repeat(57)));
    }

    #[test]
    fn table_counts_chars_not_bytes() {
        let mut table = Table::new(&["NAME", "X"]);
        table.row(vec!["ééééé".into(), "1".into()]);
        table.row(vec!["é".repeat(70), "2".into()]);
        let out = table.to_string();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("NAME{}\tX", " ".repeat(56)));
        assert_eq!(lines[1], format!("ééééé{}\t1", " ".repeat(55)));
        assert_eq!(lines[2], format!("{}...\t2", "é".repeat(57)));
    }

    #[test]
    fn table_ragged_rows() {
        let mut table = Table::new(&["A"]);
        table.row(vec!["1".into(), "two".into()]);
        table.row(vec![]);
        table.row(vec!["333".into(), "4".into(), String::new()]);
        assert_eq!(table.to_string(), "A  \n1  \ttwo\n\n333\t4  \t\n");
    }
}
