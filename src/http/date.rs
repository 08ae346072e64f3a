//! HTTP-dates (RFC 9110 5.6.7): the `Date` header, formatted once per
//! second rather than per request; any date formatted (`Last-Modified`);
//! and the three formats a recipient must parse (`If-Modified-Since`,
//! `If-Range`).

/// Length of `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`.
pub(crate) const DATE_LINE_LEN: usize = 37;

/// `HTTP/1.1 200 OK\r\n`, the status line of most responses.
const OK_STATUS_LINE: &[u8; 17] = b"HTTP/1.1 200 OK\r\n";

/// Length of the 200 status line followed by the Date line.
pub(crate) const OK_HEAD_START_LEN: usize = OK_STATUS_LINE.len() + DATE_LINE_LEN;

pub struct DateCache {
    second: i64,
    /// `HTTP/1.1 200 OK\r\n` then the Date line: the start of most
    /// response heads kept whole, so starting a head is one fixed-size copy.
    ok_start: [u8; OK_HEAD_START_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut cache = DateCache {
            second: i64::MIN,
            ok_start: [0; OK_HEAD_START_LEN],
        };
        cache.update(0);
        cache
    }
}

impl DateCache {
    /// Re-formats the line if `unix_seconds` is a new second.
    pub fn update(&mut self, unix_seconds: i64) {
        if unix_seconds != self.second {
            self.second = unix_seconds;
            self.ok_start[..OK_STATUS_LINE.len()].copy_from_slice(OK_STATUS_LINE);
            self.ok_start[OK_STATUS_LINE.len()..].copy_from_slice(&format_date_line(unix_seconds));
        }
    }

    /// The whole line, CRLF included. A fixed-size array, so appending it
    /// is a constant-size copy (a few moves, no call).
    pub fn line(&self) -> &[u8; DATE_LINE_LEN] {
        self.ok_start[OK_STATUS_LINE.len()..]
            .try_into()
            .expect("the Date line ends the array")
    }

    /// The 200 status line followed by the Date line (`line`).
    pub fn ok_head_start(&self) -> &[u8; OK_HEAD_START_LEN] {
        &self.ok_start
    }
}

/// IMF-fixdate (RFC 9110 5.6.7), without allocating.
pub fn format_date_line(unix_seconds: i64) -> [u8; DATE_LINE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = unix_seconds.max(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };

    let mut out = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    out[6..9].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |buf: &mut [u8], v: i64| {
        buf[0] = b'0' + (v / 10) as u8;
        buf[1] = b'0' + (v % 10) as u8;
    };
    two(&mut out[11..13], day);
    out[14..17].copy_from_slice(MONTHS[(month - 1) as usize]);
    let y = year.clamp(0, 9999);
    two(&mut out[18..20], y / 100);
    two(&mut out[20..22], y % 100);
    two(&mut out[23..25], hour);
    two(&mut out[26..28], minute);
    two(&mut out[29..31], second);
    out
}

/// `unix_seconds` as an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn format_http_date(unix_seconds: i64) -> [u8; 29] {
    let line = format_date_line(unix_seconds);
    let mut out = [0; 29];
    out.copy_from_slice(&line[6..35]);
    out
}

const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 4 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
}

fn month(s: &[u8]) -> Option<i64> {
    MONTH_NAMES
        .iter()
        .position(|m| &m[..] == s)
        .map(|i| i as i64 + 1)
}

/// `hh:mm:ss` as seconds of the day.
fn time_of_day(s: &[u8]) -> Option<i64> {
    if s.len() != 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let (h, m, sec) = (number(&s[0..2])?, number(&s[3..5])?, number(&s[6..8])?);
    // 60: a leap second, as the grammar allows.
    (h < 24 && m < 60 && sec <= 60).then_some(h * 3600 + m * 60 + sec)
}

fn seconds(year: i64, month: i64, day: i64, tod: i64) -> Option<i64> {
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + tod)
}

/// Parses an HTTP-date in any of its three formats (RFC 9110 5.6.7) into
/// Unix seconds: IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete
/// RFC 850 form `Sunday, 06-Nov-94 08:49:37 GMT` (a two-digit year below 70
/// is 20yy, otherwise 19yy) and asctime's `Sun Nov  6 08:49:37 1994`. The
/// day name is not checked against the date. None if it does not parse.
pub fn parse_http_date(s: &[u8]) -> Option<i64> {
    let s = s.trim_ascii();
    let mut words: [&[u8]; 6] = [&[]; 6];
    let mut n = 0;
    for w in s.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        *words.get_mut(n)? = w;
        n += 1;
    }
    match &words[..n] {
        // IMF-fixdate: day-name "," SP day SP month SP year SP time SP "GMT"
        [name, day, mon, year, time, b"GMT"]
            if name.len() == 4 && name.ends_with(b",") && day.len() == 2 && year.len() == 4 =>
        {
            seconds(number(year)?, month(mon)?, number(day)?, time_of_day(time)?)
        }
        // rfc850-date: day-name-l "," SP day "-" month "-" 2DIGIT SP time SP "GMT"
        [name, date, time, b"GMT"] if name.ends_with(b",") && date.len() == 9 => {
            if date[2] != b'-' || date[6] != b'-' {
                return None;
            }
            let yy = number(&date[7..9])?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            seconds(
                year,
                month(&date[3..6])?,
                number(&date[0..2])?,
                time_of_day(time)?,
            )
        }
        // asctime-date: day-name SP month SP ( 2DIGIT / ( SP DIGIT )) SP time SP year
        [name, mon, day, time, year] if name.len() == 3 && year.len() == 4 => {
            seconds(number(year)?, month(mon)?, number(day)?, time_of_day(time)?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache's 200 head start is the status line then the Date line
    /// of the current second, and follows the clock from one second to
    /// the next.
    #[test]
    fn cached_lines_follow_the_second() {
        let mut cache = DateCache::default();
        for secs in [784_111_777, 784_111_778, 1_700_000_000] {
            cache.update(secs);
            assert_eq!(cache.line(), &format_date_line(secs));
            let start = cache.ok_head_start();
            assert_eq!(&start[..17], b"HTTP/1.1 200 OK\r\n");
            assert_eq!(&start[17..], &format_date_line(secs));
        }
        cache.update(784_111_777);
        assert_eq!(cache.line(), b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    }

    #[test]
    fn parses_the_three_formats() {
        for s in [
            &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(s), Some(784_111_777), "{s:?}");
        }
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400)
        );
        assert_eq!(
            parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            parse_http_date(b"Wed, 01-Jan-25 00:00:00 GMT"),
            parse_http_date(b"Wed, 01 Jan 2025 00:00:00 GMT")
        );
        for secs in [0, 784_111_777, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for s in [
            &b""[..],
            b"yesterday",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sun, 30 Feb 1994 08:49:37 GMT",
            b"Sun, 06 Foo 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:00:00 GMT",
            b"Sun, 06 Nov 1994 08:49 GMT",
            b"Sun, 29 Feb 1900 00:00:00 GMT",
            b"Sunday, 06-Nov-1994 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 94",
        ] {
            assert_eq!(parse_http_date(s), None, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn formats_rfc_example() {
        assert_eq!(
            &format_date_line(784_111_777),
            b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        );
        assert_eq!(
            &format_date_line(951_782_400),
            b"Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n"
        );
    }
}
