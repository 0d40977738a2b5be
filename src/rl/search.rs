//! The search loop: sample a batch from the controller, evaluate the new candidates in
//! parallel (rayon), reuse cached rewards of candidates seen before (by canonical form),
//! give invalid candidates reward 0 and count them, update the controller, record one
//! [`super::StepRecord`] and report progress per step.

use super::driver::{evaluate, Driver};
use super::record::{EvalContext, SearchConfig, SearchOutcome};
use super::space::Space;
use super::RlError;
use crate::expr::Expr;
use crate::runtime::Monitor;
use rayon::prelude::*;

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
    use crate::rl::controller::{ControllerConfig, ControllerKind};
    use crate::rl::record::StepRecord;
    use crate::rl::space::Space;
    use crate::runtime::CancelToken;
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
