//! The search loop: sample a batch from the controller, evaluate the new candidates in
//! parallel (rayon), reuse cached rewards of candidates seen before (by canonical form),
//! give invalid candidates reward 0 and count them, update the controller, record one
//! [`StepRecord`] and report progress per step.

use super::controller::{uniform_entropy, ControllerConfig, ControllerKind, Policy};
use super::space::Space;
use super::RlError;
use crate::expr::Expr;
use crate::rng::Rng;
use crate::runtime::{CancelToken, Monitor, Progress};
use rayon::prelude::*;
use std::collections::HashMap;
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
/// [`RlError::Cancelled`].
pub fn search<R>(
    space: &Space,
    cfg: &SearchConfig,
    reward: R,
    monitor: &Monitor<'_>,
) -> Result<SearchOutcome, RlError>
where
    R: Fn(&Expr, &EvalContext<'_>) -> Result<f64, String> + Sync,
{
    if cfg.budget == 0 {
        return Err(RlError::Config("budget must be at least 1".into()));
    }
    if cfg.batch_size == 0 {
        return Err(RlError::Config("batch_size must be at least 1".into()));
    }
    let decisions = space.decisions();
    let mut rng = Rng::raw(cfg.seed);
    // The controller is tiny: one libtorch thread, restored afterwards.
    let torch_threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let result = run(space, cfg, &decisions, &mut rng, &reward, monitor);
    tch::set_num_threads(torch_threads);
    result
}

fn run<R>(
    space: &Space,
    cfg: &SearchConfig,
    decisions: &[usize],
    rng: &mut Rng,
    reward: &R,
    monitor: &Monitor<'_>,
) -> Result<SearchOutcome, RlError>
where
    R: Fn(&Expr, &EvalContext<'_>) -> Result<f64, String> + Sync,
{
    let mut policy = match cfg.controller {
        ControllerKind::Rl => Some(Policy::new(decisions, cfg.controller_config.clone(), rng)?),
        ControllerKind::Random => None,
    };
    let start = Instant::now();
    let mut cache: HashMap<String, usize> = HashMap::new();
    let mut out = SearchOutcome {
        candidates: Vec::new(),
        history: Vec::new(),
        best: None,
    };
    let steps = cfg.budget.div_ceil(cfg.batch_size);
    let mut sampled = 0usize;
    let mut invalid = 0usize;
    for step in 1..=steps {
        if monitor.is_cancelled() {
            break;
        }
        let b = cfg.batch_size.min(cfg.budget - sampled);
        let (actions, entropy) = match &policy {
            Some(p) => {
                let s = p.sample(b, rng)?;
                (s.actions, s.entropy)
            }
            None => (
                (0..b)
                    .map(|_| decisions.iter().map(|&n| rng.below(n)).collect())
                    .collect::<Vec<Vec<usize>>>(),
                uniform_entropy(decisions),
            ),
        };
        let exprs = actions
            .iter()
            .map(|a| space.build(a))
            .collect::<Result<Vec<_>, _>>()?;
        let texts: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
        // New distinct candidates of this batch, in order.
        let mut new: Vec<usize> = Vec::new();
        let mut seen_now: HashMap<&str, ()> = HashMap::new();
        for (i, t) in texts.iter().enumerate() {
            if !cache.contains_key(t) && seen_now.insert(t.as_str(), ()).is_none() {
                new.push(i);
            }
        }
        let cache_hits = b - new.len();
        let token = monitor.token();
        let results: Vec<(Result<f64, String>, f64)> = new
            .par_iter()
            .map(|&i| {
                let t0 = Instant::now();
                let ctx = EvalContext {
                    token,
                    deadline: cfg.timeout.map(|d| t0 + d),
                };
                let r = match reward(&exprs[i], &ctx) {
                    Ok(v) if v.is_finite() => Ok(v),
                    Ok(v) => Err(format!("reward is {v}")),
                    Err(e) => Err(e),
                };
                // Past the deadline, whatever the reward returned (a value or the error
                // of work stopped by the deadline) the candidate timed out.
                let r = match cfg.timeout {
                    Some(lim) if t0.elapsed() > lim && !token.is_cancelled() => {
                        Err(format!("timed out after {:.1} s", lim.as_secs_f64()))
                    }
                    _ => r,
                };
                (r, t0.elapsed().as_secs_f64())
            })
            .collect();
        if monitor.is_cancelled() {
            // The batch may be incomplete: keep what finished before this step.
            break;
        }
        for (&i, (r, secs)) in new.iter().zip(results) {
            let (reward, error) = match r {
                Ok(v) => (v, None),
                Err(e) => {
                    invalid += 1;
                    (0.0, Some(e))
                }
            };
            cache.insert(texts[i].clone(), out.candidates.len());
            out.candidates.push(Candidate {
                expr: exprs[i].clone(),
                text: texts[i].clone(),
                reward,
                error,
                step,
                count: 0,
                seconds: secs,
            });
        }
        let mut rewards = Vec::with_capacity(b);
        for t in &texts {
            let k = cache[t];
            out.candidates[k].count += 1;
            rewards.push(out.candidates[k].reward);
        }
        for (k, c) in out.candidates.iter().enumerate() {
            let better = match out.best {
                None => true,
                Some(bk) => c.reward > out.candidates[bk].reward,
            };
            if better {
                out.best = Some(k);
            }
        }
        let mean = rewards.iter().sum::<f64>() / b as f64;
        let baseline = match policy.as_mut() {
            Some(p) => p.update(&actions, &rewards)?,
            None => mean,
        };
        sampled += b;
        let best_so_far = out.best.map_or(0.0, |k| out.candidates[k].reward);
        let rec = StepRecord {
            step,
            sampled,
            reward_mean: mean,
            reward_max: rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            best_so_far,
            entropy,
            unique: out.candidates.len(),
            invalid,
            cache_hits,
            baseline,
            elapsed: start.elapsed().as_secs_f64(),
        };
        let progress = Progress {
            step,
            total: Some(steps),
            metrics: vec![
                ("reward".into(), rec.reward_mean),
                ("best".into(), rec.best_so_far),
                ("entropy".into(), rec.entropy),
                ("unique".into(), rec.unique as f64),
                ("invalid".into(), rec.invalid as f64),
            ],
        };
        out.history.push(rec);
        if !monitor.report(&progress) {
            break;
        }
    }
    if out.history.is_empty() && monitor.is_cancelled() {
        return Err(RlError::Cancelled);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::space::Space;

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
