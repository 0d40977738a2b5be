//! The training spec: every setting of a GSN training run, as one typed value that
//! crosses the Python boundary once (JSON) instead of a long argument list.
//!
//! ```json
//! {"loss": {"name": "grid-softmax", "temperature": 0.1},
//!  "grid": {"rows": 4, "cols": 4, "positives": 1}, "negatives": "mined",
//!  "epochs": 5, "steps_per_epoch": null, "batch_size": 64, "lr": 0.001,
//!  "optimizer": "adam", "schedule": "cosine", "weight_decay": 0.0, "augment": 1.0,
//!  "seed": 0,
//!  "finetune": {"backbone_lr": 0.0001, "freeze_backbone_epochs": 1, "freeze_bn": true,
//!               "warmup_steps": 50}}
//! ```
//!
//! `finetune` may be left out (no warm-up, one learning rate, nothing frozen).

use super::{GsnError, Optim, Schedule};
use crate::data::grid::{GridSpec, Negatives};
use crate::losses::Loss;
use serde::{Deserialize, Serialize};

/// Every setting of a training run (see the module docs for its JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// The loss and its parameters.
    pub loss: Loss,
    /// Grid layout.
    pub grid: GridSpec,
    /// Negative selection (the miner).
    pub negatives: Negatives,
    /// Epochs.
    pub epochs: usize,
    /// Steps per epoch (`None`: one pass over the images).
    pub steps_per_epoch: Option<usize>,
    /// Images per step.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Optimiser.
    pub optimizer: Optim,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Weight decay.
    pub weight_decay: f64,
    /// Augmentation strength (0 = none).
    pub augment: f64,
    /// Seed of sampling and augmentation.
    pub seed: u64,
    /// Fine-tuning controls (learning rate of the backbone, what is frozen, warm-up).
    #[serde(default)]
    pub finetune: FineTune,
}

/// How a (pretrained) backbone is trained beside the head: the optimiser's parameter
/// groups, what is frozen, the warm-up (see `groups`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FineTune {
    /// Learning rate of the backbone's parameters (`None`: the spec's `lr`, as the
    /// head's). The schedule and warm-up scale both rates alike.
    pub backbone_lr: Option<f64>,
    /// Epochs at the start in which only the head (and a loss's proxies) train.
    pub freeze_backbone_epochs: usize,
    /// Keep the backbone's BatchNorm statistics and affine parameters fixed.
    pub freeze_bn: bool,
    /// Steps of linear warm-up: the rates rise as `(step + 1) / warmup_steps`, then
    /// the schedule runs over the remaining steps.
    pub warmup_steps: usize,
}

impl TrainSpec {
    /// Read and check a spec (the message names the bad setting).
    pub fn from_json(spec: &str) -> Result<Self, GsnError> {
        let s: TrainSpec = serde_json::from_str(spec)
            .map_err(|e| GsnError::Config(format!("invalid training spec: {e}")))?;
        s.check()?;
        Ok(s)
    }

    /// Check the settings' ranges.
    pub fn check(&self) -> Result<(), GsnError> {
        let bad = |m: String| Err(GsnError::Config(m));
        self.loss.check().map_err(GsnError::Config)?;
        let g = self.grid;
        if g.rows == 0 || g.cols == 0 || g.positives == 0 || g.positives >= g.cells() {
            return bad(format!(
                "grid {}x{} with {} positives: need rows, cols >= 1 and 1 <= positives < rows*cols",
                g.rows, g.cols, g.positives
            ));
        }
        if self.batch_size / (g.positives + 1) < 2 {
            return bad(format!(
                "batch_size={} must hold at least 2 ids of positives+1={} views",
                self.batch_size,
                g.positives + 1
            ));
        }
        if self.steps_per_epoch == Some(0) {
            return bad("steps_per_epoch must be >= 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a finite number > 0, got {}", self.lr));
        }
        if let Some(b) = self.finetune.backbone_lr {
            if !(b.is_finite() && b >= 0.0) {
                return bad(format!("backbone_lr must be a finite number >= 0, got {b}"));
            }
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("augment", self.augment),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number >= 0, got {v}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"loss": {"name": "grid-softmax", "temperature": 0.1},
        "grid": {"rows": 4, "cols": 4, "positives": 1}, "negatives": "mined",
        "epochs": 5, "steps_per_epoch": null, "batch_size": 64, "lr": 0.001,
        "optimizer": "adam", "schedule": "cosine", "weight_decay": 0.0, "augment": 1.0,
        "seed": 0}"#;

    #[test]
    fn a_spec_reads_and_round_trips() {
        let s = TrainSpec::from_json(SPEC).unwrap();
        assert_eq!(s.negatives, Negatives::Mined);
        assert_eq!(s.loss, Loss::GridSoftmax { temperature: 0.1 });
        assert_eq!(s.grid.cells(), 16);
        assert_eq!(s.finetune, FineTune::default());
        let again = TrainSpec::from_json(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
        let tuned = SPEC.replace(
            r#""seed": 0"#,
            r#""seed": 0, "finetune": {"backbone_lr": 1e-4, "freeze_bn": true}"#,
        );
        let t = TrainSpec::from_json(&tuned).unwrap();
        assert_eq!(t.finetune.backbone_lr, Some(1e-4));
        assert!(t.finetune.freeze_bn);
        assert_eq!(t.finetune.warmup_steps, 0);
    }

    #[test]
    fn bad_specs_name_the_setting() {
        let cases = [
            (
                r#""negatives": "mined""#,
                r#""negatives": "easy""#,
                "unknown variant",
            ),
            (r#""lr": 0.001"#, r#""lr": 0.0"#, "lr must be"),
            (r#""positives": 1"#, r#""positives": 16"#, "positives"),
            (r#""batch_size": 64"#, r#""batch_size": 3"#, "batch_size=3"),
            (r#""seed": 0"#, r#""seed": 0, "extra": 1"#, "unknown field"),
            (r#""augment": 1.0"#, r#""augment": -1.0"#, "augment must be"),
            (
                r#""seed": 0"#,
                r#""seed": 0, "finetune": {"backbone_lr": -1}"#,
                "backbone_lr must be",
            ),
            (
                r#""seed": 0"#,
                r#""seed": 0, "finetune": {"freeze": true}"#,
                "unknown field",
            ),
            (
                r#""temperature": 0.1"#,
                r#""temperature": 0"#,
                "temperature must be > 0",
            ),
        ];
        for (from, to, want) in cases {
            let err = TrainSpec::from_json(&SPEC.replace(from, to))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{to}: {err}");
        }
    }
}
