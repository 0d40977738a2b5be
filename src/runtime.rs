//! Execution runtime shared by all heavy computations: the rayon thread pool that
//! `gridmatch.set_num_threads` controls, libtorch's intra-op thread count, cooperative
//! cancellation, and progress reporting.
//!
//! Long-running core functions take a [`Monitor`]. They call [`Monitor::check`] at
//! regular points (every iteration block, every epoch) and [`Monitor::report`] once per
//! epoch or search step. The Python bindings connect the monitor to Ctrl-C and to a
//! Python callback; Rust callers can use [`Monitor::none`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// Error returned by work that stopped because it was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Cancelled;

/// A cancellation flag shared between the thread that runs the work and the thread
/// that may stop it (for example on Ctrl-C). Cloning shares the flag. A token made by
/// [`CancelToken::with_deadline`] also counts as cancelled once its parent is, or once
/// its deadline has passed.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    parent: Option<Arc<CancelToken>>,
    deadline: Option<Instant>,
}

impl CancelToken {
    /// A new, not yet cancelled, token.
    pub fn new() -> Self {
        Self::default()
    }

    /// A child token: cancelled when this one is, when its own [`CancelToken::cancel`]
    /// is called (which does not cancel the parent), or at `deadline`.
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        Self {
            flag: Arc::default(),
            parent: Some(Arc::new(self.clone())),
            deadline: Some(deadline),
        }
    }

    /// Ask the work to stop at its next check point.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// Whether [`CancelToken::cancel`] was called (on this token or a parent) or the
    /// deadline has passed.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
            || self.parent.as_ref().is_some_and(|p| p.is_cancelled())
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// One progress event: a step counter and named scalar metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Completed steps (epochs, search steps, ...), starting at 1.
    pub step: usize,
    /// Total number of steps, when known.
    pub total: Option<usize>,
    /// Named metrics for this step (loss, recall@1, reward, ...).
    pub metrics: Vec<(String, f64)>,
}

/// Receiver of progress events; returns `false` to ask the work to stop early.
pub type ProgressSink<'a> = &'a (dyn Fn(&Progress) -> bool + Sync);

/// Cancellation and progress reporting handed to long-running work.
#[derive(Clone)]
pub struct Monitor<'a> {
    token: CancelToken,
    sink: Option<ProgressSink<'a>>,
}

impl<'a> Monitor<'a> {
    /// A monitor that never cancels and drops progress events.
    pub fn none() -> Monitor<'static> {
        Monitor {
            token: CancelToken::new(),
            sink: None,
        }
    }

    /// A monitor observing `token` and sending progress to `sink`.
    pub fn new(token: CancelToken, sink: Option<ProgressSink<'a>>) -> Self {
        Self { token, sink }
    }

    /// The cancellation token (share it with worker threads).
    pub fn token(&self) -> &CancelToken {
        &self.token
    }

    /// Whether the work was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// `Err(Cancelled)` once the work was asked to stop.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.token.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Send one progress event. Returns `false` (and cancels the token) when the
    /// receiver asked to stop.
    pub fn report(&self, progress: &Progress) -> bool {
        let keep_going = match self.sink {
            Some(sink) => sink(progress),
            None => true,
        };
        if !keep_going {
            self.token.cancel();
        }
        keep_going && !self.token.is_cancelled()
    }
}

fn pool_slot() -> &'static RwLock<Option<Arc<rayon::ThreadPool>>> {
    static POOL: OnceLock<RwLock<Option<Arc<rayon::ThreadPool>>>> = OnceLock::new();
    POOL.get_or_init(|| RwLock::new(None))
}

/// Number of logical CPUs available to this process (at least 1).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Block SIGINT in the calling thread (and so in every thread it starts, such as
/// libtorch's OpenMP workers). gridmatch calls this at the start of each thread it
/// creates, so a Ctrl-C is always delivered to the interpreter's main thread, which
/// handles it (CPython runs signal handlers there only) and cancels the work; a signal
/// landing on a worker inside a native library's barrier had hung a training run.
pub fn block_interrupt_signal() {
    #[cfg(unix)]
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// A pool of `n` gridmatch threads: named `gridmatch-i`, SIGINT blocked in each (see
/// [`block_interrupt_signal`]). Every rayon pool gridmatch starts is built here.
pub fn pool_builder(n: usize) -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .start_handler(|_| block_interrupt_signal())
        .thread_name(|i| format!("gridmatch-{i}"))
}

fn build_pool(n: usize) -> Arc<rayon::ThreadPool> {
    match pool_builder(n).build() {
        Ok(pool) => Arc::new(pool),
        // Spawning threads can fail under tight limits; fall back to one thread,
        // which rayon runs without spawning helpers beyond the first.
        Err(_) => Arc::new(
            pool_builder(1)
                .build()
                .unwrap_or_else(|e| panic!("cannot start a thread: {e}")),
        ),
    }
}

/// The thread pool used for all pure-Rust parallel work.
pub fn pool() -> Arc<rayon::ThreadPool> {
    if let Some(p) = pool_slot().read().ok().and_then(|g| g.clone()) {
        return p;
    }
    let mut guard = match pool_slot().write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    guard
        .get_or_insert_with(|| build_pool(available_cpus()))
        .clone()
}

/// Run `f` inside gridmatch's thread pool (so `rayon::par_iter` uses its threads).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Number of threads of the rayon pool.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Most threads [`set_num_threads`] starts: far above any useful count, and low enough
/// that a mistaken huge value cannot exhaust the process's thread limit.
pub const MAX_THREADS: usize = 1024;

/// Set the number of threads used by gridmatch: the rayon pool for pure-Rust work and
/// libtorch's intra-op pool. `n == 0` means one thread per available CPU; values above
/// [`MAX_THREADS`] are clamped to it.
pub fn set_num_threads(n: usize) {
    let n = if n == 0 {
        available_cpus()
    } else {
        n.min(MAX_THREADS)
    };
    let mut guard = match pool_slot().write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    *guard = Some(build_pool(n));
    #[cfg(feature = "torch")]
    tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
}

/// Number of libtorch intra-op threads (1 in a build without libtorch).
pub fn torch_num_threads() -> usize {
    #[cfg(feature = "torch")]
    return usize::try_from(tch::get_num_threads()).unwrap_or(1);
    #[cfg(not(feature = "torch"))]
    1
}

/// Seed libtorch's global random generator with `seed` and hold it for this thread
/// alone until the guard is dropped: every draw made meanwhile (layer initialisation)
/// is then fixed by the seed, whatever other threads do. libtorch has one CPU generator
/// per process, so without this two models built at once (Ray or Dask threads, parallel
/// tests) would interleave their draws and a seed would no longer fix a network. Code
/// that draws from the global generator without a seed takes the same lock with
/// [`torch_rng_lock`].
#[cfg(feature = "torch")]
pub fn seed_torch_rng(seed: u64) -> std::sync::MutexGuard<'static, ()> {
    let guard = torch_rng_lock();
    // libtorch takes the seed as a signed 64-bit value; keep all 64 bits.
    tch::manual_seed(seed as i64);
    guard
}

/// Hold libtorch's global random generator (see [`seed_torch_rng`]) until the guard is
/// dropped.
#[cfg(feature = "torch")]
pub fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A panic while it was held leaves nothing half-updated that matters here.
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_report_stops_when_sink_says_so() {
        let sink = |p: &Progress| p.step < 3;
        let mon = Monitor::new(CancelToken::new(), Some(&sink));
        let p = |step| Progress {
            step,
            total: None,
            metrics: vec![],
        };
        assert!(mon.report(&p(1)));
        assert!(mon.check().is_ok());
        assert!(!mon.report(&p(3)));
        assert_eq!(mon.check(), Err(Cancelled));
    }

    #[test]
    fn pool_threads_follow_setting() {
        set_num_threads(2);
        assert_eq!(num_threads(), 2);
        assert_eq!(install(rayon::current_num_threads), 2);
        set_num_threads(1);
        assert_eq!(install(rayon::current_num_threads), 1);
    }
}
