//! Optimiser choice and learning-rate schedule.

/// Optimiser (spec names `adam`, `sgd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optim {
    /// Adam.
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
}

/// Learning-rate schedule over the steps of training (spec names `constant`, `cosine`,
/// `step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Constant learning rate.
    Constant,
    /// Cosine decay to 0.
    Cosine,
    /// ×0.1 at 50% and 75% of training.
    Step,
}

impl Schedule {
    /// Learning-rate factor at `step` of `total` with `warmup` steps of linear warm-up
    /// first: `(step + 1) / warmup` during the warm-up, then [`Schedule::factor`] over
    /// the steps after it (so a cosine decay still ends at 0 on the last step).
    pub fn factor_with_warmup(&self, step: usize, total: usize, warmup: usize) -> f64 {
        if step < warmup {
            return (step + 1) as f64 / warmup as f64;
        }
        self.factor(step - warmup, total.saturating_sub(warmup))
    }

    /// Learning-rate factor at `step` of `total`.
    pub fn factor(&self, step: usize, total: usize) -> f64 {
        let t = step as f64 / total.max(1) as f64;
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
            Schedule::Step => {
                if t >= 0.75 {
                    0.01
                } else if t >= 0.5 {
                    0.1
                } else {
                    1.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_rises_linearly_then_the_schedule_runs_on_the_rest() {
        let s = Schedule::Cosine;
        let f: Vec<f64> = (0..8).map(|i| s.factor_with_warmup(i, 8, 4)).collect();
        assert_eq!(&f[..4], &[0.25, 0.5, 0.75, 1.0][..]);
        // cosine over the 4 steps after the warm-up: 1, cos-halfway values, ...
        for (i, v) in f[4..].iter().enumerate() {
            let want = 0.5 * (1.0 + (std::f64::consts::PI * i as f64 / 4.0).cos());
            assert!((v - want).abs() < 1e-12, "{i}: {v} vs {want}");
        }
        assert_eq!(Schedule::Constant.factor_with_warmup(3, 10, 0), 1.0);
        assert_eq!(Schedule::Step.factor_with_warmup(9, 10, 2), 0.01);
    }
}
