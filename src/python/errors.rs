//! Mapping of core errors to the Python exception hierarchy of
//! `gridmatch.exceptions`.
//!
//! The classes are defined in Python (so they can also derive from `ValueError`,
//! scikit-learn's `NotFittedError`, ...) and looked up here once.

use crate::data::DataError;
use crate::runtime::Cancelled;
use crate::svm::SvmError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The exception classes of `gridmatch.exceptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // variants are used as the areas of the core grow
pub(crate) enum Kind {
    /// `gridmatch.GridmatchError` (base class).
    Base,
    /// `gridmatch.ShapeError` (also a `ValueError`).
    Shape,
    /// `gridmatch.DataError` (also a `ValueError`).
    Data,
    /// `gridmatch.NotFittedError` (also scikit-learn's `NotFittedError`).
    NotFitted,
    /// `gridmatch.ExpressionError` (also a `ValueError`).
    Expression,
    /// `gridmatch.DeviceError` (also a `RuntimeError`).
    Device,
    /// `gridmatch.BackendError` (also a `RuntimeError`): libtorch or solver failure.
    Backend,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Base => "GridmatchError",
            Kind::Shape => "ShapeError",
            Kind::Data => "DataError",
            Kind::NotFitted => "NotFittedError",
            Kind::Expression => "ExpressionError",
            Kind::Device => "DeviceError",
            Kind::Backend => "BackendError",
        }
    }

    fn cell(self) -> &'static PyOnceLock<Py<PyType>> {
        static CELLS: [PyOnceLock<Py<PyType>>; 7] = [
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
            PyOnceLock::new(),
        ];
        &CELLS[self as usize]
    }
}

/// Build a `PyErr` of the given gridmatch class with `message`.
pub(crate) fn error(kind: Kind, message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| {
        match kind
            .cell()
            .import(py, "gridmatch.exceptions", kind.class_name())
        {
            Ok(ty) => PyErr::from_type(ty.clone(), message),
            // `_core` used without the Python package: fall back to the builtin bases.
            Err(_) => match kind {
                Kind::Device | Kind::Backend | Kind::Base => PyRuntimeError::new_err(message),
                _ => PyValueError::new_err(message),
            },
        }
    })
}

impl From<DataError> for PyErr {
    fn from(e: DataError) -> PyErr {
        error(Kind::Data, e.to_string())
    }
}

impl From<SvmError> for PyErr {
    fn from(e: SvmError) -> PyErr {
        match e {
            SvmError::Shape(m) => error(Kind::Shape, m),
            SvmError::Value(m) => PyValueError::new_err(m),
            SvmError::Cancelled(c) => c.into(),
        }
    }
}

impl From<Cancelled> for PyErr {
    fn from(_: Cancelled) -> PyErr {
        PyKeyboardInterrupt::new_err("interrupted")
    }
}

/// libtorch failures surface as `gridmatch.BackendError` with libtorch's message.
pub(crate) fn torch_error(e: tch::TchError) -> PyErr {
    error(Kind::Backend, format!("libtorch: {e}"))
}
