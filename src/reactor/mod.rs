//! The reactor: accepting, one connection's state machine, the HTTP
//! exchange, timers and counters (muduo's `net/` split). It uses `sys` and
//! `http` below it and knows nothing of the C boundary above it.
//!
//! * `event_loop` — the loop: epoll, the connection table, closing, timers
//! * `driver` — calling application code soundly (`LoopPtr`)
//! * `respond` — what each response call does
//! * `handlers` — the application's callbacks
//! * `progress` — one connection's step: read, parse, write, close, wait
//! * `exchange` — the HTTP exchange: parse into the view, compose replies
//! * `transfer` — moving one connection's bytes, every errno decided
//! * `acceptor` — the listening socket; `accept_budget` — accepts per wake-up
//! * `connection` — one client: socket flags, buffers, `State`
//! * `reply`, `request` — what the application holds while it answers
//! * `upgrade` — which requests may switch protocols, the hand-off's parts
//! * `completion`, `records` — one record per request, once its response left
//! * `output` — what a connection has to send: copied bytes, a lent body
//!   or a file (`file_body`); `file_response` decides a file's answer
//! * `posts`, `app_timers` — tasks posted from any thread, the
//!   application's timers
//! * `buffer`, `buffer_pool`, `slab`, `timers`, `first_read`, `shared`,
//!   `stats`, `config`, `error`, `io` — the pieces those are made of

pub mod accept_budget;
pub mod acceptor;
pub mod app_timers;
pub mod buffer;
pub mod buffer_pool;
pub mod completion;
pub mod config;
pub mod connection;
pub mod driver;
pub mod error;
pub mod event_loop;
pub mod exchange;
pub mod file_body;
pub mod file_response;
pub mod first_read;
pub mod handlers;
pub mod io;
pub mod output;
pub mod posts;
pub mod progress;
pub mod records;
pub mod reply;
pub mod request;
pub mod respond;
pub mod shared;
pub mod slab;
pub mod stats;
pub mod timers;
pub mod transfer;
pub mod upgrade;

pub use config::Limits;
pub use driver::LoopPtr;
pub use error::{CloseReason, Error};
pub use event_loop::EventLoop;
pub use handlers::Handlers;
pub use reply::Reply;
pub use request::RequestView;
pub use stats::Stats;
