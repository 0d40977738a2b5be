//! Bindings of one candidate's reward, for evaluation in another process (a Ray or
//! Dask worker): the same data checks as the searches (shared with them), the same
//! reward and validity rules ([`crate::rl::driver::evaluate`]), run with the GIL released
//! in a rayon pool of the given size.

use super::errors::{self, Kind};
use super::expr::check_nesting;
use super::heavy::run_heavy;
use super::search::{read_spec, KernelData, TransformData};
use crate::expr::{self, Expr};
use crate::rl::driver::evaluate;
use crate::rl::record::EvalContext;
use crate::rl::{reward, SpaceKind};
use crate::runtime::{self, Cancelled};
use pyo3::prelude::*;
use std::time::Duration;

/// `(reward or None, error or None, seconds)`.
type Scored = (Option<f64>, Option<String>, f64);

fn settings(threads: usize, timeout: Option<f64>) -> PyResult<Option<Duration>> {
    if threads == 0 {
        return Err(errors::error(
            Kind::Config,
            "threads must be at least 1, got 0",
        ));
    }
    match timeout {
        None => Ok(None),
        Some(t) if t > 0.0 && t.is_finite() => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(errors::error(
            Kind::Config,
            format!("timeout must be positive seconds or None, got {t}"),
        )),
    }
}

fn candidate(text: &str) -> PyResult<Expr> {
    check_nesting(text, "the candidate")?;
    Ok(expr::parse(text)?)
}

/// Evaluate `e` with `reward` in a pool of `threads` threads, the GIL released; Ctrl-C
/// raises `KeyboardInterrupt`.
fn score<R>(
    py: Python<'_>,
    e: &Expr,
    reward: &R,
    threads: usize,
    timeout: Option<Duration>,
) -> PyResult<Scored>
where
    R: Fn(&Expr, &EvalContext<'_>) -> Result<f64, String> + Sync,
{
    let pool = runtime::pool_builder(threads).build().map_err(|err| {
        errors::error(
            Kind::Backend,
            format!("cannot start {threads} threads: {err}"),
        )
    })?;
    let done = run_heavy(py, None, |mon| {
        let (r, secs) = pool.install(|| evaluate(reward, e, mon.token(), timeout));
        if mon.is_cancelled() {
            return Err(Cancelled);
        }
        Ok((r, secs))
    })?;
    let (r, secs) = done.value;
    Ok(match r {
        Ok(v) => (Some(v), None, secs),
        Err(msg) => (None, Some(msg), secs),
    })
}

/// Kernel-search reward of one candidate (canonical text): validation accuracy of the
/// spec's SVM with it, as `kernel_search` scores it; `train` and `val` are `(X, y)`.
/// Returns `(reward, None, seconds)` or `(None, error, seconds)` for an invalid
/// candidate; `timeout` (seconds) is the candidate's own time limit.
#[pyfunction]
#[pyo3(signature = (spec, text, train, val, threads=1, timeout=None))]
pub(crate) fn kernel_reward<'py>(
    py: Python<'py>,
    spec: &str,
    text: &str,
    train: (Bound<'py, PyAny>, Bound<'py, PyAny>),
    val: (Bound<'py, PyAny>, Bound<'py, PyAny>),
    threads: usize,
    timeout: Option<f64>,
) -> PyResult<Scored> {
    let (spec, _) = read_spec(spec, SpaceKind::Kernel)?;
    let c = spec.svm_c()?;
    let limit = settings(threads, timeout)?;
    let e = candidate(text)?;
    let data = KernelData::new(py, &train.0, &train.1, &val.0, &val.1)?;
    let task = data.task(c);
    let rew = |e: &Expr, ctx: &EvalContext<'_>| reward::kernel_reward(e, &task, ctx);
    score(py, &e, &rew, threads, limit)
}

/// Transform-search reward of one candidate (canonical text): recall@1, as
/// `transform_search` scores it; `query` and `gallery` are `(E, ids)`. Returns like
/// `kernel_reward`.
#[pyfunction]
#[pyo3(signature = (spec, text, query, gallery, threads=1, timeout=None))]
pub(crate) fn transform_reward<'py>(
    py: Python<'py>,
    spec: &str,
    text: &str,
    query: (Bound<'py, PyAny>, Bound<'py, PyAny>),
    gallery: (Bound<'py, PyAny>, Bound<'py, PyAny>),
    threads: usize,
    timeout: Option<f64>,
) -> PyResult<Scored> {
    read_spec(spec, SpaceKind::Transform)?;
    let limit = settings(threads, timeout)?;
    let e = candidate(text)?;
    let data = TransformData::new(py, &query.0, &query.1, &gallery.0, &gallery.1)?;
    let task = data.task();
    let rew = |e: &Expr, ctx: &EvalContext<'_>| task.reward(e, ctx);
    score(py, &e, &rew, threads, limit)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kernel_reward, m)?)?;
    m.add_function(wrap_pyfunction!(transform_reward, m)?)?;
    Ok(())
}
