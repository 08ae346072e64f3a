//! Files the application hands over for a response: what `fstat` says of
//! them, reading a small one, duplicating and closing descriptors.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use super::{cvt, cvt_size};

/// What a response needs to know of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub regular: bool,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

pub fn meta(fd: RawFd) -> io::Result<FileMeta> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` into valid memory.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    Ok(FileMeta {
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
        size: st.st_size.max(0) as u64,
        mtime_sec: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec,
    })
}

/// Reads up to `buf.len()` bytes at `offset` (EINTR retried).
pub fn pread(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes.
        let n = unsafe {
            libc::pread(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                offset as libc::off_t,
            )
        };
        match cvt_size(n) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// A new close-on-exec descriptor for the same open file (which shares
/// the file offset; nothing here uses it: `pread` and `sendfile` take their
/// own).
pub fn dup(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: fcntl with F_DUPFD_CLOEXEC only reads its integer arguments.
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// Closes a descriptor the library owns. EINTR is not retried (on Linux
/// the descriptor is closed all the same); errors are logged.
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    if unsafe { libc::close(fd) } < 0 {
        log::warn!("close fd {fd}: {}", io::Error::last_os_error());
    }
}
