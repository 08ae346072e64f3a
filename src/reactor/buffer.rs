//! `Buffer`: bytes with a read position (muduo's Buffer), used for a
//! connection's input (read = consumed by the parser) and output (read =
//! accepted by the kernel). Storage comes from and goes back to the
//! `BufferPool`, so an idle connection holds none.

use super::buffer_pool::BufferPool;

#[derive(Default)]
pub struct Buffer {
    data: Vec<u8>,
    read: usize,
}

impl Buffer {
    /// Bytes written but not yet read.
    pub fn len(&self) -> usize {
        self.data.len() - self.read
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The unread bytes.
    pub fn unread(&self) -> &[u8] {
        &self.data[self.read..]
    }

    /// Where the unread bytes start in `storage()`.
    pub fn read_pos(&self) -> usize {
        self.read
    }

    /// Marks `n` more bytes as read; an all-read buffer starts over at 0.
    pub fn consume(&mut self, n: usize) {
        self.read = (self.read + n).min(self.data.len());
        if self.read == self.data.len() {
            self.clear();
        }
    }

    /// Forgets every byte (keeps the storage).
    pub fn clear(&mut self) {
        self.data.clear();
        self.read = 0;
    }

    /// Moves the unread bytes to the front, making room at the end.
    pub fn compact(&mut self) {
        if self.read > 0 {
            self.data.drain(..self.read);
            self.read = 0;
        }
    }

    /// The whole storage (read bytes included), for code that works with
    /// absolute offsets: in-place chunk decoding, request views.
    pub fn storage(&self) -> &Vec<u8> {
        &self.data
    }

    pub fn storage_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Appends bytes, taking storage from `pool` if the buffer has none.
    pub fn append(&mut self, pool: &mut BufferPool, bytes: &[u8]) {
        self.writer(pool).extend_from_slice(bytes);
    }

    /// The storage to append to, taken from `pool` if the buffer has none.
    pub fn writer(&mut self, pool: &mut BufferPool) -> &mut Vec<u8> {
        if self.data.capacity() == 0 {
            self.data = pool.take();
        }
        &mut self.data
    }

    /// Gives the storage back to `pool` (the buffer must be empty or its
    /// content abandoned).
    pub fn release(&mut self, pool: &mut BufferPool) {
        self.read = 0;
        pool.give(std::mem::take(&mut self.data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_position_follows_consumption_and_resets_when_empty() {
        let mut pool = BufferPool::new(64, 4);
        let mut b = Buffer::default();
        b.append(&mut pool, b"hello world");
        b.consume(6);
        assert_eq!(b.unread(), b"world");
        assert_eq!(b.read_pos(), 6);
        b.compact();
        assert_eq!((b.read_pos(), b.unread()), (0, &b"world"[..]));
        b.consume(5);
        assert!(b.is_empty());
        assert_eq!(b.read_pos(), 0);
        b.release(&mut pool);
        assert_eq!(b.storage().capacity(), 0);
    }
}
