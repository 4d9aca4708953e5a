//! [`TensorStore`]: named tensors and string metadata, read and written in the
//! [safetensors](https://huggingface.co/docs/safetensors) format, so that a checkpoint opens in
//! PyTorch with `safetensors.torch.load_file`.
//!
//! Real tensors are stored as `F32`/`F64` with their natural row-major shape; complex tensors
//! as real tensors with a trailing dimension 2 (`torch.view_as_real`'s layout). Files are
//! written to a temporary file in the same folder and renamed into place, so an interrupted
//! save never leaves a half-written checkpoint.

use crate::error::{Error, Result};
use crate::scalar::Scalar;
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
struct Stored {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Stored {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn is_single<T: Scalar>() -> bool {
    std::mem::size_of::<T::Real>() == 4
}

fn io_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A set of named tensors with string metadata, serialised as safetensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorStore {
    tensors: BTreeMap<String, Stored>,
    metadata: BTreeMap<String, String>,
}

impl TensorStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) tensor `name` of logical shape `shape` with row-major `data` (complex
    /// scalars get a trailing dimension 2).
    pub fn insert<T: Scalar>(&mut self, name: &str, shape: &[usize], data: &[T]) -> Result<()> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(Error::BufferLength {
                what: "tensor data",
                expected: numel,
                got: data.len(),
            });
        }
        let mut full_shape = shape.to_vec();
        if T::IS_COMPLEX {
            full_shape.push(2);
        }
        let single = is_single::<T>();
        let mut bytes = Vec::with_capacity(numel * if single { 4 } else { 8 } * 2);
        let mut push = |v: f64| {
            if single {
                bytes.extend_from_slice(&(v as f32).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        };
        for z in data {
            let c = z.to_c64();
            push(c.re);
            if T::IS_COMPLEX {
                push(c.im);
            }
        }
        self.tensors.insert(
            name.to_string(),
            Stored {
                dtype: if single { Dtype::F32 } else { Dtype::F64 },
                shape: full_shape,
                data: bytes,
            },
        );
        Ok(())
    }

    /// Tensor `name`, which must have logical shape `shape`, as scalars `T` (an `F32` tensor
    /// loads into `f64` and vice versa).
    pub fn get<T: Scalar>(&self, name: &str, shape: &[usize]) -> Result<Vec<T>> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::InvalidArgument {
                what: "checkpoint",
                message: format!("has no tensor `{name}`"),
            })?;
        let mut want = shape.to_vec();
        if T::IS_COMPLEX {
            want.push(2);
        }
        if t.shape != want {
            return Err(Error::Shape {
                what: "checkpoint tensor",
                expected: format!("`{name}` of shape {want:?}"),
                got: format!("{:?}", t.shape),
            });
        }
        let reals: Vec<f64> = match t.dtype {
            Dtype::F32 => t
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect(),
            Dtype::F64 => t
                .data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect(),
            other => {
                return Err(Error::InvalidArgument {
                    what: "checkpoint",
                    message: format!("tensor `{name}` has dtype {other:?}, expected F32 or F64"),
                })
            }
        };
        Ok(if T::IS_COMPLEX {
            reals
                .chunks_exact(2)
                .map(|p| T::from_parts(p[0], p[1]))
                .collect()
        } else {
            reals.into_iter().map(T::from_f64).collect()
        })
    }

    /// Whether tensor `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The stored shape of tensor `name` (with the trailing 2 of complex tensors).
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Set a metadata entry (safetensors' `__metadata__`, string to string).
    pub fn set_metadata(&mut self, key: &str, value: impl Into<String>) {
        self.metadata.insert(key.to_string(), value.into());
    }

    /// A metadata entry.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// A metadata entry that must be present.
    pub fn require_metadata(&self, key: &str) -> Result<&str> {
        self.metadata(key).ok_or_else(|| Error::InvalidArgument {
            what: "checkpoint",
            message: format!("has no metadata entry `{key}`"),
        })
    }

    /// The safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let meta: HashMap<String, String> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        safetensors::tensor::serialize(
            self.tensors.iter().map(|(k, v)| (k.as_str(), v)),
            (!meta.is_empty()).then_some(meta),
        )
        .map_err(|e| Error::InvalidArgument {
            what: "checkpoint",
            message: format!("cannot serialise: {e}"),
        })
    }

    /// Parse safetensors bytes (tensors of any dtype are kept; [`get`](Self::get) accepts F32
    /// and F64).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::InvalidArgument {
            what: "checkpoint",
            message: format!("not a safetensors file: {e}"),
        })?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| Error::InvalidArgument {
                what: "checkpoint",
                message: format!("not a safetensors file: {e}"),
            })?;
        let metadata = header
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, v)| {
                (
                    name,
                    Stored {
                        dtype: v.dtype(),
                        shape: v.shape().to_vec(),
                        data: v.data().to_vec(),
                    },
                )
            })
            .collect();
        Ok(Self { tensors, metadata })
    }

    /// Write the store to `path` atomically: a temporary file in the same folder, flushed and
    /// synced, then renamed over `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        let file_name = path
            .file_name()
            .ok_or_else(|| io_err(path, "not a file path"))?
            .to_string_lossy()
            .into_owned();
        let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(path, format!("cannot write checkpoint: {e}"))
        })
    }

    /// Read a store from a safetensors file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| io_err(path, format!("cannot read checkpoint: {e}")))?;
        Self::from_bytes(&bytes).map_err(|e| io_err(path, e.to_string()))
    }
}
