//! Parsing `retry-after-ms` and `Retry-After`.

use std::time::Duration;

use http::HeaderMap;

/// Reads a provider's retry hint from response headers, without a wall clock.
///
/// `retry-after-ms` (milliseconds, as OpenAI-compatible providers send it) wins over
/// `Retry-After` in delay-seconds form. Fractions are accepted; negative, empty or garbled values
/// are ignored; values too large for a [`Duration`] saturate to [`Duration::MAX`]. The HTTP-date
/// form of `Retry-After` needs the current time: use [`parse_retry_after_at`].
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_inner(headers, None)
}

/// Like [`parse_retry_after`], and also accepts `Retry-After` as an IMF-fixdate HTTP-date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), measured from `now_unix_millis`; a date in the past means
/// zero.
pub fn parse_retry_after_at(headers: &HeaderMap, now_unix_millis: i64) -> Option<Duration> {
    parse_inner(headers, Some(now_unix_millis))
}

fn parse_inner(headers: &HeaderMap, now_unix_millis: Option<i64>) -> Option<Duration> {
    if let Some(ms) = headers
        .get_all("retry-after-ms")
        .iter()
        .find_map(|v| v.to_str().ok().and_then(parse_number))
    {
        return Some(from_secs(ms / 1000.0));
    }
    for v in headers.get_all(http::header::RETRY_AFTER).iter() {
        let Ok(s) = v.to_str() else { continue };
        if let Some(secs) = parse_number(s) {
            return Some(from_secs(secs));
        }
        if let (Some(now), Some(at)) = (now_unix_millis, parse_imf_fixdate(s)) {
            let ms = at.saturating_sub(now).max(0);
            return Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
        }
    }
    None
}

/// A non-negative finite decimal number.
fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let x: f64 = s.parse().ok()?;
    (x.is_finite() && x >= 0.0).then_some(x)
}

fn from_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → Unix milliseconds.
fn parse_imf_fixdate(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = s.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: i64 = hms.next()?.parse().ok()?;
    let m: i64 = hms.next()?.parse().ok()?;
    let sec: i64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || parts.next().is_some() || hms.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || !(0..=23).contains(&h) || !(0..=59).contains(&m) {
        return None;
    }
    if !(0..=60).contains(&sec) || !(1970..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86_400) + h * 3600 + m * 60 + sec) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn seconds_and_millis() {
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", " 1.5 ")])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "7"), ("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_retry_after(&headers(&[])), None);
    }

    #[test]
    fn garbage_is_ignored() {
        for bad in ["", "-1", "abc", "1e3", "NaN", "inf", "1.2.3"] {
            let mut h = HeaderMap::new();
            h.insert(
                "retry-after",
                HeaderValue::from_str(bad).unwrap_or(HeaderValue::from_static("x")),
            );
            assert_eq!(parse_retry_after(&h), None, "{bad:?}");
        }
        // garbled ms falls back to seconds
        assert_eq!(
            parse_retry_after(&headers(&[
                ("retry-after-ms", "soon"),
                ("retry-after", "2")
            ])),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn huge_values_saturate() {
        let h = headers(&[("retry-after", "99999999999999999999999999999999")]);
        assert_eq!(parse_retry_after(&h), Some(Duration::MAX));
    }

    #[test]
    fn http_date() {
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(parse_retry_after(&h), None);
        let at = 784_111_777_000; // 1994-11-06T08:49:37Z
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(at));
        assert_eq!(
            parse_retry_after_at(&h, at - 30_000),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after_at(&h, at + 5_000), Some(Duration::ZERO));
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }
}
