//! Socket activation as `sd_listen_fds_with_names(3)` specifies it,
//! without libsystemd: `LISTEN_PID` must be this process, `LISTEN_FDS`
//! descriptors start at 3 (`SD_LISTEN_FDS_START`), `LISTEN_FDNAMES` holds
//! their colon-separated names; each descriptor is made close-on-exec,
//! and the three variables are removed on request, whatever the outcome.

use std::ffi::OsString;
use std::io;
use std::os::fd::RawFd;

use super::cvt;

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// What the environment hands this process.
#[derive(Debug, PartialEq, Eq)]
pub enum Activation {
    /// `LISTEN_PID` or `LISTEN_FDS` is not set.
    NotSet,
    /// `LISTEN_PID` names another process (the variables were inherited).
    OtherProcess(u32),
    /// The descriptors, from 3 on, with their names ("unknown" when
    /// `LISTEN_FDNAMES` is not set, as sd_listen_fds_with_names says).
    Fds(Vec<(RawFd, String)>),
}

fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

fn number(value: &OsString) -> io::Result<u32> {
    value
        .to_str()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Reads (and with `unset`, removes) the activation variables.
pub fn listen_fds(unset: bool) -> io::Result<Activation> {
    let result = read();
    if unset {
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
    }
    result
}

fn read() -> io::Result<Activation> {
    let (Some(pid), Some(fds)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else {
        return Ok(Activation::NotSet);
    };
    let pid = number(&pid)?;
    if pid == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    if pid != std::process::id() {
        return Ok(Activation::OtherProcess(pid));
    }
    let n = number(&fds)?;
    // More than any loop serves, and far from descriptor numbers' end.
    if n > 65_536 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let names: Vec<String> = match var("LISTEN_FDNAMES") {
        None => vec!["unknown".to_string(); n as usize],
        Some(v) => {
            let v = v
                .into_string()
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let names: Vec<String> = v.split(':').map(str::to_string).collect();
            if names.len() != n as usize {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            names
        }
    };
    let mut out = Vec::with_capacity(n as usize);
    for (i, name) in names.into_iter().enumerate() {
        let fd = LISTEN_FDS_START + i as RawFd;
        set_cloexec(fd)?;
        out.push((fd, name));
    }
    Ok(Activation::Fds(out))
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer descriptor; a closed one gives EBADF.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    if flags & libc::FD_CLOEXEC == 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    }
    Ok(())
}
