//! The SVM's specs: the kernel (built-in | expression by canonical text |
//! precomputed) and the settings of a fit, as typed values that cross the Python
//! boundary once (JSON) and are what an SVC model file stores.
//!
//! ```json
//! {"kernel": {"kind": "rbf", "gamma": 0.0125}, "tol": 0.001, "cache_size": 200.0,
//!  "max_iter": null, "n_jobs": 0, "probability_seed": null, "shrinking": true}
//! {"kernel": {"kind": "expression", "text": "norm1(min(sin(x * y), sin(dot(x, y))))"}, ...}
//! ```

use super::{BuiltinKernel, SolverParams, SvmError};
use crate::expr::Program;
use serde::{Deserialize, Serialize};

/// The names of the kernels a spec can name (`"expression"` carries its text).
pub const KERNEL_NAMES: &[&str] = &["linear", "poly", "rbf", "sigmoid", "precomputed"];

/// Which kernel an SVM uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum KernelSpec {
    /// `<x, y>`
    Linear,
    /// `(gamma <x, y> + coef0)^degree`
    Poly {
        /// Scale of the dot product.
        gamma: f64,
        /// Additive constant.
        coef0: f64,
        /// Integer degree (>= 0).
        degree: i32,
    },
    /// `exp(-gamma ||x - y||^2)`
    Rbf {
        /// Inverse width.
        gamma: f64,
    },
    /// `tanh(gamma <x, y> + coef0)`
    Sigmoid {
        /// Scale of the dot product.
        gamma: f64,
        /// Additive constant.
        coef0: f64,
    },
    /// A kernel expression in `x`, `y`, by its text (evaluated in float64).
    Expression {
        /// The expression (canonical text when written by gridmatch).
        text: String,
    },
    /// The caller passes kernel values instead of features.
    Precomputed,
}

impl KernelSpec {
    /// The built-in kernel (float32 features), `None` for expression and precomputed.
    pub fn builtin(&self) -> Option<BuiltinKernel> {
        Some(match *self {
            KernelSpec::Linear => BuiltinKernel::Linear,
            KernelSpec::Poly {
                gamma,
                coef0,
                degree,
            } => BuiltinKernel::Poly {
                gamma,
                coef0,
                degree,
            },
            KernelSpec::Rbf { gamma } => BuiltinKernel::Rbf { gamma },
            KernelSpec::Sigmoid { gamma, coef0 } => BuiltinKernel::Sigmoid { gamma, coef0 },
            KernelSpec::Expression { .. } | KernelSpec::Precomputed => return None,
        })
    }

    /// The compiled program of an expression kernel (`None` for other kernels).
    pub fn program(&self) -> Result<Option<Program>, SvmError> {
        let KernelSpec::Expression { text } = self else {
            return Ok(None);
        };
        let bad = |e: crate::expr::ExprError| SvmError::Value(format!("kernel {text:?}: {e}"));
        let prog = Program::compile(&crate::expr::parse(text).map_err(bad)?).map_err(bad)?;
        prog.check_kernel().map_err(bad)?;
        Ok(Some(prog))
    }

    /// Check the parameters' ranges.
    pub fn check(&self) -> Result<(), SvmError> {
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(SvmError::Value(format!("{name} must be finite, got {v}")))
            }
        };
        match *self {
            KernelSpec::Poly {
                gamma,
                coef0,
                degree,
            } => {
                finite("gamma", gamma)?;
                finite("coef0", coef0)?;
                if degree < 0 {
                    return Err(SvmError::Value(format!(
                        "degree must be >= 0, got {degree}"
                    )));
                }
            }
            KernelSpec::Rbf { gamma } => finite("gamma", gamma)?,
            KernelSpec::Sigmoid { gamma, coef0 } => {
                finite("gamma", gamma)?;
                finite("coef0", coef0)?;
            }
            KernelSpec::Linear | KernelSpec::Expression { .. } | KernelSpec::Precomputed => {}
        }
        Ok(())
    }
}

/// Every setting of an SVM fit or prediction (see the module docs for its JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvmSpec {
    /// The kernel.
    pub kernel: KernelSpec,
    /// Stopping tolerance (> 0).
    #[serde(default = "default_tol")]
    pub tol: f64,
    /// Kernel-row cache in MiB.
    #[serde(default = "default_cache")]
    pub cache_size: f64,
    /// Iteration limit per binary problem (`None`: libsvm's safety cap).
    #[serde(default)]
    pub max_iter: Option<u64>,
    /// Threads (`0`: gridmatch's pool).
    #[serde(default)]
    pub n_jobs: usize,
    /// Fit libsvm's probability model, shuffling its folds from this seed.
    #[serde(default)]
    pub probability_seed: Option<u32>,
    /// libsvm's shrinking heuristic (`false`: every sample stays active); specs
    /// written before it existed read as `true`, the solver's default then.
    #[serde(default = "default_shrinking")]
    pub shrinking: bool,
}

fn default_shrinking() -> bool {
    true
}

fn default_tol() -> f64 {
    1e-3
}

fn default_cache() -> f64 {
    200.0
}

impl SvmSpec {
    /// Read and check a spec (the message names the bad setting).
    pub fn from_json(spec: &str) -> Result<Self, SvmError> {
        let s: SvmSpec = serde_json::from_str(spec)
            .map_err(|e| SvmError::Value(format!("invalid SVM spec: {e}")))?;
        s.check()?;
        Ok(s)
    }

    /// Check every setting.
    pub fn check(&self) -> Result<(), SvmError> {
        self.kernel.check()?;
        if self.tol.is_nan() || self.tol <= 0.0 {
            return Err(SvmError::Value(format!(
                "tol must be > 0, got {}",
                self.tol
            )));
        }
        if !self.cache_size.is_finite() {
            return Err(SvmError::Value(format!(
                "cache_size must be finite, got {}",
                self.cache_size
            )));
        }
        Ok(())
    }

    /// The solver's settings.
    pub fn solver_params(&self) -> SolverParams {
        SolverParams {
            tol: self.tol,
            cache_bytes: (self.cache_size.max(1.0) * (1u64 << 20) as f64) as usize,
            max_iter: self.max_iter.and_then(|m| usize::try_from(m).ok()),
            shrinking: self.shrinking,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_round_trip_and_map_to_builtins() {
        let json = r#"{"kernel": {"kind": "poly", "gamma": 0.5, "coef0": 1.0, "degree": 3}}"#;
        let s = SvmSpec::from_json(json).unwrap();
        assert_eq!(
            s.kernel.builtin(),
            Some(BuiltinKernel::Poly {
                gamma: 0.5,
                coef0: 1.0,
                degree: 3
            })
        );
        assert_eq!((s.tol, s.cache_size, s.max_iter), (1e-3, 200.0, None));
        assert!(s.shrinking && s.solver_params().shrinking);
        let off = SvmSpec::from_json(r#"{"kernel": {"kind": "linear"}, "shrinking": false}"#);
        assert!(!off.unwrap().solver_params().shrinking);
        let back: SvmSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let e = SvmSpec::from_json(r#"{"kernel": {"kind": "expression", "text": "norm1(x * y)"}}"#)
            .unwrap();
        assert!(e.kernel.builtin().is_none());
        assert!(e.kernel.program().unwrap().is_some());
        let p = SvmSpec::from_json(r#"{"kernel": {"kind": "precomputed"}}"#).unwrap();
        assert!(p.kernel.program().unwrap().is_none() && p.kernel.builtin().is_none());
    }

    #[test]
    fn bad_specs_name_the_problem() {
        for (json, needle) in [
            (
                r#"{"kernel": {"kind": "cubic"}}"#,
                "unknown variant `cubic`",
            ),
            (r#"{"kernel": {"kind": "rbf"}}"#, "missing field `gamma`"),
            (
                r#"{"kernel": {"kind": "linear"}, "tol": 0.0}"#,
                "tol must be > 0",
            ),
            (
                r#"{"kernel": {"kind": "linear"}, "C": 1.0}"#,
                "unknown field `C`",
            ),
            (
                r#"{"kernel": {"kind": "poly", "gamma": 1.0, "coef0": 0.0, "degree": -1}}"#,
                "degree must be >= 0",
            ),
        ] {
            let e = SvmSpec::from_json(json).unwrap_err();
            assert!(e.to_string().contains(needle), "{json}: {e}");
        }
        let s = SvmSpec::from_json(r#"{"kernel": {"kind": "expression", "text": "x +"}}"#).unwrap();
        assert!(s.kernel.program().is_err());
    }
}
