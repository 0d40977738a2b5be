//! A caching allocator for libtorch's CPU tensors while the networks train or embed on
//! the CPU ([`CpuCache`]; the allocator itself is C++, `cpu_cache.cpp`, since it
//! subclasses `c10::Allocator`).
//!
//! Why: libtorch allocates CPU tensors with `posix_memalign` / `free`. glibc serves the
//! blocks above its mmap threshold (32 MiB at most) with a fresh `mmap`, so every
//! step's largest activations are page-faulted and zeroed again (9–11 % of a ResNet-18
//! training step's samples were in the kernel here), and keeps the smaller ones in
//! per-thread arenas whose resident size creeps up over a long stream of batches (the
//! peak of `embed` over 50,000 photos was 20 % above that over 5,000). Inside a
//! [`CpuCache`] window freed blocks of 64 KiB and more go to a pool by size class and
//! are handed out again: the steps of a loop find their blocks ready, and the peak stays
//! what one step needs.
//!
//! The pool is bounded by the work, not by its length: a request that finds no block of
//! its size class and would take live + pooled bytes above twice the largest live total
//! reached first frees pooled blocks of other classes (least recently used first), so a
//! loop whose batches repeat their sizes keeps every block it needs, and sizes that keep
//! changing cannot make it grow. Sizes are rounded up to size classes (under 1/16 of the
//! request). When the last window closes, libtorch's own allocator is put back and the
//! pool is freed. Windows nest and may be open on several threads at once (one pool).
//! While one is open, every CPU tensor libtorch allocates in the process goes through
//! the pool (also those of other threads); memory profilers that hook c10's default
//! allocator do not see these blocks. If something else has replaced libtorch's CPU
//! allocator, the window leaves it alone. `GRIDMATCH_CPU_CACHE=0` in the environment
//! turns the pool off.

use std::ffi::c_int;

extern "C" {
    fn gm_cpu_cache_enter() -> c_int;
    fn gm_cpu_cache_exit() -> u64;
    fn gm_cpu_cache_stats(out: *mut u64);
}

/// An open caching window (see the module docs); it closes when dropped.
#[derive(Debug)]
#[must_use = "the window closes when the guard is dropped"]
pub struct CpuCache {
    open: bool,
}

/// Counters of the pool since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuCacheStats {
    /// Windows open now.
    pub windows: u64,
    /// Bytes held in the pool now.
    pub pooled_bytes: u64,
    /// Requests served from the pool.
    pub hits: u64,
    /// Requests that allocated a new block.
    pub misses: u64,
    /// Bytes freed from the pool to make room for other sizes.
    pub evicted_bytes: u64,
    /// Blocks the allocator handed out that are still alive.
    pub live_blocks: u64,
}

impl CpuCache {
    /// Open a window, unless `GRIDMATCH_CPU_CACHE` is `0` (then the guard does nothing).
    pub fn enter() -> CpuCache {
        if std::env::var("GRIDMATCH_CPU_CACHE").is_ok_and(|v| v.trim() == "0") {
            return CpuCache { open: false };
        }
        // SAFETY: a C function without arguments that catches every C++ exception.
        let installed = unsafe { gm_cpu_cache_enter() };
        // The window is joined even when the allocator could not be installed (0): the
        // matching exit keeps the count right.
        CpuCache {
            open: installed >= 0,
        }
    }

    /// A window for work on `device`: open on the CPU, a no-op elsewhere.
    pub fn for_device(device: tch::Device) -> CpuCache {
        if device == tch::Device::Cpu {
            CpuCache::enter()
        } else {
            CpuCache { open: false }
        }
    }

    /// Whether this guard holds a window.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The pool's counters.
    pub fn stats() -> CpuCacheStats {
        let mut out = [0u64; 6];
        // SAFETY: the function writes exactly six u64 values to `out`.
        unsafe { gm_cpu_cache_stats(out.as_mut_ptr()) };
        CpuCacheStats {
            windows: out[0],
            pooled_bytes: out[1],
            hits: out[2],
            misses: out[3],
            evicted_bytes: out[4],
            live_blocks: out[5],
        }
    }
}

impl Drop for CpuCache {
    fn drop(&mut self) {
        if self.open {
            // SAFETY: a C function without arguments that cannot throw.
            unsafe { gm_cpu_cache_exit() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// Set in the process that runs the test's body.
    const CHILD: &str = "GRIDMATCH_CPU_CACHE_TEST_CHILD";

    /// The pool and its counters are process-wide (libtorch has one CPU allocator, and
    /// while a window is open every CPU tensor of the process goes through it), so any
    /// other test of the crate running meanwhile moves them: one that trains or embeds
    /// opens a window of its own, and any tensor it allocates while a window is open
    /// counts. The body therefore runs in a process of its own: this test binary
    /// started again with only this test, on one thread. There nothing else allocates,
    /// and the counters are checked exactly.
    #[test]
    fn pooled_blocks_are_reused_and_results_unchanged() {
        if std::env::var_os(CHILD).is_none() {
            let module = module_path!().split_once("::").map_or("", |m| m.1);
            let name = format!("{module}::pooled_blocks_are_reused_and_results_unchanged");
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
                .env(CHILD, "1")
                .env_remove("GRIDMATCH_CPU_CACHE")
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "{text}");
            // The body did run there (the name matched one test).
            assert!(text.contains("test result: ok. 1 passed"), "{text}");
            return;
        }
        pooled_blocks_alone();
    }

    fn pooled_blocks_alone() {
        let x = Tensor::randn([64, 256], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([256, 512], (Kind::Float, Device::Cpu));
        let expect = x.matmul(&w).relu().sum(Kind::Double).double_value(&[]);
        let before = CpuCache::stats();
        assert_eq!((before.windows, before.pooled_bytes), (0, 0), "{before:?}");
        assert_eq!(before.live_blocks, 0, "{before:?}");
        {
            let cache = CpuCache::enter();
            assert!(cache.is_open());
            // 64 x 512 x 4 bytes = 128 KiB (the product and its relu): pooled.
            let step = || {
                let y = x.matmul(&w).relu();
                let got = y.sum(Kind::Double).double_value(&[]);
                assert_eq!(got.to_bits(), expect.to_bits());
            };
            step();
            let first = CpuCache::stats();
            assert_eq!(first.windows, 1);
            assert!(first.misses > before.misses, "{before:?} -> {first:?}");
            assert!(first.pooled_bytes >= 2 << 17, "{first:?}");
            for _ in 0..4 {
                step();
            }
            // Every block of the later steps came from the pool: two a step.
            let s = CpuCache::stats();
            assert_eq!(s.misses, first.misses, "{first:?} -> {s:?}");
            assert!(s.hits >= first.hits + 8, "{first:?} -> {s:?}");
            assert_eq!(s.pooled_bytes, first.pooled_bytes, "{first:?} -> {s:?}");
            assert_eq!(s.live_blocks, 0, "{s:?}");
            // A nested window shares the pool and leaves it open when it closes.
            let nested = CpuCache::enter();
            assert_eq!(CpuCache::stats().windows, 2);
            drop(nested);
            let s = CpuCache::stats();
            assert_eq!(
                (s.windows, s.pooled_bytes),
                (1, first.pooled_bytes),
                "{s:?}"
            );
        }
        let s = CpuCache::stats();
        assert_eq!(
            (s.windows, s.pooled_bytes),
            (0, 0),
            "freed on the last exit: {s:?}"
        );
        // A tensor made inside a window and freed after it closes is freed normally.
        let kept = {
            let _cache = CpuCache::enter();
            Tensor::ones([1 << 16], (Kind::Float, Device::Cpu))
        };
        let s = CpuCache::stats();
        assert_eq!(
            (s.windows, s.pooled_bytes, s.live_blocks),
            (0, 0, 0),
            "{s:?}"
        );
        assert_eq!(kept.sum(Kind::Double).double_value(&[]), 65536.0);
        drop(kept);
        assert_eq!(CpuCache::stats().pooled_bytes, 0);
    }
}
