//! Mapping of core errors to the Python exception hierarchy of
//! `gridmatch.exceptions` — every `From<…> for PyErr` of the bindings lives here.
//!
//! The classes are defined in Python (so they can also derive from `ValueError`,
//! scikit-learn's `NotFittedError`, ...) and looked up here once. The rule: wrong
//! shapes or lengths of arrays → `ShapeError`; bad settings (a parameter out of range,
//! an unknown name, an invalid spec) → `ConfigError`; unreadable or inconsistent files
//! and data → `DataError`; expression syntax and evaluation → `ExpressionError`;
//! devices → `DeviceError`; libtorch failures → `BackendError`; Ctrl-C or a stopping
//! callback → `KeyboardInterrupt`.

use crate::data::DataError;
use crate::expr::ExprError;
use crate::images::ImageError;
use crate::retrieval::RetrievalError;
use crate::rl::RlError;
use crate::runtime::Cancelled;
use crate::store::StoreError;
use crate::svm::SvmError;
use crate::train::GsnError;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// The exception classes of `gridmatch.exceptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// `gridmatch.ConfigError` (also a `ValueError`): a bad setting or spec.
    Config,
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
            Kind::Config => "ConfigError",
        }
    }

    fn cell(self) -> &'static PyOnceLock<Py<PyType>> {
        static CELLS: [PyOnceLock<Py<PyType>>; 8] = [
            PyOnceLock::new(),
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

impl From<ImageError> for PyErr {
    fn from(e: ImageError) -> PyErr {
        match e {
            ImageError::File { .. } => error(Kind::Data, e.to_string()),
            ImageError::Config(m) => error(Kind::Config, m),
            ImageError::Cancelled => Cancelled.into(),
        }
    }
}

impl From<SvmError> for PyErr {
    fn from(e: SvmError) -> PyErr {
        match e {
            SvmError::Shape(m) => error(Kind::Shape, m),
            SvmError::Value(m) => error(Kind::Config, m),
            SvmError::Expr(e) => e.into(),
            SvmError::Cancelled(c) => c.into(),
        }
    }
}

impl From<StoreError> for PyErr {
    fn from(e: StoreError) -> PyErr {
        error(Kind::Data, e.to_string())
    }
}

impl From<ExprError> for PyErr {
    fn from(e: ExprError) -> PyErr {
        match e {
            ExprError::Shape(m) => error(Kind::Shape, m),
            ExprError::Cancelled => Cancelled.into(),
            other => error(Kind::Expression, other.to_string()),
        }
    }
}

impl From<RetrievalError> for PyErr {
    fn from(e: RetrievalError) -> PyErr {
        let msg = e.to_string();
        match e {
            RetrievalError::Empty { .. }
            | RetrievalError::DimensionMismatch { .. }
            | RetrievalError::BadK { .. }
            | RetrievalError::NonFinite { .. }
            | RetrievalError::LengthMismatch { .. } => error(Kind::Shape, msg),
            RetrievalError::InvalidParameter(_) => error(Kind::Config, msg),
            RetrievalError::Device(_) => error(Kind::Device, msg),
            RetrievalError::Backend(_) => error(Kind::Backend, msg),
            RetrievalError::Cancelled => Cancelled.into(),
        }
    }
}

impl From<GsnError> for PyErr {
    fn from(e: GsnError) -> PyErr {
        match e {
            GsnError::Torch(t) => torch_error(t),
            GsnError::Shape(m) => error(Kind::Shape, m),
            GsnError::Config(m) => error(Kind::Config, m),
            GsnError::ModelFile(m) => error(Kind::Data, m),
            GsnError::Device(m) => error(Kind::Device, m),
            GsnError::Distributed(m) => error(Kind::Backend, m),
            GsnError::Interrupted => Cancelled.into(),
            GsnError::Image(e) => e.into(),
            e @ GsnError::Io { .. } => error(Kind::Data, e.to_string()),
        }
    }
}

impl From<RlError> for PyErr {
    fn from(e: RlError) -> PyErr {
        match e {
            RlError::Config(m) => error(Kind::Config, m),
            RlError::Space(m) => error(Kind::Expression, m),
            RlError::Expr(e) => e.into(),
            RlError::Torch(m) => error(Kind::Backend, format!("libtorch: {m}")),
            RlError::Cancelled => Cancelled.into(),
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
