//! `RequestView`: one parsed request as the application sees it, pointing
//! into the connection's input buffer (fields NUL-terminated in place), so
//! nothing is copied per request. It lives in its own allocation, apart
//! from the loop, so no borrow of the loop made while the application runs
//! (a response call) can invalidate the application's pointer to it.

use crate::http::forwarded::Cidr;
use crate::http::request::{Head, HeaderSpan, Span};
use crate::sys::{PeerAddr, ThreadTag};

static EMPTY: [u8; 1] = [0];

pub struct RequestView {
    pub base: *const u8,
    pub method: Span,
    pub path: Span,
    pub query: Span,
    pub minor_version: u8,
    pub headers: Vec<HeaderSpan>,
    /// The head of the request being parsed or answered: the parser
    /// writes it here, in place (no `Head` made up per request).
    pub head: Head,
    pub body: *const u8,
    pub body_len: usize,
    pub peer: PeerAddr,
    pub id: u64,
    /// The proxies trusted to name the client (`Connection_SetTrustedProxies`);
    /// not per request: `fill` leaves it alone.
    pub trusted_proxies: Vec<Cidr>,
    /// Whether a peer on a Unix domain socket is a trusted proxy.
    pub trusted_unix: bool,
    /// The loop's thread, the only one allowed to read the view. Written
    /// once, at creation: `thread_of` reads it from any thread.
    thread: ThreadTag,
}

impl RequestView {
    pub fn new(max_headers: usize) -> RequestView {
        RequestView {
            base: EMPTY.as_ptr(),
            method: Span::default(),
            path: Span::default(),
            query: Span::default(),
            minor_version: 1,
            headers: Vec::with_capacity(max_headers),
            head: Head::default(),
            body: EMPTY.as_ptr(),
            body_len: 0,
            peer: PeerAddr::unspecified(),
            id: 0,
            trusted_proxies: Vec::new(),
            trusted_unix: false,
            thread: ThreadTag::current(),
        }
    }

    /// The loop thread of the view at `view`. Reads only that field,
    /// through the raw pointer, and the field is never written after
    /// creation: no data race even while the loop thread refills the view.
    ///
    /// # Safety
    /// `view` points to a live view.
    pub unsafe fn thread_of(view: *const RequestView) -> ThreadTag {
        // SAFETY: contract: live; a read of an immutable field.
        unsafe { std::ptr::addr_of!((*view).thread).read() }
    }

    /// Points the view at a request whose head (`self.head`) starts at
    /// `buf[0]` (fields already NUL-terminated); its body, `body_len`
    /// bytes, follows the head. The header spans are the view's own
    /// `headers` (the parser writes them there, or `set_headers` copies
    /// them in).
    #[inline]
    pub fn fill(&mut self, buf: &[u8], body_len: usize, peer: PeerAddr, id: u64) {
        let head = &self.head;
        self.base = buf.as_ptr();
        self.method = head.method;
        self.path = head.path;
        self.query = head.query;
        self.minor_version = head.minor_version;
        self.body = if body_len == 0 {
            EMPTY.as_ptr()
        } else {
            buf[head.len..].as_ptr()
        };
        self.body_len = body_len;
        self.peer = peer;
        self.id = id;
    }

    /// Makes `headers` the view's header spans (a request whose head was
    /// parsed earlier: a streamed body's).
    pub fn set_headers(&mut self, headers: &[HeaderSpan]) {
        self.headers.clear();
        self.headers.extend_from_slice(headers);
    }

    /// A NUL-terminated field (the static empty string for an empty one).
    pub fn str_at(&self, span: Span) -> *const u8 {
        if span.len == 0 {
            return EMPTY.as_ptr();
        }
        // SAFETY: spans were computed inside the buffer `base` points to,
        // which stays alive and unmoved while the application holds the view.
        unsafe { self.base.add(span.start as usize) }
    }

    pub fn bytes(&self, span: Span) -> &[u8] {
        if span.len == 0 {
            return &[];
        }
        // SAFETY: as in `str_at`; the span lies within the buffer.
        unsafe { std::slice::from_raw_parts(self.base.add(span.start as usize), span.len as usize) }
    }
}
