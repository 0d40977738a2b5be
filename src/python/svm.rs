//! Bindings of the SVM area: `svm_fit` and `svm_decision` (numpy in, numpy out).

use super::heavy::run_heavy;
use crate::svm::{
    fit_ovo_features_with, fit_ovo_with, predict_proba, BuiltinKernel, ExprGram, Gram, OvoModel,
    PrecomputedGram, SolverParams, SvmError,
};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn builtin(kernel: &str, gamma: f64, coef0: f64, degree: i32) -> PyResult<Option<BuiltinKernel>> {
    Ok(Some(match kernel {
        "linear" => BuiltinKernel::Linear,
        "rbf" => BuiltinKernel::Rbf { gamma },
        "poly" => BuiltinKernel::Poly { gamma, coef0, degree },
        "sigmoid" => BuiltinKernel::Sigmoid { gamma, coef0 },
        "precomputed" | "expression" => return Ok(None),
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown kernel {other:?}: expected 'linear', 'poly', 'rbf', 'sigmoid' or 'precomputed'"
            )))
        }
    }))
}

/// Fit a one-vs-one C-SVC. `x` is float32 `(n, d)` features, or float64 `(n, n)` Gram
/// matrix when `kernel == "precomputed"`; `y` int64 class indices `0..n_classes`;
/// `sample_c` float64 per-sample box bounds. With `probability_seed` (a `u32`), also
/// fits libsvm's probability model (5-fold cross-validation shuffled from that seed).
/// Returns a dict with `support`, `n_support`, `dual_coef`, `rho`, `iterations`,
/// `converged`, `interrupted`, `prob_a`, `prob_b` (empty without a probability model).
#[pyfunction]
#[pyo3(signature = (x, y, n_classes, sample_c, kernel, gamma, coef0, degree, tol, cache_size, max_iter, n_jobs=0, callback=None, expr=None, probability_seed=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn svm_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: PyReadonlyArray1<'py, i64>,
    n_classes: usize,
    sample_c: PyReadonlyArray1<'py, f64>,
    kernel: &str,
    gamma: f64,
    coef0: f64,
    degree: i32,
    tol: f64,
    cache_size: f64,
    max_iter: i64,
    n_jobs: usize,
    callback: Option<&Bound<'py, PyAny>>,
    expr: Option<PyRef<'py, super::expr::PyExpr>>,
    probability_seed: Option<u32>,
) -> PyResult<Bound<'py, PyDict>> {
    let prob = probability_seed;
    let kern = builtin(kernel, gamma, coef0, degree)?;
    let y: Vec<usize> = y
        .as_array()
        .iter()
        .map(|&v| usize::try_from(v).map_err(|_| SvmError::Value(format!("negative label {v}"))))
        .collect::<Result<_, _>>()?;
    let c = sample_c.as_array().to_vec();
    if tol.is_nan() || tol <= 0.0 {
        return Err(SvmError::Value(format!("tol must be > 0, got {tol}")).into());
    }
    let params = SolverParams {
        tol,
        cache_bytes: (cache_size.max(1.0) * (1u64 << 20) as f64) as usize,
        max_iter: usize::try_from(max_iter).ok(),
        shrinking: true,
    };
    let fitted = match kern {
        None if kernel == "expression" => {
            // An expression kernel on float64 features: rows computed on demand and
            // cached by the solver, so memory is bounded by `cache_size`.
            let e = expr
                .as_ref()
                .ok_or_else(|| SvmError::Value("kernel 'expression' needs expr".into()))?;
            let prog = &e.program;
            let xa: PyReadonlyArray2<'py, f64> = x.extract()?;
            let xv = xa.as_array();
            let (n, dim) = xv.dim();
            let xs = xv.as_slice().ok_or_else(|| {
                SvmError::Shape("the features must be a C-contiguous float64 array".into())
            })?;
            let g = ExprGram::new(prog, xs, n, dim).ok_or_else(|| {
                SvmError::Shape(format!(
                    "an expression kernel needs a scalar expression and features (got {n}x{dim})"
                ))
            })?;
            let out = run_heavy(py, callback, |mon| {
                with_threads(n_jobs, || fit(&g, &y, n_classes, &c, &params, prob, mon))
            })?;
            if g.saw_non_finite() {
                return Err(crate::python::errors::error(
                    crate::python::errors::Kind::Expression,
                    format!(
                        "the kernel expression {} gave non-finite values (NaN or infinity) \
                         on the training data",
                        e.text
                    ),
                ));
            }
            out
        }
        Some(k) => {
            let xa: PyReadonlyArray2<'py, f32> = x.extract()?;
            let xv = xa.as_array();
            run_heavy(py, callback, |mon| {
                with_threads(n_jobs, || {
                    fit_ovo_features_with(&k, xv, &y, n_classes, &c, &params, prob, mon)
                })
            })?
        }
        None => {
            let ka: PyReadonlyArray2<'py, f64> = x.extract()?;
            let kv = ka.as_array();
            let g = PrecomputedGram::new(kv).ok_or_else(|| {
                SvmError::Shape(format!(
                    "Precomputed matrix must be a square matrix. Input is a {}x{} matrix.",
                    kv.nrows(),
                    kv.ncols()
                ))
            })?;
            run_heavy(py, callback, |mon| {
                with_threads(n_jobs, || fit(&g, &y, n_classes, &c, &params, prob, mon))
            })?
        }
    };
    let m = fitted.value;
    let d = PyDict::new(py);
    let support: Vec<i64> = m.support.iter().map(|&v| v as i64).collect();
    let n_support: Vec<i64> = m.n_support.iter().map(|&v| v as i64).collect();
    let iterations: Vec<i64> = m.iterations.iter().map(|&v| v as i64).collect();
    d.set_item("support", support.into_pyarray(py))?;
    d.set_item("n_support", n_support.into_pyarray(py))?;
    d.set_item("dual_coef", m.dual_coef.to_pyarray(py))?;
    d.set_item("rho", m.rho.into_pyarray(py))?;
    d.set_item("iterations", iterations.into_pyarray(py))?;
    d.set_item("converged", m.converged)?;
    d.set_item("interrupted", fitted.interrupted)?;
    d.set_item("prob_a", m.prob_a.into_pyarray(py))?;
    d.set_item("prob_b", m.prob_b.into_pyarray(py))?;
    Ok(d)
}

/// Run `f` in a pool of `n` threads (`0`: gridmatch's pool, which runs the caller).
fn with_threads<T: Send>(
    n: usize,
    f: impl FnOnce() -> Result<T, SvmError> + Send,
) -> Result<T, SvmError> {
    if n == 0 {
        return f();
    }
    match crate::runtime::pool_builder(n).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

fn fit(
    g: &dyn Gram,
    y: &[usize],
    n_classes: usize,
    c: &[f64],
    params: &SolverParams,
    probability: Option<u32>,
    mon: &crate::runtime::Monitor<'_>,
) -> Result<OvoModel, SvmError> {
    fit_ovo_with(g, y, n_classes, c, params, probability, mon)
}

/// Decision values `(n, n_pairs)` (libsvm's sign convention) of a fitted model.
/// `x` is float32 `(n, d)` (with `sv` float32 `(n_sv, d)`), or float64 `(n, n_train)`
/// kernel values when `kernel == "precomputed"` (then `sv` is ignored).
#[pyfunction]
#[pyo3(signature = (x, sv, support, n_support, dual_coef, rho, kernel, gamma, coef0, degree, n_jobs=0))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn svm_decision<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    sv: Option<PyReadonlyArray2<'py, f32>>,
    support: PyReadonlyArray1<'py, i64>,
    n_support: PyReadonlyArray1<'py, i64>,
    dual_coef: PyReadonlyArray2<'py, f64>,
    rho: PyReadonlyArray1<'py, f64>,
    kernel: &str,
    gamma: f64,
    coef0: f64,
    degree: i32,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let kern = builtin(kernel, gamma, coef0, degree)?;
    let to_usize =
        |v: &i64| usize::try_from(*v).map_err(|_| SvmError::Value(format!("negative index {v}")));
    let n_support: Vec<usize> = n_support
        .as_array()
        .iter()
        .map(to_usize)
        .collect::<Result<_, _>>()?;
    let model = OvoModel {
        n_classes: n_support.len(),
        support: support
            .as_array()
            .iter()
            .map(to_usize)
            .collect::<Result<_, _>>()?,
        n_support,
        dual_coef: dual_coef.as_array().to_owned(),
        rho: rho.as_array().to_vec(),
        iterations: Vec::new(),
        converged: true,
        prob_a: Vec::new(),
        prob_b: Vec::new(),
    };
    let dec = match kern {
        Some(k) => {
            let sv = sv.ok_or_else(|| SvmError::Value("support vectors are required".into()))?;
            let svv = sv.as_array();
            let xa: PyReadonlyArray2<'py, f32> = x.extract()?;
            let xv = xa.as_array();
            run_heavy(py, None, |_| {
                with_threads(n_jobs, || model.decision_function(&k, svv, xv))
            })?
            .value
        }
        None => {
            let ka: PyReadonlyArray2<'py, f64> = x.extract()?;
            let kv = ka.as_array();
            run_heavy(py, None, |_| {
                with_threads(n_jobs, || model.decision_precomputed(kv))
            })?
            .value
        }
    };
    Ok(dec.into_pyarray(py))
}

/// Class probabilities `(n, n_classes)` from pair decision values `dec` `(n, n_pairs)`
/// (libsvm's sign) and the pairs' Platt parameters `prob_a`, `prob_b` (libsvm's
/// `svm_predict_probability`: sigmoid, clipping to `[1e-7, 1 - 1e-7]`, pairwise
/// coupling).
#[pyfunction]
#[pyo3(signature = (dec, prob_a, prob_b, n_classes, n_jobs=0))]
pub(crate) fn svm_proba<'py>(
    py: Python<'py>,
    dec: PyReadonlyArray2<'py, f64>,
    prob_a: PyReadonlyArray1<'py, f64>,
    prob_b: PyReadonlyArray1<'py, f64>,
    n_classes: usize,
    n_jobs: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let dv = dec.as_array();
    let a = prob_a.as_array().to_vec();
    let b = prob_b.as_array().to_vec();
    if !a.iter().chain(&b).all(|v| v.is_finite()) {
        return Err(SvmError::Value("probA_ / probB_ hold NaN or infinite values".into()).into());
    }
    let p = run_heavy(py, None, |_| {
        with_threads(n_jobs, || predict_proba(dv, &a, &b, n_classes))
    })?
    .value;
    Ok(p.into_pyarray(py))
}

/// libsvm's Platt fit `(A, B)` on decision values `dec` with labels `positive` (the
/// first class of the pair); exposed to check it against a direct minimisation.
#[pyfunction]
pub(crate) fn svm_sigmoid_train(
    dec: PyReadonlyArray1<'_, f64>,
    positive: PyReadonlyArray1<'_, bool>,
) -> PyResult<(f64, f64)> {
    let d = dec.as_array().to_vec();
    let p = positive.as_array().to_vec();
    if d.len() != p.len() || d.is_empty() {
        return Err(SvmError::Shape(format!(
            "{} decision values and {} labels (need as many, at least one)",
            d.len(),
            p.len()
        ))
        .into());
    }
    if !d.iter().all(|v| v.is_finite()) {
        return Err(SvmError::Value("decision values must be finite".into()).into());
    }
    Ok(crate::svm::probability::sigmoid_train(&d, &p))
}

/// Register the SVM functions in `_core`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(svm_fit, m)?)?;
    m.add_function(wrap_pyfunction!(svm_decision, m)?)?;
    m.add_function(wrap_pyfunction!(svm_proba, m)?)?;
    m.add_function(wrap_pyfunction!(svm_sigmoid_train, m)?)?;
    Ok(())
}
