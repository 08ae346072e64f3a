//! `Transfer-Encoding: chunked` request bodies, decoded in place.
//!
//! The decoded body never outgrows the raw bytes it came from, so chunk data
//! is moved down over the framing inside the connection's own buffer: the
//! handler sees one contiguous body and nothing is copied elsewhere. The
//! decoder keeps its state between reads, so a body trickling in byte by
//! byte costs O(n) in total.

/// Longest chunk-size line accepted (hex digits plus extensions).
const MAX_SIZE_LINE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// Whitespace (BWS) after the digits: only more of it or ';' may follow.
    SizeWs,
    /// After ';' (and BWS): a chunk-ext-name must start.
    ExtPreName,
    /// Inside a chunk-ext-name (a token).
    ExtName,
    /// BWS after a name: '=' or ';' must follow.
    ExtNameWs,
    /// After '=' (and BWS): a token or a quoted-string must start.
    ExtPreValue,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value, and right after a backslash in one.
    ExtQuoted,
    ExtQuotedPair,
    /// Right after the closing quote of a value.
    ExtValueEnd,
    /// BWS after a value: only ';' may follow.
    ExtValueWs,
    /// Seen the CR ending the size line.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    DataLf,
    /// In the trailer section, at the start of a line.
    TrailerLineStart,
    /// Inside a trailer field name (a token), and inside its value.
    TrailerName,
    TrailerValue,
    /// Seen CR ending a trailer line (or the final empty line).
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// tchar (RFC 9110 5.6.2).
static TOKEN: [bool; 256] = super::alnum_and(b"!#$%&'*+-.^_`|~");

/// A field-value byte: HTAB, SP, VCHAR, obs-text (RFC 9110 5.5).
fn field_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// qdtext (RFC 9110 5.6.4): HTAB, SP, VCHAR but '"' and '\\', obs-text.
fn qdtext(b: u8) -> bool {
    field_value_byte(b) && b != b'"' && b != b'\\'
}

#[derive(Clone, Copy, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: usize,
    line_len: usize,
    trailer_bytes: usize,
    /// Decoded bytes so far (they occupy `buf[..decoded]`).
    decoded: usize,
}

pub enum Progress {
    /// All input consumed; the body is not complete yet.
    NeedMore,
    /// Body complete: `decoded` bytes of body, `consumed` raw bytes used.
    Done { decoded: usize, consumed: usize },
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            trailer_bytes: 0,
            decoded: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn decoded(&self) -> usize {
        self.decoded
    }

    /// The caller removed the decoded bytes from the front of its buffer
    /// (a streamed body piece was delivered): decoding restarts at 0.
    pub fn forget_decoded(&mut self) {
        self.decoded = 0;
    }

    /// Decodes `buf[self.decoded..]` (raw bytes not yet decoded) in place.
    /// On `NeedMore` the decoded bytes sit at `buf[..decoded()]` and the raw
    /// bytes still to be read must be appended right after them: the caller
    /// truncates its buffer to `decoded()` (all raw input was consumed).
    /// Errors are HTTP statuses: 400 malformed, 413 body too large,
    /// 431 trailers too large.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        max_body: usize,
        max_trailer: usize,
    ) -> Result<Progress, u16> {
        let mut read = self.decoded;
        while read < buf.len() {
            let b = buf[read];
            match self.state {
                State::Size => {
                    if let Some(v) = hex_value(b) {
                        // Any 1*HEXDIG is a valid size (leading zeros too);
                        // one too large for 64 bits saturates and is then
                        // refused by the body limit (413), as a huge
                        // Content-Length is. The line limit bounds zeros.
                        self.size = self
                            .size
                            .checked_mul(16)
                            .map_or(u64::MAX, |s| s.saturating_add(v as u64));
                        self.digits += 1;
                        self.line_len += 1;
                        if self.line_len > MAX_SIZE_LINE {
                            return Err(400);
                        }
                        read += 1;
                    } else if self.digits == 0 {
                        return Err(400);
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                        read += 1;
                    } else if b == b';' {
                        self.state = State::ExtPreName;
                        self.line_len += 1;
                        read += 1;
                    } else if b == b' ' || b == b'\t' {
                        // BWS before an extension or the CR: nothing else.
                        self.state = State::SizeWs;
                        self.line_len += 1;
                        read += 1;
                    } else {
                        return Err(400);
                    }
                }
                State::SizeWs
                | State::ExtPreName
                | State::ExtName
                | State::ExtNameWs
                | State::ExtPreValue
                | State::ExtToken
                | State::ExtQuoted
                | State::ExtQuotedPair
                | State::ExtValueEnd
                | State::ExtValueWs => {
                    // chunk-ext = *( BWS ";" BWS chunk-ext-name
                    //                [ BWS "=" BWS chunk-ext-val ] )
                    // chunk-ext-val = token / quoted-string (RFC 9112 7.1.1):
                    // checked, then ignored. Whitespace is allowed only
                    // where the grammar has BWS: never right before CR.
                    let ws = b == b' ' || b == b'\t';
                    self.state = match (self.state, b) {
                        (State::SizeWs, _) if ws => State::SizeWs,
                        (State::SizeWs, b';') => State::ExtPreName,
                        (State::ExtPreName, _) if ws => State::ExtPreName,
                        (State::ExtPreName | State::ExtName, _) if TOKEN[b as usize] => {
                            State::ExtName
                        }
                        (State::ExtName | State::ExtNameWs, _) if ws => State::ExtNameWs,
                        (State::ExtName | State::ExtNameWs, b'=') => State::ExtPreValue,
                        (State::ExtPreValue, _) if ws => State::ExtPreValue,
                        (State::ExtPreValue, b'"') => State::ExtQuoted,
                        (State::ExtPreValue | State::ExtToken, _) if TOKEN[b as usize] => {
                            State::ExtToken
                        }
                        (State::ExtQuoted, b'"') => State::ExtValueEnd,
                        (State::ExtQuoted, b'\\') => State::ExtQuotedPair,
                        (State::ExtQuoted, _) if qdtext(b) => State::ExtQuoted,
                        (State::ExtQuotedPair, _) if field_value_byte(b) => State::ExtQuoted,
                        (State::ExtToken | State::ExtValueEnd | State::ExtValueWs, _) if ws => {
                            State::ExtValueWs
                        }
                        (
                            State::ExtName
                            | State::ExtNameWs
                            | State::ExtToken
                            | State::ExtValueEnd
                            | State::ExtValueWs,
                            b';',
                        ) => State::ExtPreName,
                        (State::ExtName | State::ExtToken | State::ExtValueEnd, b'\r') => {
                            State::SizeLf
                        }
                        _ => return Err(400),
                    };
                    self.line_len += 1;
                    if self.line_len > MAX_SIZE_LINE {
                        return Err(400);
                    }
                    read += 1;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(400);
                    }
                    read += 1;
                    self.line_len = 0;
                    self.digits = 0;
                    if self.size == 0 {
                        self.state = State::TrailerLineStart;
                    } else {
                        if (self.decoded as u64).saturating_add(self.size) > max_body as u64 {
                            return Err(413);
                        }
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let available = (buf.len() - read) as u64;
                    let n = available.min(self.size) as usize;
                    buf.copy_within(read..read + n, self.decoded);
                    self.decoded += n;
                    read += n;
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(400);
                    }
                    self.state = State::DataLf;
                    read += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(400);
                    }
                    self.state = State::Size;
                    read += 1;
                }
                State::TrailerLineStart | State::TrailerName | State::TrailerValue => {
                    // trailer-section = *( field-line CRLF ), field-line =
                    // field-name ":" OWS field-value OWS (RFC 9112 7.1.2,
                    // 5): the same syntax as a header line, so no space
                    // before the colon and no obs-fold. The fields are then
                    // discarded (7.1.2 allows it): none can change framing.
                    self.state = match (self.state, b) {
                        (State::TrailerLineStart, b'\r') => State::TrailerLf { empty: true },
                        (State::TrailerLineStart | State::TrailerName, _) if TOKEN[b as usize] => {
                            State::TrailerName
                        }
                        (State::TrailerName, b':') => State::TrailerValue,
                        (State::TrailerValue, b'\r') => State::TrailerLf { empty: false },
                        (State::TrailerValue, _) if field_value_byte(b) => State::TrailerValue,
                        _ => return Err(400),
                    };
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > max_trailer {
                        return Err(431);
                    }
                    read += 1;
                }
                State::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(400);
                    }
                    read += 1;
                    if empty {
                        self.state = State::Done;
                        return Ok(Progress::Done {
                            decoded: self.decoded,
                            consumed: read,
                        });
                    }
                    self.state = State::TrailerLineStart;
                }
                State::Done => break,
            }
        }
        if self.state == State::Done {
            return Ok(Progress::Done {
                decoded: self.decoded,
                consumed: read,
            });
        }
        Ok(Progress::NeedMore)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(raw: &[u8], split: usize) -> Result<(Vec<u8>, usize), u16> {
        // Feed `raw` in pieces of `split` bytes, truncating as the contract says.
        let mut dec = ChunkedDecoder::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        loop {
            let end = (fed + split).min(raw.len());
            buf.extend_from_slice(&raw[fed..end]);
            let before = buf.len();
            match dec.decode(&mut buf, 1 << 20, 1024)? {
                Progress::Done { decoded, consumed } => {
                    let leftover = before - consumed;
                    return Ok((buf[..decoded].to_vec(), end - leftover));
                }
                Progress::NeedMore => {
                    buf.truncate(dec.decoded());
                    fed = end;
                    if fed == raw.len() {
                        return Err(0);
                    }
                }
            }
        }
    }

    #[test]
    fn decodes_at_every_split() {
        let raw =
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: y\r\n\r\nNEXT";
        for split in 1..raw.len() {
            let (body, consumed) = decode_all(raw, split).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
            assert_eq!(&raw[consumed..], b"NEXT", "split {split}");
        }
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(decode_all(b"zz\r\n", 64).unwrap_err(), 400);
        assert_eq!(decode_all(b"3\nabc\r\n0\r\n\r\n", 64).unwrap_err(), 400);
        assert_eq!(decode_all(b"3\r\nabcX\r\n0\r\n\r\n", 64).unwrap_err(), 400);
        assert_eq!(decode_all(b"fffffffffffffffff\r\n", 64).unwrap_err(), 413);
        assert_eq!(decode_all(b"200000\r\n", 64).unwrap_err(), 413);
        assert_eq!(
            decode_all(b"2 erfrferferf\r\naa\r\n0\r\n\r\n", 64).unwrap_err(),
            400
        );
        assert!(decode_all(b"2 ;x=y\r\naa\r\n0\r\n\r\n", 64).is_ok());
        assert_eq!(decode_all(b"0 \r\n\r\n", 64).unwrap_err(), 400);
        assert!(decode_all(b"0000000000000000000001\r\na\r\n0\r\n\r\n", 64).is_ok());
        assert!(decode_all(b"1 ; a = b ;c=\"q\\\"\" ; d\r\na\r\n0;e=\"\"\r\n\r\n", 64).is_ok());
        for bad in [
            &b"1;\r\na\r\n0\r\n\r\n"[..],
            b"1;a b\r\na\r\n0\r\n\r\n",
            b"1;a=\r\na\r\n0\r\n\r\n",
            b"1;a=\"x\r\na\r\n0\r\n\r\n",
            b"1;a=b \r\na\r\n0\r\n\r\n",
            b"1;a@b\r\na\r\n0\r\n\r\n",
            b"0\r\nX y\r\n\r\n",
            b"0\r\nX : y\r\n\r\n",
            b"0\r\n: y\r\n\r\n",
            b"0\r\nX: y\r\n z\r\n\r\n",
            b"0\r\nX: a\x01b\r\n\r\n",
        ] {
            assert_eq!(
                decode_all(bad, 64).unwrap_err(),
                400,
                "{}",
                bad.escape_ascii()
            );
        }
    }
}
