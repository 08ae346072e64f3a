//! Reusable byte buffers, so that a keep-alive request costs no allocation
//! and an idle connection holds no buffer at all (its memory is the `Conn`
//! struct and the kernel's socket).

pub struct BufferPool {
    /// Kept buffers, a stack. No more are kept than its capacity
    /// (`max_free`, allocated once), so a push never reallocates.
    free: Vec<Vec<u8>>,
    /// Capacity handed out by `take`.
    size: usize,
    /// Bytes of buffers freed (not kept) since `take_freed` last asked.
    freed: usize,
}

impl BufferPool {
    pub fn new(size: usize, max_free: usize) -> BufferPool {
        BufferPool {
            free: Vec::with_capacity(max_free),
            size,
            freed: 0,
        }
    }

    /// An empty buffer with at least the pool's capacity.
    #[inline]
    pub fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => buf,
            None => self.allocate(),
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate(&self) -> Vec<u8> {
        Vec::with_capacity(self.size)
    }

    /// Returns a buffer. Ones that grew far beyond the usual size (a large
    /// body), and any beyond the most kept, are freed rather than hoarded.
    /// Inlined (twice per keep-alive request): the common case is a
    /// compare or two and a push; freeing is out of line.
    #[inline]
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        if buf.capacity() <= 4 * self.size && self.free.len() < self.free.capacity() {
            buf.clear();
            self.free.push(buf);
        } else {
            self.discard(buf);
        }
    }

    #[cold]
    #[inline(never)]
    fn discard(&mut self, buf: Vec<u8>) {
        self.freed += buf.capacity();
    }

    /// Frees kept buffers beyond `keep` (after a burst of connections has
    /// gone, so the pool does not hold the burst's buffers for good).
    pub fn shrink(&mut self, keep: usize) {
        while self.free.len() > keep {
            if let Some(buf) = self.free.pop() {
                self.freed += buf.capacity();
            }
        }
    }

    /// Bytes freed since the last call.
    pub fn take_freed(&mut self) -> usize {
        std::mem::take(&mut self.freed)
    }
}
