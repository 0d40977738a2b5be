//! The search loop: sample a batch from the controller, evaluate the new candidates in
//! parallel (rayon), reuse cached rewards of candidates seen before (by canonical form),
//! give invalid candidates reward 0 and count them, update the controller, record one
//! [`StepRecord`] and report progress per step.

use super::controller::{ControllerConfig, ControllerKind};
use super::driver::{evaluate, Driver};
use super::space::Space;
use super::RlError;
use crate::expr::Expr;
use crate::runtime::{CancelToken, Monitor};
use rayon::prelude::*;
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

/// Run a search over `space`, scoring candidates with `reward` (called in parallel; an
/// `Err` marks the candidate invalid). Stops early, returning what it has, when the
/// monitor is cancelled after at least one step; before that, returns
/// [`RlError::Cancelled`]. The loop is a [`Driver`] fed by rayon.
pub fn search<R>(
    space: &Space,
    cfg: &SearchConfig,
    reward: R,
    monitor: &Monitor<'_>,
) -> Result<SearchOutcome, RlError>
where
    R: Fn(&Expr, &EvalContext<'_>) -> Result<f64, String> + Sync,
{
    let mut driver = Driver::new(space.clone(), cfg.clone())?;
    let token = monitor.token();
    loop {
        if monitor.is_cancelled() {
            break;
        }
        let Some(batch) = driver.propose()? else {
            break;
        };
        let results: Vec<(Result<f64, String>, f64)> = batch
            .new
            .par_iter()
            .map(|&i| evaluate(&reward, &batch.exprs[i], token, cfg.timeout))
            .collect();
        if monitor.is_cancelled() {
            // The batch may be incomplete: keep what finished before this step.
            break;
        }
        let rec = driver.record(batch, results)?;
        if !monitor.report(&driver.progress(&rec)) {
            break;
        }
    }
    if driver.steps_done() == 0 && monitor.is_cancelled() {
        return Err(RlError::Cancelled);
    }
    Ok(driver.into_outcome())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::space::Space;
    use crate::runtime::Progress;

    fn toy_reward(e: &Expr, _: &EvalContext<'_>) -> Result<f64, String> {
        let t = e.to_string();
        if t.contains("sinh") {
            return Err("toy invalid".into());
        }
        Ok((t.matches("sin(").count() as f64) / 4.0)
    }

    fn cfg(kind: ControllerKind, seed: u64) -> SearchConfig {
        SearchConfig {
            budget: 50,
            batch_size: 8,
            seed,
            controller: kind,
            controller_config: ControllerConfig::default(),
            timeout: None,
        }
    }

    #[test]
    fn reproducible_with_any_thread_count() {
        let space = Space::paper_kernel();
        for kind in [ControllerKind::Rl, ControllerKind::Random] {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| search(&space, &cfg(kind, 7), toy_reward, &Monitor::none()))
                    .unwrap()
            };
            let a = run(1);
            let b = run(3);
            assert_eq!(a.history.len(), 7);
            assert_eq!(a.history.last().unwrap().sampled, 50);
            let ta: Vec<_> = a.candidates.iter().map(|c| (&c.text, c.reward)).collect();
            let tb: Vec<_> = b.candidates.iter().map(|c| (&c.text, c.reward)).collect();
            assert_eq!(ta, tb);
            let strip = |h: &[StepRecord]| -> Vec<(f64, f64, usize)> {
                h.iter()
                    .map(|r| (r.reward_mean, r.entropy, r.unique))
                    .collect()
            };
            assert_eq!(strip(&a.history), strip(&b.history));
            let counted: usize = a.candidates.iter().map(|c| c.count).sum();
            assert_eq!(counted, 50);
            let inv = a.candidates.iter().filter(|c| c.error.is_some()).count();
            assert_eq!(a.history.last().unwrap().invalid, inv);
            let best = &a.candidates[a.best.unwrap()];
            assert!(a.candidates.iter().all(|c| c.reward <= best.reward));
        }
    }

    #[test]
    fn bad_settings_and_stop() {
        let space = Space::paper_kernel();
        let mut c = cfg(ControllerKind::Random, 0);
        c.budget = 0;
        assert!(search(&space, &c, toy_reward, &Monitor::none()).is_err());
        let mut c = cfg(ControllerKind::Random, 0);
        c.batch_size = 0;
        assert!(search(&space, &c, toy_reward, &Monitor::none()).is_err());
        let sink = |p: &Progress| p.step < 2;
        let mon = Monitor::new(CancelToken::new(), Some(&sink));
        let out = search(&space, &cfg(ControllerKind::Rl, 0), toy_reward, &mon).unwrap();
        assert_eq!(out.history.len(), 2);
    }
}
