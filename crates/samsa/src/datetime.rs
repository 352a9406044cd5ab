//! ISO-8601 date-times to epoch milliseconds, for `--to-datetime` and
//! `--offset @TIME`-style options: `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH[:MM]]`.
//! Without an offset the time is taken as UTC.

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, what: &str) -> anyhow::Result<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("bad {what} {s:?}");
    }
    Ok(s.parse()?)
}

/// Parses an ISO-8601 date-time into milliseconds since the Unix epoch.
pub fn parse_iso8601_ms(input: &str) -> anyhow::Result<i64> {
    let s = input.trim();
    let bad = || {
        anyhow::anyhow!(
            "{input:?} is not an ISO-8601 date-time (YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM])"
        )
    };
    let (date, rest) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut dp = date.split('-');
    let (Some(y), Some(mo), Some(d), None) = (dp.next(), dp.next(), dp.next(), dp.next()) else {
        return Err(bad());
    };
    let (y, mo, d) = (num(y, "year")?, num(mo, "month")?, num(d, "day")?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Split off the zone.
    let (time, offset_min) =
        if let Some(t) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
            (t, 0)
        } else if let Some(i) = rest.rfind(['+', '-']) {
            let (t, z) = rest.split_at(i);
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let z = &z[1..];
            let (hh, mm) = match z.split_once(':') {
                Some((h, m)) => (num(h, "zone hour")?, num(m, "zone minute")?),
                None if z.len() == 4 => (num(&z[..2], "zone hour")?, num(&z[2..], "zone minute")?),
                None => (num(z, "zone hour")?, 0),
            };
            (t, sign * (hh * 60 + mm))
        } else {
            (rest, 0)
        };
    let (mut h, mut mi, mut sec, mut ms) = (0, 0, 0, 0);
    if !time.is_empty() {
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let mut tp = hms.split(':');
        h = num(tp.next().ok_or_else(bad)?, "hour")?;
        mi = tp
            .next()
            .map(|m| num(m, "minute"))
            .transpose()?
            .unwrap_or(0);
        sec = tp
            .next()
            .map(|x| num(x, "second"))
            .transpose()?
            .unwrap_or(0);
        if tp.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        if let Some(f) = frac {
            let digits: String = f.chars().take(3).collect();
            let v = num(&digits, "fraction")?;
            ms = v * 10i64.pow(3 - digits.len() as u32);
        }
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Ok(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_iso8601_ms("1970-01-02").unwrap(), 86_400_000);
        // 2024-02-29T12:34:56.789Z: 19782 days after the epoch.
        assert_eq!(
            parse_iso8601_ms("2024-02-29T12:34:56.789Z").unwrap(),
            19_782 * 86_400_000 + (12 * 3600 + 34 * 60 + 56) * 1000 + 789
        );
        assert_eq!(
            parse_iso8601_ms("2024-02-29T14:34:56.789+02:00").unwrap(),
            parse_iso8601_ms("2024-02-29T12:34:56.789Z").unwrap()
        );
        assert_eq!(
            parse_iso8601_ms("2000-01-01T00:00:00-0130").unwrap(),
            parse_iso8601_ms("2000-01-01T01:30:00Z").unwrap()
        );
        assert_eq!(
            parse_iso8601_ms("2000-03-01T00:00").unwrap(),
            951_868_800_000
        );
        assert!(parse_iso8601_ms("yesterday").is_err());
        assert!(parse_iso8601_ms("2024-13-01").is_err());
    }
}
