//! Split-anywhere: every request of the conformance table
//! (tests/protocol/conformance/cases.rs) is also delivered
//! * in two pieces, cut at every byte boundary,
//! * in random small pieces (1..=8 bytes; xorshift64 with a fixed seed),
//! * through a socket that accepts only 1..=7 bytes per send (partial
//!   writes), whole and in random pieces,
//!
//! and the server's output must be byte-for-byte the output of the
//! unsplit, unlimited run, with the same close. The one allowed difference
//! is `HTTP/1.1 100 Continue` for an `Expect: 100-continue` request whose
//! head arrived complete before its body: then it must be there, first.

#[path = "conformance/cases.rs"]
mod cases;

use cases::*;
use connection_core::harness::Outcome;

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const RANDOM_SPLITS: usize = 40;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random cut offsets making pieces of 1..=max bytes.
fn random_cuts(rng: &mut XorShift, len: usize, max: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut at = 0;
    loop {
        at += 1 + rng.below(max);
        if at >= len {
            return cuts;
        }
        cuts.push(at);
    }
}

/// For a single HTTP/1.1 request with `Expect: 100-continue` and a body:
/// the range of cut offsets after which the head is complete but the body
/// is not (a cut there must produce a 100 Continue first).
fn continue_window(case: &Case) -> Option<(usize, usize)> {
    let r = &case.request;
    let head_end = find(r, b"\r\n\r\n")? + 4;
    let head = &r[..head_end];
    let expects = head
        .windows(b"expect: 100-continue".len())
        .any(|w| w.eq_ignore_ascii_case(b"expect: 100-continue"));
    // HTTP/1.1, or a higher 1.x, which is processed as 1.1 (RFC 9110 2.5).
    let line_end = find(head, b"\r\n")?;
    let http11 = line_end >= 3
        && head[line_end - 3..line_end - 1] == *b"1."
        && head[line_end - 1].is_ascii_digit()
        && head[line_end - 1] != b'0';
    (expects && http11 && head_end < r.len()).then_some((head_end, r.len()))
}

fn expected_output(case: &Case, base: &Outcome, cuts: &[usize]) -> Vec<u8> {
    match continue_window(case) {
        Some((start, end)) if cuts.iter().any(|&c| c >= start && c < end) => {
            [CONTINUE, &base.sent[..]].concat()
        }
        _ => base.sent.clone(),
    }
}

/// Runs `case` cut at `cuts` with `send_cap`; returns a problem, if any.
fn check(case: &Case, base: &Outcome, cuts: &[usize], send_cap: usize) -> Option<String> {
    let pieces = split_at_offsets(&case.request, cuts);
    let out = case.run_pieces(&pieces, false, send_cap);
    let want = expected_output(case, base, cuts);
    if out.sent != want {
        let at = out
            .sent
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(out.sent.len().min(want.len()));
        return Some(format!(
            "[{}] cuts {cuts:?} send_cap {send_cap}: output differs from the unsplit run at byte {at}\n  got:  {}\n  want: {}",
            case.name,
            out.sent.escape_ascii(),
            want.escape_ascii()
        ));
    }
    if (out.closed, out.shut_write) != (base.closed, base.shut_write) {
        return Some(format!(
            "[{}] cuts {cuts:?} send_cap {send_cap}: closed/shut_write {:?}, unsplit {:?}",
            case.name,
            (out.closed, out.shut_write),
            (base.closed, base.shut_write)
        ));
    }
    None
}

fn run_table(cases: &[Case], every_byte_up_to: usize) -> (usize, Vec<String>) {
    let mut rng = XorShift(SEED);
    let mut runs = 0;
    let mut problems = Vec::new();
    for case in cases {
        let base = case.run_pieces(&[&case.request], false, 0);
        let len = case.request.len();
        let mut fail = |p: Option<String>| {
            if let Some(p) = p {
                problems.push(p);
            }
        };
        // Two pieces, cut at every byte (at a stride for long requests).
        let stride = len.div_ceil(every_byte_up_to).max(1);
        for k in (1..len).step_by(stride) {
            fail(check(case, &base, &[k], 0));
            runs += 1;
        }
        // Random small pieces (larger ones for long requests: each recv
        // re-parses the head so far, so 1-byte pieces cost O(n^2)).
        let max_piece = (len / 128).max(8);
        for _ in 0..RANDOM_SPLITS {
            let cuts = random_cuts(&mut rng, len, max_piece);
            fail(check(case, &base, &cuts, 0));
            runs += 1;
        }
        // Partial writes, whole and in random pieces.
        for cap in 1..=7 {
            fail(check(case, &base, &[], cap));
            let cuts = random_cuts(&mut rng, len, max_piece);
            fail(check(case, &base, &cuts, cap));
            runs += 2;
        }
    }
    (runs, problems)
}

#[test]
fn valid_requests_split_anywhere() {
    let cases = valid_cases();
    let (runs, problems) = run_table(&cases, usize::MAX);
    eprintln!(
        "split-anywhere: {} valid requests, {runs} split runs, {} differ",
        cases.len(),
        problems.len()
    );
    report(&problems);
}

/// Refusals do not depend on how the bytes arrive either (long requests are
/// cut at ~400 evenly spaced offsets instead of every byte).
#[test]
fn refused_requests_split_anywhere() {
    let cases = error_cases();
    let (runs, problems) = run_table(&cases, 400);
    eprintln!(
        "split-anywhere: {} refused requests, {runs} split runs, {} differ",
        cases.len(),
        problems.len()
    );
    report(&problems);
}

fn report(problems: &[String]) {
    let mut names: Vec<&str> = problems
        .iter()
        .filter_map(|p| p.strip_prefix('[')?.split(']').next())
        .collect();
    names.dedup();
    assert!(
        problems.is_empty(),
        "{} split runs differ from the unsplit run (cases: {names:?}); first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(6)].join("\n")
    );
}

/// The expected-output rule itself: an Expect head cut right after its
/// blank line gets exactly the 100 line first.
#[test]
fn continue_window_is_right() {
    let case = valid_cases()
        .into_iter()
        .find(|c| c.name == "expect_continue")
        .expect("the expect_continue case");
    let (start, end) = continue_window(&case).expect("an Expect request with a body");
    assert_eq!(end, case.request.len());
    assert_eq!(&case.request[start - 4..start], b"\r\n\r\n");
    let base = case.run_pieces(&[&case.request], false, 0);
    assert!(!base.sent.starts_with(CONTINUE));
    let cut = case.run_pieces(&split_at_offsets(&case.request, &[start]), false, 0);
    assert!(cut.sent.starts_with(CONTINUE));
}
