//! Bindings of the model-file store (`crate::store`): named arrays + string metadata
//! in a checksummed safetensors file, written atomically.

use super::heavy::run_heavy;
use crate::store::{self, Array};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `(name, dtype, shape, bytes)` of one array as exchanged with Python.
type PyArrayEntry = (String, String, Vec<usize>, Vec<u8>);
/// The arrays and metadata of a file as returned to Python.
type Loaded<'py> = (
    Vec<(String, String, Vec<usize>, Bound<'py, PyBytes>)>,
    BTreeMap<String, String>,
);

fn to_arrays(arrays: Vec<PyArrayEntry>) -> Vec<(String, Array)> {
    arrays
        .into_iter()
        .map(|(name, dtype, shape, data)| (name, Array { dtype, shape, data }))
        .collect()
}

fn to_py<'py>(
    py: Python<'py>,
    (arrays, meta): (Vec<(String, Array)>, BTreeMap<String, String>),
) -> Loaded<'py> {
    let arrays = arrays
        .into_iter()
        .map(|(n, a)| (n, a.dtype, a.shape, PyBytes::new(py, &a.data)))
        .collect();
    (arrays, meta)
}

/// Serialise arrays `(name, dtype, shape, little-endian bytes)` and string metadata to
/// checksummed safetensors bytes.
#[pyfunction]
pub(crate) fn store_dumps<'py>(
    py: Python<'py>,
    arrays: Vec<PyArrayEntry>,
    metadata: BTreeMap<String, String>,
) -> PyResult<Bound<'py, PyBytes>> {
    let arrays = to_arrays(arrays);
    let bytes = run_heavy(py, None, |_| store::to_bytes(&arrays, &metadata))?.value;
    Ok(PyBytes::new(py, &bytes))
}

/// Parse and verify bytes written by `store_dumps`; raises `gridmatch.DataError`.
#[pyfunction]
pub(crate) fn store_loads<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Loaded<'py>> {
    let out = run_heavy(py, None, |_| store::from_bytes(data))?.value;
    Ok(to_py(py, out))
}

/// Write arrays and metadata to `path` atomically (temporary file, then rename).
#[pyfunction]
pub(crate) fn store_save(
    py: Python<'_>,
    path: PathBuf,
    arrays: Vec<PyArrayEntry>,
    metadata: BTreeMap<String, String>,
) -> PyResult<()> {
    let arrays = to_arrays(arrays);
    run_heavy(py, None, |_| store::save(&path, &arrays, &metadata))?;
    Ok(())
}

/// Read and verify a file written by `store_save`; raises `gridmatch.DataError`.
#[pyfunction]
pub(crate) fn store_load<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Loaded<'py>> {
    let out = run_heavy(py, None, |_| store::load(&path))?.value;
    Ok(to_py(py, out))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(store_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(store_loads, m)?)?;
    m.add_function(wrap_pyfunction!(store_save, m)?)?;
    m.add_function(wrap_pyfunction!(store_load, m)?)?;
    Ok(())
}
