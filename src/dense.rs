//! [`Dense`]: an unstructured matrix, the baseline every structure is compared against; its
//! products go through faer's GEMM on zero-copy views.

use crate::error::Result;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, check_shape};
use crate::linear_map::{Differentiable, LinearMap};
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;

/// `y ← x·wᵀ` (or `y += x·wᵀ`) through faer, for row-major or strided ndarray views.
pub fn gemm_xwt<T: Scalar>(
    x: ArrayView2<T>,
    w: ArrayView2<T>,
    y: ArrayViewMut2<T>,
    accumulate: bool,
) {
    gemm_conj(x, false, w.t(), false, y, accumulate);
}

/// `c ← op(a)·op(b)` (or `c += …`) through faer, where `op` conjugates when its flag is set.
pub fn gemm_conj<T: Scalar>(
    a: ArrayView2<T>,
    conj_a: bool,
    b: ArrayView2<T>,
    conj_b: bool,
    c: ArrayViewMut2<T>,
    accumulate: bool,
) {
    gemm_conj_par(
        a,
        conj_a,
        b,
        conj_b,
        c,
        accumulate,
        faer::get_global_parallelism(),
    );
}

/// [`gemm_conj`] with an explicit faer parallelism (`faer::Par::Seq` inside rayon jobs).
pub fn gemm_conj_par<T: Scalar>(
    a: ArrayView2<T>,
    conj_a: bool,
    b: ArrayView2<T>,
    conj_b: bool,
    c: ArrayViewMut2<T>,
    accumulate: bool,
    par: faer::Par,
) {
    if c.is_empty() {
        return;
    }
    if a.ncols() == 0 {
        if !accumulate {
            let mut c = c;
            c.fill(T::zero());
        }
        return;
    }
    T::gemm(
        faer_mut(c),
        faer_ref(a),
        conj_a,
        faer_ref(b),
        conj_b,
        accumulate,
        par,
    );
}

/// A faer view of an ndarray view (no copy).
pub fn faer_ref<T: Scalar>(a: ArrayView2<'_, T>) -> faer::MatRef<'_, T> {
    let (r, c) = a.dim();
    let s = a.strides();
    // SAFETY: the pointer, shape and strides describe exactly the elements of `a`, which
    // outlives the returned view.
    unsafe { faer::MatRef::from_raw_parts(a.as_ptr(), r, c, s[0], s[1]) }
}

/// A mutable faer view of an ndarray view (no copy).
pub fn faer_mut<T: Scalar>(mut a: ArrayViewMut2<'_, T>) -> faer::MatMut<'_, T> {
    let (r, c) = a.dim();
    let s = a.strides().to_vec();
    // SAFETY: as in `faer_ref`; the mutable borrow of `a` is moved into the view.
    unsafe { faer::MatMut::from_raw_parts_mut(a.as_mut_ptr(), r, c, s[0], s[1]) }
}

/// A dense `(out, in)` matrix with optional bias: `y = x Wᵀ + b`.
///
/// Parameters: `W` row-major, then the bias.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense<T: Scalar> {
    out_features: usize,
    in_features: usize,
    has_bias: bool,
    params: Vec<T>,
}

impl<T: Scalar> Dense<T> {
    /// The map with weight `w` (shape `(out, in)`) and optional bias (length `out`).
    pub fn new(w: Array2<T>, bias: Option<Vec<T>>) -> Result<Self> {
        let (out_features, in_features) = w.dim();
        check_nonzero("out_features", out_features)?;
        check_nonzero("in_features", in_features)?;
        let mut params: Vec<T> = w.iter().copied().collect();
        let has_bias = bias.is_some();
        if let Some(b) = bias {
            check_len("bias", b.len(), out_features)?;
            params.extend(b);
        }
        Ok(Self {
            out_features,
            in_features,
            has_bias,
            params,
        })
    }

    /// Uniform(±1/√in) weights (PyTorch's `nn.Linear` default) and a zero bias if asked.
    pub fn random<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        check_nonzero("in_features", in_features)?;
        check_nonzero("out_features", out_features)?;
        let bound = 1.0 / (in_features as f64).sqrt();
        let w = Array2::from_shape_simple_fn((out_features, in_features), || {
            T::from_parts(
                rng.random_range(-bound..bound),
                if T::IS_COMPLEX {
                    rng.random_range(-bound..bound)
                } else {
                    0.0
                },
            )
        });
        Self::new(w, bias.then(|| vec![T::zero(); out_features]))
    }

    /// The weight, shape `(out, in)`.
    pub fn weight(&self) -> ArrayView2<'_, T> {
        ArrayView2::from_shape(
            (self.out_features, self.in_features),
            &self.params[..self.out_features * self.in_features],
        )
        .expect("weight layout")
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&[T]> {
        self.has_bias
            .then(|| &self.params[self.out_features * self.in_features..])
    }
}

impl<T: Scalar> LinearMap<T> for Dense<T> {
    fn in_features(&self) -> usize {
        self.in_features
    }
    fn out_features(&self) -> usize {
        self.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features, self.out_features, &x, &y)?;
        if x.nrows() == 0 {
            return Ok(());
        }
        gemm_xwt(x, self.weight(), y.view_mut(), false);
        if let Some(b) = self.bias() {
            for mut row in y.axis_iter_mut(Axis(0)) {
                for (v, &bb) in row.iter_mut().zip(b) {
                    *v += bb;
                }
            }
        }
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.in_features));
        if y.nrows() > 0 {
            gemm_xwt(y, self.weight().t(), x.view_mut(), false);
        }
        Ok(x)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.in_features));
        gemm_conj(y, false, self.weight(), T::IS_COMPLEX, x.view_mut(), false);
        Ok(x)
    }
    fn to_dense(&self) -> Array2<T> {
        self.weight().to_owned()
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    fn flops_per_row(&self) -> usize {
        let mac = if T::IS_COMPLEX { 8 } else { 2 };
        mac * self.in_features * self.out_features
    }
}

impl<T: Scalar> Differentiable<T> for Dense<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features)?;
        check_shape("dy", dy.dim(), (x.nrows(), self.out_features))?;
        check_len("grads", grads.len(), self.params.len())?;
        let nw = self.out_features * self.in_features;
        if x.nrows() > 0 {
            // dW = dyᵀ · x̄
            let gw =
                ArrayViewMut2::from_shape((self.out_features, self.in_features), &mut grads[..nw])
                    .expect("weight layout");
            gemm_conj(dy.t(), false, x, T::IS_COMPLEX, gw, true);
        }
        if self.has_bias {
            for row in dy.axis_iter(Axis(0)) {
                for (g, &d) in grads[nw..].iter_mut().zip(row.iter()) {
                    *g += d;
                }
            }
        }
        self.apply_adjoint(dy)
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}
