//! Byte-class scans for the request-head fast path (fast_head.rs) and the
//! response header checks (response.rs): how many bytes at the start of a
//! slice belong to a class (or whether all of a short field does), sixteen at a time (SSE2,
//! part of every x86_64 target), then eight (SWAR: eight bytes in a u64),
//! then one by one. Every wide test is exact per byte: the unit tests
//! compare each with its byte-by-byte model for every byte value at every
//! position.

/// A class of bytes, tested three ways that must agree.
pub(super) trait Class {
    /// Whether `b` is in the class.
    fn byte(b: u8) -> bool;
    /// SWAR (the first byte in the low bits): the top bit of each byte of
    /// `x` that is not in the class, and no other bit.
    fn word(x: u64) -> u64;
    /// Sixteen bytes: bit k set when byte k is not in the class.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn wide(v: sse2::V) -> u32;
}

/// How many bytes at the start of `s` are in class `C` (`s.len()` when
/// all of them are).
#[inline(always)]
pub(super) fn run<C: Class>(s: &[u8]) -> usize {
    let mut i = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while let Some(chunk) = s.get(i..i + 16) {
        let stop = C::wide(sse2::load(chunk));
        if stop != 0 {
            return i + stop.trailing_zeros() as usize;
        }
        i += 16;
    }
    if let Some(chunk) = s.get(i..i + 8) {
        let stop = C::word(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&b| !C::byte(b))
        .unwrap_or(s.len() - i)
}

/// Whether every byte of `s` is in class `C`, for short fields checked
/// whole (response header names and values): eight bytes at a time, the
/// last word overlapping the one before it when the length is not a
/// multiple of eight (a field of 8 to 16 bytes is its first and last
/// words); under eight bytes one by one, with no branch per byte.
#[inline(always)]
pub(super) fn all<C: Class>(s: &[u8]) -> bool {
    if s.len() < 8 {
        return s.iter().fold(true, |ok, &b| ok & C::byte(b));
    }
    let word = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("eight bytes"));
    let mut stop = C::word(word(s.len() - 8));
    if s.len() <= 16 {
        return stop | C::word(word(0)) == 0;
    }
    let mut i = 0;
    while i + 8 < s.len() {
        stop |= C::word(word(i));
        i += 8;
    }
    stop == 0
}

/// How many bytes at the start of the NUL-terminated string at `p` are in
/// class `C` (which must not hold NUL): the index of its first byte not in
/// the class, the NUL or an earlier one. For C strings (response header
/// names and values), so the string's length and its class are found in
/// one pass: sixteen-byte blocks aligned to sixteen, read with `movdqa`
/// (the first block's bytes before `p` shifted out), else byte by byte.
///
/// # Safety
/// `p` points to a NUL-terminated string that stays unchanged during the
/// call.
#[inline(always)]
pub(super) unsafe fn c_run<C: Class>(p: *const u8) -> usize {
    debug_assert!(!C::byte(0));
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(miri)))]
    {
        let addr = p as usize;
        let skip = addr & 15;
        let mut block = addr - skip;
        // SAFETY: the block holds `p`'s first byte, readable (contract).
        let stop = C::wide(unsafe { sse2::load_aligned(block) }) >> skip;
        if stop != 0 {
            return stop.trailing_zeros() as usize;
        }
        loop {
            block += 16;
            // SAFETY: every byte from `p` up to this block was in the
            // class, so none was the NUL: the string goes on into this
            // block, whose first byte is the string's (or its NUL),
            // readable (contract).
            let stop = C::wide(unsafe { sse2::load_aligned(block) });
            if stop != 0 {
                return block - addr + stop.trailing_zeros() as usize;
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2", not(miri))))]
    {
        let mut i = 0;
        // SAFETY: byte `i` is the string's or its NUL: every byte before it
        // was in the class, so not the NUL (contract: NUL-terminated).
        while C::byte(unsafe { *p.add(i) }) {
            i += 1;
        }
        i
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// SWAR, exact per byte: the top bit of each byte of `t` (every byte's
/// top bit set, so no borrow crosses a byte) whose low seven bits are at
/// least `n` (n <= 0x80).
fn at_least(t: u64, n: u8) -> u64 {
    (t - ONES * u64::from(n)) & HIGH
}

/// SWAR, exact per byte: the top bit of each byte of `x` whose low seven
/// bits are `n`.
fn low_equal(x: u64, n: u8) -> u64 {
    // (v + 0x7f) has its top bit set unless v is 0 (v < 0x80: no carry).
    !(((x ^ (ONES * u64::from(n))) & !HIGH) + !HIGH) & HIGH
}

/// SWAR, exact per byte: the top bit of each ASCII letter of `x`.
fn letters(x: u64) -> u64 {
    // Lower case: only letters land in 0x61..=0x7a after `| 0x20`.
    let y = x | HIGH | (ONES * 0x20);
    at_least(y, 0x61) & !at_least(y, 0x7b) & !x
}

/// The ASCII bytes `LO..HI`, with 0 < LO < HI <= 0x7f (the SWAR and the
/// signed SSE2 compares below rely on it; checked at compile time).
pub(super) struct AsciiRange<const LO: u8, const HI: u8>;

impl<const LO: u8, const HI: u8> AsciiRange<LO, HI> {
    const BOUNDS_OK: () = assert!(0 < LO && LO < HI && HI <= 0x7f);
}

impl<const LO: u8, const HI: u8> Class for AsciiRange<LO, HI> {
    fn byte(b: u8) -> bool {
        (LO..HI).contains(&b)
    }
    fn word(x: u64) -> u64 {
        let () = Self::BOUNDS_OK;
        let t = x | HIGH;
        !(at_least(t, LO) & !at_least(t, HI) & !x) & HIGH
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn wide(v: sse2::V) -> u32 {
        let () = Self::BOUNDS_OK;
        // Signed: bytes at/above 0x80 are negative, below LO.
        let (above, below) = ((LO - 1) as i8, HI as i8);
        !sse2::mask(sse2::and(sse2::gt(v, above), sse2::lt(v, below))) & 0xffff
    }
}

/// A header value byte the fast path takes: visible ASCII and SP (HTAB,
/// obs-text and control bytes go to the full parser).
pub(super) type Value = AsciiRange<0x20, 0x7f>;

/// The usual header name byte: an ASCII letter or '-'.
pub(super) struct PlainName;

impl Class for PlainName {
    fn byte(b: u8) -> bool {
        b.is_ascii_alphabetic() || b == b'-'
    }
    fn word(x: u64) -> u64 {
        !(letters(x) | (low_equal(x, 0x2d) & !x)) & HIGH
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn wide(v: sse2::V) -> u32 {
        !sse2::mask(sse2::or(sse2::letters(v), sse2::eq(v, b'-'))) & 0xffff
    }
}

/// The usual Host name byte: an ASCII letter or digit, '-' or '.'.
pub(super) struct PlainHost;

impl Class for PlainHost {
    fn byte(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
    }
    fn word(x: u64) -> u64 {
        // '-', '.', '/' and the digits are 0x2d..=0x39; '/' is taken out.
        let t = x | HIGH;
        let dash_to_nine = at_least(t, 0x2d) & !at_least(t, 0x3a) & !low_equal(x, 0x2f);
        !(letters(x) | (dash_to_nine & !x)) & HIGH
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn wide(v: sse2::V) -> u32 {
        use sse2::*;
        let dash_to_nine = and(gt(v, 0x2c), lt(v, 0x3a));
        let plain = or(letters(v), and_not(eq(v, b'/'), dash_to_nine));
        !mask(plain) & 0xffff
    }
}

/// Field content in a response header value (RFC 9110 5.5): visible
/// ASCII, obs-text, SP and HTAB; never CR, LF, NUL, DEL or another control
/// byte.
pub(super) struct FieldContent;

impl Class for FieldContent {
    fn byte(b: u8) -> bool {
        b == b'\t' || (b >= 0x20 && b != 0x7f)
    }
    fn word(x: u64) -> u64 {
        let t = x | HIGH;
        // 0x20..=0x7e; any byte with its top bit set (obs-text); HTAB.
        let ascii = at_least(t, 0x20) & !low_equal(x, 0x7f);
        let tab = low_equal(x, b'\t') & !x;
        !(ascii | x | tab) & HIGH
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    fn wide(v: sse2::V) -> u32 {
        use sse2::*;
        // Signed: obs-text (0x80 and up) is below zero.
        let fine = or(
            or(lt(v, 0), eq(v, b'\t')),
            and_not(eq(v, 0x7f), gt(v, 0x1f)),
        );
        !mask(fine) & 0xffff
    }
}

/// An ASCII digit.
pub(super) type Digit = AsciiRange<0x30, 0x3a>;

/// The few SSE2 operations the classes use, on sixteen bytes compared as
/// signed (a byte at/above 0x80 is below every ASCII byte).
// The intrinsics are safe to call from Rust 1.87 on (SSE2 is enabled for
// every x86_64 target); the crate's minimum, 1.80, needs the unsafe blocks.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unused_unsafe)]
mod sse2 {
    use std::arch::x86_64::*;

    pub type V = __m128i;

    #[inline(always)]
    pub fn load(chunk: &[u8]) -> V {
        assert!(chunk.len() >= 16);
        // SAFETY: 16 readable bytes (checked above, and by the callers'
        // slicing); `loadu` has no alignment requirement; SSE2 is enabled
        // (the module's cfg).
        unsafe { _mm_loadu_si128(chunk.as_ptr().cast()) }
    }

    /// The sixteen bytes at `addr`, a multiple of sixteen, one of which
    /// is readable. Read in `asm!` (`movdqa`), outside Rust's memory model:
    /// those of the bytes that lie outside the caller's object are loaded
    /// but never decide a result (`c_run` shifts out the bytes before its
    /// string and stops at the first byte outside the class, at the latest
    /// the NUL).
    ///
    /// # Safety
    /// `addr` is a multiple of sixteen and one of the sixteen bytes from it
    /// is readable memory. Then all of them are: the block lies inside one
    /// page (pages are aligned to 4096, a multiple of sixteen), and memory
    /// is mapped, and protected, a whole page at a time, so the load cannot
    /// fault.
    #[cfg(not(miri))]
    #[inline(always)]
    pub unsafe fn load_aligned(addr: usize) -> V {
        debug_assert_eq!(addr % 16, 0);
        let v: V;
        // SAFETY: contract (aligned, inside one readable page); the asm
        // only reads those sixteen bytes, touches no stack and no flags.
        unsafe {
            std::arch::asm!(
                "movdqa {v}, xmmword ptr [{a}]",
                v = out(xmm_reg) v,
                a = in(reg) addr,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        v
    }

    /// Bytes greater than `n` (signed).
    #[inline(always)]
    pub fn gt(v: V, n: i8) -> V {
        // SAFETY: SSE2 is enabled (the module's cfg); no memory access.
        unsafe { _mm_cmpgt_epi8(v, _mm_set1_epi8(n)) }
    }

    /// Bytes less than `n` (signed).
    #[inline(always)]
    pub fn lt(v: V, n: i8) -> V {
        // SAFETY: as in `gt`.
        unsafe { _mm_cmplt_epi8(v, _mm_set1_epi8(n)) }
    }

    #[inline(always)]
    pub fn eq(v: V, b: u8) -> V {
        // SAFETY: as in `gt`.
        unsafe { _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8)) }
    }

    /// ASCII letters: 0x61..=0x7a once lower-cased with `| 0x20` (no
    /// other byte lands there).
    #[inline(always)]
    pub fn letters(v: V) -> V {
        // SAFETY: as in `gt`.
        let y = unsafe { _mm_or_si128(v, _mm_set1_epi8(0x20)) };
        and(gt(y, 0x60), lt(y, 0x7b))
    }

    #[inline(always)]
    pub fn and(a: V, b: V) -> V {
        // SAFETY: as in `gt`.
        unsafe { _mm_and_si128(a, b) }
    }

    /// `b` without the bytes set in `a`.
    #[inline(always)]
    pub fn and_not(a: V, b: V) -> V {
        // SAFETY: as in `gt`.
        unsafe { _mm_andnot_si128(a, b) }
    }

    #[inline(always)]
    pub fn or(a: V, b: V) -> V {
        // SAFETY: as in `gt`.
        unsafe { _mm_or_si128(a, b) }
    }

    /// One bit per byte: its top bit (all ones in a compare's result).
    #[inline(always)]
    pub fn mask(v: V) -> u32 {
        // SAFETY: as in `gt`.
        unsafe { _mm_movemask_epi8(v) as u32 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each class's word and sixteen-byte tests and `run` against the
    /// byte model: every byte value at every position of a run of class
    /// bytes (long enough for every width), and `run` on every prefix.
    fn check<C: Class>(fill: u8) {
        assert!(C::byte(fill));
        for b in 0..=255u8 {
            for at in 0..40 {
                let mut s = [fill; 40];
                s[at] = b;
                let want = if C::byte(b) { 40 } else { at };
                assert_eq!(run::<C>(&s), want, "{b:#x} at {at}");
                for len in 0..40 {
                    assert_eq!(
                        run::<C>(&s[..len]),
                        want.min(len),
                        "{b:#x} at {at}, len {len}"
                    );
                }
                if at < 8 {
                    let x = u64::from_le_bytes(s[..8].try_into().unwrap());
                    let stop = if C::byte(b) { 0 } else { 0x80 << (8 * at) };
                    assert_eq!(C::word(x), stop, "word, {b:#x} at {at}");
                }
            }
        }
    }

    /// `c_run` against the byte model: strings of every length up to 40
    /// at every offset from a sixteen-byte boundary (so the string starts,
    /// and its NUL falls, everywhere in a block), with every byte value at
    /// every position; non-class bytes (NUL) before the string and class
    /// bytes after its NUL, neither of which may count.
    fn check_c_run<C: Class>(fill: u8) {
        #[repr(align(16))]
        struct Aligned([u8; 80]);
        assert!(C::byte(fill) && !C::byte(0));
        let mut buf = Aligned([0; 80]);
        for skip in 0..16 {
            for len in 0..40 {
                for at in 0..len {
                    for b in 0..=255u8 {
                        buf.0 = [0; 80];
                        let s = &mut buf.0[skip..];
                        s[..len].fill(fill);
                        s[at] = b;
                        s[len + 1..].fill(fill);
                        let want = if C::byte(b) { len } else { at };
                        // SAFETY: `s` holds a NUL at `len` at the latest.
                        let got = unsafe { c_run::<C>(s.as_ptr()) };
                        assert_eq!(got, want, "{b:#x} at {at} of {len}, offset {skip}");
                    }
                }
                let s = &mut buf.0[skip..];
                s[..len].fill(fill);
                s[len] = 0;
                // SAFETY: NUL-terminated at `len`.
                assert_eq!(unsafe { c_run::<C>(s.as_ptr()) }, len, "{len} at {skip}");
            }
        }
    }

    #[test]
    fn c_runs_match_byte_models() {
        check_c_run::<PlainName>(b'N');
        check_c_run::<PlainName>(b'-');
        check_c_run::<FieldContent>(b'a');
        check_c_run::<FieldContent>(0xff);
        check_c_run::<Value>(b' ');
    }

    /// Strings that end on the last byte of a page followed by one that
    /// cannot be read: `c_run` reads none of it (a fault would kill the
    /// test). Every length up to 40, so every alignment of the end.
    #[test]
    #[cfg_attr(miri, ignore = "mprotect is not supported under Miri")]
    fn c_run_stops_at_the_page_end() {
        // SAFETY: plain calls; the mapping is checked, used inside its two
        // pages, and unmapped once.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let map = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let base = map as *mut u8;
            assert_eq!(
                libc::mprotect(base.add(page).cast(), page, libc::PROT_NONE),
                0
            );
            let end = base.add(page - 1);
            *end = 0;
            for len in 0..40 {
                if len > 0 {
                    *end.sub(len) = b'x';
                }
                assert_eq!(c_run::<PlainName>(end.sub(len)), len);
                assert_eq!(c_run::<FieldContent>(end.sub(len)), len);
            }
            assert_eq!(libc::munmap(map, 2 * page), 0);
        }
    }

    #[test]
    fn classes_match_byte_models() {
        check::<Value>(b'v');
        check::<Value>(b' ');
        check::<PlainName>(b'N');
        check::<PlainName>(b'-');
        check::<PlainHost>(b'7');
        check::<PlainHost>(b'h');
        check::<PlainHost>(b'.');
        check::<Digit>(b'4');
        check::<FieldContent>(b'a');
        check::<FieldContent>(0x80);
    }

    #[test]
    fn byte_models_are_the_documented_sets() {
        for b in 0..=255u8 {
            assert_eq!(Value::byte(b), b == b' ' || b.is_ascii_graphic());
            let name = b.is_ascii_uppercase() || b.is_ascii_lowercase() || b == b'-';
            assert_eq!(PlainName::byte(b), name);
            assert_eq!(PlainHost::byte(b), name || b.is_ascii_digit() || b == b'.');
            assert_eq!(Digit::byte(b), matches!(b, 0x30..=0x39));
        }
    }
}
