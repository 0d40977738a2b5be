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
