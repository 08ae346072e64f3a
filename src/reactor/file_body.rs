//! `FileBody`: a file the connection sends after a response's head with
//! `sendfile`. It owns its descriptor (the application's own, handed over
//! with `CONNECTION_FILE_CLOSE`, or a duplicate) and closes it exactly
//! once, when dropped: after the last byte went out, or with the
//! connection, whatever ended it.

use std::os::fd::RawFd;

use crate::sys::file;

/// Most bytes one `sendfile` call is asked for.
const CHUNK_MAX: u64 = 1 << 30;

pub struct FileBody {
    fd: RawFd,
    offset: u64,
    remaining: u64,
}

impl FileBody {
    /// Takes ownership of `fd`: it is closed when this is dropped.
    pub fn new(fd: RawFd, offset: u64, len: u64) -> FileBody {
        FileBody {
            fd,
            offset,
            remaining: len,
        }
    }

    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next `sendfile`: descriptor, offset, count.
    pub fn next(&self) -> (RawFd, u64, usize) {
        (self.fd, self.offset, self.remaining.min(CHUNK_MAX) as usize)
    }

    /// `n` bytes went to the kernel.
    pub fn advance(&mut self, n: usize) {
        let n = (n as u64).min(self.remaining);
        self.offset += n;
        self.remaining -= n;
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        file::close(self.fd);
    }
}
