//! The `Date` header, formatted once per second rather than per request.

/// Length of `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`.
pub(crate) const DATE_LINE_LEN: usize = 37;

pub struct DateCache {
    second: i64,
    line: [u8; DATE_LINE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut cache = DateCache {
            second: i64::MIN,
            line: [0; DATE_LINE_LEN],
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
            self.line = format_date_line(unix_seconds);
        }
    }

    pub fn line(&self) -> &[u8] {
        &self.line
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

#[cfg(test)]
mod tests {
    use super::*;

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
