//! RFC 3339 timestamps for fronts that want them (UTC, explicit offset).

/// `2026-01-01T04:00:00+00:00` for Unix seconds `secs`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `2026-01-01T04:00:00Z`: UTC with `Z`, whole seconds.
pub fn rfc3339_z(secs: i64) -> String {
    let mut s = rfc3339(secs);
    s.truncate(s.len() - "+00:00".len());
    s.push('Z');
    s
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
    }
}
