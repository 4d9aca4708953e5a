//! [`TextData`]: a UTF-8 text file as byte-level tokens, split into training and validation
//! parts, and batches of `(input, next-token target)` windows.

use crate::error::{Error, Result};
use rand::Rng;
use std::path::Path;

/// Byte-level tokens of a text (vocabulary 256), split into a training prefix and a validation
/// suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextData {
    tokens: Vec<u8>,
    split: usize,
}

fn io_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Io {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A batch: `inputs` and `targets`, each `batch·seq` token ids, row-major `(batch, seq)`;
/// `targets[i] = inputs[i + 1]` within a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub inputs: Vec<usize>,
    pub targets: Vec<usize>,
    pub batch: usize,
    pub seq: usize,
}

impl TextData {
    /// Read a UTF-8 text file; the last `val_fraction` of its bytes is the validation part.
    /// A missing, empty or non-UTF-8 file is an [`Error::Io`] naming the path.
    pub fn from_file(path: impl AsRef<Path>, val_fraction: f64) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| io_err(path, format!("cannot read: {e}")))?;
        if bytes.is_empty() {
            return Err(io_err(path, "the data file is empty"));
        }
        if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(io_err(path, format!("not UTF-8 text: {e}")));
        }
        Self::from_bytes(bytes, val_fraction)
    }

    /// Tokens of `text`; the last `val_fraction` (in `[0, 1)`) is the validation part.
    pub fn from_text(text: &str, val_fraction: f64) -> Result<Self> {
        Self::from_bytes(text.as_bytes().to_vec(), val_fraction)
    }

    fn from_bytes(tokens: Vec<u8>, val_fraction: f64) -> Result<Self> {
        if tokens.is_empty() {
            return Err(Error::Zero {
                what: "text length",
            });
        }
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(Error::InvalidArgument {
                what: "val_fraction",
                message: format!("expected a value in [0, 1), got {val_fraction}"),
            });
        }
        let split = tokens.len() - (tokens.len() as f64 * val_fraction).round() as usize;
        Ok(Self { tokens, split })
    }

    /// Vocabulary size (256: one token per byte).
    pub fn vocab_size(&self) -> usize {
        256
    }
    /// The training tokens.
    pub fn train(&self) -> &[u8] {
        &self.tokens[..self.split]
    }
    /// The validation tokens.
    pub fn val(&self) -> &[u8] {
        &self.tokens[self.split..]
    }

    /// Check that both parts hold at least one window of `seq + 1` tokens.
    pub fn check_seq(&self, seq: usize) -> Result<()> {
        for (what, part) in [
            ("training text", self.train()),
            ("validation text", self.val()),
        ] {
            if part.len() < seq + 1 {
                return Err(Error::InvalidArgument {
                    what: "ctx",
                    message: format!(
                        "a context of {seq} tokens needs at least {} tokens of {what}, \
                         which has {} (use a longer file, a smaller --ctx or another split)",
                        seq + 1,
                        part.len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// `batch` random training windows of `seq` tokens.
    pub fn train_batch<R: Rng + ?Sized>(
        &self,
        batch: usize,
        seq: usize,
        rng: &mut R,
    ) -> Result<Batch> {
        self.check_seq(seq)?;
        let part = self.train();
        let starts: Vec<usize> = (0..batch)
            .map(|_| rng.random_range(0..part.len() - seq))
            .collect();
        Ok(windows(part, &starts, seq))
    }

    /// Validation batch `index` of `count`: `batch` windows at evenly spaced offsets, the same
    /// for every run with the same data and sizes.
    pub fn val_batch(&self, index: usize, count: usize, batch: usize, seq: usize) -> Result<Batch> {
        self.check_seq(seq)?;
        let part = self.val();
        let span = part.len() - seq;
        let total = (count * batch).max(1);
        let starts: Vec<usize> = (0..batch)
            .map(|b| ((index * batch + b) * span) / total)
            .collect();
        Ok(windows(part, &starts, seq))
    }
}

fn windows(part: &[u8], starts: &[usize], seq: usize) -> Batch {
    let mut inputs = Vec::with_capacity(starts.len() * seq);
    let mut targets = Vec::with_capacity(starts.len() * seq);
    for &s in starts {
        inputs.extend(part[s..s + seq].iter().map(|&b| b as usize));
        targets.extend(part[s + 1..s + seq + 1].iter().map(|&b| b as usize));
    }
    Batch {
        inputs,
        targets,
        batch: starts.len(),
        seq,
    }
}
