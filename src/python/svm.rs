//! Bindings of the SVM area: `svm_fit` and `svm_decision` (numpy in, numpy out), each
//! taking the fit's [`SvmSpec`] as JSON.

use super::errors::{self, Kind};
use super::heavy::run_heavy;
use crate::svm::{
    fit_ovo_features_with, fit_ovo_sparse_with, fit_ovo_with, predict_proba, BuiltinKernel,
    Classes, CsrRows, ExprGram, Gram, Kernel, KernelSpec, OvoModel, PrecomputedGram, ShiftedKernel,
    SolverParams, SvmError, SvmSpec, KERNEL_NAMES,
};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// The arrays of a fitted model as Python passes them back for prediction.
#[derive(FromPyObject)]
pub(crate) struct ModelArrays<'py> {
    #[pyo3(item)]
    support: PyReadonlyArray1<'py, i64>,
    #[pyo3(item)]
    n_support: PyReadonlyArray1<'py, i64>,
    #[pyo3(item)]
    dual_coef: PyReadonlyArray2<'py, f64>,
    #[pyo3(item)]
    rho: PyReadonlyArray1<'py, f64>,
}

/// A CSR matrix from Python: `(data float64, indices int64, indptr int64, n_columns)`
/// (scipy's arrays, canonical: no column twice in a row).
type CsrArgs<'py> = (
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, i64>,
    usize,
);

/// The CSR arrays `x` as Python passes them (a tuple), or `None` for a dense array.
fn sparse_args<'py>(x: &Bound<'py, PyAny>) -> PyResult<Option<CsrArgs<'py>>> {
    if x.is_instance_of::<PyTuple>() {
        Ok(Some(x.extract()?))
    } else {
        Ok(None)
    }
}

/// The checked CSR matrix of `a`.
fn csr<'a>(a: &'a CsrArgs<'_>) -> Result<CsrRows<'a>, SvmError> {
    let contiguous = |_| SvmError::Shape("sparse matrix arrays must be contiguous".into());
    CsrRows::new(
        a.0.as_slice().map_err(contiguous)?,
        a.1.as_slice().map_err(contiguous)?,
        a.2.as_slice().map_err(contiguous)?,
        a.3,
    )
}

fn read_spec(spec: &str) -> PyResult<SvmSpec> {
    Ok(SvmSpec::from_json(spec)?)
}

/// The built-in kernel `k` on rows centred by `shift` (float64, one value per feature
/// of `d`), or `k` itself without a shift.
fn builtin_kernel(
    k: BuiltinKernel,
    shift: Option<PyReadonlyArray1<'_, f64>>,
    d: usize,
) -> Result<Box<dyn Kernel>, SvmError> {
    let Some(shift) = shift else {
        return Ok(Box::new(k));
    };
    let m = shift.as_array().to_vec();
    if m.len() != d {
        return Err(SvmError::Shape(format!(
            "the shift has {} values, the features have {d} columns",
            m.len()
        )));
    }
    if !m.iter().all(|v| v.is_finite()) {
        return Err(SvmError::Value(
            "the shift holds NaN or infinite values".into(),
        ));
    }
    Ok(Box::new(ShiftedKernel::new(k, m)))
}

/// Fit a one-vs-one C-SVC. `spec` is the fit's [`SvmSpec`] as JSON (kernel, tol,
/// cache, iteration limit, threads, probability seed). `x` is float32 `(n, d)` features
/// for built-in kernels (or sparse rows: a tuple `(data float64, indices int64, indptr
/// int64, n_columns)` of a canonical CSR matrix, never centred), float64 `(n, d)`
/// features for an expression kernel, or the float64 `(n, n)` Gram matrix for
/// `"precomputed"`; `y` int64 class indices
/// `0..k`, every class with a sample of positive weight; `sample_c` float64 per-sample box bounds. With `shift` (float64,
/// one value per feature; built-in kernels only), `x` holds the features minus
/// `shift` and the kernel is [`ShiftedKernel`]'s (`rho` is then `rho'`, the bias of
/// the shifted kernel). Returns a dict with
/// `support`, `n_support`, `dual_coef`, `rho`, `iterations`, `converged`,
/// `interrupted`, `prob_a`, `prob_b` (empty without a probability model).
#[pyfunction]
#[pyo3(signature = (x, y, sample_c, spec, callback=None, shift=None))]
pub(crate) fn svm_fit<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: PyReadonlyArray1<'py, i64>,
    sample_c: PyReadonlyArray1<'py, f64>,
    spec: &str,
    callback: Option<&Bound<'py, PyAny>>,
    shift: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let spec = read_spec(spec)?;
    let prob = spec.probability_seed;
    let n_jobs = spec.n_jobs;
    let y: Vec<usize> = y
        .as_array()
        .iter()
        .map(|&v| usize::try_from(v).map_err(|_| SvmError::Value(format!("negative label {v}"))))
        .collect::<Result<_, _>>()?;
    // Classes are 0..=max(y); the solver refuses a class without a sample.
    let n_classes = y.iter().max().map_or(0, |&m| m + 1);
    let c = sample_c.as_array().to_vec();
    let params = spec.solver_params();
    let fitted = if let Some(prog) = spec.kernel.program()? {
        // An expression kernel on float64 features: rows computed on demand and
        // cached by the solver, so memory is bounded by `cache_size`.
        let xa: PyReadonlyArray2<'py, f64> = x.extract()?;
        let xv = xa.as_array();
        let (n, dim) = xv.dim();
        let xs = xv.as_slice().ok_or_else(|| {
            SvmError::Shape("the features must be a C-contiguous float64 array".into())
        })?;
        let g = ExprGram::new(&prog, xs, n, dim).ok_or_else(|| {
            SvmError::Shape(format!(
                "an expression kernel needs a scalar expression and features (got {n}x{dim})"
            ))
        })?;
        let out = run_heavy(py, callback, |mon| {
            with_threads(n_jobs, || fit(&g, &y, n_classes, &c, &params, prob, mon))
        })?;
        if g.saw_non_finite() {
            let text = match &spec.kernel {
                KernelSpec::Expression { text } => text.as_str(),
                _ => "",
            };
            return Err(errors::error(
                Kind::Expression,
                format!(
                    "the kernel expression {text} gave non-finite values (NaN or infinity) \
                     on the training data"
                ),
            ));
        }
        out
    } else if let (Some(k), Some(parts)) = (spec.kernel.builtin(), sparse_args(x)?) {
        // Sparse rows: kernel values from float64 sparse dot products (not centred).
        if shift.is_some() {
            return Err(SvmError::Value("a sparse matrix is not given with a shift".into()).into());
        }
        let xs = csr(&parts)?;
        let classes = Classes::new(&y, n_classes, &c);
        run_heavy(py, callback, |mon| {
            with_threads(n_jobs, || {
                fit_ovo_sparse_with(k, &xs, &classes, &params, prob, mon)
            })
        })?
    } else if let Some(k) = spec.kernel.builtin() {
        let xa: PyReadonlyArray2<'py, f32> = x.extract()?;
        let xv = xa.as_array();
        let k = builtin_kernel(k, shift, xv.ncols())?;
        let k = k.as_ref();
        run_heavy(py, callback, |mon| {
            with_threads(n_jobs, || {
                fit_ovo_features_with(k, xv, &Classes::new(&y, n_classes, &c), &params, prob, mon)
            })
        })?
    } else {
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
    fit_ovo_with(g, &Classes::new(y, n_classes, c), params, probability, mon)
}

/// Decision values `(n, n_pairs)` (libsvm's sign convention) of a fitted model
/// (`model`: a dict of `support`, `n_support`, `dual_coef`, `rho`) under the fit's
/// `spec` (JSON). `x` is float32 `(n, d)` with `sv` float32 `(n_sv, d)` for built-in
/// kernels (or both CSR tuples, as `svm_fit` takes them); float64 features and support vectors for an expression kernel (evaluated
/// here against the support vectors, a block of rows at a time); float64 `(n,
/// n_train)` kernel values for `"precomputed"` (then `sv` is ignored). With `shift`
/// (built-in kernels only), `x` and `sv` are centred by it and `rho` is the shifted
/// kernel's bias (see `svm_fit`).
#[pyfunction]
#[pyo3(signature = (x, sv, model, spec, shift=None))]
pub(crate) fn svm_decision<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    sv: Option<&Bound<'py, PyAny>>,
    model: ModelArrays<'py>,
    spec: &str,
    shift: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let spec = read_spec(spec)?;
    let n_jobs = spec.n_jobs;
    let to_usize =
        |v: &i64| usize::try_from(*v).map_err(|_| SvmError::Value(format!("negative index {v}")));
    let n_support: Vec<usize> = model
        .n_support
        .as_array()
        .iter()
        .map(to_usize)
        .collect::<Result<_, _>>()?;
    let model = OvoModel {
        n_classes: n_support.len(),
        support: model
            .support
            .as_array()
            .iter()
            .map(to_usize)
            .collect::<Result<_, _>>()?,
        n_support,
        dual_coef: model.dual_coef.as_array().to_owned(),
        rho: model.rho.as_array().to_vec(),
        iterations: Vec::new(),
        converged: true,
        prob_a: Vec::new(),
        prob_b: Vec::new(),
    };
    let need_sv = || SvmError::Value("support vectors are required".into());
    let dec = if let Some(prog) = spec.kernel.program()? {
        let sv: PyReadonlyArray2<'py, f64> = sv.ok_or_else(need_sv)?.extract()?;
        let xa: PyReadonlyArray2<'py, f64> = x.extract()?;
        let (svv, xv) = (sv.as_array(), xa.as_array());
        run_heavy(py, None, |mon| {
            let token = mon.token();
            with_threads(n_jobs, || model.decision_expression(&prog, svv, xv, token))
        })?
        .value
    } else if let (Some(k), Some(parts)) = (spec.kernel.builtin(), sparse_args(x)?) {
        let sv_parts = sparse_args(sv.ok_or_else(need_sv)?)?.ok_or_else(|| {
            SvmError::Shape("sparse X needs the support vectors as a sparse matrix".into())
        })?;
        if shift.is_some() {
            return Err(SvmError::Value("a sparse matrix is not given with a shift".into()).into());
        }
        let (xs, svs) = (csr(&parts)?, csr(&sv_parts)?);
        run_heavy(py, None, |_| {
            with_threads(n_jobs, || model.decision_sparse(&k, &svs, &xs))
        })?
        .value
    } else if let Some(k) = spec.kernel.builtin() {
        let sv: PyReadonlyArray2<'py, f32> = sv.ok_or_else(need_sv)?.extract()?;
        let svv = sv.as_array();
        let xa: PyReadonlyArray2<'py, f32> = x.extract()?;
        let xv = xa.as_array();
        let k = builtin_kernel(k, shift, xv.ncols())?;
        let k = k.as_ref();
        run_heavy(py, None, |_| {
            with_threads(n_jobs, || model.decision_function(k, svv, xv))
        })?
        .value
    } else {
        let ka: PyReadonlyArray2<'py, f64> = x.extract()?;
        let kv = ka.as_array();
        run_heavy(py, None, |_| {
            with_threads(n_jobs, || model.decision_precomputed(kv))
        })?
        .value
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
    m.add("KERNEL_NAMES", KERNEL_NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(svm_fit, m)?)?;
    m.add_function(wrap_pyfunction!(svm_decision, m)?)?;
    m.add_function(wrap_pyfunction!(svm_proba, m)?)?;
    m.add_function(wrap_pyfunction!(svm_sigmoid_train, m)?)?;
    Ok(())
}
