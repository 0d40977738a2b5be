//! Conversions between Python objects (numpy arrays, torch tensors) and core types.
//!
//! - torch tensor → `tch::Tensor`: shares storage (no copy).
//! - numpy array → `tch::Tensor`: `torch.from_numpy` then the same unwrap (no copy; the
//!   tensor keeps the array alive).
//! - `tch::Tensor` → torch tensor: wraps the same storage (no copy).
//! - `tch::Tensor` → numpy: detached, moved to CPU and made contiguous if needed, then
//!   `Tensor.numpy()` (no copy when already on CPU and contiguous).

use super::errors::{error, torch_error, Kind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tch::Tensor;

/// Whether `obj` is a `torch.Tensor`.
pub(crate) fn is_torch_tensor(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `obj` is a valid, live Python object for the duration of the call.
    unsafe { tch::python::pyobject_check(obj.as_ptr().cast()) }.unwrap_or(false)
}

fn torch_from_numpy<'py>(py: Python<'py>) -> PyResult<&'py Bound<'py, PyAny>> {
    static FROM_NUMPY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    FROM_NUMPY
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("torch")?.getattr("from_numpy")?.unbind())
        })
        .map(|f| f.bind(py))
}

/// A `tch::Tensor` sharing the memory of a torch tensor or a numpy array.
pub(crate) fn tensor_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let py = obj.py();
    let owned;
    let target = if is_torch_tensor(obj) {
        obj
    } else if obj.hasattr("__array_interface__")? {
        owned = torch_from_numpy(py)?.call1((obj,)).map_err(|e| {
            error(
                Kind::Shape,
                format!("cannot view the array as a tensor: {e}"),
            )
        })?;
        &owned
    } else {
        let ty = obj.get_type().name()?;
        return Err(error(
            Kind::Shape,
            format!("expected a numpy array or a torch tensor, got {ty}"),
        ));
    };
    // SAFETY: `target` is a live torch tensor object (checked above or created by
    // torch.from_numpy); unpack returns a new reference-counted handle to its storage.
    match unsafe { Tensor::pyobject_unpack(target.as_ptr().cast()) } {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(error(Kind::Shape, "object is not a torch tensor")),
        Err(e) => Err(torch_error(e)),
    }
}

/// Wrap a `tch::Tensor` as a `torch.Tensor` (same storage).
pub(crate) fn tensor_to_py<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let ptr = t.pyobject_wrap().map_err(torch_error)?;
    // SAFETY: pyobject_wrap returns a new (owned) reference, or null with a Python error set.
    unsafe { Bound::from_owned_ptr_or_err(py, ptr.cast()) }
}

/// A numpy array with the values of `t` (shares memory for contiguous CPU tensors).
pub(crate) fn tensor_to_numpy<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let t = t
        .f_detach()
        .and_then(|t| t.f_to_device(tch::Device::Cpu))
        .and_then(|t| t.f_contiguous())
        .map_err(torch_error)?;
    tensor_to_py(py, &t)?.call_method0("numpy")
}
