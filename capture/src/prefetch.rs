//! Asking the processor to start loading memory that will be read soon (a prefetch), so the
//! wait for it overlaps other work. Only a hint: it never faults, changes nothing a program can
//! observe, and does nothing where the target has no such instruction. With the `FILE` reader
//! of [`crate::source`], the capture crate's only `unsafe` (the crate denies it elsewhere).
#![allow(unsafe_code)]

/// Bytes per cache line.
pub const LINE: usize = 64;

/// Starts loading the cache line holding `p` into every level of the cache.
#[inline(always)]
pub fn line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 (SSE, part of every x86-64 processor) only hints at the cache; it
    // reads nothing a program sees and raises no fault whatever the address, mapped or not.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Starts loading the cache lines of the `len` bytes from `p` (the lines of at most the first
/// `max` bytes).
#[inline(always)]
pub fn bytes<T>(p: *const T, len: usize, max: usize) {
    let p = p.cast::<u8>();
    let mut off = 0;
    while off < len.min(max) {
        line(p.wrapping_add(off));
        off += LINE;
    }
    // The last line, when the start was not on a line boundary.
    if len > 0 {
        line(p.wrapping_add(len.min(max) - 1));
    }
}

/// Starts loading the lines of `value` (of at most its first `max` bytes).
#[inline(always)]
pub fn value<T>(value: &T, max: usize) {
    bytes(value as *const T, std::mem::size_of::<T>(), max);
}
