//! Bindings of the search area: spaces, and the kernel / transform searches.

use super::errors::{self, Kind};
use super::expr::{as_f64_2d, check_nesting, PyExpr};
use super::heavy::run_heavy;
use crate::rl::reward;
use crate::rl::rng::Rng;
use crate::rl::search::EvalContext;
use crate::rl::{
    search, ControllerConfig, ControllerKind, RlError, SearchConfig, SearchOutcome, Space,
    SpaceKind,
};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::time::Duration;

impl From<RlError> for PyErr {
    fn from(e: RlError) -> PyErr {
        match e {
            RlError::Config(m) => errors::error(Kind::Expression, m),
            RlError::Expr(e) => e.into(),
            RlError::Torch(m) => errors::error(Kind::Backend, format!("libtorch: {m}")),
            RlError::Cancelled => crate::runtime::Cancelled.into(),
        }
    }
}

/// `(kind, operands, unary, binary, units, final)` as passed from Python.
type SpaceSpec = (String, Vec<String>, Vec<String>, Vec<String>, usize, String);

fn space_from_spec(spec: &SpaceSpec) -> PyResult<Space> {
    let (kind, ops, un, bi, units, fin) = spec;
    let kind = match kind.as_str() {
        "kernel" => SpaceKind::Kernel,
        "transform" => SpaceKind::Transform,
        other => {
            return Err(errors::error(
                Kind::Expression,
                format!("space kind must be 'kernel' or 'transform', got {other:?}"),
            ))
        }
    };
    fn v(l: &[String]) -> Vec<&str> {
        l.iter().map(String::as_str).collect()
    }
    for t in ops.iter().chain(un).chain(bi).chain(std::iter::once(fin)) {
        check_nesting(t, "a template of the space")?;
    }
    Ok(Space::new(kind, &v(ops), &v(un), &v(bi), *units, fin)?)
}

/// The built-in space `name` (`"paper"` or `"activation"`) as a spec tuple.
#[pyfunction]
pub(crate) fn builtin_space(name: &str) -> PyResult<SpaceSpec> {
    let s = match name {
        "paper" => Space::paper_kernel(),
        "activation" => Space::activation_transform(),
        other => {
            return Err(errors::error(
                Kind::Expression,
                format!("unknown search space {other:?}; built-in: 'paper', 'activation'"),
            ))
        }
    };
    let kind = match s.kind {
        SpaceKind::Kernel => "kernel",
        SpaceKind::Transform => "transform",
    };
    let names = |l: &[(String, crate::expr::Expr)]| l.iter().map(|(n, _)| n.clone()).collect();
    Ok((
        kind.to_string(),
        names(&s.operands),
        names(&s.unary),
        names(&s.binary),
        s.units,
        s.final_op.0.clone(),
    ))
}

/// Number of choices of each decision of a space (validates the spec).
#[pyfunction]
pub(crate) fn space_decisions(space: SpaceSpec) -> PyResult<Vec<usize>> {
    Ok(space_from_spec(&space)?.decisions())
}

/// The candidate of a decision sequence.
#[pyfunction]
pub(crate) fn space_build(space: SpaceSpec, actions: Vec<usize>) -> PyResult<PyExpr> {
    let s = space_from_spec(&space)?;
    Ok(PyExpr::from_expr(s.build(&actions)?)?)
}

/// `n` uniformly random candidates of a space.
#[pyfunction]
pub(crate) fn space_sample(space: SpaceSpec, n: usize, seed: u64) -> PyResult<Vec<PyExpr>> {
    let s = space_from_spec(&space)?;
    let dec = s.decisions();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let a: Vec<usize> = dec.iter().map(|&k| rng.below(k)).collect();
            Ok(PyExpr::from_expr(s.build(&a)?)?)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn config(
    controller: &str,
    budget: i64,
    batch_size: i64,
    seed: u64,
    timeout: Option<f64>,
    lr: f64,
    entropy_weight: f64,
    baseline_decay: f64,
    risk_seeking: Option<f64>,
) -> PyResult<SearchConfig> {
    let bad = |m: String| errors::error(Kind::Expression, m);
    let controller = match controller {
        "rl" => ControllerKind::Rl,
        "random" => ControllerKind::Random,
        other => {
            return Err(bad(format!(
                "controller must be 'rl' or 'random', got {other:?}"
            )))
        }
    };
    if budget <= 0 {
        return Err(bad(format!(
            "budget must be a positive number of candidates, got {budget}"
        )));
    }
    if batch_size <= 0 {
        return Err(bad(format!(
            "batch_size must be positive, got {batch_size}"
        )));
    }
    if !(lr > 0.0 && lr.is_finite()) {
        return Err(bad(format!("lr must be positive, got {lr}")));
    }
    if !(entropy_weight >= 0.0 && entropy_weight.is_finite()) {
        return Err(bad(format!(
            "entropy_weight must be >= 0, got {entropy_weight}"
        )));
    }
    if !(0.0..1.0).contains(&baseline_decay) {
        return Err(bad(format!(
            "baseline_decay must be in [0, 1), got {baseline_decay}"
        )));
    }
    if let Some(eps) = risk_seeking {
        if !(eps > 0.0 && eps <= 1.0) {
            return Err(bad(format!(
                "risk_seeking must be a fraction in (0, 1] or None, got {eps}"
            )));
        }
        // samples exactly at the batch's cutoff carry no gradient: ⌊eps·(n − 1)⌋ do
        if eps * ((batch_size - 1) as f64) < 1.0 - 1e-9 {
            return Err(bad(format!(
                "risk_seeking={eps} learns from no sample of a batch of {batch_size}: \
                 it needs risk_seeking * (batch_size - 1) >= 1"
            )));
        }
    }
    let timeout = match timeout {
        None => None,
        Some(t) if t > 0.0 && t.is_finite() => Some(Duration::from_secs_f64(t)),
        Some(t) => return Err(bad(format!("timeout must be positive seconds, got {t}"))),
    };
    Ok(SearchConfig {
        budget: budget as usize,
        batch_size: batch_size as usize,
        seed,
        controller,
        controller_config: ControllerConfig {
            lr,
            entropy_weight,
            baseline_decay,
            risk_seeking,
            ..ControllerConfig::default()
        },
        timeout,
    })
}

fn outcome_to_py<'py>(
    py: Python<'py>,
    out: &SearchOutcome,
    interrupted: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let cands = PyList::empty(py);
    for c in &out.candidates {
        let d = PyDict::new(py);
        d.set_item("expr", c.text.clone())?;
        d.set_item("reward", c.reward)?;
        d.set_item("valid", c.error.is_none())?;
        d.set_item("error", c.error.clone())?;
        d.set_item("step", c.step)?;
        d.set_item("count", c.count)?;
        d.set_item("seconds", c.seconds)?;
        cands.append(d)?;
    }
    let hist = PyList::empty(py);
    for r in &out.history {
        let d = PyDict::new(py);
        d.set_item("step", r.step)?;
        d.set_item("sampled", r.sampled)?;
        d.set_item("reward", r.reward_mean)?;
        d.set_item("reward_max", r.reward_max)?;
        d.set_item("best_so_far", r.best_so_far)?;
        d.set_item("entropy", r.entropy)?;
        d.set_item("unique", r.unique)?;
        d.set_item("invalid", r.invalid)?;
        d.set_item("cache_hits", r.cache_hits)?;
        d.set_item("baseline", r.baseline)?;
        d.set_item("elapsed", r.elapsed)?;
        hist.append(d)?;
    }
    let res = PyDict::new(py);
    res.set_item("candidates", cands)?;
    res.set_item("history", hist)?;
    res.set_item("best", out.best)?;
    res.set_item("interrupted", interrupted)?;
    Ok(res)
}

fn ids_vec(a: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<i64>> {
    let py = a.py();
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("ascontiguousarray", (a, "int64"))
        .map_err(|e| errors::error(Kind::Shape, format!("{what} must be integer ids: {e}")))?;
    let arr: PyReadonlyArray1<'_, i64> = arr
        .extract()
        .map_err(|_| errors::error(Kind::Shape, format!("{what} must be 1-D")))?;
    Ok(arr.as_array().to_vec())
}

/// Transform search: reward = recall@1 (cosine) of the transformed query embeddings
/// against the transformed gallery. Returns a dict of candidates, history, best index
/// and whether it was interrupted.
#[pyfunction]
#[pyo3(signature = (space, E_query, ids_query, E_gallery, ids_gallery, controller="rl", budget=300, batch_size=10, seed=0, timeout=None, lr=2e-4, entropy_weight=0.0025, baseline_decay=0.95, risk_seeking=None, callback=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
pub(crate) fn transform_search<'py>(
    py: Python<'py>,
    space: SpaceSpec,
    E_query: &Bound<'py, PyAny>,
    ids_query: &Bound<'py, PyAny>,
    E_gallery: &Bound<'py, PyAny>,
    ids_gallery: &Bound<'py, PyAny>,
    controller: &str,
    budget: i64,
    batch_size: i64,
    seed: u64,
    timeout: Option<f64>,
    lr: f64,
    entropy_weight: f64,
    baseline_decay: f64,
    risk_seeking: Option<f64>,
    callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let space = space_from_spec(&space)?;
    if space.kind != SpaceKind::Transform {
        return Err(errors::error(
            Kind::Expression,
            "transform search needs a transform space (kind='transform')",
        ));
    }
    let cfg = config(
        controller,
        budget,
        batch_size,
        seed,
        timeout,
        lr,
        entropy_weight,
        baseline_decay,
        risk_seeking,
    )?;
    let q = as_f64_2d(py, E_query, "E_query")?;
    let g = as_f64_2d(py, E_gallery, "E_gallery")?;
    let qid = ids_vec(ids_query, "ids_query")?;
    let gid = ids_vec(ids_gallery, "ids_gallery")?;
    let (qv, gv) = (q.as_array(), g.as_array());
    if qv.nrows() != qid.len() || gv.nrows() != gid.len() {
        return Err(errors::error(
            Kind::Shape,
            format!(
                "{} query embeddings but {} ids; {} gallery embeddings but {} ids",
                qv.nrows(),
                qid.len(),
                gv.nrows(),
                gid.len()
            ),
        ));
    }
    if qv.ncols() != gv.ncols() || qv.nrows() == 0 || gv.nrows() == 0 {
        return Err(errors::error(
            Kind::Shape,
            format!(
                "query and gallery must be non-empty with the same dimension, got {:?} and {:?}",
                qv.dim(),
                gv.dim()
            ),
        ));
    }
    let done = run_heavy(py, callback, |mon| {
        let rew = |e: &crate::expr::Expr, ctx: &EvalContext<'_>| {
            reward::transform_reward(e, qv, &qid, gv, &gid, ctx)
        };
        search(&space, &cfg, rew, mon)
    })?;
    outcome_to_py(py, &done.value, done.interrupted)
}

/// Kernel search: reward = validation accuracy of gridmatch's SVM (C) with the
/// candidate kernel. `y_train` are class indices `0..k`; `y_val` class indices or -1 for
/// classes absent from training. Returns a dict like `transform_search`.
#[pyfunction]
#[pyo3(signature = (space, X_train, y_train, X_val, y_val, C=1.0, controller="rl", budget=500, batch_size=10, seed=0, timeout=None, lr=2e-4, entropy_weight=0.0025, baseline_decay=0.95, risk_seeking=None, callback=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
pub(crate) fn kernel_search<'py>(
    py: Python<'py>,
    space: SpaceSpec,
    X_train: &Bound<'py, PyAny>,
    y_train: &Bound<'py, PyAny>,
    X_val: &Bound<'py, PyAny>,
    y_val: &Bound<'py, PyAny>,
    C: f64,
    controller: &str,
    budget: i64,
    batch_size: i64,
    seed: u64,
    timeout: Option<f64>,
    lr: f64,
    entropy_weight: f64,
    baseline_decay: f64,
    risk_seeking: Option<f64>,
    callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let space = space_from_spec(&space)?;
    if space.kind != SpaceKind::Kernel {
        return Err(errors::error(
            Kind::Expression,
            "kernel search needs a kernel space (kind='kernel')",
        ));
    }
    if !(C > 0.0 && C.is_finite()) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "C must be a positive number, got {C}"
        )));
    }
    let cfg = config(
        controller,
        budget,
        batch_size,
        seed,
        timeout,
        lr,
        entropy_weight,
        baseline_decay,
        risk_seeking,
    )?;
    let xt = as_f64_2d(py, X_train, "X_train")?;
    let xv = as_f64_2d(py, X_val, "X_val")?;
    let yt = ids_vec(y_train, "y_train")?;
    let yv = ids_vec(y_val, "y_val")?;
    let (xtv, xvv) = (xt.as_array(), xv.as_array());
    if xtv.nrows() != yt.len() || xvv.nrows() != yv.len() || xtv.ncols() != xvv.ncols() {
        return Err(errors::error(
            Kind::Shape,
            format!(
                "X_train {:?} / y_train {} and X_val {:?} / y_val {} do not match",
                xtv.dim(),
                yt.len(),
                xvv.dim(),
                yv.len()
            ),
        ));
    }
    if xtv.nrows() == 0 || xvv.nrows() == 0 || xtv.ncols() == 0 {
        return Err(errors::error(
            Kind::Shape,
            "empty training or validation set",
        ));
    }
    let n_classes = yt.iter().copied().max().unwrap_or(0) + 1;
    if yt.iter().any(|&c| c < 0) || n_classes < 2 {
        return Err(errors::error(
            Kind::Shape,
            "y_train must hold class indices 0..k with at least 2 classes",
        ));
    }
    let y_train: Vec<usize> = yt.iter().map(|&c| c as usize).collect();
    let y_val: Vec<Option<usize>> = yv
        .iter()
        .map(|&c| usize::try_from(c).ok().filter(|&c| (c as i64) < n_classes))
        .collect();
    let task = reward::KernelTask {
        x_train: xtv,
        y_train: &y_train,
        x_val: xvv,
        y_val: &y_val,
        n_classes: n_classes as usize,
        c: C,
        params: crate::svm::SolverParams {
            cache_bytes: 16 << 20,
            ..crate::svm::SolverParams::default()
        },
    };
    let done = run_heavy(py, callback, |mon| {
        let rew =
            |e: &crate::expr::Expr, ctx: &EvalContext<'_>| reward::kernel_reward(e, &task, ctx);
        search(&space, &cfg, rew, mon)
    })?;
    outcome_to_py(py, &done.value, done.interrupted)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(builtin_space, m)?)?;
    m.add_function(wrap_pyfunction!(space_decisions, m)?)?;
    m.add_function(wrap_pyfunction!(space_build, m)?)?;
    m.add_function(wrap_pyfunction!(space_sample, m)?)?;
    m.add_function(wrap_pyfunction!(transform_search, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_search, m)?)?;
    Ok(())
}
