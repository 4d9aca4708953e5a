//! Elementwise complex kernels of the Krylov multiplies, compiled twice: for the baseline
//! target and with AVX2 (chosen at run time), where the compiler vectorises them.

use super::fft::{Cx, FftFloat};

#[inline(always)]
fn mul_body<F: FftFloat>(d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]) {
    for ((d, &x), &y) in d.iter_mut().zip(a).zip(b) {
        *d = x * y;
    }
}

#[inline(always)]
fn mul_acc_body<F: FftFloat>(d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]) {
    for ((d, &x), &y) in d.iter_mut().zip(a).zip(b) {
        *d += x * y;
    }
}

#[inline(always)]
fn axpy_body<F: FftFloat>(d: &mut [Cx<F>], s: Cx<F>, x: &[Cx<F>]) {
    for (d, &x) in d.iter_mut().zip(x) {
        *d += s * x;
    }
}

#[inline(always)]
fn mul_rev_body<F: FftFloat>(d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]) {
    for ((d, &x), &y) in d.iter_mut().zip(a.iter().rev()).zip(b) {
        *d = x * y;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    #[target_feature(enable = "avx2")]
    pub fn mul<F: FftFloat>(d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]) {
        mul_body(d, a, b)
    }
    #[target_feature(enable = "avx2")]
    pub fn mul_acc<F: FftFloat>(d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]) {
        mul_acc_body(d, a, b)
    }
    #[target_feature(enable = "avx2")]
    pub fn axpy<F: FftFloat>(d: &mut [Cx<F>], s: Cx<F>, x: &[Cx<F>]) {
        axpy_body(d, s, x)
    }
    #[target_feature(enable = "avx2")]
    pub fn mul_rev<F: FftFloat>(d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]) {
        mul_rev_body(d, a, b)
    }
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

macro_rules! dispatch {
    ($name:ident, $body:ident, ($($arg:ident: $ty:ty),*), $doc:literal) => {
        #[doc = $doc]
        #[inline]
        pub(crate) fn $name<F: FftFloat>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: AVX2 is available on this CPU (checked at run time).
                return unsafe { avx2::$name($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

dispatch!(mul, mul_body, (d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]), "`d = a ⊙ b`.");
dispatch!(mul_acc, mul_acc_body, (d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]), "`d += a ⊙ b`.");
dispatch!(axpy, axpy_body, (d: &mut [Cx<F>], s: Cx<F>, x: &[Cx<F>]), "`d += s x`.");
dispatch!(
    mul_rev,
    mul_rev_body,
    (d: &mut [Cx<F>], a: &[Cx<F>], b: &[Cx<F>]),
    "`d_j = a_{len(d)−1−j} b_j` (`a` read backwards)."
);
