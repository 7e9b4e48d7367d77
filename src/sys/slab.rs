//! A fixed-capacity slab: slots addressed by index, reused after removal,
//! never moved: the backing vector reserves its whole capacity up front
//! (address space only; pages are touched as slots are used) and never
//! reallocates, so a slot stays where it is for as long as it is live.
pub struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    cap: usize,
    live: usize,
}

impl<T> Slab<T> {
    pub fn new(cap: usize) -> Self {
        Slab {
            items: Vec::with_capacity(cap),
            free: Vec::new(),
            cap,
            live: 0,
        }
    }

    /// Stores a value and returns its index. Panics (caught at the
    /// boundary) when the table is full: the program holds `cap` live
    /// handles of one kind.
    #[inline]
    pub fn insert(&mut self, v: T) -> usize {
        self.live += 1;
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(v);
            return i as usize;
        }
        assert!(
            self.items.len() < self.cap,
            "more than {} live handles of one kind",
            self.cap
        );
        self.items.push(Some(v));
        self.items.len() - 1
    }

    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i).and_then(|s| s.as_ref())
    }

    #[inline(always)]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i).and_then(|s| s.as_mut())
    }

    #[inline]
    pub fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.items.get_mut(i)?.take();
        if v.is_some() {
            self.free.push(i as u32);
            self.live -= 1;
        }
        v
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|v| (i, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_keeps_indices() {
        let mut s = Slab::new(4);
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!((a, b), (0, 1));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        let c = s.insert("c");
        assert_eq!(c, a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.iter().map(|(i, v)| (i, *v)).collect::<Vec<_>>(),
            vec![(0, "c"), (1, "b")]
        );
    }

    #[test]
    #[should_panic(expected = "live handles")]
    fn full_table_panics() {
        let mut s = Slab::new(1);
        s.insert(1);
        s.insert(2);
    }
}
