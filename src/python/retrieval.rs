//! Bindings of the retrieval area: `knn` and `evaluate`.
//!
//! The Python layer (`gridmatch/retrieval.py`) validates types and converts inputs: on
//! the CPU it passes C-contiguous float32 numpy arrays and int64 ids; for CUDA (or the
//! torch backend) it passes torch tensors or arrays, moved here to the device.

use super::convert::{tensor_from_py, tensor_to_py};
use super::heavy::run_heavy;
use crate::retrieval::{
    self, torch_backend, Blocks, Device, EvalOptions, KnnOptions, RetrievalError, RetrievalSpec,
};
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

/// Which implementation runs the search.
enum Backend {
    /// The pure-Rust engine (CPU).
    Rust,
    /// libtorch ops on a device.
    Torch(tch::Device),
}

fn backend(device: &str, backend: &str) -> Result<Backend, RetrievalError> {
    let dev: Device = device.parse()?;
    match (backend, dev) {
        ("auto" | "rust", Device::Cpu) => Ok(Backend::Rust),
        ("rust", Device::Cuda(_)) => Err(RetrievalError::InvalidParameter(
            "the rust backend runs on the CPU only".to_string(),
        )),
        ("auto" | "torch", d) => Ok(Backend::Torch(torch_backend::torch_device(d)?)),
        (other, _) => Err(RetrievalError::InvalidParameter(format!(
            "unknown backend {other:?}: expected \"auto\", \"rust\" or \"torch\""
        ))),
    }
}

/// The engine's options of `spec`; the torch backend's default blocks are larger.
fn options(spec: &RetrievalSpec, torch: bool) -> Result<KnnOptions, RetrievalError> {
    spec.knn_options(if torch {
        torch_backend::CUDA_BLOCKS
    } else {
        Blocks::default()
    })
}

fn device_tensor(obj: &Bound<'_, PyAny>, dev: tch::Device) -> PyResult<tch::Tensor> {
    let t = tensor_from_py(obj)?;
    t.f_to_device(dev)
        .map_err(|e| RetrievalError::Backend(e.to_string()).into())
}

/// Exact k nearest neighbours: `(scores, indices)`, numpy arrays for the Rust engine,
/// torch tensors (on the spec's device) for the torch backend. `spec`: a
/// [`RetrievalSpec`] as JSON (metric, exclude_self, device, block_size, backend).
#[pyfunction]
#[pyo3(signature = (queries, gallery, k, spec="{}"))]
pub(crate) fn knn<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    gallery: &Bound<'py, PyAny>,
    k: usize,
    spec: &str,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let spec = RetrievalSpec::from_json(spec)?;
    match backend(&spec.device, &spec.backend)? {
        Backend::Rust => {
            let opts = options(&spec, false)?;
            let q: PyReadonlyArray2<'py, f32> = queries.extract()?;
            let g: PyReadonlyArray2<'py, f32> = gallery.extract()?;
            let (qv, gv) = (q.as_array(), g.as_array());
            let out = run_heavy(py, None, |mon| retrieval::knn_with(qv, gv, k, &opts, mon))?.value;
            Ok((
                out.scores.into_pyarray(py).into_any(),
                out.indices.into_pyarray(py).into_any(),
            ))
        }
        Backend::Torch(dev) => {
            let opts = options(&spec, true)?;
            let q = device_tensor(queries, dev)?;
            let g = device_tensor(gallery, dev)?;
            let (s, i) = run_heavy(py, None, move |mon| {
                torch_backend::knn_tensors(&q, &g, k, &opts, mon)
            })?
            .value;
            Ok((tensor_to_py(py, &s)?, tensor_to_py(py, &i)?))
        }
    }
}

/// Retrieval metrics as `[(name, value), ...]` (see `gridmatch.retrieval.evaluate`);
/// `spec` as for [`knn`].
#[pyfunction]
#[pyo3(signature = (queries, ids_q, gallery, ids_g, ks, spec="{}"))]
pub(crate) fn evaluate<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    ids_q: PyReadonlyArray1<'py, i64>,
    gallery: &Bound<'py, PyAny>,
    ids_g: PyReadonlyArray1<'py, i64>,
    ks: Vec<usize>,
    spec: &str,
) -> PyResult<Vec<(String, f64)>> {
    let spec = RetrievalSpec::from_json(spec)?;
    let ids_q = ids_q.as_slice()?;
    let ids_g = ids_g.as_slice()?;
    let ev = match backend(&spec.device, &spec.backend)? {
        Backend::Rust => {
            let options = EvalOptions {
                ks,
                knn: options(&spec, false)?,
            };
            let q: PyReadonlyArray2<'py, f32> = queries.extract()?;
            let g: PyReadonlyArray2<'py, f32> = gallery.extract()?;
            let (qv, gv) = (q.as_array(), g.as_array());
            run_heavy(py, None, |mon| {
                retrieval::evaluate(qv, ids_q, gv, ids_g, &options, mon)
            })?
            .value
        }
        Backend::Torch(dev) => {
            let options = EvalOptions {
                ks,
                knn: options(&spec, true)?,
            };
            let q = device_tensor(queries, dev)?;
            let g = device_tensor(gallery, dev)?;
            run_heavy(py, None, move |mon| {
                torch_backend::evaluate_tensors(&q, ids_q, &g, ids_g, &options, mon)
            })?
            .value
        }
    };
    Ok(ev.to_pairs())
}

/// Register the retrieval functions in the extension module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("METRIC_NAMES", crate::retrieval::Metric::NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(knn, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    Ok(())
}
