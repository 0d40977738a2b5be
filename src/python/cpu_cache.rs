//! Bindings of the CPU caching allocator ([`crate::train::CpuCache`]): a context manager
//! for the Python loops that call the networks batch by batch (embedding a catalogue),
//! and its counters.

use crate::train::CpuCache;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `with CpuCacheWindow(): ...`: libtorch's freed CPU blocks are kept for the next batch
/// inside the block (see `train::CpuCache`); re-entering an open window is a no-op.
#[pyclass(module = "gridmatch._core")]
struct CpuCacheWindow {
    guard: Option<CpuCache>,
}

#[pymethods]
impl CpuCacheWindow {
    #[new]
    fn new() -> Self {
        CpuCacheWindow { guard: None }
    }

    fn __enter__(mut slf: PyRefMut<'_, Self>) -> PyRefMut<'_, Self> {
        if slf.guard.is_none() {
            slf.guard = Some(CpuCache::enter());
        }
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.guard = None; // closes the window
        false
    }
}

/// The pool's counters: `windows` (open now), `pooled_bytes` (held now), `hits`
/// (requests served from the pool), `misses`, `evicted_bytes`, `live_blocks`.
#[pyfunction]
fn cpu_cache_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = CpuCache::stats();
    let d = PyDict::new(py);
    d.set_item("windows", s.windows)?;
    d.set_item("pooled_bytes", s.pooled_bytes)?;
    d.set_item("hits", s.hits)?;
    d.set_item("misses", s.misses)?;
    d.set_item("evicted_bytes", s.evicted_bytes)?;
    d.set_item("live_blocks", s.live_blocks)?;
    Ok(d)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CpuCacheWindow>()?;
    m.add_function(wrap_pyfunction!(cpu_cache_stats, m)?)?;
    Ok(())
}
