//! Bindings of the expression language: the `Expr` class.

use super::errors::{self, Kind};
use super::heavy::run_heavy;
use crate::expr::{self, Expr, ExprError, Program, ValueType};
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// A parsed, compiled expression (kernel or transform).
#[pyclass(name = "Expr", module = "gridmatch._core", frozen)]
pub(crate) struct PyExpr {
    pub(crate) expr: Expr,
    pub(crate) program: Program,
    pub(crate) text: String,
}

impl PyExpr {
    pub(crate) fn from_expr(expr: Expr) -> Result<Self, ExprError> {
        let program = Program::compile(&expr)?;
        let text = expr.to_string();
        Ok(Self {
            expr,
            program,
            text,
        })
    }
}

/// `obj` as a C-contiguous float64 2-D array, through the Python package's shared check
/// (`gridmatch._base.validate.float64_matrix`: torch tensors copied to the host, complex,
/// object and string arrays and wrong shapes refused with `ShapeError` / `DeviceError`).
pub(crate) fn as_f64_2d<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<PyReadonlyArray2<'py, f64>> {
    let arr = match py.import("gridmatch._base.validate") {
        Ok(v) => v.call_method1("float64_matrix", (obj, what))?,
        // `_core` used without the Python package: plain numpy conversion.
        Err(_) => py
            .import("numpy")?
            .call_method1("ascontiguousarray", (obj, "float64"))
            .map_err(|e| errors::error(Kind::Shape, format!("{what} is not a float array: {e}")))?,
    };
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    if ndim != 2 {
        return Err(errors::error(
            Kind::Shape,
            format!("{what} must be 2-D (samples × features), got {ndim}-D"),
        ));
    }
    arr.extract()
}

/// Deepest nesting accepted in expression text (parentheses, calls, unary minus).
///
/// The parser and the tree walks recurse once per level; 1000 levels stay far below
/// the stack of any thread (5000 were measured to work, 20000 overflowed the stack and
/// crashed the interpreter), while real kernels nest fewer than 20 levels.
pub(crate) const MAX_NESTING: usize = 1000;

/// Refuse `text` whose nesting could exceed [`MAX_NESTING`] before it reaches the
/// recursive parser: open parentheses plus the run of unary minuses in front of the
/// current operand.
pub(crate) fn check_nesting(text: &str, what: &str) -> PyResult<()> {
    let mut level = 0usize;
    let mut deepest = 0usize;
    let mut saved: Vec<usize> = Vec::new();
    // Whether the previous significant character ends an operand (so '-' is binary).
    let mut after_operand = false;
    for c in text.chars() {
        match c {
            '(' => {
                saved.push(level);
                level += 1;
                after_operand = false;
            }
            ')' => {
                level = saved.pop().unwrap_or(0);
                after_operand = true;
            }
            '-' if !after_operand => level += 1,
            '+' | '-' | '*' | '/' | ',' => {
                // A binary operator ends the unary minuses of its left operand.
                level = saved.last().map_or(0, |l| l + 1);
                after_operand = false;
            }
            c if c.is_whitespace() => {}
            _ => after_operand = true,
        }
        deepest = deepest.max(level);
        if deepest > MAX_NESTING {
            return Err(errors::error(
                Kind::Expression,
                format!(
                    "{what} nests deeper than {MAX_NESTING} levels (parentheses, calls or \
                     unary minus); simplify the expression"
                ),
            ));
        }
    }
    Ok(())
}

#[pymethods]
impl PyExpr {
    /// Parse `text`; raises `gridmatch.ExpressionError` naming the position of a problem.
    #[new]
    fn new(text: &str) -> PyResult<Self> {
        check_nesting(text, "the expression")?;
        Ok(Self::from_expr(expr::parse(text)?)?)
    }

    fn __str__(&self) -> String {
        self.text.clone()
    }

    fn __repr__(&self) -> String {
        format!("Expr('{}')", self.text)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<PyExpr>() else {
            return Ok(py.NotImplemented());
        };
        let eq = self.expr == other.get().expr;
        match op {
            CompareOp::Eq => Ok(eq.into_pyobject(py)?.to_owned().into_any().unbind()),
            CompareOp::Ne => Ok((!eq).into_pyobject(py)?.to_owned().into_any().unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.expr.hash(&mut h);
        h.finish()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((slf.get_type().into_any(), (slf.get().text.clone(),)))
    }

    /// `"scalar"` (a kernel) or `"vector"`.
    #[getter]
    fn value_type(&self) -> &'static str {
        match self.expr.value_type() {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
        }
    }

    /// Whether the expression uses the variable `y`.
    #[getter]
    fn uses_y(&self) -> bool {
        self.expr.uses_var(1)
    }

    /// Number of nodes of the tree.
    #[getter]
    fn size(&self) -> usize {
        self.expr.size()
    }

    /// Kernel matrix `K[i, j] = k(X[i], Y[j])` (float64, `Y` defaults to `X`; then, or
    /// when `Y` is `X`, a kernel symmetric by commutativity is evaluated on the upper
    /// triangle only and mirrored).
    #[pyo3(signature = (X, Y=None, check_finite=true))]
    #[allow(non_snake_case)]
    fn gram<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
        Y: Option<&Bound<'py, PyAny>>,
        check_finite: bool,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let x = as_f64_2d(py, X, "X")?;
        // `Y` omitted or the very same object as `X`: a symmetric kernel needs only the
        // upper triangle (mirrored).
        let y = match Y {
            Some(y) if !y.is_none() && !y.is(X) => Some(as_f64_2d(py, y, "Y")?),
            _ => None,
        };
        let xv = x.as_array();
        let prog = &self.program;
        let symmetric = y.is_none() && self.expr.is_symmetric();
        let yv = y.as_ref().map(|y| y.as_array()).unwrap_or(xv);
        let out = run_heavy(py, None, |mon| {
            if symmetric {
                prog.gram_symmetric(xv, mon.token(), check_finite)
            } else {
                prog.gram(xv, yv, mon.token(), check_finite)
            }
        })?;
        Ok(out.value.into_pyarray(py))
    }

    /// Apply a transform (an expression in `x`) to every row of `X` (float64, same
    /// shape).
    #[pyo3(signature = (X, check_finite=true))]
    #[allow(non_snake_case)]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
        check_finite: bool,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let x = as_f64_2d(py, X, "X")?;
        let xv = x.as_array();
        let prog = &self.program;
        let out = run_heavy(py, None, |mon| prog.apply(xv, mon.token(), check_finite))?;
        Ok(out.value.into_pyarray(py))
    }
}

/// Parse an expression (same as `Expr(text)`).
#[pyfunction]
pub(crate) fn parse_expr(text: &str) -> PyResult<PyExpr> {
    PyExpr::new(text)
}

/// Names of the language's functions and their arities.
#[pyfunction]
pub(crate) fn expr_functions() -> Vec<(&'static str, usize)> {
    expr::ALL_FUNCS
        .iter()
        .map(|f| (f.name(), f.arity()))
        .collect()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyExpr>()?;
    m.add_function(wrap_pyfunction!(parse_expr, m)?)?;
    m.add_function(wrap_pyfunction!(expr_functions, m)?)?;
    Ok(())
}
