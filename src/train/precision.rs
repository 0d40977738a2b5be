//! Mixed precision: the arithmetic a model computes in ([`Precision`]), libtorch's
//! autocast regions ([`Autocast`]) and the loss scaler of float16 training
//! ([`LossScaler`]).
//!
//! Under `bf16` or `fp16` the networks' forward passes run in an autocast region, as
//! `torch.autocast(device_type, dtype)` runs them: libtorch casts the inputs of the ops
//! on its lower-precision list (convolutions, matrix products, linear layers) to the
//! 16-bit type (on CUDA it also widens the ops of its float32 list, such as softmax, to
//! float32); the weights, their gradients and the optimiser state stay float32. The
//! embeddings are normalised in float32, and the training step computes its similarity
//! maps and loss in float32 outside the region; the backward pass runs outside it too,
//! as PyTorch recommends. float16's narrow range needs loss scaling: the loss is
//! multiplied by a scale before the backward pass, the gradients divided by it before
//! the optimiser step, and a step whose gradients overflowed is skipped and halves the
//! scale (PyTorch's `GradScaler`: initial scale 2^16, doubled after 2000 steps without
//! overflow); training stops with an error once the scale falls below [`MIN_SCALE`].
//!
//! tch exposes only the CUDA float16 switch of autocast, so the region is opened with
//! libtorch's own device-aware functions (`at::autocast::set_autocast_enabled` and
//! `set_autocast_dtype`, libtorch ≥ 2.4), declared below by their Itanium C++ ABI names
//! (Linux and macOS builds of libtorch).

use super::GsnError;
use std::marker::PhantomData;
use tch::{Device, Kind, Tensor};

/// The arithmetic of a model's forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// float32 throughout (the default).
    #[default]
    Fp32,
    /// bfloat16 autocast (float32's range: no loss scaling).
    Bf16,
    /// float16 autocast with a loss scaler.
    Fp16,
}

/// The names [`Precision::parse`] accepts.
pub const PRECISIONS: [&str; 3] = ["fp32", "bf16", "fp16"];

impl Precision {
    /// The precision called `name` (`"fp32"`, `"bf16"` or `"fp16"`).
    pub fn parse(name: &str) -> Result<Precision, GsnError> {
        match name {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            "fp16" => Ok(Precision::Fp16),
            _ => Err(GsnError::Config(format!(
                "precision must be one of {PRECISIONS:?}, got {name:?}"
            ))),
        }
    }

    /// Its name (see [`PRECISIONS`]).
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// The 16-bit type of an autocast region (`None` for float32).
    pub fn kind(self) -> Option<Kind> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
            Precision::Fp16 => Some(Kind::Half),
        }
    }

    /// Whether training needs a [`LossScaler`].
    pub fn scales_loss(self) -> bool {
        self == Precision::Fp16
    }
}

/// libtorch's autocast state (thread-local in libtorch). `c10::DeviceType` and
/// `c10::ScalarType` are `enum class : int8_t`, passed as `i8`; these functions do not
/// throw.
mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device: i8) -> bool;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device: i8) -> i8;
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> std::os::raw::c_int;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> std::os::raw::c_int;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
    }
}

/// `c10::DeviceType` codes.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;

/// `c10::ScalarType` code of a 16-bit float kind.
fn scalar_type(kind: Kind) -> i8 {
    match kind {
        Kind::Half => 5,
        _ => 15, // BFloat16
    }
}

/// An open autocast region on the current thread; closing it (drop) restores the
/// thread's previous autocast state and, when it was the outermost region, clears
/// libtorch's cache of cast weights (they change at every optimiser step). Not `Send`:
/// libtorch's autocast state belongs to the thread.
#[derive(Debug)]
pub struct Autocast {
    device: i8,
    prev_enabled: bool,
    prev_dtype: i8,
    _thread: PhantomData<*const ()>,
}

impl Autocast {
    /// Open a region of `precision` for ops on `device`; `None` for float32 (nothing to
    /// do). Errors on a device other than the CPU or CUDA.
    pub fn enter(precision: Precision, device: Device) -> Result<Option<Autocast>, GsnError> {
        let Some(kind) = precision.kind() else {
            return Ok(None);
        };
        let code = match device {
            Device::Cpu => DEVICE_CPU,
            Device::Cuda(_) => DEVICE_CUDA,
            other => {
                return Err(GsnError::Config(format!(
                    "precision={:?} runs on the CPU or CUDA, not {other:?}",
                    precision.name()
                )))
            }
        };
        // SAFETY: plain setters and getters of libtorch's thread-local autocast state,
        // called with valid device and scalar type codes; they do not throw.
        let region = unsafe {
            let prev_enabled = ffi::is_autocast_enabled(code);
            let prev_dtype = ffi::get_autocast_dtype(code);
            ffi::set_autocast_dtype(code, scalar_type(kind));
            ffi::set_autocast_enabled(code, true);
            ffi::increment_nesting();
            Autocast {
                device: code,
                prev_enabled,
                prev_dtype,
                _thread: PhantomData,
            }
        };
        Ok(Some(region))
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: as in `enter`, on the thread that opened the region (not `Send`).
        unsafe {
            if ffi::decrement_nesting() == 0 {
                ffi::clear_cache();
            }
            ffi::set_autocast_enabled(self.device, self.prev_enabled);
            ffi::set_autocast_dtype(self.device, self.prev_dtype);
        }
    }
}

/// The smallest loss scale float16 training goes on with: below it (32 halvings from
/// 2^16) the gradients overflow whatever the scale, i.e. the forward pass itself
/// overflows float16.
pub const MIN_SCALE: f64 = 1.0 / 65536.0;

/// Dynamic loss scaling for float16 training (PyTorch's `GradScaler` defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    scale: f64,
    good_steps: usize,
    growth_interval: usize,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler::new(65536.0, 2000)
    }
}

impl LossScaler {
    /// A scaler starting at `scale` (a power of two keeps unscaling exact) that doubles
    /// it after `growth_interval` steps in a row without overflow.
    pub fn new(scale: f64, growth_interval: usize) -> Self {
        LossScaler {
            scale,
            good_steps: 0,
            growth_interval: growth_interval.max(1),
        }
    }

    /// The current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `loss · scale`, to call `backward` on.
    pub fn scaled(&self, loss: &Tensor) -> Result<Tensor, tch::TchError> {
        loss.f_mul_scalar(self.scale)
    }

    /// Divide the gradients of `vars` by the scale in place; `true` when every one is
    /// finite (the optimiser may step), `false` when one overflowed.
    pub fn unscale(&self, vars: &[Tensor]) -> Result<bool, tch::TchError> {
        let inv = 1.0 / self.scale;
        let mut finite = Vec::with_capacity(vars.len());
        for v in vars {
            let mut g = v.grad();
            if !g.defined() {
                continue;
            }
            let _ = g.f_mul_scalar_(inv)?;
            finite.push(g.f_isfinite()?.f_all()?);
        }
        if finite.is_empty() {
            return Ok(true);
        }
        // One transfer for all the flags (one device sync per step).
        Ok(Tensor::f_stack(&finite, 0)?
            .f_all()?
            .f_to_device(Device::Cpu)?
            .f_int64_value(&[])?
            != 0)
    }

    /// Record a step: halve the scale after an overflow (the step was skipped), double
    /// it after `growth_interval` steps in a row without one.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps == self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_round_trip() {
        for name in PRECISIONS {
            assert_eq!(Precision::parse(name).unwrap().name(), name);
        }
        let err = Precision::parse("fp8").unwrap_err().to_string();
        assert!(
            err.contains("precision must be one of") && err.contains("fp8"),
            "{err}"
        );
        assert_eq!(Precision::default(), Precision::Fp32);
        assert!(Precision::Fp16.scales_loss() && !Precision::Bf16.scales_loss());
    }

    #[test]
    fn a_region_runs_matmul_in_16_bits_and_restores_the_state() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        assert!(Autocast::enter(Precision::Fp32, Device::Cpu)
            .unwrap()
            .is_none());
        for (p, kind) in [
            (Precision::Bf16, Kind::BFloat16),
            (Precision::Fp16, Kind::Half),
        ] {
            {
                let _outer = Autocast::enter(p, Device::Cpu).unwrap();
                assert_eq!(a.matmul(&a).kind(), kind);
                {
                    let _inner = Autocast::enter(Precision::Bf16, Device::Cpu).unwrap();
                    assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
                }
                // the inner region restored the outer one's type
                assert_eq!(a.matmul(&a).kind(), kind);
                // elementwise ops are not cast
                assert_eq!((&a + 1.0).kind(), Kind::Float);
            }
            assert_eq!(a.matmul(&a).kind(), Kind::Float);
            // SAFETY: a getter of the thread-local state.
            assert!(!unsafe { ffi::is_autocast_enabled(DEVICE_CPU) });
        }
    }

    #[test]
    fn the_scaler_unscales_exactly_skips_overflow_and_adapts() {
        let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0]).set_requires_grad(true);
        let mut s = LossScaler::new(1024.0, 3);
        let loss = (&w * &w).sum(Kind::Float); // gradient 2w
        s.scaled(&loss).unwrap().backward();
        assert_eq!(
            Vec::<f32>::try_from(w.grad()).unwrap(),
            [2048.0, -4096.0, 6144.0]
        );
        assert!(s.unscale(std::slice::from_ref(&w)).unwrap());
        assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), [2.0, -4.0, 6.0]);
        // an overflow: reported, the scale halves
        let mut g = w.grad();
        let _ = g.fill_(f64::INFINITY);
        assert!(!s.unscale(std::slice::from_ref(&w)).unwrap());
        s.update(false);
        assert_eq!(s.scale(), 512.0);
        // a NaN is an overflow too
        let _ = g.fill_(f64::NAN);
        assert!(!s.unscale(std::slice::from_ref(&w)).unwrap());
        // three good steps in a row double it; an overflow resets the count
        s.update(true);
        s.update(true);
        s.update(false);
        assert_eq!(s.scale(), 256.0);
        for _ in 0..3 {
            s.update(true);
        }
        assert_eq!(s.scale(), 512.0);
        assert_eq!(LossScaler::default().scale(), 65536.0);
    }
}
