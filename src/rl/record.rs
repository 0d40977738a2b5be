//! What the search loop and the [`super::driver::Driver`] share: the search's settings
//! ([`SearchConfig`]), what a reward may check while it runs ([`EvalContext`]), and the
//! records a search gives back ([`Candidate`], [`StepRecord`], [`SearchOutcome`]).

use super::controller::{ControllerConfig, ControllerKind};
use crate::expr::Expr;
use crate::runtime::CancelToken;
use std::time::{Duration, Instant};

/// Search settings.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// Number of candidates to sample in total (cache hits included).
    pub budget: usize,
    /// Candidates sampled per controller update.
    pub batch_size: usize,
    /// Seed of the controller's weights and sampling.
    pub seed: u64,
    /// RL or random.
    pub controller: ControllerKind,
    /// Controller hyper-parameters.
    pub controller_config: ControllerConfig,
    /// Per-candidate time limit handed to the reward (None: unlimited).
    pub timeout: Option<Duration>,
}

/// What a reward function may check while it runs: cancellation and the deadline.
pub struct EvalContext<'a> {
    /// The search's cancel token.
    pub token: &'a CancelToken,
    /// When the candidate's time is up.
    pub deadline: Option<Instant>,
}

impl EvalContext<'_> {
    /// Whether the evaluation should stop (cancelled or past its deadline).
    pub fn expired(&self) -> bool {
        self.token.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() > d)
    }
}

/// One evaluated candidate.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The expression.
    pub expr: Expr,
    /// Its canonical form.
    pub text: String,
    /// Reward (0 when invalid).
    pub reward: f64,
    /// Why it is invalid, if it is.
    pub error: Option<String>,
    /// Step (1-based) at which it was first evaluated.
    pub step: usize,
    /// How many times it was sampled.
    pub count: usize,
    /// Evaluation time in seconds.
    pub seconds: f64,
}

/// Per-step history.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Step number, from 1.
    pub step: usize,
    /// Candidates sampled so far.
    pub sampled: usize,
    /// Mean reward of this step's batch.
    pub reward_mean: f64,
    /// Best reward of this batch.
    pub reward_max: f64,
    /// Best reward so far.
    pub best_so_far: f64,
    /// Mean policy entropy of a sequence (nats).
    pub entropy: f64,
    /// Distinct candidates so far.
    pub unique: usize,
    /// Invalid distinct candidates so far.
    pub invalid: usize,
    /// Cache hits in this batch.
    pub cache_hits: usize,
    /// Reward baseline used by the update (RL), else the batch mean.
    pub baseline: f64,
    /// Seconds since the search started.
    pub elapsed: f64,
}

/// Result of a search.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    /// Distinct candidates in order of first evaluation.
    pub candidates: Vec<Candidate>,
    /// One record per step.
    pub history: Vec<StepRecord>,
    /// Index (into `candidates`) of the best one, if any.
    pub best: Option<usize>,
}
