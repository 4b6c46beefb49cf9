//! Buffers kept between calls, so that the online step and the products
//! it runs do not allocate (and fault in) fresh pages for their large
//! temporaries at every mini-batch: a pool hands out a buffer it holds
//! when it has one and takes it back when the caller is done.

use std::sync::Mutex;

/// A pool of `Vec<T>` buffers shared by all threads.
pub(crate) struct BufferPool<T>(Mutex<Vec<Vec<T>>>);

/// Buffers a pool keeps at most, unless one call gives back more.
const KEEP: usize = 16;

impl<T: Copy + Default> BufferPool<T> {
    /// An empty pool.
    pub(crate) const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// `count` zeroed buffers of length `len`, from the pool when it has them.
    pub(crate) fn take(&self, count: usize, len: usize) -> Vec<Vec<T>> {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (0..count)
            .map(|_| {
                let mut v = pool.pop().unwrap_or_default();
                v.clear();
                v.resize(len, T::default());
                v
            })
            .collect()
    }

    /// One zeroed buffer of length `len` ([`Self::take`]).
    pub(crate) fn take_one(&self, len: usize) -> Vec<T> {
        self.take(1, len).pop().expect("one buffer")
    }

    /// `count` buffers from the pool when it has them, of any length and
    /// contents (the caller sizes and zeroes them where it fills them).
    pub(crate) fn take_any(&self, count: usize) -> Vec<Vec<T>> {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (0..count).map(|_| pool.pop().unwrap_or_default()).collect()
    }

    /// Returns buffers to the pool (it keeps at most the larger of [`KEEP`]
    /// and this call's count).
    pub(crate) fn give_back(&self, bufs: Vec<Vec<T>>) {
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let keep = KEEP.max(bufs.len());
        for b in bufs {
            if pool.len() < keep {
                pool.push(b);
            }
        }
    }

    /// Returns one buffer to the pool ([`Self::give_back`]).
    pub(crate) fn give_back_one(&self, buf: Vec<T>) {
        self.give_back(vec![buf]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_handed_out_again_zeroed() {
        let pool = BufferPool::<f32>::new();
        let mut a = pool.take_one(8);
        a.fill(3.0);
        let addr = a.as_ptr();
        pool.give_back_one(a);
        let b = pool.take_one(6);
        assert_eq!(b.as_ptr(), addr, "the same allocation");
        assert_eq!(b, vec![0.0; 6]);
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_buffers() {
        let pool = BufferPool::<u16>::new();
        pool.give_back((0..KEEP + 5).map(|_| vec![1u16; 2]).collect());
        for _ in 0..3 {
            pool.give_back_one(vec![0u16; 2]);
        }
        assert_eq!(
            pool.take_any(100).iter().filter(|b| !b.is_empty()).count(),
            KEEP + 5
        );
    }
}
