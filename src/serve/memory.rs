//! Handing memory back to the system after a snapshot rebuild.
//!
//! A rebuild over 100,000 charts allocates and frees about 150 MB in a few seconds, from
//! several threads. glibc keeps what its per-thread arenas freed for reuse, so a server that
//! rebuilt four times stood at 700 MiB resident, and growing, with 90 MB live. `malloc_trim`
//! returns the free pages of every arena, and two arenas rather than eight per core keep the
//! memory one thread freed from lying unused in an arena no other thread takes from: a server
//! over 100,000 charts stays between 110 and 160 MiB across rebuilds (the README's serve
//! section). Another allocator was tried too (mimalloc): 90 to 130 MiB, but 1 to 2 ms more
//! CPU for every short command, which matters more for a CLI.

/// Limits malloc to two arenas from now on; called when the server starts, before its
/// snapshot build threads exist (the runtime's workers may hold one arena each already).
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers; M_ARENA_MAX only bounds arenas created later.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the free pages of every malloc arena to the system, now.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
