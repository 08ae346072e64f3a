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
    /// Whitespace after the digits: only more of it, ';' or CR may follow.
    SizeWs,
    /// Inside extensions: skipped until CR.
    Extension,
    /// Seen the CR ending the size line.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    DataLf,
    /// In the trailer section, at the start of a line.
    TrailerLineStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Seen CR ending a trailer line (or the final empty line).
    TrailerLf {
        empty: bool,
    },
    Done,
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
                        if self.digits >= 15 {
                            return Err(400);
                        }
                        self.size = self.size * 16 + v as u64;
                        self.digits += 1;
                        self.line_len += 1;
                        read += 1;
                    } else if self.digits == 0 {
                        return Err(400);
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                        read += 1;
                    } else if b == b';' {
                        self.state = State::Extension;
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
                State::SizeWs => {
                    match b {
                        b' ' | b'\t' => {}
                        b';' => self.state = State::Extension,
                        b'\r' => self.state = State::SizeLf,
                        _ => return Err(400),
                    }
                    self.line_len += 1;
                    if self.line_len > MAX_SIZE_LINE {
                        return Err(400);
                    }
                    read += 1;
                }
                State::Extension => {
                    // Extensions are skipped; a bare LF or other control
                    // byte inside one is malformed.
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(400);
                    }
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
                        if self.decoded as u64 + self.size > max_body as u64 {
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
                State::TrailerLineStart | State::TrailerLine => {
                    let at_start = self.state == State::TrailerLineStart;
                    if b == b'\r' {
                        self.state = State::TrailerLf { empty: at_start };
                    } else if b == b'\n' || b == 0 {
                        return Err(400);
                    } else {
                        self.state = State::TrailerLine;
                    }
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
        assert_eq!(decode_all(b"fffffffffffffffff\r\n", 64).unwrap_err(), 400);
        assert_eq!(decode_all(b"200000\r\n", 64).unwrap_err(), 413);
        assert_eq!(
            decode_all(b"2 erfrferferf\r\naa\r\n0\r\n\r\n", 64).unwrap_err(),
            400
        );
        assert!(decode_all(b"2 ;x=y\r\naa\r\n0 \r\n\r\n", 64).is_ok());
    }
}
