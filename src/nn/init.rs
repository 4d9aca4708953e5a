//! Initialisation of [`Linear`](super::Linear) layers: each structure starts with the Frobenius
//! norm a dense layer of the same initialisation has in expectation.

use crate::error::{Error, Result};
use crate::scalar::{RealScalar, Scalar};
use ndarray::ArrayView2;
use std::ops::Range;

/// How to draw a layer's weights. For a dense `(out, in)` weight with i.i.d. entries of
/// variance `σ²`, `E‖W‖_F² = out·in·σ²`, hence `E‖x Wᵀ‖² = out·σ²·‖x‖²`; a structured layer is
/// drawn with its own random law and then one factor (on which `W` depends linearly) is scaled
/// so that `‖W‖_F² = out·in·σ²` exactly, which keeps activations at the dense scale.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LinearInit {
    /// PyTorch's `nn.Linear` default, `U(±1/√in)`: `σ² = 1/(3·in)`.
    #[default]
    Default,
    /// Normal entries with standard deviation `std` (GPT-2 uses 0.02, Radford et al. 2019).
    Normal { std: f64 },
}

impl LinearInit {
    /// The dense entry variance `σ²` this init stands for.
    pub fn entry_variance(self, in_features: usize) -> f64 {
        match self {
            LinearInit::Default => 1.0 / (3.0 * in_features as f64),
            LinearInit::Normal { std } => std * std,
        }
    }

    /// Refuse a non-finite or negative standard deviation.
    pub fn validate(self) -> Result<()> {
        if let LinearInit::Normal { std } = self {
            if !(std.is_finite() && std >= 0.0) {
                return Err(Error::InvalidArgument {
                    what: "init std",
                    message: format!("expected a finite value ≥ 0, got {std}"),
                });
            }
        }
        Ok(())
    }
}

/// Scale the parameters in `group` (on which `W` depends linearly; `w` is the current `W`) so
/// that `‖W‖_F = target`. A zero `W` is left as it is.
pub(crate) fn scale_to_norm<T: Scalar>(
    params: &mut [T],
    group: &[Range<usize>],
    w: ArrayView2<T>,
    target: f64,
) {
    let norm = w
        .iter()
        .map(|v| v.modulus_sqr().to_f64())
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() || group.is_empty() {
        return;
    }
    let c = T::Real::from_f64(target / norm);
    for r in group {
        for p in &mut params[r.clone()] {
            *p = p.scale_real(c);
        }
    }
}
