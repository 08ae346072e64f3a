//! `sendfile(2)` from a file to a socket, without SIGPIPE.
//!
//! `sendfile` has no `MSG_NOSIGNAL`: writing to a socket whose peer is gone
//! makes the kernel raise SIGPIPE at the calling thread. The process's
//! disposition is never touched; instead, for the duration of the call:
//!
//! 1. SIGPIPE is blocked in the calling thread (`pthread_sigmask`), so a
//!    SIGPIPE the call raises stays pending instead of being delivered;
//! 2. after the call, whatever it returned, a SIGPIPE that is pending now
//!    and was not before the call is ours: it is taken off with
//!    `sigtimedwait` (zero timeout). (Not only after EPIPE: a call that
//!    moved some bytes before the peer reset returns them as a success,
//!    with the SIGPIPE of its failed last piece already raised.) One that
//!    was already pending (blocked by the application) is left alone;
//! 3. the thread's previous mask is restored.
//!
//! When SIGPIPE was not blocked before the call, none can have been pending
//! for this thread (it would have been delivered), so the "before" check
//! (`sigpending`) is only made when the application itself blocks SIGPIPE.
//! The cost on the ordinary path is two `rt_sigprocmask` calls and one
//! `rt_sigpending` per `sendfile`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// An empty signal set with SIGPIPE added.
fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given; sigaddset with a
    // valid signal number on an initialised set cannot fail.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

/// Whether SIGPIPE is pending for this thread or the process.
fn sigpipe_pending() -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending writes a whole set into valid memory; it fails only
    // for a bad pointer, which this is not. The set is initialised first so
    // that even a failure leaves it defined (empty).
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigpending(set.as_mut_ptr());
        libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    }
}

/// Takes a pending SIGPIPE off without handling it.
fn consume_sigpipe() {
    let set = sigpipe_set();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: valid set and timeout; a NULL siginfo is allowed. SIGPIPE
        // is blocked in this thread (the caller's contract), as sigtimedwait
        // requires for a well-defined result.
        let r = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
        if r >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // A signal taken, or EAGAIN: none pending after all.
            return;
        }
    }
}

/// Sends up to `count` bytes of `file`, starting at `offset`, to `socket`.
/// Returns how many were sent (0: the file ends at `offset`). EINTR is
/// retried; every other error (EAGAIN, EPIPE, ECONNRESET, EIO...) is
/// returned, and no SIGPIPE is delivered or left pending by this call.
pub fn send_file(socket: RawFd, file: RawFd, offset: u64, count: usize) -> io::Result<usize> {
    let block = sigpipe_set();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: valid sets; pthread_sigmask fails only for an invalid `how`.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &block, old.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: pthread_sigmask succeeded and wrote the previous mask.
    let old = unsafe { old.assume_init() };
    // SAFETY: `old` is an initialised set.
    let was_blocked = unsafe { libc::sigismember(&old, libc::SIGPIPE) } == 1;
    let pending_before = was_blocked && sigpipe_pending();
    let result = loop {
        let mut off = offset as libc::off_t;
        // SAFETY: plain descriptors and a valid offset pointer; the kernel
        // reads the file and writes the socket, touching no memory of ours
        // but `off`.
        let n = unsafe { libc::sendfile(socket, file, &mut off, count) };
        if n >= 0 {
            break Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            break Err(e);
        }
    };
    // Not only after EPIPE: `sendfile` moves the file in pieces, and when
    // the peer resets between two of them the call returns the bytes moved
    // so far (a success) while the failed piece has already raised
    // SIGPIPE. So whatever the result, a SIGPIPE pending now and not
    // before is ours (seen under valgrind, where the call is slow enough
    // for a reset to land mid-call: the restored mask delivered it).
    if !pending_before && sigpipe_pending() {
        consume_sigpipe();
    }
    if !was_blocked {
        // SAFETY: restores the mask read above; cannot fail with SIG_SETMASK.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    }
    result
}
