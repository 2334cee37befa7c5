//! Test support shared by keel's crates; only ever a dev-dependency.
//!
//! [`CountingAlloc`] measures what a piece of code allocates, so the
//! decoders' property tests can prove that bytes from a peer or an SDK
//! (a forged length prefix, a huge claimed size) never make keel allocate
//! more than the input justifies. A test binary installs it as its global
//! allocator and wraps the code under test in [`allocations`]:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: keel_testkit::CountingAlloc = keel_testkit::CountingAlloc;
//!
//! let (decoded, allocated) = keel_testkit::allocations(|| decode(&bytes));
//! assert!(allocated.largest <= budget(bytes.len()));
//! ```
//!
//! [`PeakWatch`] measures the most heap a piece of work holds at once,
//! over all threads (work that runs on a thread pool): it shows that
//! memory stays bounded while data far larger passes through.
//!
//! [`noise`] makes reproducible bytes that look random: garbage for a
//! decoder, or payloads a compressor cannot shrink.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting what each thread allocates and what the
/// whole process holds.
pub struct CountingAlloc;

/// Heap bytes live in the process, and the most live at once since the
/// last [`PeakWatch::start`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Bytes allocated by this thread since the last reset (a `realloc`
    /// counts its growth), and its largest single allocation.
    static TOTAL: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Notes an allocation that adds `grown` bytes and is `size` bytes large.
fn note(grown: usize, size: usize) {
    let _ = TOTAL.try_with(|t| t.set(t.get().saturating_add(grown)));
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    let live = LIVE.fetch_add(grown, Ordering::Relaxed) + grown;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// Notes that `freed` bytes were returned.
fn note_freed(freed: usize) {
    LIVE.fetch_sub(freed, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping only
// touches const-initialized thread-local `Cell`s (no allocation, no destructor) and two
// static atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size.saturating_sub(layout.size()), new_size);
        note_freed(layout.size().saturating_sub(new_size));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_freed(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What a piece of code allocated on its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocated {
    /// Bytes in all (a `realloc` counts its growth).
    pub total: usize,
    /// The largest single allocation.
    pub largest: usize,
}

/// Runs `f` and returns its result with what it allocated on this thread.
/// Counts only where [`CountingAlloc`] is the global allocator.
pub fn allocations<T>(f: impl FnOnce() -> T) -> (T, Allocated) {
    TOTAL.with(|t| t.set(0));
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, Allocated { total: TOTAL.with(Cell::get), largest: LARGEST.with(Cell::get) })
}

/// The most heap bytes live at once in the whole process (every thread)
/// since [`PeakWatch::start`], above what was live then. Counts only where
/// [`CountingAlloc`] is the global allocator, and only Rust's allocations
/// (not those of C or C++ libraries). Other work running meanwhile (tests
/// of the same binary) counts too.
pub struct PeakWatch {
    start: usize,
}

impl PeakWatch {
    /// Starts watching from what is live now.
    pub fn start() -> PeakWatch {
        let start = LIVE.load(Ordering::Relaxed);
        PEAK.store(start, Ordering::Relaxed);
        PeakWatch { start }
    }

    /// The most bytes live at once since [`PeakWatch::start`], beyond
    /// those live then.
    pub fn peak(&self) -> usize {
        PEAK.load(Ordering::Relaxed).saturating_sub(self.start)
    }
}

/// `len` bytes of xorshift64 output from `seed` (not zero): the same bytes
/// for the same seed, with no structure a decoder or compressor could use.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
