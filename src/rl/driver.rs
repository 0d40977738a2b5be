//! The search loop as a driver that any evaluator can feed: [`Driver::propose`] samples
//! the next batch from the controller (the RL policy or uniform sampling, one seeded
//! stream) and names the batch's new distinct candidates; [`Driver::record`] takes their
//! results and does the rest of a step (cache by canonical form, invalid counts, best so
//! far, controller update, [`StepRecord`]). The in-process [`super::search()`] evaluates
//! with rayon; the Python executors (Ray, Dask, any `concurrent.futures.Executor`)
//! evaluate in other processes. Both score a raw result with [`judge`], so the validity
//! rules (non-finite → invalid, past the timeout → "timed out after X s") are one.

use super::controller::{uniform_entropy, Policy};
use super::record::{Candidate, EvalContext, SearchConfig, SearchOutcome, StepRecord};
use super::space::Space;
use super::{ControllerKind, RlError};
use crate::expr::Expr;
use crate::rng::Rng;
use crate::runtime::{CancelToken, Progress};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// One sampled batch, waiting for the results of its new distinct candidates.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Step (1-based) this batch belongs to.
    pub step: usize,
    /// Every sampled candidate of the batch, in order.
    pub exprs: Vec<Expr>,
    /// Their canonical forms.
    pub texts: Vec<String>,
    /// Their decision sequences.
    pub actions: Vec<Vec<usize>>,
    /// Mean policy entropy of a sequence (nats).
    pub entropy: f64,
    /// Indices (into `exprs`) of the candidates to evaluate: new to the cache and the
    /// first of their canonical form in the batch, in order.
    pub new: Vec<usize>,
}

impl Batch {
    /// Canonical forms of the candidates to evaluate (in `new` order).
    pub fn new_texts(&self) -> Vec<&str> {
        self.new.iter().map(|&i| self.texts[i].as_str()).collect()
    }
}

/// The state of one search between steps (see the module docs).
pub struct Driver {
    space: Space,
    cfg: SearchConfig,
    decisions: Vec<usize>,
    policy: Option<Policy>,
    rng: Rng,
    start: Instant,
    cache: HashMap<String, usize>,
    out: SearchOutcome,
    sampled: usize,
    invalid: usize,
    steps: usize,
    proposed: usize,
}

/// Run `f` with one libtorch thread (the controller is tiny; its results do not depend
/// on the thread count then), restoring the count afterwards.
fn one_torch_thread<T>(f: impl FnOnce() -> T) -> T {
    let n = tch::get_num_threads();
    tch::set_num_threads(1);
    let out = f();
    tch::set_num_threads(n);
    out
}

impl Driver {
    /// A search over `space` with settings `cfg` (checked); the controller's weights come
    /// from the seeded stream that then samples the batches.
    pub fn new(space: Space, cfg: SearchConfig) -> Result<Self, RlError> {
        if cfg.budget == 0 {
            return Err(RlError::Config("budget must be at least 1".into()));
        }
        if cfg.batch_size == 0 {
            return Err(RlError::Config("batch_size must be at least 1".into()));
        }
        let decisions = space.decisions();
        let mut rng = Rng::raw(cfg.seed);
        let policy = match cfg.controller {
            ControllerKind::Rl => Some(one_torch_thread(|| {
                Policy::new(&decisions, cfg.controller_config.clone(), &mut rng)
            })?),
            ControllerKind::Random => None,
        };
        let steps = cfg.budget.div_ceil(cfg.batch_size);
        Ok(Self {
            space,
            cfg,
            decisions,
            policy,
            rng,
            start: Instant::now(),
            cache: HashMap::new(),
            out: SearchOutcome {
                candidates: Vec::new(),
                history: Vec::new(),
                best: None,
            },
            sampled: 0,
            invalid: 0,
            steps,
            proposed: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SearchConfig {
        &self.cfg
    }

    /// Number of steps the budget allows.
    pub fn total_steps(&self) -> usize {
        self.steps
    }

    /// Steps recorded so far.
    pub fn steps_done(&self) -> usize {
        self.out.history.len()
    }

    /// Sample the next batch; `None` once the budget is spent. A batch must be given to
    /// [`Driver::record`] before the next one is proposed.
    pub fn propose(&mut self) -> Result<Option<Batch>, RlError> {
        if self.proposed != self.out.history.len() {
            return Err(RlError::Config(format!(
                "step {} was proposed but not recorded",
                self.proposed
            )));
        }
        if self.proposed >= self.steps {
            return Ok(None);
        }
        let b = self.cfg.batch_size.min(self.cfg.budget - self.sampled);
        let rng = &mut self.rng;
        let (actions, entropy) = match &self.policy {
            Some(p) => {
                let s = one_torch_thread(|| p.sample(b, rng))?;
                (s.actions, s.entropy)
            }
            None => (
                (0..b)
                    .map(|_| self.decisions.iter().map(|&n| rng.below(n)).collect())
                    .collect::<Vec<Vec<usize>>>(),
                uniform_entropy(&self.decisions),
            ),
        };
        let exprs = actions
            .iter()
            .map(|a| self.space.build(a))
            .collect::<Result<Vec<_>, _>>()?;
        let texts: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
        let mut new: Vec<usize> = Vec::new();
        let mut seen_now: HashSet<&str> = HashSet::new();
        for (i, t) in texts.iter().enumerate() {
            if !self.cache.contains_key(t) && seen_now.insert(t.as_str()) {
                new.push(i);
            }
        }
        self.proposed += 1;
        Ok(Some(Batch {
            step: self.proposed,
            exprs,
            texts,
            actions,
            entropy,
            new,
        }))
    }

    /// Finish the step of `batch` with one result per candidate of `batch.new` (in that
    /// order): the judged reward (see [`judge`]) and the evaluation time in seconds.
    pub fn record(
        &mut self,
        batch: Batch,
        results: Vec<(Result<f64, String>, f64)>,
    ) -> Result<StepRecord, RlError> {
        if batch.step != self.out.history.len() + 1 || batch.step != self.proposed {
            return Err(RlError::Config(format!(
                "batch of step {} does not belong to the step being recorded ({})",
                batch.step,
                self.out.history.len() + 1
            )));
        }
        if results.len() != batch.new.len() {
            return Err(RlError::Config(format!(
                "{} results for {} candidates",
                results.len(),
                batch.new.len()
            )));
        }
        let b = batch.texts.len();
        let step = batch.step;
        let cache_hits = b - batch.new.len();
        let out = &mut self.out;
        for (&i, (r, secs)) in batch.new.iter().zip(results) {
            let (reward, error) = match r {
                Ok(v) => (v, None),
                Err(e) => {
                    self.invalid += 1;
                    (0.0, Some(e))
                }
            };
            self.cache
                .insert(batch.texts[i].clone(), out.candidates.len());
            out.candidates.push(Candidate {
                expr: batch.exprs[i].clone(),
                text: batch.texts[i].clone(),
                reward,
                error,
                step,
                count: 0,
                seconds: secs,
            });
        }
        let mut rewards = Vec::with_capacity(b);
        for t in &batch.texts {
            let k = self.cache[t];
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
        let baseline = match self.policy.as_mut() {
            Some(p) => one_torch_thread(|| p.update(&batch.actions, &rewards))?,
            None => mean,
        };
        self.sampled += b;
        let best_so_far = out.best.map_or(0.0, |k| out.candidates[k].reward);
        let rec = StepRecord {
            step,
            sampled: self.sampled,
            reward_mean: mean,
            reward_max: rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            best_so_far,
            entropy: batch.entropy,
            unique: out.candidates.len(),
            invalid: self.invalid,
            cache_hits,
            baseline,
            elapsed: self.start.elapsed().as_secs_f64(),
        };
        out.history.push(rec.clone());
        Ok(rec)
    }

    /// The progress event of a step record (what the callback receives).
    pub fn progress(&self, rec: &StepRecord) -> Progress {
        Progress {
            step: rec.step,
            total: Some(self.steps),
            metrics: vec![
                ("reward".into(), rec.reward_mean),
                ("best".into(), rec.best_so_far),
                ("entropy".into(), rec.entropy),
                ("unique".into(), rec.unique as f64),
                ("invalid".into(), rec.invalid as f64),
            ],
        }
    }

    /// What the search found so far.
    pub fn outcome(&self) -> &SearchOutcome {
        &self.out
    }

    /// The search's result.
    pub fn into_outcome(self) -> SearchOutcome {
        self.out
    }
}

/// The validity rules of a candidate's raw reward, the same for every evaluator: a
/// non-finite reward is invalid; past the `timeout`, whatever the reward returned (a
/// value, or the error of work stopped by its deadline) the candidate timed out —
/// unless the whole search was `cancelled`, whose stopped work is never recorded.
pub fn judge(
    raw: Result<f64, String>,
    elapsed: Duration,
    timeout: Option<Duration>,
    cancelled: bool,
) -> Result<f64, String> {
    let r = match raw {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("reward is {v}")),
        Err(e) => Err(e),
    };
    match timeout {
        Some(lim) if elapsed > lim && !cancelled => Err(timed_out(lim)),
        _ => r,
    }
}

/// The error text of a candidate past its time limit.
pub fn timed_out(limit: Duration) -> String {
    format!("timed out after {:.1} s", limit.as_secs_f64())
}

/// Evaluate one candidate with `reward` under `token` and the per-candidate `timeout`:
/// the judged result (see [`judge`]) and the seconds it took.
pub fn evaluate<R>(
    reward: &R,
    expr: &Expr,
    token: &CancelToken,
    timeout: Option<Duration>,
) -> (Result<f64, String>, f64)
where
    R: Fn(&Expr, &EvalContext<'_>) -> Result<f64, String> + ?Sized,
{
    let t0 = Instant::now();
    let ctx = EvalContext {
        token,
        deadline: timeout.map(|d| t0 + d),
    };
    let raw = reward(expr, &ctx);
    let elapsed = t0.elapsed();
    (
        judge(raw, elapsed, timeout, token.is_cancelled()),
        elapsed.as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rl::ControllerConfig;

    fn cfg(kind: ControllerKind) -> SearchConfig {
        SearchConfig {
            budget: 12,
            batch_size: 5,
            seed: 4,
            controller: kind,
            controller_config: ControllerConfig::default(),
            timeout: None,
        }
    }

    #[test]
    fn judge_rules() {
        let s = Duration::from_secs_f64;
        assert_eq!(judge(Ok(0.5), s(0.1), None, false), Ok(0.5));
        assert_eq!(
            judge(Ok(f64::NAN), s(0.1), None, false),
            Err("reward is NaN".into())
        );
        assert_eq!(
            judge(Ok(0.5), s(2.0), Some(s(1.0)), false),
            Err("timed out after 1.0 s".into())
        );
        assert_eq!(
            judge(Err("x".into()), s(2.0), Some(s(1.0)), true),
            Err("x".into())
        );
        assert_eq!(judge(Ok(0.5), s(0.5), Some(s(1.0)), false), Ok(0.5));
    }

    #[test]
    fn driver_refuses_out_of_order_use() {
        let mut d = Driver::new(Space::paper_kernel(), cfg(ControllerKind::Rl)).unwrap();
        assert_eq!(d.total_steps(), 3);
        let b1 = d.propose().unwrap().unwrap();
        assert!(
            d.propose().is_err(),
            "a second batch before the first is recorded"
        );
        let n = b1.new.len();
        assert!(n > 0 && d.record(b1.clone(), vec![]).is_err());
        let res = (0..n).map(|i| (Ok(i as f64 / 10.0), 0.0)).collect();
        let rec = d.record(b1.clone(), res).unwrap();
        assert_eq!((rec.step, rec.sampled), (1, 5));
        assert!(d.record(b1, vec![]).is_err(), "the same batch twice");
        let b2 = d.propose().unwrap().unwrap();
        assert_eq!(b2.step, 2);
    }
}
