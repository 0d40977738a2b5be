//! Bindings of the image pipeline (`src/images`): `ImagePipeline` (paths + settings),
//! its `ImageEpoch` iterator of `(pixels, indices, skipped)` batches, and
//! `decode_image`. The batches' `Vec<f32>` become numpy arrays without a copy
//! (`gridmatch.datasets.ImageLoader` wraps them with `torch.from_numpy`).

use super::errors::{error, Kind};
use super::heavy::run_heavy;
use crate::images::decode::decode_file;
use crate::images::loader::{self, Epoch, LoaderConfig, Next};
use numpy::{IntoPyArray, PyArray1, PyArray3, PyArray4, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often a waiting `__next__` checks for Ctrl-C.
const POLL: Duration = Duration::from_millis(25);

/// One batch: pixels `(n, 3, size, size)`, catalogue positions `(n,)`, and the
/// `(position, message)` of images left out.
type PyBatch<'py> = (
    Bound<'py, PyArray4<f32>>,
    Bound<'py, PyArray1<i64>>,
    Vec<(usize, String)>,
);

/// Image files and the loader's settings (`config`: `LoaderConfig` as JSON).
#[pyclass(module = "gridmatch._core", frozen)]
pub(crate) struct ImagePipeline {
    paths: Arc<Vec<PathBuf>>,
    config: LoaderConfig,
}

#[pymethods]
impl ImagePipeline {
    #[new]
    fn new(paths: Vec<PathBuf>, config: &str) -> PyResult<Self> {
        let config: LoaderConfig = serde_json::from_str(config)
            .map_err(|e| error(Kind::Config, format!("bad image loader settings: {e}")))?;
        config.check()?;
        Ok(ImagePipeline {
            paths: Arc::new(paths),
            config,
        })
    }

    /// Start the workers of `epoch`.
    fn epoch(&self, epoch: u64) -> PyResult<ImageEpoch> {
        let inner = Epoch::start(Arc::clone(&self.paths), &self.config, epoch)?;
        Ok(ImageEpoch {
            inner: Some(inner),
            size: self.config.size as usize,
        })
    }

    /// The plan of image `index` in `epoch` for a `width × height` photo: a dict with
    /// `crop` (left, top, width, height), `exclusive`, `flip`, `factors`, `order`,
    /// `erase` (left, top, width, height of the occluded output rectangle, or `None`).
    fn plan<'py>(
        &self,
        py: Python<'py>,
        epoch: u64,
        index: usize,
        width: u32,
        height: u32,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = loader::image_plan(&self.config, epoch, index, width, height);
        let d = PyDict::new(py);
        d.set_item("crop", p.crop.to_vec())?;
        d.set_item("exclusive", p.exclusive)?;
        d.set_item("flip", p.flip)?;
        d.set_item("factors", p.factors.to_vec())?;
        d.set_item("order", p.order.map(u32::from).to_vec())?;
        d.set_item("erase", p.erase.map(|e| e.to_vec()))?;
        Ok(d)
    }

    /// Seconds per stage over all images on one thread (`loader::profile_stages`).
    fn profile(&self, py: Python<'_>) -> PyResult<Vec<(String, f64)>> {
        let paths = Arc::clone(&self.paths);
        let cfg = self.config.clone();
        let out = run_heavy(py, None, move |_| loader::profile_stages(&paths, &cfg))?.value;
        Ok(out.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

/// The batches of one epoch, in order; the worker threads stop when it is closed or
/// dropped.
#[pyclass(module = "gridmatch._core")]
pub(crate) struct ImageEpoch {
    inner: Option<Epoch>,
    size: usize,
}

#[pymethods]
impl ImageEpoch {
    fn __len__(&self) -> usize {
        self.inner.as_ref().map_or(0, Epoch::len)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<PyBatch<'py>>> {
        let Some(epoch) = self.inner.as_ref() else {
            return Ok(None);
        };
        loop {
            match py.detach(|| epoch.next_timeout(POLL)) {
                Next::Pending => {
                    if let Err(e) = py.check_signals() {
                        self.close();
                        return Err(e);
                    }
                }
                Next::Done => {
                    self.close();
                    return Ok(None);
                }
                Next::Batch(Err(e)) => {
                    self.close();
                    return Err(e.into());
                }
                Next::Batch(Ok(b)) => {
                    let n = b.indices.len();
                    let s = self.size;
                    let pixels = b.pixels.into_pyarray(py).reshape([n, 3, s, s])?;
                    let idx: Vec<i64> = b.indices.iter().map(|&i| i as i64).collect();
                    return Ok(Some((pixels, idx.into_pyarray(py), b.skipped)));
                }
            }
        }
    }

    /// Stop the worker threads (idempotent).
    fn close(&mut self) {
        if let Some(mut e) = self.inner.take() {
            e.stop();
        }
    }
}

/// Decode one image file as the pipeline does: upright RGB8 `(h, w, 3)`.
#[pyfunction]
fn decode_image<'py>(
    py: Python<'py>,
    path: PathBuf,
    max_pixels: u64,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let img = run_heavy(py, None, |_| decode_file(&path, max_pixels))?.value;
    let (h, w) = (img.height as usize, img.width as usize);
    img.data.into_pyarray(py).reshape([h, w, 3])
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ImagePipeline>()?;
    m.add_class::<ImageEpoch>()?;
    m.add_function(wrap_pyfunction!(decode_image, m)?)?;
    Ok(())
}
