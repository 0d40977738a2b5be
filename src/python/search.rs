//! Bindings of the search area: spaces, and the kernel / transform searches.

use super::errors::{self, Kind};
use super::expr::{as_f64_2d, check_nesting, PyExpr};
use super::heavy::run_heavy;
use crate::expr::Expr;
use crate::rl::record::EvalContext;
use crate::rl::reward;
use crate::rl::spec::{kind_from_name, kind_name, SearchSpec, SpaceSpec};
use crate::rl::{search, SearchOutcome, Space, SpaceKind, StepRecord};
use crate::rng::Rng;
use ndarray::ArrayView2;
use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// `(kind, operands, unary, binary, units, final)` as passed from Python.
type SpaceTuple = (String, Vec<String>, Vec<String>, Vec<String>, usize, String);

fn space_from_spec(spec: &SpaceTuple) -> PyResult<Space> {
    let (kind, operands, unary, binary, units, final_op) = spec.clone();
    let spec = SpaceSpec {
        operands,
        unary,
        binary,
        units,
        final_op,
    };
    for t in spec.texts() {
        check_nesting(t, "a template of the space")?;
    }
    Ok(spec.build(kind_from_name(&kind)?)?)
}

/// The built-in space `name` (`"paper"` or `"activation"`) as a spec tuple.
#[pyfunction]
pub(crate) fn builtin_space(name: &str) -> PyResult<SpaceTuple> {
    let s = match name {
        "paper" => Space::paper_kernel(),
        "activation" => Space::activation_transform(),
        other => {
            return Err(errors::error(
                Kind::Config,
                format!("unknown search space {other:?}; built-in: 'paper', 'activation'"),
            ))
        }
    };
    let spec = SpaceSpec::of(&s);
    Ok((
        kind_name(s.kind).to_string(),
        spec.operands,
        spec.unary,
        spec.binary,
        spec.units,
        spec.final_op,
    ))
}

/// Number of choices of each decision of a space (validates the spec).
#[pyfunction]
pub(crate) fn space_decisions(space: SpaceTuple) -> PyResult<Vec<usize>> {
    Ok(space_from_spec(&space)?.decisions())
}

/// The candidate of a decision sequence.
#[pyfunction]
pub(crate) fn space_build(space: SpaceTuple, actions: Vec<usize>) -> PyResult<PyExpr> {
    let s = space_from_spec(&space)?;
    Ok(PyExpr::from_expr(s.build(&actions)?)?)
}

/// `n` uniformly random candidates of a space.
#[pyfunction]
pub(crate) fn space_sample(space: SpaceTuple, n: usize, seed: u64) -> PyResult<Vec<PyExpr>> {
    let s = space_from_spec(&space)?;
    let dec = s.decisions();
    let mut rng = Rng::raw(seed);
    (0..n)
        .map(|_| {
            let a: Vec<usize> = dec.iter().map(|&k| rng.below(k)).collect();
            Ok(PyExpr::from_expr(s.build(&a)?)?)
        })
        .collect()
}

/// Read a search spec (JSON) and build its space, which must be of `kind`.
pub(crate) fn read_spec(spec: &str, kind: SpaceKind) -> PyResult<(SearchSpec, Space)> {
    let spec = SearchSpec::from_json(spec)?;
    if spec.space_kind()? != kind {
        let name = kind_name(kind);
        return Err(errors::error(
            Kind::Config,
            format!("a {name} search needs a {name} space (kind={name:?})"),
        ));
    }
    for t in spec.space.texts() {
        check_nesting(t, "a template of the space")?;
    }
    let space = spec.space()?;
    Ok((spec, space))
}

/// One step record as the dict of a result's history.
pub(crate) fn step_to_py<'py>(py: Python<'py>, r: &StepRecord) -> PyResult<Bound<'py, PyDict>> {
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
    Ok(d)
}

/// A search's outcome as the dict `kernel_search` / `transform_search` return.
pub(crate) fn outcome_to_py<'py>(
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
        hist.append(step_to_py(py, r)?)?;
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

/// The checked data of a transform search: query and gallery embeddings (read in place
/// when already C-contiguous float64, as arrays from Ray's object store are) and ids.
pub(crate) struct TransformData<'py> {
    query: PyReadonlyArray2<'py, f64>,
    gallery: PyReadonlyArray2<'py, f64>,
    ids_query: Vec<i64>,
    ids_gallery: Vec<i64>,
}

impl<'py> TransformData<'py> {
    /// Check shapes and convert (the checks of `transform_search` and `transform_reward`).
    #[allow(non_snake_case)]
    pub(crate) fn new(
        py: Python<'py>,
        E_query: &Bound<'py, PyAny>,
        ids_query: &Bound<'py, PyAny>,
        E_gallery: &Bound<'py, PyAny>,
        ids_gallery: &Bound<'py, PyAny>,
    ) -> PyResult<Self> {
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
        Ok(Self {
            query: q,
            gallery: g,
            ids_query: qid,
            ids_gallery: gid,
        })
    }

    /// Views of the data for the reward (plain Rust values, shareable across threads).
    pub(crate) fn task(&self) -> TransformTask<'_> {
        TransformTask {
            query: self.query.as_array(),
            ids_query: &self.ids_query,
            gallery: self.gallery.as_array(),
            ids_gallery: &self.ids_gallery,
        }
    }
}

/// The data of a transform-search reward.
pub(crate) struct TransformTask<'a> {
    query: ArrayView2<'a, f64>,
    ids_query: &'a [i64],
    gallery: ArrayView2<'a, f64>,
    ids_gallery: &'a [i64],
}

impl TransformTask<'_> {
    /// The reward of a candidate transform (recall@1).
    pub(crate) fn reward(&self, e: &Expr, ctx: &EvalContext<'_>) -> Result<f64, String> {
        reward::transform_reward(
            e,
            self.query,
            self.ids_query,
            self.gallery,
            self.ids_gallery,
            ctx,
        )
    }
}

/// The checked data of a kernel search: training and validation samples (read in place
/// when already C-contiguous float64) and class indices.
pub(crate) struct KernelData<'py> {
    x_train: PyReadonlyArray2<'py, f64>,
    x_val: PyReadonlyArray2<'py, f64>,
    y_train: Vec<usize>,
    y_val: Vec<Option<usize>>,
    n_classes: usize,
}

impl<'py> KernelData<'py> {
    /// Check shapes and labels and convert (the checks of `kernel_search` and
    /// `kernel_reward`).
    #[allow(non_snake_case)]
    pub(crate) fn new(
        py: Python<'py>,
        X_train: &Bound<'py, PyAny>,
        y_train: &Bound<'py, PyAny>,
        X_val: &Bound<'py, PyAny>,
        y_val: &Bound<'py, PyAny>,
    ) -> PyResult<Self> {
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
        Ok(Self {
            x_train: xt,
            x_val: xv,
            y_train,
            y_val,
            n_classes: n_classes as usize,
        })
    }

    /// The reward's task with the SVM's `c`.
    pub(crate) fn task(&self, c: f64) -> reward::KernelTask<'_> {
        reward::KernelTask {
            x_train: self.x_train.as_array(),
            y_train: &self.y_train,
            x_val: self.x_val.as_array(),
            y_val: &self.y_val,
            n_classes: self.n_classes,
            c,
            params: crate::svm::SolverParams {
                cache_bytes: 16 << 20,
                ..crate::svm::SolverParams::default()
            },
        }
    }
}

/// Transform search: reward = recall@1 (cosine) of the transformed query embeddings
/// against the transformed gallery. Returns a dict of candidates, history, best index
/// and whether it was interrupted.
#[pyfunction]
#[pyo3(signature = (spec, E_query, ids_query, E_gallery, ids_gallery, callback=None))]
#[allow(non_snake_case)]
pub(crate) fn transform_search<'py>(
    py: Python<'py>,
    spec: &str,
    E_query: &Bound<'py, PyAny>,
    ids_query: &Bound<'py, PyAny>,
    E_gallery: &Bound<'py, PyAny>,
    ids_gallery: &Bound<'py, PyAny>,
    callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (spec, space) = read_spec(spec, SpaceKind::Transform)?;
    let cfg = spec.config()?;
    let data = TransformData::new(py, E_query, ids_query, E_gallery, ids_gallery)?;
    let task = data.task();
    let done = run_heavy(py, callback, |mon| {
        search(&space, &cfg, |e, ctx| task.reward(e, ctx), mon)
    })?;
    outcome_to_py(py, &done.value, done.interrupted)
}

/// Kernel search: reward = validation accuracy of gridmatch's SVM (C) with the
/// candidate kernel. `y_train` are class indices `0..k`; `y_val` class indices or -1 for
/// classes absent from training. Returns a dict like `transform_search`.
#[pyfunction]
#[pyo3(signature = (spec, X_train, y_train, X_val, y_val, callback=None))]
#[allow(non_snake_case)]
pub(crate) fn kernel_search<'py>(
    py: Python<'py>,
    spec: &str,
    X_train: &Bound<'py, PyAny>,
    y_train: &Bound<'py, PyAny>,
    X_val: &Bound<'py, PyAny>,
    y_val: &Bound<'py, PyAny>,
    callback: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (spec, space) = read_spec(spec, SpaceKind::Kernel)?;
    let cfg = spec.config()?;
    let c = spec.svm_c()?;
    let data = KernelData::new(py, X_train, y_train, X_val, y_val)?;
    let task = data.task(c);
    let done = run_heavy(py, callback, |mon| {
        search(
            &space,
            &cfg,
            |e, ctx| reward::kernel_reward(e, &task, ctx),
            mon,
        )
    })?;
    outcome_to_py(py, &done.value, done.interrupted)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add(
        "CONTROLLER_NAMES",
        crate::rl::spec::CONTROLLER_NAMES.to_vec(),
    )?;
    m.add_function(wrap_pyfunction!(builtin_space, m)?)?;
    m.add_function(wrap_pyfunction!(space_decisions, m)?)?;
    m.add_function(wrap_pyfunction!(space_build, m)?)?;
    m.add_function(wrap_pyfunction!(space_sample, m)?)?;
    m.add_function(wrap_pyfunction!(transform_search, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_search, m)?)?;
    Ok(())
}
