//! The optimiser's parameter groups: the head (group 0, the spec's `lr`) and the
//! backbone (group 1, `finetune.backbone_lr`), the backbone frozen for the first
//! `finetune.freeze_backbone_epochs` epochs, its BatchNorm layers kept as they are with
//! `finetune.freeze_bn`, and both rates scaled by the warm-up and the schedule.
//!
//! Frozen parameters do not require gradients (no backward pass through them is spent
//! on them) and are not in the optimiser (BatchNorm affine parameters) or have no
//! gradient while frozen (the backbone in its frozen epochs: Adam and SGD skip a
//! parameter without one, and start its moments when it first has one).

use super::spec::TrainSpec;
use super::{GsnError, Model, Optim};
use std::collections::HashSet;
use tch::{COptimizer, Tensor};

/// Group of the head's parameters (and anything else that is not the backbone).
const HEAD: usize = 0;
/// Group of the backbone's parameters.
const BACKBONE: usize = 1;

/// The model's trainable variables sorted by name, in their groups.
pub(super) struct Groups {
    /// `(name, variable, is_backbone)` of every variable the optimiser trains.
    vars: Vec<(String, Tensor, bool)>,
    /// BatchNorm affine parameters kept fixed (`freeze_bn`), to release after training.
    frozen_bn: Vec<Tensor>,
}

impl Groups {
    /// The groups of `model`'s variables under `spec`: with `freeze_bn` the backbone's
    /// BatchNorm layers run on their running statistics and their affine parameters
    /// stop requiring gradients (until [`Groups::release`]).
    /// A loss's class `proxies` train in the head's group (named `loss.proxies`).
    pub(super) fn new(
        model: &mut Model,
        spec: &TrainSpec,
        proxies: Option<&Tensor>,
    ) -> Result<Groups, GsnError> {
        let mut named: Vec<(String, Tensor)> = model
            .vs
            .variables()
            .into_iter()
            .filter(|(_, v)| v.requires_grad())
            .chain(proxies.map(|p| ("loss.proxies".to_string(), p.shallow_clone())))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let mut frozen: HashSet<String> = HashSet::new();
        if spec.finetune.freeze_bn {
            let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
            let all: Vec<String> = model.vs.variables().into_keys().collect();
            for net in std::iter::once(&model.query).chain(model.target.as_ref()) {
                frozen.extend(net.batch_norm_affine(&all).map_err(|e| {
                    GsnError::Config(format!("freeze_bn: cannot find the BatchNorm layers: {e}"))
                })?);
            }
            frozen.retain(|n| names.contains(n));
            model.query.set_frozen_batch_norm(true);
            if let Some(t) = model.target.as_mut() {
                t.set_frozen_batch_norm(true);
            }
        }
        let mut vars = Vec::new();
        let mut frozen_bn = Vec::new();
        for (name, v) in named {
            if frozen.contains(&name) {
                let _ = v.set_requires_grad(false);
                frozen_bn.push(v);
            } else {
                let backbone = name.contains(".backbone.");
                vars.push((name, v, backbone));
            }
        }
        Ok(Groups { vars, frozen_bn })
    }

    /// The optimiser of the spec over the groups (rates set by [`Groups::set_rates`]).
    pub(super) fn optimizer(&self, spec: &TrainSpec) -> Result<COptimizer, GsnError> {
        let mut opt = match spec.optimizer {
            // tch's defaults: betas (0.9, 0.999), eps 1e-8, no amsgrad.
            Optim::Adam => COptimizer::adam(spec.lr, 0.9, 0.999, spec.weight_decay, 1e-8, false)?,
            Optim::Sgd => COptimizer::sgd(spec.lr, 0.9, 0.0, spec.weight_decay, false)?,
        };
        // Group 0 exists from the start; group 1 is created by its first parameter.
        for (_, v, backbone) in &self.vars {
            opt.add_parameters(v, if *backbone { BACKBONE } else { HEAD })?;
        }
        Ok(opt)
    }

    /// The rates of step `step` of `total`: `(head, backbone)`, both scaled by the
    /// warm-up and the schedule.
    pub(super) fn rates(spec: &TrainSpec, step: usize, total: usize) -> (f64, f64) {
        let f = spec
            .schedule
            .factor_with_warmup(step, total, spec.finetune.warmup_steps);
        let backbone = spec.finetune.backbone_lr.unwrap_or(spec.lr);
        (spec.lr * f, backbone * f)
    }

    /// Set the optimiser's rates for step `step` of `total`; returns them.
    pub(super) fn set_rates(
        &self,
        opt: &mut COptimizer,
        spec: &TrainSpec,
        step: usize,
        total: usize,
    ) -> Result<(f64, f64), GsnError> {
        let (head, backbone) = Groups::rates(spec, step, total);
        opt.set_learning_rate_group(HEAD, head)?;
        if self.vars.iter().any(|(_, _, b)| *b) {
            opt.set_learning_rate_group(BACKBONE, backbone)?;
        }
        Ok((head, backbone))
    }

    /// Whether the backbone trains in epoch `epoch` (1-based).
    pub(super) fn backbone_trains(spec: &TrainSpec, epoch: usize) -> bool {
        epoch > spec.finetune.freeze_backbone_epochs
    }

    /// Let the backbone's parameters require gradients (`true`) or not.
    pub(super) fn set_backbone_trainable(&self, on: bool) -> Result<(), GsnError> {
        for (_, v, backbone) in &self.vars {
            if *backbone {
                let _ = v.shallow_clone().f_set_requires_grad(on)?;
            }
        }
        Ok(())
    }

    /// Run `f` with every variable requiring gradients again (as after training), then
    /// freeze again what is frozen (the backbone when `!backbone_trains`, BatchNorm's
    /// affine parameters): a checkpoint of a TorchScript backbone saves its parameters'
    /// flags, which a resumed run would take for the user's own freezing.
    pub(super) fn while_released<T>(
        &self,
        backbone_trains: bool,
        f: impl FnOnce() -> Result<T, GsnError>,
    ) -> Result<T, GsnError> {
        self.set_frozen_bn_trainable(true)?;
        self.set_backbone_trainable(true)?;
        let out = f();
        self.set_backbone_trainable(backbone_trains)?;
        self.set_frozen_bn_trainable(false)?;
        out
    }

    fn set_frozen_bn_trainable(&self, on: bool) -> Result<(), GsnError> {
        for v in &self.frozen_bn {
            let _ = v.shallow_clone().f_set_requires_grad(on)?;
        }
        Ok(())
    }

    /// The variables that receive gradients now (those requiring them), in name order:
    /// what data-parallel training all-reduces and the float16 scaler unscales.
    pub(super) fn training_now(&self) -> Vec<Tensor> {
        self.vars
            .iter()
            .filter(|(_, v, _)| v.requires_grad())
            .map(|(_, v, _)| v.shallow_clone())
            .collect()
    }

    /// How many variables the optimiser trains (frozen now or not).
    pub(super) fn len(&self) -> usize {
        self.vars.len()
    }

    /// Let every variable require gradients again and the BatchNorm layers train again
    /// (after training).
    pub(super) fn release(&self, model: &mut Model) -> Result<(), GsnError> {
        self.set_backbone_trainable(true)?;
        self.set_frozen_bn_trainable(true)?;
        model.query.set_frozen_batch_norm(false);
        if let Some(t) = model.target.as_mut() {
            t.set_frozen_batch_norm(false);
        }
        Ok(())
    }
}
