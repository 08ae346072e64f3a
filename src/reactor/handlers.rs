//! `Handlers`: the application's callbacks and their user pointers, in
//! the C calling convention (the application supplies them).

use std::os::raw::c_void;

use super::completion::CompletionSink;
use super::reply::Reply;
use super::request::RequestView;

/// Request handler (C calling convention: the application supplies it).
pub type RequestFn =
    unsafe extern "C" fn(req: *const RequestView, reply: *mut Reply, user: *mut c_void);
/// Streamed-body handler: 0 to go on, or an HTTP status to refuse.
pub type BodyFn = unsafe extern "C" fn(
    req: *const RequestView,
    data: *const u8,
    len: usize,
    user: *mut c_void,
) -> i32;

/// The application's callbacks and their user pointers.
#[derive(Clone, Copy)]
pub struct Handlers {
    pub request: Option<RequestFn>,
    pub request_user: *mut c_void,
    pub body: Option<BodyFn>,
    pub body_user: *mut c_void,
    /// Content-Length above which bodies go to `body` (chunked ones always).
    pub stream_above: usize,
    /// Receives one completion record per request.
    pub completion: Option<CompletionSink>,
}

impl Default for Handlers {
    fn default() -> Self {
        Handlers {
            request: None,
            request_user: std::ptr::null_mut(),
            body: None,
            body_user: std::ptr::null_mut(),
            stream_above: 0,
            completion: None,
        }
    }
}
