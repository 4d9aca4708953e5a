//! The crate's error type: every public fallible call returns [`Result<_, Error>`](Result).

/// What went wrong, naming the argument and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An array had the wrong shape: `what` names the argument.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        what: &'static str,
        expected: String,
        got: String,
    },
    /// A size or count that must be positive was zero.
    #[error("{what} must be at least 1, got 0")]
    Zero { what: &'static str },
    /// A size that must be a power of two was not.
    #[error("{what} must be a power of two, got {got}")]
    NotPowerOfTwo { what: &'static str, got: usize },
    /// A flat buffer had the wrong length.
    #[error("{what}: expected a buffer of length {expected}, got {got}")]
    BufferLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// An argument outside its allowed range or set.
    #[error("{what}: {message}")]
    InvalidArgument { what: &'static str, message: String },
    /// A vector that should be a permutation of `0..n` was not.
    #[error("not a permutation of 0..{n}: {message}")]
    NotAPermutation { n: usize, message: String },
    /// A numerical routine (SVD, …) failed to converge or met non-finite values.
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// No CUDA device (or driver) is available.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// Reading or writing a file failed, or its contents were not what was expected (a
    /// checkpoint of another shape, a data file that is empty or not UTF-8).
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// `Result<T, kaleidoscope::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Check that a 2-D array has `expected` columns (and any number of rows).
#[track_caller]
pub(crate) fn check_cols(what: &'static str, got: (usize, usize), expected: usize) -> Result<()> {
    if got.1 != expected {
        return Err(Error::Shape {
            what,
            expected: format!("(batch, {expected})"),
            got: format!("({}, {})", got.0, got.1),
        });
    }
    Ok(())
}

/// Check that a 2-D array has exactly the shape `expected`.
#[track_caller]
pub(crate) fn check_shape(
    what: &'static str,
    got: (usize, usize),
    expected: (usize, usize),
) -> Result<()> {
    if got != expected {
        return Err(Error::Shape {
            what,
            expected: format!("({}, {})", expected.0, expected.1),
            got: format!("({}, {})", got.0, got.1),
        });
    }
    Ok(())
}

/// Check the shapes of an `apply_into` call: `x` is `(batch, in)`, `y` is `(batch, out)`.
#[track_caller]
pub(crate) fn check_apply_shapes_ok<T>(
    in_features: usize,
    out_features: usize,
    x: &ndarray::ArrayView2<T>,
    y: &ndarray::ArrayViewMut2<T>,
) -> Result<()> {
    check_cols("x", x.dim(), in_features)?;
    check_shape("y", y.dim(), (x.nrows(), out_features))
}

/// Check that a flat buffer has the expected length.
#[track_caller]
pub(crate) fn check_len(what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got != expected {
        return Err(Error::BufferLength {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

/// Check that a size is positive.
pub(crate) fn check_nonzero(what: &'static str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::Zero { what });
    }
    Ok(())
}

/// Check that a size is a positive power of two.
pub(crate) fn check_pow2(what: &'static str, n: usize) -> Result<()> {
    check_nonzero(what, n)?;
    if !n.is_power_of_two() {
        return Err(Error::NotPowerOfTwo { what, got: n });
    }
    Ok(())
}
