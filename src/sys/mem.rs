//! Giving freed heap memory back to the kernel.
//!
//! glibc keeps memory that was freed: a large block freed after the
//! "dynamic mmap threshold" has risen (it rises to the size of the largest
//! mmapped block freed, so later blocks of that size come from the heap),
//! and any free space in the heap that is not at its very top. After a burst
//! of large responses the process would stay at its peak RSS for good.
//! `malloc_trim(0)` returns every free page of the heap (`MADV_DONTNEED`
//! for whole free pages inside it, and the top). It changes no allocation
//! and no setting, so it is safe in a library that does not own `main`.

/// Returns the heap's free pages to the kernel (glibc's `malloc_trim(0)`);
/// true if some memory was released. A no-op elsewhere.
pub fn trim_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists
        // under its locks; it takes no pointer from us.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
