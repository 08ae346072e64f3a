//! Connection limits and fd exhaustion are survived without a busy loop or a lost client.
//!
//! * `--max-connections 8` with 8 idle keep-alive clients: a 9th client is
//!   still served (an idle one is closed to make room; stats closed_limit >= 1).
//! * `--max-connections 8` with 8 busy clients: the 9th waits without the
//!   server spinning (CPU ticks grow by < 20 in 2 s) and is served once a busy
//!   client goes away.
//! * RLIMIT_NOFILE 64: a flood of 200 connections makes accept fail with
//!   EMFILE; the server neither spins nor stops serving, and counts it
//!   (stats accept_fd_exhausted >= 1).

#[path = "../common/mod.rs"]
mod common;

use common::*;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const LIMIT: usize = 8;
/// CPU ticks (utime + stime, normally 1/100 s) the server may use while it
/// sits at a limit for 2 s.
const MAX_TICKS: u64 = 20;
const AT_LIMIT: Duration = Duration::from_secs(2);

#[test]
fn idle_clients_make_room_for_a_new_one() {
    let mut server = Server::start(&["--max-connections", "8"]);
    let port = server.port;

    let mut idle = Vec::with_capacity(LIMIT);
    for i in 0..LIMIT {
        let mut c = Conn::open(port);
        c.send(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .expect("send");
        let (status, _, body) = c
            .read_response(Instant::now() + Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("idle client {i}: first request not answered: {e}"));
        assert_eq!((status, body.as_slice()), (200, HELLO), "idle client {i}");
        idle.push(c);
    }

    // Client 9 is served, within 1 s.
    let took = probe(port);
    eprintln!("9th client served in {took:?} with {LIMIT} idle keep-alive clients connected");

    // ...because an idle client was closed to make room.
    let closed = wait_until(Duration::from_secs(2), || {
        idle.iter_mut().any(|c| c.closed_by_peer())
    });
    assert!(
        closed,
        "none of the {LIMIT} idle keep-alive clients was closed, yet a 9th was served"
    );
    let st = server.stats();
    assert!(
        stat(&st, "closed_limit") >= 1,
        "stats closed_limit is 0 after an idle client made room: {:?}",
        sorted(&st)
    );

    drop(idle);
    server.assert_settled("after the idle clients left");
}

/// One busy client: asks for a 64 MiB stream and reads it slowly until told
/// to stop (then closes with the rest unread).
fn busy_client(
    port: u16,
    id: usize,
    stop: &AtomicBool,
    ready: mpsc::Sender<Result<usize, String>>,
) {
    let mut c = match try_connect(port) {
        Ok(s) => Conn::new(s),
        Err(e) => {
            let _ = ready.send(Err(format!("busy client {id}: connect: {e}")));
            return;
        }
    };
    let req = format!("GET /chunked?size=67108864 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if let Err(e) = c.send(req.as_bytes()) {
        let _ = ready.send(Err(format!("busy client {id}: send: {e}")));
        return;
    }
    match c.read_head(Instant::now() + Duration::from_secs(2)) {
        Ok((200, _)) => {
            let _ = ready.send(Ok(id));
        }
        Ok((status, _)) => {
            let _ = ready.send(Err(format!("busy client {id}: status {status}")));
            return;
        }
        Err(e) => {
            let _ = ready.send(Err(format!("busy client {id}: no response head: {e}")));
            return;
        }
    }
    let mut stream = c.stream;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("set_read_timeout");
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => panic!("busy client {id}: the server closed a busy stream"),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("busy client {id}: the stream stalled for 1 s")
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("busy client {id}: read: {e}"),
        }
        thread::sleep(Duration::from_millis(20));
    }
    drop(stream);
}

#[test]
fn busy_clients_at_the_limit_no_spin_and_next_client_served_later() {
    let mut server = Server::start(&["--max-connections", "8"]);
    let port = server.port;
    let stops: Vec<AtomicBool> = (0..LIMIT).map(|_| AtomicBool::new(false)).collect();

    thread::scope(|scope| {
        // If anything below panics, let the busy clients go so the scope can end.
        struct StopAll<'a>(&'a [AtomicBool]);
        impl Drop for StopAll<'_> {
            fn drop(&mut self) {
                for s in self.0 {
                    s.store(true, Ordering::SeqCst);
                }
            }
        }
        let _stop_all = StopAll(&stops);

        let (tx, rx) = mpsc::channel();
        let mut handles = Vec::new();
        for (id, stop) in stops.iter().enumerate() {
            let tx = tx.clone();
            handles.push(scope.spawn(move || busy_client(port, id, stop, tx)));
        }
        for _ in 0..LIMIT {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("{e}"),
                Err(e) => panic!("a busy client did not start streaming within 5 s: {e:?}"),
            }
        }

        // Client 9 connects (the kernel completes the handshake) and asks.
        let mut ninth = Conn::open(port);
        ninth
            .send(&get_request(port, "/"))
            .expect("9th client: send");

        // Sitting at the limit for 2 s must not spin the CPU.
        let t0 = server.cpu_ticks();
        let early = ninth.fill(Instant::now() + AT_LIMIT);
        let ticks = server.cpu_ticks() - t0;
        server.assert_alive("at the connection limit");
        eprintln!(
            "server used {ticks} CPU ticks in {AT_LIMIT:?} at the limit with {LIMIT} busy clients"
        );
        assert!(
            ticks < MAX_TICKS,
            "the server used {ticks} CPU ticks in {AT_LIMIT:?} while at --max-connections {LIMIT} \
             with busy clients (limit {MAX_TICKS}): it spins"
        );
        match early {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Ok(0) => panic!("the 9th client was closed without an answer while the server was at the limit"),
            Ok(_) => panic!(
                "the 9th client was answered while {LIMIT} busy clients held all {LIMIT} connections: {:?}",
                String::from_utf8_lossy(ninth.buffered())
            ),
            Err(e) => panic!("the 9th client's connection failed while waiting at the limit: {e}"),
        }

        // One busy client leaves; the 9th is served.
        stops[0].store(true, Ordering::SeqCst);
        let left = Instant::now();
        let (status, _, body) = ninth
            .read_response(Instant::now() + Duration::from_secs(3))
            .unwrap_or_else(|e| {
                panic!("the 9th client was not served after a busy client left: {e}")
            });
        assert_eq!(
            status,
            200,
            "9th client: body {:?}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(body, HELLO);
        eprintln!(
            "9th client served {:?} after a busy client left",
            left.elapsed()
        );
        drop(ninth);

        for s in &stops {
            s.store(true, Ordering::SeqCst);
        }
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });

    server.assert_settled("after the busy clients left");
}

#[test]
fn fd_exhaustion_neither_spins_nor_stops_service() {
    const NOFILE: u64 = 64;
    const FLOOD: usize = 200;
    let mut server = Server::start_with(&[], Some(NOFILE));
    let port = server.port;

    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut c = Conn::new(
            try_connect(port).unwrap_or_else(|e| panic!("flood connection {i}: connect: {e}")),
        );
        if i % 2 == 0 {
            // Half ask for something (and stay as keep-alive), half say nothing.
            c.send(format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
                .unwrap_or_else(|e| panic!("flood connection {i}: send: {e}"));
        }
        flood.push(c);
    }

    // Let the server take all it can, then watch it sit there for 2 s.
    let fds = wait_stable_fd_count(server.pid, Duration::from_secs(3));
    let t0 = server.cpu_ticks();
    thread::sleep(AT_LIMIT);
    let ticks = server.cpu_ticks() - t0;
    server.assert_alive("during the flood");
    eprintln!(
        "flood of {FLOOD} with RLIMIT_NOFILE {NOFILE}: server holds {fds} fds, used {ticks} CPU ticks in {AT_LIMIT:?}"
    );
    assert!(
        ticks < MAX_TICKS,
        "the server used {ticks} CPU ticks in {AT_LIMIT:?} while accept(2) hit EMFILE \
         (limit {MAX_TICKS}): it spins"
    );

    // The flood goes away; the server serves again.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last_err = None;
    let served = loop {
        match try_get(port, "/", Duration::from_secs(1)) {
            Ok((200, _, body)) if body == HELLO => break true,
            Ok((status, _, body)) => {
                last_err = Some(format!(
                    "status {status}, body {:?}",
                    String::from_utf8_lossy(&body)
                ))
            }
            Err(e) => last_err = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        served,
        "after the flood clients closed, GET / was not answered within 5 s (last: {last_err:?}); fds {}; sockets {:?}",
        server.fd_count(),
        ss_lines(port).len()
    );
    let st = server.stats();
    assert!(
        stat(&st, "accept_fd_exhausted") >= 1,
        "stats accept_fd_exhausted is 0 after accept(2) ran out of fds: {:?}",
        sorted(&st)
    );
    server.assert_settled("after the fd-exhaustion flood");
}
