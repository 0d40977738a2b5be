//! TorchScript backbones: a scripted or traced `torch.nn.Module` as the backbone of a
//! [`Net`] ([`Net::from_script`]), its buffers ([`Net::script_buffers`]) and saving
//! ([`Net::save_script`]).

use super::{Backbone, Net};
use std::sync::Mutex;
use tch::nn;
use tch::{Kind, Tensor};

impl Net {
    /// Build a network whose backbone is the TorchScript module in the file `script`
    /// (variables `<prefix>.backbone.<parameter name with '_' for '.'>` and
    /// `<prefix>.head.*`). The module takes images `(n, cin, h, w)` normalised as the
    /// other backbones ([`Net::set_normalization`]; none until it is set) and returns a feature map `(n, c, h', w')`
    /// or pooled features `(n, c)`; `c` is read from one eval-mode forward pass on zero
    /// images `(2, cin, probe.0, probe.1)`.
    ///
    /// The module is loaded on `device` (its parameters and buffers), whatever the
    /// store's device. Its parameters are added to the store (sharing their memory, as
    /// `tch::TrainableCModule` does); its buffers (BatchNorm statistics) are not
    /// variables of the store: they travel with the module ([`Net::save_script`]) and
    /// are reached through [`Net::script_buffers`].
    pub fn from_script(
        p: &nn::Path,
        script: &std::path::Path,
        cin: i64,
        dim: i64,
        probe: (i64, i64),
        device: tch::Device,
    ) -> Result<Net, tch::TchError> {
        let mut module = tch::CModule::load_on_device(script, device)?;
        let bp = p / "backbone";
        for (name, tensor) in module.named_parameters()? {
            let trainable = tensor.requires_grad();
            let _ = bp.add(&name.replace('.', "_"), tensor, trainable);
        }
        module.f_set_eval()?;
        let x = Tensor::f_zeros([2, cin, probe.0, probe.1], (Kind::Float, device))?;
        let out = tch::no_grad(|| module.forward_ts(&[x]))?;
        let size = out.size();
        let (spatial, c) = match size[..] {
            [2, c, _, _] => (true, c),
            [2, c] => (false, c),
            _ => {
                return Err(tch::TchError::Shape(format!(
                    "the TorchScript backbone must return a feature map (n, c, h, w) or \
                     features (n, c); for {} images (2, {cin}, {}, {}) it returned {size:?}",
                    2, probe.0, probe.1
                )))
            }
        };
        if out.kind() != Kind::Float {
            return Err(tch::TchError::Kind(format!(
                "the TorchScript backbone must return float32 features, got {:?}",
                out.kind()
            )));
        }
        let head = nn::linear(p / "head", c, dim, Default::default());
        Ok(Net {
            features: Backbone::Script(Mutex::new(module)),
            spatial,
            head,
            mean: Tensor::from_slice(&vec![0f32; cin.max(1) as usize]).view([1, -1, 1, 1]),
            std: Tensor::from_slice(&vec![1f32; cin.max(1) as usize]).view([1, -1, 1, 1]),
            channels: c,
            prefix: p.components().collect::<Vec<_>>().join("."),
            frozen_bn: false,
        })
    }

    /// Whether the backbone is a TorchScript module.
    pub fn is_script(&self) -> bool {
        matches!(self.features, Backbone::Script(_))
    }

    /// The TorchScript backbone's buffers (BatchNorm statistics): the module's own
    /// tensors (writing into them changes the module), in the order of the module's
    /// [`BUFFERS_METHOD`], so the same on every process that loaded the same module.
    /// Empty for a built-in backbone (its buffers are store variables) and for a module
    /// without that method (one saved before it was added).
    pub fn script_buffers(&self) -> Result<Vec<Tensor>, tch::TchError> {
        let Backbone::Script(m) = &self.features else {
            return Ok(Vec::new());
        };
        let module = lock(m)?;
        match module.method_is::<tch::IValue>(BUFFERS_METHOD, &[]) {
            Ok(tch::IValue::TensorList(v)) => Ok(v),
            Ok(tch::IValue::GenericList(v)) => v
                .into_iter()
                .map(|x| match x {
                    tch::IValue::Tensor(t) => Ok(t),
                    other => Err(tch::TchError::Kind(format!(
                        "{BUFFERS_METHOD}() of the TorchScript backbone returned a \
                         non-tensor item {other:?}"
                    ))),
                })
                .collect(),
            Ok(other) => Err(tch::TchError::Kind(format!(
                "{BUFFERS_METHOD}() of the TorchScript backbone returned {other:?}, not a \
                 list of tensors"
            ))),
            // A module without the method (saved before it was added); an error raised
            // while the method runs is an error.
            Err(e)
                if e.to_string()
                    .contains(&format!("Method '{BUFFERS_METHOD}' is not defined")) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// The names of the TorchScript backbone's buffers (`X.running_mean`, ...), from its
    /// [`BUFFER_NAMES_METHOD`]; an error naming the fix when the module lacks the method
    /// (one converted before it was added).
    pub(super) fn script_buffer_names(&self) -> Result<Vec<String>, tch::TchError> {
        let Backbone::Script(m) = &self.features else {
            return Ok(Vec::new());
        };
        let module = lock(m)?;
        let missing = || {
            tch::TchError::Torch(format!(
                "the TorchScript backbone has no {BUFFER_NAMES_METHOD}() method (it was \
                 converted by an older gridmatch); pass the torch module again to name its \
                 BatchNorm layers"
            ))
        };
        let names = match module.method_is::<tch::IValue>(BUFFER_NAMES_METHOD, &[]) {
            Ok(tch::IValue::StringList(v)) => v,
            Ok(tch::IValue::GenericList(v)) => v
                .into_iter()
                .map(|x| match x {
                    tch::IValue::String(s) => Ok(s),
                    other => Err(tch::TchError::Kind(format!(
                        "{BUFFER_NAMES_METHOD}() returned a non-string item {other:?}"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Ok(other) => {
                return Err(tch::TchError::Kind(format!(
                    "{BUFFER_NAMES_METHOD}() returned {other:?}, not a list of strings"
                )))
            }
            Err(e) if e.to_string().contains("is not defined") => return Err(missing()),
            Err(e) => return Err(e),
        };
        Ok(names)
    }

    /// Write the TorchScript backbone, with its current parameters and buffers, to
    /// `path` (an error for a built-in backbone).
    pub fn save_script(&self, path: &std::path::Path) -> Result<(), tch::TchError> {
        match &self.features {
            Backbone::Builtin(_) => Err(tch::TchError::Torch(
                "a built-in backbone is not a TorchScript module".into(),
            )),
            Backbone::Script(m) => lock(m)?.save(path),
        }
    }
}

/// The exported method of a TorchScript backbone that returns its buffers; the Python
/// layer adds it (`gridmatch.gsn.torchscript.export_buffers`) before handing a module over.
pub const BUFFERS_METHOD: &str = "gridmatch_buffers";

/// The exported method of a TorchScript backbone that returns its buffers' names
/// (`named_buffers` order), added beside [`BUFFERS_METHOD`].
pub const BUFFER_NAMES_METHOD: &str = "gridmatch_buffer_names";

pub(super) fn lock(
    m: &Mutex<tch::CModule>,
) -> Result<std::sync::MutexGuard<'_, tch::CModule>, tch::TchError> {
    m.lock().map_err(|_| {
        tch::TchError::Torch("the TorchScript backbone was poisoned by an earlier failure".into())
    })
}
