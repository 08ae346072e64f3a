//! Reusable byte buffers, so that a keep-alive request costs no allocation
//! and an idle connection holds no buffer at all (its memory is the `Conn`
//! struct and the kernel's socket).

pub struct BufferPool {
    free: Vec<Vec<u8>>,
    /// Capacity handed out by `take`.
    size: usize,
    /// Buffers kept for reuse; beyond this they are freed.
    max_free: usize,
    /// Bytes of buffers freed (not kept) since `take_freed` last asked.
    freed: usize,
}

impl BufferPool {
    pub fn new(size: usize, max_free: usize) -> BufferPool {
        BufferPool {
            free: Vec::with_capacity(max_free),
            size,
            max_free,
            freed: 0,
        }
    }

    /// An empty buffer with at least the pool's capacity.
    pub fn take(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Returns a buffer. Ones that grew far beyond the usual size (a large
    /// body) are freed rather than hoarded.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        if buf.capacity() > 4 * self.size || self.free.len() >= self.max_free {
            self.freed += buf.capacity();
            return;
        }
        buf.clear();
        self.free.push(buf);
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
