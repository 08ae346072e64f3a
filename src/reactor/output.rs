//! `Output`: what a connection has still to send. Bytes the library wrote
//! (heads, copied bodies, chunks) are in a pooled `Buffer`; a body the
//! application lent (`Response_SendBorrowed`) follows them as a `Borrowed`
//! segment that is sent from the application's memory, never copied; a
//! file (`Response_SendFile`) follows them as a `FileBody` sent with
//! `sendfile`. While a borrowed body or a file is queued nothing is
//! appended after it (no new request starts), so the bytes go out in order.

use std::os::raw::c_void;
use std::ptr::NonNull;

use super::buffer::Buffer;
use super::buffer_pool::BufferPool;
use super::file_body::FileBody;

/// Called once when the library no longer needs a borrowed body (C calling
/// convention: the application supplies it).
pub type ReleaseFn = unsafe extern "C" fn(user: *mut c_void);

/// A release call waiting to be made once no borrow of the loop is alive.
#[derive(Clone, Copy)]
pub struct Release {
    pub release: ReleaseFn,
    pub user: *mut c_void,
}

/// A body the application lent: `len` bytes at `ptr`, valid and unchanged
/// until its release is called.
pub struct Borrowed {
    ptr: NonNull<u8>,
    len: usize,
    /// Bytes already taken by the kernel.
    sent: usize,
    release: Option<ReleaseFn>,
    user: *mut c_void,
}

impl Borrowed {
    /// # Safety
    /// `ptr` addresses `len` readable bytes that stay valid and unchanged
    /// until `release(user)` is called (or, with no `release`, as long as
    /// the loop exists).
    pub unsafe fn new(
        ptr: *const u8,
        len: usize,
        release: Option<ReleaseFn>,
        user: *mut c_void,
    ) -> Borrowed {
        Borrowed {
            ptr: NonNull::new(ptr as *mut u8).unwrap_or(NonNull::dangling()),
            len,
            sent: 0,
            release,
            user,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes not yet sent.
    fn rest(&self) -> &[u8] {
        if self.sent == self.len {
            return &[];
        }
        // SAFETY: the constructor's contract: `len` readable bytes at `ptr`
        // (a real pointer: `len` > `sent` >= 0) until the release, which is
        // only owed once this has left the output (`Output::consume`,
        // `Output::take_borrowed`); `sent < len`, so the range
        // `sent..len` lies inside them.
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(self.sent), self.len - self.sent)
        }
    }

    /// The release call owed to the application, if it gave one. Consumes
    /// the body: nothing reads it afterwards.
    pub fn into_release(self) -> Option<Release> {
        self.release.map(|release| Release {
            release,
            user: self.user,
        })
    }
}

#[derive(Default)]
pub struct Output {
    buf: Buffer,
    body: Option<Borrowed>,
    /// A file to send after the copied bytes (never together with `body`).
    file: Option<FileBody>,
    /// Bytes of this output's storage counted in the loop's total
    /// (`Shared::queued_output`); see `sync`.
    counted: usize,
}

impl Output {
    /// Bytes still to send, copied, borrowed and from a file.
    pub fn len(&self) -> usize {
        let file = self.file.as_ref().map_or(0, |f| f.remaining());
        self.buf.len()
            + self.body.as_ref().map_or(0, |b| b.len - b.sent)
            + usize::try_from(file).unwrap_or(usize::MAX / 2)
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.body.is_none() && self.file.is_none()
    }

    /// Copied bytes still to send (what this connection holds of the heap).
    pub fn copied(&self) -> usize {
        self.buf.len()
    }

    /// A borrowed body or a file is queued: nothing may be appended until
    /// it is out.
    pub fn has_borrowed(&self) -> bool {
        self.body.is_some() || self.file.is_some()
    }

    /// The copied bytes to append to, taken from `pool` if there are none.
    pub fn writer(&mut self, pool: &mut BufferPool) -> &mut Vec<u8> {
        debug_assert!(
            self.body.is_none() && self.file.is_none(),
            "appending after a borrowed body or a file"
        );
        self.buf.writer(pool)
    }

    pub fn append(&mut self, pool: &mut BufferPool, bytes: &[u8]) {
        self.writer(pool).extend_from_slice(bytes);
    }

    pub fn storage_mut(&mut self) -> &mut Vec<u8> {
        self.buf.storage_mut()
    }

    /// Forgets the copied bytes (keeps the storage).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Gives the copied bytes' storage back to `pool` (they must be sent or
    /// abandoned; a borrowed body is left as it is), and takes it out of the
    /// loop's `total`.
    #[inline]
    pub fn release(&mut self, pool: &mut BufferPool, total: &mut usize) {
        self.buf.release(pool);
        self.sync(total);
    }

    /// Queues a lent body after the copied bytes.
    pub fn attach(&mut self, body: Borrowed) {
        debug_assert!(self.body.is_none());
        self.body = Some(body);
    }

    /// Queues a file after the copied bytes.
    pub fn attach_file(&mut self, file: FileBody) {
        debug_assert!(self.body.is_none() && self.file.is_none());
        self.file = Some(file);
    }

    /// The file's next `sendfile` (descriptor, offset, count), once every
    /// copied byte is out.
    pub fn file_next(&self) -> Option<(std::os::fd::RawFd, u64, usize)> {
        if !self.buf.is_empty() {
            return None;
        }
        self.file.as_ref().map(FileBody::next)
    }

    /// Drops a queued file (the connection is closing): its descriptor is
    /// closed now.
    pub fn drop_file(&mut self) {
        self.file = None;
    }

    /// What to send next: the copied bytes, then the borrowed ones.
    pub fn slices(&self) -> (&[u8], &[u8]) {
        (
            self.buf.unread(),
            self.body.as_ref().map_or(&[], |b| b.rest()),
        )
    }

    /// Marks `n` bytes as sent (copied ones first, then the borrowed body
    /// or the file). Returns the borrowed body once all of it was sent: the
    /// caller owes its release. A file sent to its end is dropped here,
    /// which closes its descriptor.
    pub fn consume(&mut self, n: usize) -> Option<Borrowed> {
        let copied = n.min(self.buf.len());
        self.buf.consume(copied);
        let rest = n - copied;
        if let Some(file) = &mut self.file {
            file.advance(rest);
            if file.remaining() == 0 {
                self.file = None;
            }
            return None;
        }
        let body = self.body.as_mut()?;
        body.sent = (body.sent + rest).min(body.len);
        if body.sent == body.len {
            self.body.take()
        } else {
            None
        }
    }

    /// Removes a borrowed body that will not be sent (the connection is
    /// closing): the caller owes its release.
    pub fn take_borrowed(&mut self) -> Option<Borrowed> {
        self.body.take()
    }

    /// Brings the loop's total of output memory (`total`) up to date with
    /// this connection's: the capacity of its storage, which is what it
    /// holds of the heap (a 1 MiB body half sent still holds 1 MiB).
    pub fn sync(&mut self, total: &mut usize) {
        let now = self.capacity();
        *total = *total - self.counted + now;
        self.counted = now;
    }

    /// Capacity of the copied bytes' storage.
    pub fn capacity(&self) -> usize {
        self.buf.storage().capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_bytes_go_first_then_the_borrowed_body() {
        static BODY: [u8; 5] = *b"world";
        let mut pool = BufferPool::new(64, 4);
        let mut out = Output::default();
        out.append(&mut pool, b"hello ");
        // SAFETY: a static lives for ever.
        out.attach(unsafe { Borrowed::new(BODY.as_ptr(), BODY.len(), None, std::ptr::null_mut()) });
        assert_eq!(out.len(), 11);
        assert_eq!(out.slices(), (&b"hello "[..], &b"world"[..]));
        assert!(out.consume(4).is_none());
        assert_eq!(out.slices(), (&b"o "[..], &b"world"[..]));
        assert!(out.consume(4).is_none());
        assert_eq!(out.slices(), (&b""[..], &b"rld"[..]));
        assert!(out.consume(3).is_some());
        assert!(out.is_empty() && !out.has_borrowed());
        let mut total = 100;
        out.append(&mut pool, b"abc");
        out.sync(&mut total);
        assert_eq!(total, 100 + out.capacity());
        out.writer(&mut pool).reserve(1000);
        out.sync(&mut total);
        assert_eq!(total, 100 + out.capacity());
        assert!(out.capacity() >= 1003);
        out.release(&mut pool, &mut total);
        assert_eq!(total, 100);
    }
}
