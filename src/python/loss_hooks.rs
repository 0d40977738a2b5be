//! Test hooks of the losses: a loss's value and gradients for given arrays, and
//! ArcFace's initial proxies (what the Python tests compare with PyTorch and
//! pytorch-metric-learning).

use super::convert::{tensor_from_py, tensor_to_py};
use super::errors::{error, torch_error, Kind};
use super::heavy::run_heavy;
use crate::losses::Loss;
use crate::train::GsnError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Test hook: loss and its gradient with respect to `a` (the similarity map of a grid
/// loss, or the embeddings of a pair loss); `b` is the grid target or the labels; `loss`
/// is a loss spec (JSON, as `GsnModel.fit` takes it). A proxy loss (ArcFace) takes its
/// class proxies `(num_classes, dim)` as `proxies` (and class indices as `b`), and the
/// gradient with respect to them is returned third.
#[pyfunction]
#[pyo3(signature = (loss, a, b, proxies=None))]
fn _loss_and_grad<'py>(
    py: Python<'py>,
    loss: &str,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    proxies: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let kind = Loss::from_json(loss).map_err(|m| error(Kind::Config, m))?;
    if kind.needs_proxies() != proxies.is_some() {
        let (name, what) = (
            kind.name(),
            ["takes no", "needs"][kind.needs_proxies() as usize],
        );
        return Err(error(
            Kind::Config,
            format!("the {name} loss {what} proxies"),
        ));
    }
    // own copies: the work runs on another thread without the GIL
    let copy = |x: &Bound<'py, PyAny>| {
        tensor_from_py(x)?
            .f_detach()
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_mul_scalar(1.0))
            .map_err(torch_error)
    };
    let a = copy(a)?;
    let p = proxies.map(copy).transpose()?;
    let b = tensor_from_py(b)?.f_contiguous().map_err(torch_error)?;
    type Grads = (f64, tch::Tensor, Option<tch::Tensor>);
    let (value, grad, grad_p) = run_heavy(py, None, move |_| -> Result<Grads, GsnError> {
        let a = a.set_requires_grad(true);
        let p = p.map(|p| p.set_requires_grad(true));
        let l = if kind.is_grid() {
            kind.grid(&a, &b)?
        } else {
            kind.pairs(&a, &b, p.as_ref()).map_err(|e| match e {
                tch::TchError::Shape(m) => GsnError::Shape(m),
                e => GsnError::Torch(e),
            })?
        };
        l.f_backward()?;
        Ok((l.f_double_value(&[])?, a.grad(), p.map(|p| p.grad())))
    })?
    .value;
    let mut out = vec![
        value.into_pyobject(py)?.into_any(),
        tensor_to_py(py, &grad)?,
    ];
    if let Some(g) = grad_p {
        out.push(tensor_to_py(py, &g)?);
    }
    PyTuple::new(py, out)
}

/// Test hook: ArcFace's initial proxies `(num_classes, dim)` drawn with `seed` (see
/// [`crate::losses::arcface::init_proxies`]), as a torch tensor.
#[pyfunction]
fn _arcface_proxies<'py>(
    py: Python<'py>,
    num_classes: i64,
    dim: i64,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let w = crate::losses::arcface::init_proxies(num_classes, dim, seed, tch::Device::Cpu)
        .map_err(|e| error(Kind::Shape, e.to_string()))?;
    tensor_to_py(py, &w)
}

/// Register the hooks.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_loss_and_grad, m)?)?;
    m.add_function(wrap_pyfunction!(_arcface_proxies, m)?)?;
    Ok(())
}
