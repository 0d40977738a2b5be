//! Bindings of the search driver: the controller's sample / update steps for a batch
//! loop run from Python (the Ray / Dask / `concurrent.futures` executors of
//! `gridmatch.search._executors`).

use super::errors::{self, Kind};
use super::search::{outcome_to_py, read_spec, step_to_py};
use crate::rl::driver::judge;
use crate::rl::{Batch, Driver, SearchSpec, SpaceKind};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::time::Duration;

/// One candidate's result as Python hands it back: reward (or `None`), error (or
/// `None`), seconds.
type PyResultTuple = (Option<f64>, Option<String>, f64);

/// A search whose candidates are evaluated elsewhere: `propose()` samples the next
/// batch and returns the canonical texts of its new distinct candidates; `record()`
/// takes their results and does the rest of the step; `outcome()` is the result so far.
#[pyclass(name = "SearchDriver", module = "gridmatch._core", unsendable)]
pub(crate) struct PySearchDriver {
    driver: Driver,
    pending: Option<Batch>,
}

#[pymethods]
impl PySearchDriver {
    /// A driver for the search spec `spec` (JSON; its kind picks the reward's checks).
    #[new]
    fn new(py: Python<'_>, spec: &str) -> PyResult<Self> {
        let kind = SearchSpec::from_json(spec)?.space_kind()?;
        let (spec, space) = read_spec(spec, kind)?;
        if kind == SpaceKind::Kernel {
            spec.svm_c()?;
        }
        let cfg = spec.config()?;
        // libtorch runs the controller without the GIL (its autograd engine refuses it).
        let driver = py.detach(|| Driver::new(space, cfg))?;
        Ok(Self {
            driver,
            pending: None,
        })
    }

    /// Canonical texts of the next batch's new distinct candidates (possibly none: a
    /// batch of cache hits), or `None` once the budget is spent.
    fn propose(&mut self, py: Python<'_>) -> PyResult<Option<Vec<String>>> {
        if self.pending.is_some() {
            return Err(errors::error(
                Kind::Config,
                "the proposed batch must be recorded before the next one is proposed",
            ));
        }
        let driver = &mut self.driver;
        Ok(py.detach(|| driver.propose())?.map(|b| {
            let texts = b.new_texts().into_iter().map(str::to_owned).collect();
            self.pending = Some(b);
            texts
        }))
    }

    /// Finish the proposed step with one `(reward, error, seconds)` per proposed text
    /// (`error` not `None`: invalid); returns the step's history record.
    fn record<'py>(
        &mut self,
        py: Python<'py>,
        results: Vec<PyResultTuple>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let Some(batch) = self.pending.take() else {
            return Err(errors::error(Kind::Config, "no batch was proposed"));
        };
        if results.len() != batch.new.len() {
            let n = batch.new.len();
            self.pending = Some(batch);
            return Err(errors::error(
                Kind::Shape,
                format!("{} results for {n} proposed candidates", results.len()),
            ));
        }
        let mut judged = Vec::with_capacity(results.len());
        for (reward, error, seconds) in results {
            let elapsed = match Duration::try_from_secs_f64(seconds) {
                Ok(d) => d,
                Err(_) => {
                    self.pending = Some(batch);
                    return Err(errors::error(
                        Kind::Shape,
                        format!("seconds must be a finite number >= 0, got {seconds}"),
                    ));
                }
            };
            // An error is final (the worker judged its own result; the executor's own
            // errors, a cancelled or failed task, say more than the timeout rule);
            // a reward is judged like the in-process search's.
            let timeout = self.driver.config().timeout;
            let r = match (reward, error) {
                (_, Some(e)) => Err(e),
                (Some(v), None) => judge(Ok(v), elapsed, timeout, false),
                (None, None) => Err("no reward".to_string()),
            };
            judged.push((r, seconds));
        }
        let driver = &mut self.driver;
        let rec = py.detach(|| driver.record(batch, judged))?;
        step_to_py(py, &rec)
    }

    /// The result so far, as `kernel_search` returns it (`interrupted` recorded as given).
    fn outcome<'py>(&self, py: Python<'py>, interrupted: bool) -> PyResult<Bound<'py, PyDict>> {
        outcome_to_py(py, self.driver.outcome(), interrupted)
    }

    /// Steps the budget allows.
    #[getter]
    fn total_steps(&self) -> usize {
        self.driver.total_steps()
    }

    /// Steps recorded so far.
    #[getter]
    fn steps_done(&self) -> usize {
        self.driver.steps_done()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySearchDriver>()?;
    Ok(())
}
