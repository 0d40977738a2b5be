//! pyo3 bindings: the `gridmatch._core` extension module.
//!
//! Only conversions, error mapping and GIL handling live here; every algorithm is in
//! the pure-Rust core.

mod convert;
mod cpu_cache;
mod errors;
mod expr;
mod gsn;
mod heavy;
mod images;
mod loss_hooks;
mod retrieval;
mod search;
mod search_driver;
mod search_reward;
mod store;
mod svm;

use crate::data::idx;
use crate::runtime::{self, Cancelled, Progress};
use heavy::run_heavy;
use numpy::{IntoPyArray, PyArray1, PyArray3, PyArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;

/// Images `(n, rows, cols)` and labels `(n,)` as numpy arrays.
type ImagesLabels<'py> = (Bound<'py, PyArray3<u8>>, Bound<'py, PyArray1<i64>>);

/// Read a pair of IDX files (gzip or raw): images `(n, rows, cols)` uint8 and labels
/// `(n,)` int64. Raises `gridmatch.DataError` on any format problem.
#[pyfunction]
fn read_idx_dataset<'py>(
    py: Python<'py>,
    images: PathBuf,
    labels: PathBuf,
) -> PyResult<ImagesLabels<'py>> {
    let ds = run_heavy(py, None, |_| idx::read_idx_dataset(&images, &labels))?.value;
    let labels: Vec<i64> = ds.labels.iter().map(|&v| i64::from(v)).collect();
    let x = ds
        .images
        .into_pyarray(py)
        .reshape([ds.n, ds.rows, ds.cols])?;
    Ok((x, labels.into_pyarray(py)))
}

/// Set the number of threads of gridmatch's pool and of libtorch (`0`: all CPUs).
#[pyfunction]
fn set_num_threads(n: usize) {
    runtime::set_num_threads(n);
}

/// `(rayon threads, libtorch threads)`.
#[pyfunction]
fn get_num_threads() -> (usize, usize) {
    (runtime::num_threads(), runtime::torch_num_threads())
}

/// Test hook for the heavy-work plumbing: `steps` steps of `step_ms` milliseconds
/// each (checking cancellation every millisecond), reporting progress after each.
/// Returns the number of steps completed; stops early, returning the count so far, on
/// a false callback result or Ctrl-C (then `(count, True)`). With `strict`, Ctrl-C
/// raises `KeyboardInterrupt` instead.
#[pyfunction]
#[pyo3(signature = (steps, step_ms, callback=None, strict=false))]
fn _busy(
    py: Python<'_>,
    steps: usize,
    step_ms: u64,
    callback: Option<&Bound<'_, PyAny>>,
    strict: bool,
) -> PyResult<(usize, bool)> {
    let has_callback = callback.is_some_and(|c| !c.is_none());
    let done = run_heavy(py, callback, |mon| {
        let mut done = 0;
        for step in 1..=steps {
            for _ in 0..step_ms {
                if mon.is_cancelled() {
                    return if strict { Err(Cancelled) } else { Ok(done) };
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            done = step;
            let p = Progress {
                step,
                total: Some(steps),
                metrics: vec![("value".to_string(), step as f64 * 0.5)],
            };
            if !mon.report(&p) {
                // Without a callback only Ctrl-C stops the report (it can land between the
                // check above and this report).
                return if strict && !has_callback {
                    Err(Cancelled)
                } else {
                    Ok(done)
                };
            }
        }
        Ok::<_, Cancelled>(done)
    })?;
    Ok((done.value, done.interrupted))
}

/// Test hook for tensor conversions: `obj * factor` computed by libtorch from Rust,
/// returned as a torch tensor (`as_numpy=False`) or a numpy array.
#[pyfunction]
#[pyo3(signature = (obj, factor=1.0, as_numpy=false))]
fn _tensor_scale<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    factor: f64,
    as_numpy: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let t = convert::tensor_from_py(obj)?;
    let out = if factor == 1.0 {
        t
    } else {
        t.f_mul_scalar(factor).map_err(errors::torch_error)?
    };
    if as_numpy {
        convert::tensor_to_numpy(py, &out)
    } else {
        convert::tensor_to_py(py, &out)
    }
}

/// Test hook: raise the gridmatch exception class named `kind` with `message`.
#[pyfunction]
fn _raise(kind: &str, message: &str) -> PyResult<()> {
    use errors::Kind;
    let k = match kind {
        "base" => Kind::Base,
        "shape" => Kind::Shape,
        "data" => Kind::Data,
        "not_fitted" => Kind::NotFitted,
        "expression" => Kind::Expression,
        "device" => Kind::Device,
        "backend" => Kind::Backend,
        "config" => Kind::Config,
        "cancelled" => return Err(Cancelled.into()),
        other => {
            return Err(errors::error(
                Kind::Config,
                format!("unknown kind {other:?}"),
            ))
        }
    };
    Err(errors::error(k, message))
}

/// The `gridmatch._core` extension module.
#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(read_idx_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(_busy, m)?)?;
    m.add_function(wrap_pyfunction!(_tensor_scale, m)?)?;
    m.add_function(wrap_pyfunction!(_raise, m)?)?;
    cpu_cache::register(m)?;
    expr::register(m)?;
    gsn::register(m)?;
    images::register(m)?;
    loss_hooks::register(m)?;
    retrieval::register(m)?;
    search::register(m)?;
    search_driver::register(m)?;
    search_reward::register(m)?;
    store::register(m)?;
    svm::register(m)?;
    Ok(())
}
