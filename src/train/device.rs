//! Device selection.

use super::GsnError;
use tch::Device;

/// Resolve `"auto" | "cpu" | "cuda" | "cuda:N"` to a device.
pub fn resolve_device(name: &str) -> Result<Device, GsnError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        _ => {
            let idx = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| {
                        GsnError::Device(format!(
                            "unknown device {name:?}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
                        ))
                    })?,
                None => {
                    return Err(GsnError::Device(format!(
                        "unknown device {name:?}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
                    )))
                }
            };
            let n = tch::Cuda::device_count().max(0) as usize;
            if !tch::Cuda::is_available() || idx >= n {
                Err(GsnError::Device(format!(
                    "device {name:?} requested but CUDA is not available ({n} CUDA devices visible to libtorch)"
                )))
            } else {
                Ok(Device::Cuda(idx))
            }
        }
    }
}
