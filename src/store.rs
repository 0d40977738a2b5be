//! Model files: named arrays in the safetensors format plus string metadata, protected
//! by a SHA-256 checksum and written atomically.
//!
//! A file is a plain safetensors file (readable by any safetensors reader). Its header
//! metadata holds the caller's strings and [`CHECKSUM_KEY`], the SHA-256 of every array
//! (name, dtype, shape, bytes) and every other metadata entry, so any changed byte —
//! in the data or in the header — is detected on reading. Nothing in a file is ever
//! executed: reading parses a length-prefixed JSON header and copies bytes.
//!
//! Writing goes to a temporary file in the destination folder, which is flushed to disk
//! and then renamed over the destination: a crash or an error mid-way leaves the
//! previous file untouched.

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Metadata key of the checksum.
pub const CHECKSUM_KEY: &str = "gridmatch.sha256";

/// Errors of reading and writing model files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be written (the previous file, if any, is unchanged).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The destination.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid, intact model file.
    #[error("{0}")]
    Format(String),
}

/// The content of a model file: named arrays (in file order) and string metadata.
pub type Contents = (Vec<(String, Array)>, BTreeMap<String, String>);

/// One array: dtype name (`"f64" | "f32" | "i64" | "i32" | "u8" | "bool"`), shape and
/// little-endian, C-order bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array {
    /// Element type.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Raw bytes (little endian, C order).
    pub data: Vec<u8>,
}

fn to_dtype(name: &str) -> Result<Dtype, StoreError> {
    Ok(match name {
        "f64" => Dtype::F64,
        "f32" => Dtype::F32,
        "i64" => Dtype::I64,
        "i32" => Dtype::I32,
        "u8" => Dtype::U8,
        "bool" => Dtype::BOOL,
        other => return Err(StoreError::Format(format!("unsupported dtype {other:?}"))),
    })
}

fn dtype_name(d: Dtype) -> Result<&'static str, StoreError> {
    Ok(match d {
        Dtype::F64 => "f64",
        Dtype::F32 => "f32",
        Dtype::I64 => "i64",
        Dtype::I32 => "i32",
        Dtype::U8 => "u8",
        Dtype::BOOL => "bool",
        other => return Err(StoreError::Format(format!("unsupported dtype {other:?}"))),
    })
}

/// SHA-256 over the arrays (sorted by name) and the metadata (sorted, checksum left out).
fn checksum<'a>(
    arrays: impl IntoIterator<Item = (&'a str, &'a str, &'a [usize], &'a [u8])>,
    metadata: &BTreeMap<String, String>,
) -> String {
    let mut sorted: Vec<_> = arrays.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    let field = |h: &mut Sha256, bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for (name, dtype, shape, data) in sorted {
        field(&mut h, name.as_bytes());
        field(&mut h, dtype.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for &d in shape {
            h.update((d as u64).to_le_bytes());
        }
        field(&mut h, data);
    }
    for (k, v) in metadata.iter().filter(|(k, _)| k.as_str() != CHECKSUM_KEY) {
        field(&mut h, k.as_bytes());
        field(&mut h, v.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serialise `arrays` and `metadata` (plus the checksum) to safetensors bytes.
pub fn to_bytes(
    arrays: &[(String, Array)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, StoreError> {
    let mut views = Vec::with_capacity(arrays.len());
    for (i, (name, a)) in arrays.iter().enumerate() {
        if arrays[..i].iter().any(|(n, _)| n == name) {
            return Err(StoreError::Format(format!("array {name:?} given twice")));
        }
        let view = TensorView::new(to_dtype(&a.dtype)?, a.shape.clone(), &a.data)
            .map_err(|e| StoreError::Format(format!("array {name:?}: {e}")))?;
        views.push((name.clone(), view));
    }
    let mut meta: HashMap<String, String> = metadata
        .iter()
        .filter(|(k, _)| k.as_str() != CHECKSUM_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let sum = checksum(
        arrays.iter().map(|(n, a)| {
            (
                n.as_str(),
                a.dtype.as_str(),
                a.shape.as_slice(),
                a.data.as_slice(),
            )
        }),
        metadata,
    );
    meta.insert(CHECKSUM_KEY.to_string(), sum);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| StoreError::Format(format!("cannot serialise: {e}")))
}

/// Parse and verify safetensors bytes written by [`to_bytes`]: the arrays (in file
/// order) and the metadata (without the checksum).
///
/// Truncated or malformed bytes, unsupported dtypes, a missing checksum or one that does
/// not match (any byte changed) are [`StoreError::Format`]. No allocation exceeds the
/// size of `bytes`.
pub fn from_bytes(bytes: &[u8]) -> Result<Contents, StoreError> {
    let bad = |e: safetensors::SafeTensorError| {
        StoreError::Format(format!("not a valid safetensors model file ({e})"))
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let Some(expected) = metadata.remove(CHECKSUM_KEY) else {
        return Err(StoreError::Format(
            "the file has no gridmatch checksum (not written by gridmatch)".into(),
        ));
    };
    let mut arrays = Vec::new();
    for (name, view) in st.iter() {
        let dtype = dtype_name(view.dtype())?.to_string();
        arrays.push((
            name.to_string(),
            Array {
                dtype,
                shape: view.shape().to_vec(),
                data: view.data().to_vec(),
            },
        ));
    }
    let got = checksum(
        arrays.iter().map(|(n, a)| {
            (
                n.as_str(),
                a.dtype.as_str(),
                a.shape.as_slice(),
                a.data.as_slice(),
            )
        }),
        &metadata,
    );
    if got != expected {
        return Err(StoreError::Format(
            "checksum mismatch: the file was modified or is corrupt".into(),
        ));
    }
    Ok((arrays, metadata))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write a file atomically: `write` fills a temporary file (given by path) in the
/// destination's folder, which is then flushed to disk and renamed over `path`. On any
/// error the temporary file is removed and `path` is left as it was. Errors of `write`
/// are returned as they are; the temporary name, flush and rename fail as
/// [`StoreError::Write`], converted to the caller's error type `E`.
pub fn write_atomic_at<E: From<StoreError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| err(std::io::Error::other("the path has no file name")))?;
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.partial",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write(&tmp).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| err(e).into())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        sync_dir(path);
    }
    result
}

/// Flush the entries of `path`'s folder (a rename into it) to disk where the OS lets a
/// folder be opened for that (Unix); best effort: the file itself is on disk already.
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// [`write_atomic_at`] with a writer on the temporary file.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    write_atomic_at(path, |tmp| {
        std::fs::File::create(tmp)
            .and_then(|mut f| write(&mut f))
            .map_err(|source| StoreError::Write {
                path: path.to_path_buf(),
                source,
            })
    })
}

/// Write `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Save arrays and metadata to `path` atomically.
pub fn save(
    path: &Path,
    arrays: &[(String, Array)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    write_atomic(path, &to_bytes(arrays, metadata)?)
}

/// Load and verify a file written by [`save`].
pub fn load(path: &Path) -> Result<Contents, StoreError> {
    let bytes = std::fs::read(path).map_err(|source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes).map_err(|e| match e {
        StoreError::Format(m) => StoreError::Format(format!("{}: {m}", path.display())),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<(String, Array)>, BTreeMap<String, String>) {
        let a = Array {
            dtype: "f64".into(),
            shape: vec![2, 2],
            data: [1.0f64, -2.5, 3.0, 0.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        let b = Array {
            dtype: "i32".into(),
            shape: vec![0],
            data: vec![],
        };
        let meta = BTreeMap::from([("config".to_string(), "{\"a\": 1}".to_string())]);
        (vec![("w".into(), a), ("empty".into(), b)], meta)
    }

    #[test]
    fn round_trip() {
        let (arrays, meta) = sample();
        let bytes = to_bytes(&arrays, &meta).unwrap();
        let (back, meta2) = from_bytes(&bytes).unwrap();
        assert_eq!(meta2, meta);
        for (name, a) in &arrays {
            let (_, b) = back.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn every_changed_byte_and_every_truncation_is_detected() {
        let (arrays, meta) = sample();
        let bytes = to_bytes(&arrays, &meta).unwrap();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            assert!(from_bytes(&t).is_err(), "flipped byte {i} not detected");
            assert!(from_bytes(&bytes[..i]).is_err(), "truncated at {i}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (mut arrays, meta) = sample();
        arrays[0].1.data.pop();
        assert!(to_bytes(&arrays, &meta).is_err());
        let (mut arrays, meta) = sample();
        arrays[1].0 = "w".into();
        assert!(to_bytes(&arrays, &meta).is_err());
        let (mut arrays, meta) = sample();
        arrays[0].1.dtype = "c64".into();
        assert!(to_bytes(&arrays, &meta).is_err());
        // a safetensors file without the checksum
        let plain = safetensors::serialize(
            [(
                "x",
                TensorView::new(Dtype::U8, vec![1], &[7u8][..]).unwrap(),
            )],
            None,
        )
        .unwrap();
        assert!(from_bytes(&plain)
            .unwrap_err()
            .to_string()
            .contains("no gridmatch checksum"));
        // a header claiming a huge length
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(from_bytes(&huge).is_err());
    }

    #[test]
    fn failed_write_keeps_the_previous_file() {
        let dir = std::env::temp_dir().join(format!("gm-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        write_atomic(&path, b"old").unwrap();
        let e = write_atomic_with(&path, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
