//! Counting the heap the controller's own structures hold, apart from the fake AWS and the
//! fake table it runs against.
//!
//! [`Counting`] is a global allocator over the system's that puts a one-byte tag in front of
//! every block: which side allocated it. Code runs on the controller's side unless it runs
//! inside [`outside`] or an [`Outside`] future, which is where the simulation calls the fake:
//! whatever the fake allocates there (its resources, its indexes, its call log) is counted as
//! the fake's, and stays so when freed later, because the tag travels with the block. What
//! the fake returns is cloned back on the controller's side, as an SDK would deserialize an
//! answer into the controller's memory, and the fake's copy is dropped.
//!
//! The simulation runs on one thread (tokio's paused clock needs the current-thread runtime),
//! so a thread-local flag is the whole scope.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc as System;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

thread_local! {
    static IN_FAKE: Cell<bool> = const { Cell::new(false) };
    /// Thread CPU nanoseconds spent on the fake's side (two clock reads per call into the
    /// fake: a few seconds over a cold start of 100,000 agents).
    static FAKE_CPU: Cell<u64> = const { Cell::new(0) };
}

static CONTROLLER: AtomicUsize = AtomicUsize::new(0);
static CONTROLLER_PEAK: AtomicUsize = AtomicUsize::new(0);
static FAKE: AtomicUsize = AtomicUsize::new(0);

const CONTROLLER_TAG: u8 = 0;
const FAKE_TAG: u8 = 1;

/// The allocator; the `clawfleet-sim` binary installs it as its global allocator.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

fn in_fake() -> bool {
    IN_FAKE.try_with(Cell::get).unwrap_or(false)
}

/// The header in front of a block: at least one byte for the tag, and as many as the block's
/// alignment, so that the block stays aligned.
fn header(layout: Layout) -> usize {
    layout.align().max(8)
}

fn outer(layout: Layout) -> Option<Layout> {
    Layout::from_size_align(layout.size().checked_add(header(layout))?, layout.align()).ok()
}

// SAFETY: every block is the system allocator's, `header` bytes larger than asked, and the
// pointer handed out is `header` bytes into it; `dealloc` undoes exactly that with the same
// layout the caller passes back, as GlobalAlloc requires.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(full) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `full` has a non-zero size (the header).
        let base = unsafe { System.alloc(full) };
        if base.is_null() {
            return base;
        }
        let offset = header(layout);
        let tag = if in_fake() { FAKE_TAG } else { CONTROLLER_TAG };
        // SAFETY: `offset` is within the block, and the tag byte lies just before the pointer
        // handed out, inside the header.
        unsafe {
            let block = base.add(offset);
            block.sub(1).write(tag);
            count_in(tag, layout.size());
            block
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(full) = outer(layout) else {
            return;
        };
        let offset = header(layout);
        // SAFETY: `ptr` came from `alloc` with this layout, so the header precedes it.
        unsafe {
            let tag = ptr.sub(1).read();
            count_out(tag, layout.size());
            System.dealloc(ptr.sub(offset), full);
        }
    }
}

fn count_in(tag: u8, size: usize) {
    if tag == FAKE_TAG {
        FAKE.fetch_add(size, Ordering::Relaxed);
    } else {
        let now = CONTROLLER.fetch_add(size, Ordering::Relaxed) + size;
        CONTROLLER_PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn count_out(tag: u8, size: usize) {
    if tag == FAKE_TAG {
        FAKE.fetch_sub(size, Ordering::Relaxed);
    } else {
        CONTROLLER.fetch_sub(size, Ordering::Relaxed);
    }
}

/// Live bytes allocated on the controller's side (everything but the fakes).
#[must_use]
pub fn controller_bytes() -> usize {
    CONTROLLER.load(Ordering::Relaxed)
}

/// The most the controller's side held at once since the last [`reset_peak`].
#[must_use]
pub fn controller_peak() -> usize {
    CONTROLLER_PEAK.load(Ordering::Relaxed)
}

/// Starts measuring a new peak from what is live now.
pub fn reset_peak() {
    CONTROLLER_PEAK.store(controller_bytes(), Ordering::Relaxed);
}

/// Live bytes allocated by the fake AWS and the fake table.
#[must_use]
pub fn fake_bytes() -> usize {
    FAKE.load(Ordering::Relaxed)
}

/// Whether the counting allocator is the global one (it is in the binary, not in tests).
#[must_use]
pub fn counting() -> bool {
    let before = controller_bytes() + fake_bytes();
    let probe = std::hint::black_box(vec![0_u8; 64]);
    let after = controller_bytes() + fake_bytes();
    drop(probe);
    after > before
}

/// Runs `f` on the fake's side.
pub fn outside<T>(f: impl FnOnce() -> T) -> T {
    let was = IN_FAKE.with(|c| c.replace(true));
    // Nested calls are inside the outer one's time already.
    let timed = !was;
    let started = if timed { thread_cpu_nanos() } else { 0 };
    let out = f();
    if timed {
        let spent = thread_cpu_nanos().saturating_sub(started);
        FAKE_CPU.with(|c| c.set(c.get() + spent));
    }
    IN_FAKE.with(|c| c.set(was));
    out
}

fn clock_nanos(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; both clocks exist on every Linux.
    if unsafe { libc::clock_gettime(clock, &raw mut now) } != 0 {
        return 0;
    }
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

fn thread_cpu_nanos() -> u64 {
    clock_nanos(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of a measured stretch: the whole process's, and the part of it the fake AWS and
/// the fake table spent answering (the work AWS and DynamoDB do on their side). The
/// controller's is the difference, as the heap counts the controller's apart.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub process: f64,
    pub fake: f64,
}

impl Cpu {
    #[must_use]
    pub fn controller(&self) -> f64 {
        (self.process - self.fake).max(0.0)
    }
}

/// The CPU time spent so far; the difference of two is a stretch's. The simulation runs on one
/// thread, so the fake's share is the time its calls took on this thread.
#[must_use]
pub fn cpu_now() -> Cpu {
    Cpu {
        process: clock_nanos(libc::CLOCK_PROCESS_CPUTIME_ID) as f64 / 1e9,
        fake: FAKE_CPU.with(Cell::get) as f64 / 1e9,
    }
}

impl std::ops::Sub for Cpu {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            process: self.process - earlier.process,
            fake: self.fake - earlier.fake,
        }
    }
}

/// A future polled on the fake's side.
pub struct Outside<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Outside<F> {
    pub fn new(inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Outside<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        outside(|| inner.poll(cx))
    }
}

/// Process RSS and its peak (VmRSS, VmHWM), in bytes.
#[must_use]
pub fn rss() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<usize>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
