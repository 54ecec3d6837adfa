//! Gives memory back to the operating system once load has dropped.
//!
//! glibc's `malloc` keeps what ended connections freed inside its arenas:
//! measured with `bench/soak.sh`, 3,000 clients that left kept the server at
//! 48 MB instead of the 10 MB it started with, and one `malloc_trim(0)`
//! brought it to 15 MB. Allocators that give memory back by themselves
//! (mimalloc, jemalloc) cost 10 to 50 % more per idle connection here, so
//! Switchboard keeps glibc's and trims when the number of sessions has
//! fallen well below its recent high.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::Core;
use tokio::task::JoinHandle;

/// Sessions that must have ended since the last high before a trim (or an
/// eighth of that high, when more).
const MIN_DROP: usize = 256;

/// Checks the session count every `every`; trims (on a blocking thread)
/// after a large enough drop.
pub fn spawn(core: Arc<Core>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut high = 0usize;
        // Ended sessions free some of their memory a little after they
        // leave the registry (their tasks finish): one more trim follows.
        let mut follow_up = false;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = core.registry().len();
            if now > high {
                high = now;
                follow_up = false;
            } else if high - now >= MIN_DROP.max(high / 8) {
                let _ = tokio::task::spawn_blocking(release).await;
                high = now;
                follow_up = true;
            } else if std::mem::take(&mut follow_up) {
                let _ = tokio::task::spawn_blocking(release).await;
            }
        }
    })
}

/// Returns the free memory at the top of every arena and the free pages
/// inside them to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the only unsafe in the workspace; the reason is measured above
fn release() {
    let before = resident_kib();
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks;
    // it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    tracing::debug!(before_kib = before, after_kib = resident_kib(), "returned freed memory to the system");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").to_owned()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
