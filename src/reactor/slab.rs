//! Connection storage addressed by `Token`s that carry a generation.
//!
//! The epoll data word holds a `Token`, never a pointer. When a connection
//! closes its slot's generation is bumped, so an event for it that is still
//! waiting further down the same `epoll_wait` batch no longer matches and is
//! ignored: the use-after-free of the original C core cannot happen.

/// A slot index and the generation it was issued for, packed for epoll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(pub u64);

impl Token {
    fn new(index: u32, generation: u32) -> Token {
        Token(((generation as u64) << 32) | index as u64)
    }
    pub fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab whose slots are reused; lookups check the generation.
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    /// Generation for slots created anew after `shrink` dropped some: above
    /// every generation a dropped slot had, so no old token can match.
    fresh_generation: u32,
}

impl<T> Slab<T> {
    pub fn with_capacity(capacity: usize) -> Slab<T> {
        Slab {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            len: 0,
            fresh_generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The token the next `insert` will return, so the value can be built
    /// knowing its own token.
    pub fn next_token(&self) -> Token {
        match self.free.last() {
            Some(&i) => Token::new(i, self.slots[i as usize].generation),
            None => Token::new(self.slots.len() as u32, self.fresh_generation),
        }
    }

    pub fn insert(&mut self, value: T) -> Token {
        let token = self.next_token();
        match self.free.pop() {
            Some(i) => self.slots[i as usize].value = Some(value),
            None => self.slots.push(Slot {
                generation: self.fresh_generation,
                value: Some(value),
            }),
        }
        self.len += 1;
        token
    }

    pub fn get(&self, token: Token) -> Option<&T> {
        let slot = self.slots.get(token.index())?;
        if slot.generation != token.generation() {
            return None;
        }
        slot.value.as_ref()
    }

    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        let slot = self.slots.get_mut(token.index())?;
        if slot.generation != token.generation() {
            return None;
        }
        slot.value.as_mut()
    }

    /// The live value in slot `index`, whatever its generation.
    pub fn at_index(&self, index: usize) -> Option<&T> {
        self.slots.get(index)?.value.as_ref()
    }

    pub fn remove(&mut self, token: Token) -> Option<T> {
        let slot = self.slots.get_mut(token.index())?;
        if slot.generation != token.generation() {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(token.index() as u32);
        self.len -= 1;
        Some(value)
    }

    /// Number of slots (live or free): every index is below it.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Gives back memory after a burst: drops the free slots at the end and
    /// shrinks the vectors, keeping at least `keep` slots of capacity.
    pub fn shrink(&mut self, keep: usize) {
        while let Some(last) = self.slots.last() {
            if last.value.is_some() {
                break;
            }
            self.fresh_generation = self.fresh_generation.max(last.generation.wrapping_add(1));
            self.slots.pop();
        }
        let n = self.slots.len() as u32;
        self.free.retain(|&i| i < n);
        self.slots.shrink_to(keep.max(self.slots.len()));
        self.free.shrink_to(keep.max(self.free.len()));
    }

    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Tokens of every live value (for shutdown).
    pub fn tokens(&self) -> Vec<Token> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| Token::new(i as u32, s.generation))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_token_does_not_reach_the_new_occupant() {
        let mut slab = Slab::with_capacity(4);
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a.index(), b.index());
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn shrinking_never_revives_an_old_token() {
        let mut slab = Slab::with_capacity(0);
        let tokens: Vec<Token> = (0..100).map(|i| slab.insert(i)).collect();
        for &t in &tokens[1..] {
            slab.remove(t);
        }
        slab.shrink(0);
        assert_eq!(slab.slot_count(), 1);
        assert!(slab.capacity() < 100);
        let again = slab.insert(7);
        assert_eq!(again.index(), 1);
        assert_eq!(
            slab.get(tokens[1]),
            None,
            "an old token for a dropped slot must not match"
        );
        assert_eq!(slab.get(again), Some(&7));
        assert_eq!(slab.get(tokens[0]), Some(&0));
    }
}
