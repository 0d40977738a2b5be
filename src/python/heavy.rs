//! The one helper through which every heavy computation runs: it releases the GIL,
//! runs the work on a worker thread inside gridmatch's rayon pool, and meanwhile keeps
//! the calling (main) thread free to
//!
//! - check for Ctrl-C every [`POLL`] (`PyErr_CheckSignals` only fires on the main
//!   thread, so the caller's thread does it, not the worker), and
//! - run the Python progress callback for each [`Progress`] event the work reports.
//!
//! On Ctrl-C or a callback returning a false value, the work's cancel token is set; the
//! work stops at its next check point. Work that handles cancellation by returning a
//! partial result (a model trained so far, the best candidates so far) yields
//! [`Finished::interrupted`] `= true`; work that returns [`Cancelled`] raises
//! `KeyboardInterrupt`. An exception raised by the callback is re-raised.

use crate::runtime::{self, CancelToken, Monitor, Progress};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::mpsc;
use std::time::Duration;

/// How often the waiting thread checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(25);

/// The value of finished work, and whether it was stopped early.
pub(crate) struct Finished<T> {
    /// What the work returned.
    pub value: T,
    /// `true` when Ctrl-C or the callback stopped the work before it completed.
    pub interrupted: bool,
}

type Event = (Progress, mpsc::SyncSender<bool>);

/// Run `work` with the GIL released (see the module docs). `callback`, when given, is
/// called as `callback(step, total, metrics: dict)`; a return value of `False` stops
/// the work early.
pub(crate) fn run_heavy<T, E, F>(
    py: Python<'_>,
    callback: Option<&Bound<'_, PyAny>>,
    work: F,
) -> PyResult<Finished<T>>
where
    F: FnOnce(&Monitor<'_>) -> Result<T, E> + Send,
    T: Send,
    E: Into<PyErr> + Send,
{
    run_heavy_on(py, callback, None, work)
}

/// As [`run_heavy`], the work running inside `pool` when given (a model's own thread,
/// see `GsnModel`) instead of gridmatch's shared pool.
pub(crate) fn run_heavy_on<T, E, F>(
    py: Python<'_>,
    callback: Option<&Bound<'_, PyAny>>,
    pool: Option<&rayon::ThreadPool>,
    work: F,
) -> PyResult<Finished<T>>
where
    F: FnOnce(&Monitor<'_>) -> Result<T, E> + Send,
    T: Send,
    E: Into<PyErr> + Send,
{
    let callback: Option<Py<PyAny>> = callback
        .filter(|c| !c.is_none())
        .map(|c| c.clone().unbind());
    let has_callback = callback.is_some();
    let token = CancelToken::new();
    let (tx, rx) = mpsc::channel::<Event>();

    let worker_token = token.clone();
    let waiter_token = token.clone();
    let (result, pending) = py.detach(move || {
        let token = waiter_token;
        std::thread::scope(|scope| {
            let worker = scope.spawn(move || {
                crate::runtime::block_interrupt_signal();
                let sink = move |p: &Progress| -> bool {
                    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
                    if tx.send((p.clone(), reply_tx)).is_err() {
                        return false;
                    }
                    reply_rx.recv().unwrap_or(false)
                };
                let monitor = Monitor::new(worker_token, has_callback.then_some(&sink as _));
                match pool {
                    Some(pool) => pool.install(|| work(&monitor)),
                    None => runtime::install(|| work(&monitor)),
                }
            });
            let mut pending: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(POLL) {
                    Ok((progress, reply)) => {
                        let keep_going = if pending.is_some() {
                            false
                        } else {
                            Python::attach(|py| call_callback(py, callback.as_ref(), &progress))
                                .unwrap_or_else(|e| {
                                    pending = Some(e);
                                    false
                                })
                        };
                        if !keep_going {
                            token.cancel();
                        }
                        let _ = reply.send(keep_going);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if pending.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                pending = Some(e);
                                token.cancel();
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let result = match worker.join() {
                Ok(r) => Ok(r),
                Err(panic) => Err(panic_message(&panic)),
            };
            (result, pending)
        })
    });

    let result = match result {
        Ok(r) => r,
        Err(msg) => {
            return Err(super::errors::error(
                super::errors::Kind::Backend,
                format!("internal error (please report): {msg}"),
            ))
        }
    };
    let stopped = token.is_cancelled();
    match (result, pending) {
        (Err(e), Some(p)) => {
            let _ = e;
            Err(p)
        }
        (Err(e), None) => Err(e.into()),
        (Ok(value), None) => Ok(Finished {
            value,
            interrupted: stopped,
        }),
        (Ok(value), Some(p)) => Python::attach(|py| {
            if p.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
                Ok(Finished {
                    value,
                    interrupted: true,
                })
            } else {
                Err(p)
            }
        }),
    }
}

fn call_callback(py: Python<'_>, callback: Option<&Py<PyAny>>, p: &Progress) -> PyResult<bool> {
    let Some(cb) = callback else {
        return Ok(true);
    };
    let metrics = PyDict::new(py);
    for (k, v) in &p.metrics {
        metrics.set_item(k, v)?;
    }
    let out = cb.call1(py, (p.step, p.total, metrics))?;
    let out = out.bind(py);
    // `None` (a callback with no return) means keep going.
    if out.is_none() {
        Ok(true)
    } else {
        out.is_truthy()
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic in worker thread".to_string()
    }
}
