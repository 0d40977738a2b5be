//! The settings of a search or an evaluation (metric, device, blocks, backend) as one
//! typed spec that crosses the Python boundary once (JSON).
//!
//! ```json
//! {"metric": "cosine", "exclude_self": false, "device": "cpu",
//!  "block_size": null, "backend": "auto"}
//! ```
//!
//! Every field has a default (the values above).

use super::{Blocks, Device, KnnOptions, Metric, RetrievalError};
use serde::{Deserialize, Serialize};

/// Settings of `knn` / `evaluate` (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrievalSpec {
    /// `"cosine"`, `"ip"` or `"l2"` (see [`Metric`]).
    pub metric: String,
    /// Skip the gallery item with the query's own index.
    pub exclude_self: bool,
    /// `"cpu"`, `"cuda"` or `"cuda:N"`.
    pub device: String,
    /// `(queries, gallery)` rows per block; `None`: the engine's default.
    pub block_size: Option<(usize, usize)>,
    /// `"auto"`, `"rust"` (CPU engine) or `"torch"` (libtorch ops on the device).
    pub backend: String,
}

impl Default for RetrievalSpec {
    fn default() -> Self {
        Self {
            metric: "cosine".into(),
            exclude_self: false,
            device: "cpu".into(),
            block_size: None,
            backend: "auto".into(),
        }
    }
}

impl RetrievalSpec {
    /// Read a spec (an empty string means every default).
    pub fn from_json(spec: &str) -> Result<Self, RetrievalError> {
        if spec.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(spec)
            .map_err(|e| RetrievalError::InvalidParameter(format!("invalid retrieval spec: {e}")))
    }

    /// The device.
    pub fn device(&self) -> Result<Device, RetrievalError> {
        self.device.parse()
    }

    /// The engine's options, with `default_blocks` when the spec names none.
    pub fn knn_options(&self, default_blocks: Blocks) -> Result<KnnOptions, RetrievalError> {
        Ok(KnnOptions {
            metric: self.metric.parse::<Metric>()?,
            exclude_self: self.exclude_self,
            blocks: self
                .block_size
                .map_or(default_blocks, |(queries, gallery)| Blocks {
                    queries,
                    gallery,
                }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let s = RetrievalSpec::from_json("{}").unwrap();
        assert_eq!(s, RetrievalSpec::default());
        let o = s.knn_options(Blocks::default()).unwrap();
        assert_eq!(o.metric, Metric::Cosine);
        let s = RetrievalSpec::from_json(r#"{"metric": "l2", "block_size": [8, 16]}"#).unwrap();
        let o = s.knn_options(Blocks::default()).unwrap();
        assert_eq!((o.blocks.queries, o.blocks.gallery), (8, 16));
        let e = RetrievalSpec::from_json(r#"{"metrik": "l2"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `metrik`"), "{e}");
        let e = RetrievalSpec::from_json(r#"{"metric": "manhattan"}"#)
            .unwrap()
            .knn_options(Blocks::default())
            .unwrap_err();
        assert!(e.to_string().contains("manhattan"), "{e}");
    }
}
