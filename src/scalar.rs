//! The one scalar trait of the crate: `f32`, `f64`, `Complex<f32>` and `Complex<f64>`.
//!
//! Every structure is generic over [`Scalar`]. Complex scalars follow PyTorch's convention for
//! gradients: for a real loss `L` and a complex parameter `θ`, the gradient returned by
//! `backward` is `∂L/∂Re θ + i ∂L/∂Im θ`, so steepest descent is `θ ← θ − lr·g`.

use num_complex::Complex;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A field element the structures compute with: real (`f32`, `f64`) or complex
/// (`Complex<f32>`, `Complex<f64>`).
pub trait Scalar:
    Copy
    + Clone
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + PartialEq
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + num_traits::Zero
    + num_traits::One
{
    /// The real type underneath: `f32` for `f32` and `Complex<f32>`, `f64` likewise.
    type Real: RealScalar;
    /// Whether the scalar is complex.
    const IS_COMPLEX: bool;
    /// A short name for tables and error messages ("f32", "c64", ...).
    const NAME: &'static str;

    /// The real number `r` as this scalar.
    fn from_real(r: Self::Real) -> Self;
    fn from_f64(x: f64) -> Self;
    /// `re + i·im`; for real scalars the imaginary part is dropped.
    fn from_parts(re: f64, im: f64) -> Self;
    /// The value as a `Complex<f64>` (imaginary part zero for real scalars).
    fn to_c64(self) -> Complex<f64>;
    fn re(self) -> Self::Real;
    fn im(self) -> Self::Real;
    fn conj(self) -> Self;
    /// `|z|`.
    fn modulus(self) -> Self::Real;
    /// `|z|²`.
    fn modulus_sqr(self) -> Self::Real;
    /// Multiplication by a real number.
    fn scale_real(self, r: Self::Real) -> Self;
    /// `true` when any component is NaN.
    fn is_nan_value(self) -> bool;
    /// A normal sample with `E|z|² = std²` (for complex, real and imaginary parts each have
    /// variance `std²/2`).
    fn randn<R: Rng + ?Sized>(rng: &mut R, std: f64) -> Self;
    /// `dst ← op(lhs)·op(rhs)` (or `dst += …` when `accumulate`) through faer's GEMM, where
    /// `op` conjugates when its flag is set.
    fn gemm(
        dst: faer::MatMut<'_, Self>,
        lhs: faer::MatRef<'_, Self>,
        conj_lhs: bool,
        rhs: faer::MatRef<'_, Self>,
        conj_rhs: bool,
        accumulate: bool,
        par: faer::Par,
    );
    /// Thin SVD `a = U·diag(σ)·Vᴴ` through faer: `(U, σ, V)` with `σ` non-increasing.
    fn thin_svd(a: faer::MatRef<'_, Self>) -> crate::Result<SvdFactors<Self>>;
}

/// The thin SVD `(U, σ, V)` of `a = U·diag(σ)·Vᴴ`.
pub type SvdFactors<T> = (faer::Mat<T>, Vec<<T as Scalar>::Real>, faer::Mat<T>);

/// A real scalar: `f32` or `f64`.
pub trait RealScalar: Scalar<Real = Self> + PartialOrd + num_traits::Float {
    fn to_f64(self) -> f64;
}

macro_rules! impl_real {
    ($t:ty, $name:literal) => {
        impl Scalar for $t {
            type Real = $t;
            const IS_COMPLEX: bool = false;
            const NAME: &'static str = $name;
            #[inline(always)]
            fn from_real(r: Self::Real) -> Self {
                r
            }
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn from_parts(re: f64, _im: f64) -> Self {
                re as $t
            }
            #[inline(always)]
            fn to_c64(self) -> Complex<f64> {
                Complex::new(self as f64, 0.0)
            }
            #[inline(always)]
            fn re(self) -> Self::Real {
                self
            }
            #[inline(always)]
            fn im(self) -> Self::Real {
                0.0
            }
            #[inline(always)]
            fn conj(self) -> Self {
                self
            }
            #[inline(always)]
            fn modulus(self) -> Self::Real {
                self.abs()
            }
            #[inline(always)]
            fn modulus_sqr(self) -> Self::Real {
                self * self
            }
            #[inline(always)]
            fn scale_real(self, r: Self::Real) -> Self {
                self * r
            }
            #[inline(always)]
            fn is_nan_value(self) -> bool {
                self.is_nan()
            }
            fn gemm(
                dst: faer::MatMut<'_, Self>,
                lhs: faer::MatRef<'_, Self>,
                conj_lhs: bool,
                rhs: faer::MatRef<'_, Self>,
                conj_rhs: bool,
                accumulate: bool,
                par: faer::Par,
            ) {
                use faer::linalg::matmul::matmul;
                let beta = if accumulate {
                    faer::Accum::Add
                } else {
                    faer::Accum::Replace
                };
                let one = <Self as num_traits::One>::one();
                match (conj_lhs, conj_rhs) {
                    (false, false) => matmul(dst, beta, lhs, rhs, one, par),
                    (true, false) => matmul(dst, beta, lhs.conjugate(), rhs, one, par),
                    (false, true) => matmul(dst, beta, lhs, rhs.conjugate(), one, par),
                    (true, true) => matmul(dst, beta, lhs.conjugate(), rhs.conjugate(), one, par),
                }
            }
            fn thin_svd(a: faer::MatRef<'_, Self>) -> crate::Result<SvdFactors<Self>> {
                let svd = a
                    .thin_svd()
                    .map_err(|e| crate::Error::Numerical(format!("SVD failed: {e:?}")))?;
                let sv = svd.S().column_vector();
                let sigma = (0..sv.nrows()).map(|i| Scalar::re(sv[i])).collect();
                Ok((svd.U().to_owned(), sigma, svd.V().to_owned()))
            }
            fn randn<R: Rng + ?Sized>(rng: &mut R, std: f64) -> Self {
                let z: f64 = StandardNormal.sample(rng);
                (z * std) as $t
            }
        }
        impl RealScalar for $t {
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

macro_rules! impl_complex {
    ($t:ty, $name:literal) => {
        impl Scalar for Complex<$t> {
            type Real = $t;
            const IS_COMPLEX: bool = true;
            const NAME: &'static str = $name;
            #[inline(always)]
            fn from_real(r: Self::Real) -> Self {
                Complex::new(r, 0.0)
            }
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                Complex::new(x as $t, 0.0)
            }
            #[inline(always)]
            fn from_parts(re: f64, im: f64) -> Self {
                Complex::new(re as $t, im as $t)
            }
            #[inline(always)]
            fn to_c64(self) -> Complex<f64> {
                Complex::new(self.re as f64, self.im as f64)
            }
            #[inline(always)]
            fn re(self) -> Self::Real {
                self.re
            }
            #[inline(always)]
            fn im(self) -> Self::Real {
                self.im
            }
            #[inline(always)]
            fn conj(self) -> Self {
                Complex::new(self.re, -self.im)
            }
            #[inline(always)]
            fn modulus(self) -> Self::Real {
                self.norm()
            }
            #[inline(always)]
            fn modulus_sqr(self) -> Self::Real {
                self.norm_sqr()
            }
            #[inline(always)]
            fn scale_real(self, r: Self::Real) -> Self {
                Complex::new(self.re * r, self.im * r)
            }
            #[inline(always)]
            fn is_nan_value(self) -> bool {
                self.re.is_nan() || self.im.is_nan()
            }
            fn gemm(
                dst: faer::MatMut<'_, Self>,
                lhs: faer::MatRef<'_, Self>,
                conj_lhs: bool,
                rhs: faer::MatRef<'_, Self>,
                conj_rhs: bool,
                accumulate: bool,
                par: faer::Par,
            ) {
                use faer::linalg::matmul::matmul;
                let beta = if accumulate {
                    faer::Accum::Add
                } else {
                    faer::Accum::Replace
                };
                let one = <Self as num_traits::One>::one();
                match (conj_lhs, conj_rhs) {
                    (false, false) => matmul(dst, beta, lhs, rhs, one, par),
                    (true, false) => matmul(dst, beta, lhs.conjugate(), rhs, one, par),
                    (false, true) => matmul(dst, beta, lhs, rhs.conjugate(), one, par),
                    (true, true) => matmul(dst, beta, lhs.conjugate(), rhs.conjugate(), one, par),
                }
            }
            fn thin_svd(a: faer::MatRef<'_, Self>) -> crate::Result<SvdFactors<Self>> {
                let svd = a
                    .thin_svd()
                    .map_err(|e| crate::Error::Numerical(format!("SVD failed: {e:?}")))?;
                let sv = svd.S().column_vector();
                let sigma = (0..sv.nrows()).map(|i| Scalar::re(sv[i])).collect();
                Ok((svd.U().to_owned(), sigma, svd.V().to_owned()))
            }
            fn randn<R: Rng + ?Sized>(rng: &mut R, std: f64) -> Self {
                let s = std * std::f64::consts::FRAC_1_SQRT_2;
                let a: f64 = StandardNormal.sample(rng);
                let b: f64 = StandardNormal.sample(rng);
                Complex::new((a * s) as $t, (b * s) as $t)
            }
        }
    };
}

impl_real!(f32, "f32");
impl_real!(f64, "f64");
impl_complex!(f32, "c32");
impl_complex!(f64, "c64");

/// `Complex<f32>`, as faer and num-complex name it.
pub type C32 = Complex<f32>;
/// `Complex<f64>`.
pub type C64 = Complex<f64>;

/// Convert between scalars through `Complex<f64>` (imaginary parts dropped going to a real type).
#[inline]
pub fn cast<A: Scalar, B: Scalar>(a: A) -> B {
    let z = a.to_c64();
    B::from_parts(z.re, z.im)
}
