//! The heap one thread holds, for the unit tests: memory that must not
//! grow with the number of findings is measured, not assumed.
//!
//! The lib's test binary counts every allocation against the thread that
//! made it (a thread-local count, so tests running side by side do not
//! see each other's). [`peak`] runs a closure and says how many bytes
//! above what it held before the thread held at most meanwhile. SQLite's
//! own page cache is allocated by C, outside this count; it is bounded
//! by its settings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static NOW: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // Const thread-locals without a destructor are there until the
    // thread ends; `try_with` only guards its very end.
    let _ = NOW.try_with(|now| {
        let held = now.get() + bytes;
        now.set(held);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(held)));
    });
}

// SAFETY: every call is passed on to the system allocator as it is.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f` on this thread; returns what it returned and the most bytes
/// of heap the thread held meanwhile above what it held when called.
pub(crate) fn peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = NOW.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let top = PEAK.with(Cell::get);
    (out, usize::try_from(top - start).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_counts_what_was_held_at_once_not_what_was_allocated_in_all() {
        let ((), held) = peak(|| {
            for _ in 0..100 {
                let v = vec![1u8; 1 << 20];
                std::hint::black_box(&v);
            }
        });
        assert!((1 << 20..2 << 20).contains(&held), "{held}");
        let (v, held) = peak(|| vec![0u64; 1 << 20]);
        assert!(held >= 8 << 20, "{held}");
        drop(v);
    }
}
