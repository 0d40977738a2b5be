//! The search spec: every setting of a kernel or transform search, as one typed value
//! that crosses the Python boundary once (JSON) and is what a saved search result
//! stores as its `settings`.
//!
//! ```json
//! {"kind": "kernel",
//!  "space": {"operands": ["x*y", "dot(x, y)"], "unary": ["identity", "sin"],
//!            "binary": ["add", "min"], "units": 2, "final": "norm1"},
//!  "controller": "rl", "budget": 500, "batch_size": 10, "seed": 0, "timeout": null,
//!  "lr": 0.0002, "entropy_weight": 0.0025, "baseline_decay": 0.95,
//!  "risk_seeking": null, "C": 1.0}
//! ```
//!
//! `C` (the SVM's regularisation of the reward) belongs to kernel searches only.

use super::{ControllerConfig, ControllerKind, RlError, SearchConfig, Space, SpaceKind};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The names of the controllers (`"rl"`, `"random"`).
pub const CONTROLLER_NAMES: &[&str] = &["rl", "random"];

/// A search space as data: operation names or templates (see [`Space::new`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceSpec {
    /// Operand names or expressions in `x`, `y`.
    pub operands: Vec<String>,
    /// Unary operation names or templates in `u`.
    pub unary: Vec<String>,
    /// Binary operation names or templates in `a`, `b`.
    pub binary: Vec<String>,
    /// Number of units.
    pub units: usize,
    /// The operation applied to the last unit (name or template in `u`).
    #[serde(rename = "final")]
    pub final_op: String,
}

impl SpaceSpec {
    /// The spec of a built space (names as given to it).
    pub fn of(space: &Space) -> Self {
        let names = |l: &[(String, crate::expr::Expr)]| l.iter().map(|(n, _)| n.clone()).collect();
        Self {
            operands: names(&space.operands),
            unary: names(&space.unary),
            binary: names(&space.binary),
            units: space.units,
            final_op: space.final_op.0.clone(),
        }
    }

    /// Every template string of the spec (operands, operations, final).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.operands
            .iter()
            .chain(&self.unary)
            .chain(&self.binary)
            .chain(std::iter::once(&self.final_op))
            .map(String::as_str)
    }

    /// Build the space of `kind`.
    pub fn build(&self, kind: SpaceKind) -> Result<Space, RlError> {
        fn v(l: &[String]) -> Vec<&str> {
            l.iter().map(String::as_str).collect()
        }
        Space::new(
            kind,
            &v(&self.operands),
            &v(&self.unary),
            &v(&self.binary),
            self.units,
            &self.final_op,
        )
    }
}

/// `"kernel"` or `"transform"`, as a spec spells it.
pub fn kind_from_name(name: &str) -> Result<SpaceKind, RlError> {
    match name {
        "kernel" => Ok(SpaceKind::Kernel),
        "transform" => Ok(SpaceKind::Transform),
        other => Err(RlError::Space(format!(
            "space kind must be 'kernel' or 'transform', got {other:?}"
        ))),
    }
}

/// The name of a space kind.
pub fn kind_name(kind: SpaceKind) -> &'static str {
    match kind {
        SpaceKind::Kernel => "kernel",
        SpaceKind::Transform => "transform",
    }
}

/// Every setting of a search (see the module docs for its JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// `"kernel"` or `"transform"`.
    pub kind: String,
    /// The search space.
    pub space: SpaceSpec,
    /// `"rl"` (REINFORCE) or `"random"`.
    pub controller: String,
    /// Candidates in total (cache hits included).
    pub budget: i64,
    /// Candidates per controller update.
    pub batch_size: i64,
    /// Seed of the controller's weights and sampling.
    pub seed: u64,
    /// Per-candidate time limit in seconds (`None`: unlimited).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// The controller's Adam learning rate.
    pub lr: f64,
    /// Weight of the entropy bonus.
    pub entropy_weight: f64,
    /// Decay of the EMA reward baseline.
    pub baseline_decay: f64,
    /// Risk-seeking fraction ε ∈ (0, 1], or `None` (REINFORCE on every sample).
    #[serde(default)]
    pub risk_seeking: Option<f64>,
    /// The SVM's C in the reward (kernel searches only).
    #[serde(rename = "C", default, skip_serializing_if = "Option::is_none")]
    pub c: Option<f64>,
}

impl SearchSpec {
    /// Read and check a spec (the message names the bad setting).
    pub fn from_json(spec: &str) -> Result<Self, RlError> {
        let s: SearchSpec = serde_json::from_str(spec)
            .map_err(|e| RlError::Config(format!("invalid search spec: {e}")))?;
        s.config()?;
        Ok(s)
    }

    /// The space kind.
    pub fn space_kind(&self) -> Result<SpaceKind, RlError> {
        kind_from_name(&self.kind)
    }

    /// The search space (checked against the spec's kind).
    pub fn space(&self) -> Result<Space, RlError> {
        self.space.build(self.space_kind()?)
    }

    /// The SVM's C of a kernel search (checked: finite and > 0).
    pub fn svm_c(&self) -> Result<f64, RlError> {
        match self.c {
            Some(c) if c > 0.0 && c.is_finite() => Ok(c),
            Some(c) => Err(RlError::Config(format!(
                "C must be a positive number, got {c}"
            ))),
            None => Err(RlError::Config("a kernel search spec needs C".into())),
        }
    }

    /// The loop's settings, every range checked.
    pub fn config(&self) -> Result<SearchConfig, RlError> {
        let bad = |m: String| Err(RlError::Config(m));
        self.space_kind()?;
        let controller = match self.controller.as_str() {
            "rl" => ControllerKind::Rl,
            "random" => ControllerKind::Random,
            other => {
                return bad(format!(
                    "controller must be one of {CONTROLLER_NAMES:?}, got {other:?}"
                ))
            }
        };
        let (budget, batch_size) = (self.budget, self.batch_size);
        if budget <= 0 {
            return bad(format!("budget must be positive, got {budget}"));
        }
        if batch_size <= 0 {
            return bad(format!("batch_size must be positive, got {batch_size}"));
        }
        let lr = self.lr;
        if !(lr > 0.0 && lr.is_finite()) {
            return bad(format!("lr must be positive, got {lr}"));
        }
        let ew = self.entropy_weight;
        if !(ew >= 0.0 && ew.is_finite()) {
            return bad(format!("entropy_weight must be >= 0, got {ew}"));
        }
        let bd = self.baseline_decay;
        if !(0.0..1.0).contains(&bd) {
            return bad(format!("baseline_decay must be in [0, 1), got {bd}"));
        }
        if let Some(eps) = self.risk_seeking {
            if !(eps > 0.0 && eps <= 1.0) {
                return bad(format!(
                    "risk_seeking must be a fraction in (0, 1] or None, got {eps}"
                ));
            }
            // samples exactly at the batch's cutoff carry no gradient: ⌊eps·(n − 1)⌋ do
            if eps * ((batch_size - 1) as f64) < 1.0 - 1e-9 {
                return bad(format!(
                    "risk_seeking={eps} learns from no sample of a batch of {batch_size}: \
                     it needs risk_seeking * (batch_size - 1) >= 1"
                ));
            }
        }
        let timeout = match self.timeout {
            None => None,
            Some(t) if t > 0.0 && t.is_finite() => Some(Duration::from_secs_f64(t)),
            Some(t) => return bad(format!("timeout must be positive seconds, got {t}")),
        };
        if let Some(c) = self.c {
            if !(c > 0.0 && c.is_finite()) {
                return bad(format!("C must be a positive number, got {c}"));
            }
        }
        Ok(SearchConfig {
            budget: budget as usize,
            batch_size: batch_size as usize,
            seed: self.seed,
            controller,
            controller_config: ControllerConfig {
                lr,
                entropy_weight: ew,
                baseline_decay: bd,
                risk_seeking: self.risk_seeking,
                ..ControllerConfig::default()
            },
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_json(extra: &str) -> String {
        let space = SpaceSpec::of(&Space::paper_kernel());
        let space = serde_json::to_string(&space).unwrap();
        format!(
            r#"{{"kind": "kernel", "space": {space}, "controller": "rl", "budget": 20,
                "batch_size": 5, "seed": 3, "timeout": null, "lr": 0.0002,
                "entropy_weight": 0.0025, "baseline_decay": 0.95, "risk_seeking": null{extra}}}"#
        )
    }

    #[test]
    fn round_trip_and_config() {
        let s = SearchSpec::from_json(&spec_json(r#", "C": 10.0"#)).unwrap();
        assert_eq!(s.svm_c().unwrap(), 10.0);
        let back: SearchSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let cfg = s.config().unwrap();
        assert_eq!((cfg.budget, cfg.batch_size, cfg.seed), (20, 5, 3));
        assert_eq!(cfg.controller, ControllerKind::Rl);
        assert_eq!(
            s.space().unwrap().decisions(),
            Space::paper_kernel().decisions()
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        for (extra, needle) in [
            (r#", "C": -1.0"#, "C must be"),
            (r#", "bogus": 1"#, "unknown field `bogus`"),
        ] {
            let e = SearchSpec::from_json(&spec_json(extra)).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let e = SearchSpec::from_json(&spec_json("").replace("\"rl\"", "\"greedy\"")).unwrap_err();
        assert!(e.to_string().contains("controller must be"), "{e}");
        let e = SearchSpec::from_json(&spec_json("").replace("\"budget\": 20", "\"budget\": 0"))
            .unwrap_err();
        assert!(e.to_string().contains("budget must be positive"), "{e}");
        let s = SearchSpec::from_json(&spec_json("")).unwrap();
        assert!(s.svm_c().is_err());
    }
}
