//! RFC 3339 timestamps for fronts that want them (UTC, whole seconds).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-01-01T04:00:00Z`: UTC with `Z`, whole seconds (SFTPGo, ICA). An instant out of
/// RFC 3339's range (before year 0 or after 9999) is written as the nearest end of it.
pub fn rfc3339_z(secs: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp(secs.clamp(-62_167_219_200, 253_402_300_799))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Seconds since the epoch by the system clock (for answers made outside the engine, which
/// has its own clock).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `2026-01-01T04:00:00+00:00`: the same with an explicit offset (Tapis, whose client parses
/// it as a time with offset).
pub fn rfc3339(secs: i64) -> String {
    let mut s = rfc3339_z(secs);
    s.pop();
    s.push_str("+00:00");
    s
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00+00:00");
        assert_eq!(rfc3339(1_767_240_000), "2026-01-01T04:00:00+00:00");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59+00:00");
        assert_eq!(super::rfc3339_z(1_767_240_000), "2026-01-01T04:00:00Z");
        assert_eq!(super::rfc3339_z(i64::MAX), "9999-12-31T23:59:59Z");
    }
}
