//! The no_std runtime of the release wasm: a panic handler and a small global allocator.
//!
//! Why not std: its panic machinery drags `core::fmt` into the binary, and its dlmalloc is
//! ~12% of a small tracker's wasm (SETUP.md size facts). Our code never panics on purpose (every
//! parser is total); should a bug panic anyway, the wasm traps and the JS adapter swallows it.
//!
//! The allocator keeps one free list per size class (the powers of two from 16 B to 1 GiB) and
//! carves new blocks from memory grown at the end of the heap. Every block is 16-byte aligned.
//! A block wastes less than half its size (Vec and String capacities grow by doubling, so most
//! requests are close to a power of two anyway), and freed blocks are reused, so the heap stays
//! bounded by the queue's bounds. Powers of two, rather than four classes per power, save 63 B
//! of the gzip download. wasm32 is single-threaded, which makes the unsynchronised statics sound.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

/// Size classes: 16, 32, 64, … 2^30 (1 GiB).
const CLASSES: usize = 27;
const PAGE: usize = 65_536;
/// Grow memory by at least 1 MiB at a time: every `memory.grow` makes the JS glue rebuild its
/// views of the memory (tens of µs each), which a page-at-a-time heap paid thousands of times in
/// a 10,000-event burst.
const MIN_GROW_PAGES: usize = 16;

struct Heap {
    free: [usize; CLASSES],
    next: usize,
    end: usize,
}

struct Allocator(UnsafeCell<Heap>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for Allocator {}

#[global_allocator]
static ALLOC: Allocator = Allocator(UnsafeCell::new(Heap {
    free: [0; CLASSES],
    next: 0,
    end: 0,
}));

/// (class index, block size) for a layout; None for what we do not serve (align > 16, > 1 GiB).
fn class(layout: &Layout) -> Option<(usize, usize)> {
    if layout.align() > 16 {
        return None;
    }
    let size = layout.size().max(16);
    // The smallest power of two ≥ size: 2^e, e ≥ 4.
    let e = (usize::BITS - (size - 1).leading_zeros()) as usize;
    (e - 4 < CLASSES).then(|| (e - 4, 1 << e))
}

unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((c, size)) = class(&layout) else {
            return core::ptr::null_mut();
        };
        // SAFETY: single-threaded, and no reference to the heap outlives this call.
        let heap = unsafe { &mut *self.0.get() };
        let Some(slot) = heap.free.get_mut(c) else {
            return core::ptr::null_mut();
        };
        let head = *slot;
        if head != 0 {
            // SAFETY: a free block stores the address of the next free block in its first word.
            *slot = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        if heap.end == 0 {
            heap.next = wasm32::memory_size(0) * PAGE;
            heap.end = heap.next;
        }
        let start = (heap.next + 15) & !15;
        let Some(stop) = start.checked_add(size) else {
            return core::ptr::null_mut();
        };
        if stop > heap.end {
            let pages = (stop - heap.end).div_ceil(PAGE).max(MIN_GROW_PAGES);
            if wasm32::memory_grow(0, pages) == usize::MAX {
                return core::ptr::null_mut();
            }
            heap.end += pages * PAGE;
        }
        heap.next = stop;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((c, _)) = class(&layout) else { return };
        // SAFETY: as in alloc; `ptr` came from alloc with the same layout, so it has class `c`.
        let heap = unsafe { &mut *self.0.get() };
        let Some(slot) = heap.free.get_mut(c) else {
            return;
        };
        unsafe { *(ptr as *mut usize) = *slot };
        *slot = ptr as usize;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let old = class(&layout);
        if old.is_some() && old == class(&new_layout) {
            return ptr;
        }
        // SAFETY: standard move to a fresh block.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}
