//! Time as vouch records and prints it: Unix seconds in the index, RFC 3339
//! UTC in every report.
//!
//! A file's times are kept in one `i64` of nanoseconds ([`unix_ns`]), which
//! reaches only from 1677 to 2262; a file can carry any time (`touch -d
//! 2300-01-01`, ext4 up to 2446, btrfs further; 1960 on restored media).
//! Times past either end are kept in whole seconds in the values beyond
//! the nanosecond range (nothing is wrapped, nothing clamped), and
//! [`format_time`] prints any second as the date it is, 1969 and 2300
//! included.

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const NS: i64 = 1_000_000_000;
/// Values kept for times in whole seconds, at each end.
const SECONDS_TIER: i64 = 1 << 40;
/// Times of at least this many seconds from the epoch (either way, about
/// 2262-04-11 and 1677-09-21) are kept in whole seconds.
const EDGE_S: i64 = (i64::MAX - SECONDS_TIER) / NS;

/// A file time (`secs` since the epoch, `nsec` in `0..1e9`) as one `i64`:
/// nanoseconds since the epoch within ±`EDGE_S` seconds (the form the
/// index has always stored), whole seconds beyond it in the values past
/// the nanosecond range. Order is kept; [`from_unix_ns`] inverts it (to
/// the second beyond the edges, ~34,000 years either way).
pub fn unix_ns(secs: i64, nsec: i64) -> i64 {
    if secs > -EDGE_S && secs < EDGE_S {
        secs * NS + nsec.clamp(0, NS - 1)
    } else if secs >= EDGE_S {
        EDGE_S * NS + (secs - EDGE_S).min(SECONDS_TIER - 1)
    } else {
        -EDGE_S * NS - (-EDGE_S - secs).min(SECONDS_TIER - 1)
    }
}

/// The (seconds, nanoseconds) of a value from [`unix_ns`].
pub fn from_unix_ns(v: i64) -> (i64, i64) {
    if v >= EDGE_S * NS {
        (EDGE_S + (v - EDGE_S * NS), 0)
    } else if v <= -EDGE_S * NS {
        (-EDGE_S - (-EDGE_S * NS - v), 0)
    } else {
        (v.div_euclid(NS), v.rem_euclid(NS))
    }
}

/// The whole seconds of a value from [`unix_ns`].
pub fn unix_secs(v: i64) -> i64 {
    from_unix_ns(v).0
}

/// Unix seconds as RFC 3339 UTC (`2026-03-01T02:22:00Z`), any second:
/// before 1970 (`1960-01-01T00:00:00Z`) and after 2262 as what they are;
/// a year past 9999 or before 0 with its sign, as ISO 8601 extends it.
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days (Howard Hinnant's algorithm), in i128 so no
    // day count overflows.
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("+{y}")
    };
    format!(
        "{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The inverse of [`format_time`] (from 1970 on); `None` for anything else.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(text).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_second_prints_as_the_date_it_is() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_772_331_720), "2026-03-01T02:22:00Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59Z");
        // touch -d 1960-01-01 / 2300-01-01 (UTC)
        assert_eq!(format_time(-315_619_200), "1960-01-01T00:00:00Z");
        assert_eq!(format_time(10_413_792_000), "2300-01-01T00:00:00Z");
        assert_eq!(format_time(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(format_time(253_402_300_800), "+10000-01-01T00:00:00Z");
        for t in [0, 1, 86_399, 951_782_400, 1_700_000_000] {
            assert_eq!(parse_time(&format_time(t)), Some(t));
            let human = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64),
            );
            assert_eq!(format_time(t), human.to_string());
        }
        format_time(i64::MIN);
        format_time(i64::MAX);
    }

    #[test]
    fn file_times_keep_nanoseconds_in_range_and_seconds_beyond_in_order() {
        assert_eq!(unix_ns(1, 5), 1_000_000_005);
        assert_eq!(unix_ns(-1, 5), -999_999_995);
        let times = [
            (i64::MIN, 0),
            (-EDGE_S - 7, 0),
            (-EDGE_S, 0),
            (-EDGE_S + 1, 0),
            (-315_619_200, 0),
            (-1, 999_999_999),
            (0, 0),
            (1_600_000_000, 123),
            (EDGE_S - 1, 999_999_999),
            (EDGE_S, 0),
            (10_413_792_000, 0),
            (EDGE_S + SECONDS_TIER - 2, 0),
        ];
        let mut last = i64::MIN;
        for (i, (s, n)) in times.into_iter().enumerate() {
            let v = unix_ns(s, n);
            if i > 0 {
                assert!(v > last, "{s}.{n}");
            }
            last = v;
            if s != i64::MIN {
                assert_eq!(from_unix_ns(v), (s, n), "{s}.{n}");
            }
        }
        assert_eq!(unix_secs(unix_ns(10_413_792_000, 7)), 10_413_792_000);
    }
}
