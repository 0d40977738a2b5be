//! The controller: a GRU that emits one decision per step (the authors' design: hidden
//! 128, 64-d action embeddings, one softmax head per decision), trained with REINFORCE
//! against an exponential-moving-average reward baseline with an entropy bonus, Adam
//! with step-decayed learning rate. [`ControllerConfig::risk_seeking`] switches to the
//! risk-seeking policy gradient of Petersen et al. (ICLR 2021, *Deep symbolic
//! regression*): each update learns from the best fraction of its batch only, against
//! that batch's reward quantile, so the policy is pushed toward its best candidates
//! rather than toward a good average. [`ControllerKind::Random`] samples uniformly.
//!
//! Weights are initialised from the search's own seeded generator (never libtorch's
//! global one), and every tensor op runs on the calling thread, so a search is
//! reproducible.

use super::RlError;
use crate::rng::Rng;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

/// Which controller proposes candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerKind {
    /// The GRU policy trained with REINFORCE.
    Rl,
    /// Uniform random search.
    Random,
}

/// Controller settings (defaults: the authors').
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    /// GRU hidden size (128).
    pub hidden: usize,
    /// Action embedding size (64).
    pub embedding: usize,
    /// Adam learning rate (2e-4).
    pub lr: f64,
    /// Learning-rate factor applied every `lr_decay_steps` updates (0.95).
    pub lr_decay: f64,
    /// Updates between learning-rate decays (2500).
    pub lr_decay_steps: usize,
    /// Decay of the EMA reward baseline (0.95).
    pub baseline_decay: f64,
    /// Weight of the entropy bonus (0.0025).
    pub entropy_weight: f64,
    /// Risk-seeking policy gradient with this fraction ε ∈ (0, 1] of each batch: the
    /// samples whose reward reaches the batch's (1 − ε) quantile `q` are the only ones
    /// learnt from, with advantage `r − q` (and the entropy bonus over them). `None`
    /// (the authors' setting): every sample, against the EMA baseline.
    pub risk_seeking: Option<f64>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            hidden: 128,
            embedding: 64,
            lr: 2e-4,
            lr_decay: 0.95,
            lr_decay_steps: 2500,
            baseline_decay: 0.95,
            entropy_weight: 0.0025,
            risk_seeking: None,
        }
    }
}

/// The risk-seeking selection of a batch: the `(1 − eps)` quantile `q` of `rewards`
/// (the next higher sample when it falls between two, as `numpy.quantile(...,
/// method="higher")`, without its float rounding: `eps = 0.7` of 11 rewards sits 7 places
/// below the top) and the indices of the samples with reward `>= q`. Samples at `q` have
/// advantage 0, so `⌊eps·(n − 1)⌋` samples of `n` distinct rewards carry the gradient.
pub fn risk_seeking_top(rewards: &[f64], eps: f64) -> (f64, Vec<usize>) {
    if rewards.is_empty() {
        return (0.0, Vec::new());
    }
    let mut sorted = rewards.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    let above = (eps.clamp(0.0, 1.0) * last as f64 + 1e-9).floor() as usize;
    let q = sorted[last - above.min(last)];
    let keep = (0..rewards.len()).filter(|&i| rewards[i] >= q).collect();
    (q, keep)
}

/// A batch of sampled decision sequences.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// One decision sequence per candidate.
    pub actions: Vec<Vec<usize>>,
    /// Mean policy entropy of a sequence (sum over decisions, nats).
    pub entropy: f64,
}

/// The GRU policy.
pub struct Policy {
    _vs: nn::VarStore,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    start: Tensor,
    heads: Vec<(Tensor, Tensor)>,
    embeds: Vec<Tensor>,
    opt: nn::Optimizer,
    cfg: ControllerConfig,
    baseline: Option<f64>,
    updates: usize,
    lr: f64,
}

fn uniform_tensor(rng: &mut Rng, dims: &[i64], bound: f64) -> Result<Tensor, RlError> {
    let n: i64 = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Ok(Tensor::from_slice(&v).f_reshape(dims)?)
}

impl Policy {
    /// A policy over decisions with the given numbers of choices.
    pub fn new(decisions: &[usize], cfg: ControllerConfig, rng: &mut Rng) -> Result<Self, RlError> {
        if cfg.hidden == 0 || cfg.embedding == 0 || decisions.contains(&0) {
            return Err(RlError::Config("controller sizes must be positive".into()));
        }
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let h = cfg.hidden as i64;
        let e = cfg.embedding as i64;
        let k = 1.0 / (h as f64).sqrt();
        let w_ih = root.f_var_copy("w_ih", &uniform_tensor(rng, &[3 * h, e], k)?)?;
        let w_hh = root.f_var_copy("w_hh", &uniform_tensor(rng, &[3 * h, h], k)?)?;
        let b_ih = root.f_var_copy("b_ih", &uniform_tensor(rng, &[3 * h], k)?)?;
        let b_hh = root.f_var_copy("b_hh", &uniform_tensor(rng, &[3 * h], k)?)?;
        let start = root.f_var_copy("start", &uniform_tensor(rng, &[1, e], 1.0)?)?;
        let mut heads = Vec::new();
        let mut embeds = Vec::new();
        for (t, &n) in decisions.iter().enumerate() {
            let n = n as i64;
            let w = root.f_var_copy(&format!("head{t}_w"), &uniform_tensor(rng, &[n, h], k)?)?;
            let b = root.f_var_copy(&format!("head{t}_b"), &uniform_tensor(rng, &[n], k)?)?;
            heads.push((w, b));
            embeds.push(root.f_var_copy(&format!("emb{t}"), &uniform_tensor(rng, &[n, e], 1.0)?)?);
        }
        let opt = nn::Adam::default().build(&vs, cfg.lr)?;
        let lr = cfg.lr;
        Ok(Self {
            _vs: vs,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            start,
            heads,
            embeds,
            opt,
            cfg,
            baseline: None,
            updates: 0,
            lr,
        })
    }

    /// Run the policy over `b` sequences: sample (when `forced` is `None`) or score the
    /// given actions. Returns the actions, the summed log-probabilities `[b]` and the
    /// summed entropies `[b]`.
    fn forward(
        &self,
        b: usize,
        forced: Option<&[Vec<usize>]>,
        rng: &mut Rng,
    ) -> Result<(Vec<Vec<usize>>, Tensor, Tensor), RlError> {
        let bi = b as i64;
        let mut h = Tensor::f_zeros(
            [bi, self.cfg.hidden as i64],
            (Kind::Float, tch::Device::Cpu),
        )?;
        let mut input = self
            .start
            .f_expand([bi, self.cfg.embedding as i64], false)?;
        let mut actions = vec![Vec::with_capacity(self.heads.len()); b];
        let mut logp_sum: Option<Tensor> = None;
        let mut ent_sum: Option<Tensor> = None;
        for (t, (w, bias)) in self.heads.iter().enumerate() {
            h = input.f_gru_cell(
                &h,
                &self.w_ih,
                &self.w_hh,
                Some(&self.b_ih),
                Some(&self.b_hh),
            )?;
            let logits = h.f_matmul(&w.f_tr()?)?.f_add(bias)?;
            let logp = logits.f_log_softmax(-1, Kind::Float)?;
            let p = logp.f_exp()?;
            let chosen: Vec<i64> = match forced {
                Some(f) => f.iter().map(|a| a[t] as i64).collect(),
                None => {
                    let flat: Vec<f32> = Vec::<f32>::try_from(p.f_detach()?.f_reshape([-1])?)?;
                    let n = w.size()[0] as usize;
                    flat.chunks(n)
                        .map(|row| rng.categorical(row) as i64)
                        .collect()
                }
            };
            for (seq, &c) in actions.iter_mut().zip(&chosen) {
                seq.push(c as usize);
            }
            let idx = Tensor::from_slice(&chosen);
            let lp = logp
                .f_gather(1, &idx.f_unsqueeze(1)?, false)?
                .f_squeeze_dim(1)?;
            let ent = p
                .f_mul(&logp)?
                .f_sum_dim_intlist(-1, false, Kind::Float)?
                .f_neg()?;
            logp_sum = Some(match logp_sum {
                None => lp,
                Some(s) => s.f_add(&lp)?,
            });
            ent_sum = Some(match ent_sum {
                None => ent,
                Some(s) => s.f_add(&ent)?,
            });
            input = self.embeds[t].f_index_select(0, &idx)?;
        }
        let zeros = || Tensor::zeros([bi], (Kind::Float, tch::Device::Cpu));
        Ok((
            actions,
            logp_sum.unwrap_or_else(zeros),
            ent_sum.unwrap_or_else(zeros),
        ))
    }

    /// Sample `b` decision sequences.
    pub fn sample(&self, b: usize, rng: &mut Rng) -> Result<Sampled, RlError> {
        let _guard = tch::no_grad_guard();
        let (actions, _, ent) = self.forward(b, None, rng)?;
        let entropy = ent.f_mean(Kind::Float)?.f_double_value(&[])?;
        Ok(Sampled { actions, entropy })
    }

    /// One REINFORCE update on sampled actions and their rewards. Returns the baseline
    /// used.
    pub fn update(&mut self, actions: &[Vec<usize>], rewards: &[f64]) -> Result<f64, RlError> {
        if actions.is_empty() {
            return Ok(self.baseline.unwrap_or(0.0));
        }
        let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
        // Which samples to learn from, and their advantages.
        let (baseline, chosen, adv): (f64, Vec<Vec<usize>>, Vec<f32>) = match self.cfg.risk_seeking
        {
            None => {
                let b = *self.baseline.get_or_insert(mean);
                let adv = rewards.iter().map(|r| (r - b) as f32).collect();
                (b, actions.to_vec(), adv)
            }
            Some(eps) => {
                let (q, keep) = risk_seeking_top(rewards, eps);
                let chosen = keep.iter().map(|&i| actions[i].clone()).collect();
                let adv = keep.iter().map(|&i| (rewards[i] - q) as f32).collect();
                (q, chosen, adv)
            }
        };
        if adv.iter().all(|&a| a == 0.0) && self.cfg.risk_seeking.is_some() {
            // Nothing above the cutoff (ties, a short last batch): no signal to learn.
            return Ok(baseline);
        }
        let mut dummy = Rng::raw(0);
        let (_, logp, ent) = self.forward(chosen.len(), Some(&chosen), &mut dummy)?;
        let adv = Tensor::from_slice(&adv);
        let pg = adv.f_mul(&logp)?.f_mean(Kind::Float)?.f_neg()?;
        let bonus = ent
            .f_mean(Kind::Float)?
            .f_mul_scalar(self.cfg.entropy_weight)?;
        let loss = pg.f_sub(&bonus)?;
        self.opt.zero_grad();
        loss.f_backward()?;
        self.opt.step();
        self.updates += 1;
        if self.cfg.lr_decay_steps > 0 && self.updates.is_multiple_of(self.cfg.lr_decay_steps) {
            self.lr *= self.cfg.lr_decay;
            self.opt.set_lr(self.lr);
        }
        if self.cfg.risk_seeking.is_none() {
            self.baseline =
                Some(self.cfg.baseline_decay * baseline + (1.0 - self.cfg.baseline_decay) * mean);
        }
        Ok(baseline)
    }

    /// Current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }
}

/// Entropy of uniform choices over the decisions (the random controller's entropy).
pub fn uniform_entropy(decisions: &[usize]) -> f64 {
    decisions.iter().map(|&n| (n as f64).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reinforce_learns_a_preferred_action() {
        tch::set_num_threads(1);
        let dec = [3usize, 4];
        let cfg = ControllerConfig {
            lr: 0.05,
            ..ControllerConfig::default()
        };
        let mut rng = Rng::raw(0);
        let mut pol = Policy::new(&dec, cfg, &mut rng).unwrap();
        let mut last = 0.0;
        for _ in 0..60 {
            let s = pol.sample(16, &mut rng).unwrap();
            let r: Vec<f64> = s
                .actions
                .iter()
                .map(|a| if a[0] == 2 && a[1] == 1 { 1.0 } else { 0.0 })
                .collect();
            last = r.iter().sum::<f64>() / 16.0;
            pol.update(&s.actions, &r).unwrap();
        }
        assert!(last > 0.5, "policy did not learn: {last}");
        let e0 = uniform_entropy(&dec);
        assert!((e0 - (3f64.ln() + 4f64.ln())).abs() < 1e-12);
    }

    #[test]
    fn risk_seeking_keeps_the_top_quantile() {
        // numpy.quantile(r, 0.8, method="higher") of 10 values is the 9th smallest
        let r = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0];
        let (q, keep) = risk_seeking_top(&r, 0.2);
        assert_eq!(q, 0.8);
        assert_eq!(keep, vec![1, 6]);
        // ties at the quantile are all kept; eps = 1 keeps everything against the minimum
        let (q, keep) = risk_seeking_top(&[0.5, 0.5, 0.1, 0.5], 0.25);
        assert_eq!((q, keep), (0.5, vec![0, 1, 3]));
        let (q, keep) = risk_seeking_top(&r, 1.0);
        assert_eq!((q, keep.len()), (0.0, 10));
        assert_eq!(risk_seeking_top(&[], 0.5), (0.0, vec![]));
        // 0.7 of 11 rewards: 7 above the cutoff (1 − 0.7 in floats is 0.30000000000000004,
        // which would put the cutoff one place higher)
        let r11: Vec<f64> = (0..11).map(f64::from).collect();
        let (q, keep) = risk_seeking_top(&r11, 0.7);
        assert_eq!((q, keep.len()), (3.0, 8));
    }

    #[test]
    fn risk_seeking_learns_the_best_rather_than_the_safe_action() {
        // action 0 always gives 0.5; action 1 gives 1.0 one time in four, else 0: its
        // mean (0.25) is lower, its best higher. Plain REINFORCE prefers action 0, the
        // risk-seeking gradient (top 20 %) action 1.
        tch::set_num_threads(1);
        let dec = [2usize];
        let share = |risk: Option<f64>| {
            let cfg = ControllerConfig {
                lr: 0.05,
                risk_seeking: risk,
                ..ControllerConfig::default()
            };
            let mut rng = Rng::raw(7);
            let mut pol = Policy::new(&dec, cfg, &mut rng).unwrap();
            let mut luck = Rng::raw(11);
            let mut ones = 0usize;
            for step in 0..80 {
                let s = pol.sample(20, &mut rng).unwrap();
                let r: Vec<f64> = s
                    .actions
                    .iter()
                    .map(|a| match a[0] {
                        0 => 0.5,
                        _ if luck.below(4) == 0 => 1.0,
                        _ => 0.0,
                    })
                    .collect();
                if step >= 60 {
                    ones += s.actions.iter().filter(|a| a[0] == 1).count();
                }
                pol.update(&s.actions, &r).unwrap();
            }
            ones as f64 / (20.0 * 20.0)
        };
        let (plain, risky) = (share(None), share(Some(0.2)));
        assert!(
            plain < 0.3,
            "plain REINFORCE should prefer the safe action: {plain}"
        );
        assert!(
            risky > 0.7,
            "risk-seeking should prefer the risky action: {risky}"
        );
    }

    #[test]
    fn same_seed_same_samples() {
        let dec = [5usize, 5, 7];
        let run = || {
            let mut rng = Rng::raw(42);
            let mut p = Policy::new(&dec, ControllerConfig::default(), &mut rng).unwrap();
            let mut all = Vec::new();
            for _ in 0..3 {
                let s = p.sample(4, &mut rng).unwrap();
                p.update(&s.actions, &[0.1, 0.5, 0.2, 0.9]).unwrap();
                all.push(s.actions);
            }
            all
        };
        assert_eq!(run(), run());
    }
}
