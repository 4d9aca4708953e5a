//! [`Ldr`]: a matrix of low displacement rank, `W = Σᵢ K(A, gᵢ) K(B, hᵢ)ᵀ`.

use super::fft::{from_cx, to_cx, zero, Cx, FftFloat};
use super::krylov::{OpPlan, Prepared, ShiftPlan, SubdiagVec, Ws, LEAF};
use super::operators::{BandGrad, LdrClass, OpKind};
use super::simd;
use crate::error::{check_apply_shapes_ok, check_cols, check_len, check_nonzero, check_shape};
use crate::error::{Error, Result};
use crate::linear_map::{dense_via_transpose, Differentiable, LinearMap};
use crate::monarch::{add_bias, bias_grad};
use crate::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::Rng;
use rayon::prelude::*;
use std::any::TypeId;

/// How to build an [`Ldr`]: the operator class, the rank `r` (`1 ≤ r ≤ max(in, out)`) and
/// whether the map has a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LdrConfig {
    pub class: LdrClass,
    pub rank: usize,
    pub bias: bool,
}

impl Default for LdrConfig {
    fn default() -> Self {
        Self {
            class: LdrClass::ToeplitzLike { corner: true },
            rank: 4,
            bias: true,
        }
    }
}

/// A matrix of low displacement rank (Thomas, Gu, Dao, Rudra, Ré, *Learning Compressed
/// Transforms with Low Displacement Rank*, NeurIPS 2018), parameterised by its generators
/// `G = [g₁ … g_r]`, `H = [h₁ … h_r]` and two Krylov operators `A`, `B`:
///
/// `W = Σᵢ K(A, gᵢ) K(B, hᵢ)ᵀ`, with `K(M, v) = [v, M v, …, M^{n−1} v]`,
///
/// (row-reversed, `J W`, for [`LdrClass::HankelLike`]); `A`, `B` come from the
/// [`LdrClass`]. For Toeplitz-like matrices (`A = Z_1`, `B = Z_{-1}`) this is exactly the set
/// of `W` with Sylvester displacement `Z_1 W − W Z_{-1}` of rank `≤ r`: it equals
/// `−2 Σᵢ gᵢ (Z_{-1}ᵀ hᵢ)ᵀ`. For learned operators it is the paper's parameterisation.
///
/// The matrix is `n × n` with `n = max(in, out)`; a rectangular map is its top-left
/// `out × in` block (inputs zero-padded, outputs truncated). `y = x Wᵀ + b`.
///
/// Parameters: `G` `(r, n)` row-major, `H` `(r, n)`, the entries of `A`, those of `B` (absent
/// when tied or fixed), then the bias. Operator layouts: a subdiagonal is `s_1..s_{n−1}`
/// (`M[t, t−1]`) then its corner `M[0, n−1]`; a tridiagonal is its subdiagonal
/// `M[t, t−1]` (`n−1`), diagonal (`n`), superdiagonal `M[t−1, t]` (`n−1`), then the corners
/// `M[0, n−1]`, `M[n−1, 0]`; a Vandermonde-like `A = diag(d)` is `d` (`n`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ldr<T: Scalar> {
    in_features: usize,
    out_features: usize,
    n: usize,
    rank: usize,
    class: LdrClass,
    has_bias: bool,
    params: Vec<T>,
}

fn check_sizes(in_features: usize, out_features: usize, rank: usize) -> Result<usize> {
    check_nonzero("in_features", in_features)?;
    check_nonzero("out_features", out_features)?;
    let n = in_features.max(out_features);
    if rank == 0 || rank > n {
        return Err(Error::InvalidArgument {
            what: "rank",
            message: format!("must be in 1..={n} (max(in, out)), got {rank}"),
        });
    }
    Ok(n)
}

impl<T: Scalar> Ldr<T> {
    /// Random generators, i.i.d. normal with variance `σ² = 1/(n √(3r))` (then a Toeplitz-like
    /// `W` has entry variance `1/(3n)`, that of PyTorch's default `Linear`), initial operators
    /// as [`LdrClass`] documents (learned subdiagonals start at `Z_0`, a Vandermonde diagonal
    /// uniform in `(−0.7, 0.7)`), and a zero bias if asked.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        config: LdrConfig,
        rng: &mut R,
    ) -> Result<Self> {
        let n = check_sizes(in_features, out_features, config.rank)?;
        let r = config.rank;
        let std = (1.0 / (n as f64 * (3.0 * r as f64).sqrt())).sqrt();
        let mut params: Vec<T> = (0..2 * r * n).map(|_| T::randn(rng, std)).collect();
        let (ka, kb, _, tied) = config.class.kinds();
        params.extend(ka.init::<T, R>(n, rng));
        if !tied {
            params.extend(kb.init::<T, R>(n, rng));
        }
        if config.bias {
            params.extend(std::iter::repeat_n(T::zero(), out_features));
        }
        Self::from_params(in_features, out_features, config, params)
    }

    /// From a full parameter buffer laid out as the type documents.
    pub fn from_params(
        in_features: usize,
        out_features: usize,
        config: LdrConfig,
        params: Vec<T>,
    ) -> Result<Self> {
        let n = check_sizes(in_features, out_features, config.rank)?;
        let mut m = Self {
            in_features,
            out_features,
            n,
            rank: config.rank,
            class: config.class,
            has_bias: config.bias,
            params: vec![],
        };
        check_len("params", params.len(), m.expected_len())?;
        m.params = params;
        Ok(m)
    }

    /// From generators `g`, `h` (each `(r, n)`, `n = max(in, out)`), the operator entries
    /// (`A`'s then `B`'s, as the type documents; empty for fixed operators) and an optional
    /// bias.
    pub fn from_generators(
        in_features: usize,
        out_features: usize,
        class: LdrClass,
        g: ArrayView2<T>,
        h: ArrayView2<T>,
        operators: &[T],
        bias: Option<&[T]>,
    ) -> Result<Self> {
        let r = g.nrows();
        let n = check_sizes(in_features, out_features, r)?;
        check_shape("g", g.dim(), (r, n))?;
        check_shape("h", h.dim(), (r, n))?;
        let config = LdrConfig {
            class,
            rank: r,
            bias: bias.is_some(),
        };
        let probe = Self {
            in_features,
            out_features,
            n,
            rank: r,
            class,
            has_bias: false,
            params: vec![],
        };
        check_len("operators", operators.len(), probe.operator_len())?;
        let mut params: Vec<T> = g.iter().chain(h.iter()).copied().collect();
        params.extend_from_slice(operators);
        if let Some(b) = bias {
            check_len("bias", b.len(), out_features)?;
            params.extend_from_slice(b);
        }
        Self::from_params(in_features, out_features, config, params)
    }

    /// The `m × k` Toeplitz matrix `T[i, j] = t_{i−j}` with first column `col = (t_0, …,
    /// t_{m−1})` and first row `row = (t_0, t_{−1}, …, t_{1−k})` (`row[0] == col[0]`), exactly,
    /// as a Toeplitz-like LDR matrix of rank 2 (rank 1 when `m = k = 1`).
    ///
    /// With `n = max(m, k)` and `t_d = 0` outside the given entries, `Z_1 T − T Z_{-1} =
    /// e_0 uᵀ + v e_{n−1}ᵀ` where `u_j = t_{n−1−j} − t_{−1−j}` (`j < n−1`), `u_{n−1} = t_0`,
    /// `v_0 = t_0`, `v_i = t_i + t_{i−n}`; matching `−2 Σᵢ gᵢ (Z_{-1}ᵀ hᵢ)ᵀ` gives
    /// `g₁ = e_0`, `h₁ = −Z_{-1} u / 2`, `g₂ = v`, `h₂ = e_0 / 2`, and the Sylvester operator is
    /// invertible (the spectra of `Z_1` and `Z_{-1}` are disjoint), so `W = T`.
    pub fn toeplitz(col: &[T], row: &[T]) -> Result<Self> {
        check_nonzero("col length", col.len())?;
        check_nonzero("row length", row.len())?;
        if row[0] != col[0] {
            return Err(Error::InvalidArgument {
                what: "row",
                message: format!(
                    "row[0] must equal col[0] = {} (the shared diagonal), got {}",
                    col[0], row[0]
                ),
            });
        }
        let (m, k) = (col.len(), row.len());
        let n = m.max(k);
        let class = LdrClass::ToeplitzLike { corner: true };
        if n == 1 {
            let g = Array2::from_elem((1, 1), col[0]);
            let h = Array2::from_elem((1, 1), T::one());
            return Self::from_generators(k, m, class, g.view(), h.view(), &[], None);
        }
        let t = |d: isize| -> T {
            if d >= 0 {
                col.get(d as usize).copied().unwrap_or(T::zero())
            } else {
                row.get((-d) as usize).copied().unwrap_or(T::zero())
            }
        };
        let ni = n as isize;
        let half = T::from_f64(0.5);
        let u: Vec<T> = (0..ni)
            .map(|j| {
                if j < ni - 1 {
                    t(ni - 1 - j) - t(-1 - j)
                } else {
                    t(0)
                }
            })
            .collect();
        let mut g = Array2::zeros((2, n));
        let mut h = Array2::zeros((2, n));
        g[(0, 0)] = T::one();
        // h₁ = −Z_{-1} u / 2: (Z_{-1} u)_0 = −u_{n−1}, (Z_{-1} u)_i = u_{i−1}.
        h[(0, 0)] = u[n - 1] * half;
        for i in 1..n {
            h[(0, i)] = -u[i - 1] * half;
        }
        g[(1, 0)] = t(0);
        for i in 1..ni {
            g[(1, i as usize)] = t(i) + t(i - ni);
        }
        h[(1, 0)] = half;
        Self::from_generators(k, m, class, g.view(), h.view(), &[], None)
    }

    /// The LDR matrix whose displacement is the best rank-`rank` approximation of that of
    /// `dense` (shape `(out, in)`): with `∇(W) = Z_1 W − W Z_{-1}`, invertible since the
    /// spectra of `Z_1` and `Z_{-1}` are disjoint, and the truncated SVD
    /// `∇(dense) ≈ Σᵢ σᵢ uᵢ vᵢᴴ`, the generators are `gᵢ = √(σᵢ/2) uᵢ`,
    /// `hᵢ = −√(σᵢ/2) Z_{-1} v̄ᵢ`, so `W = ∇⁻¹(Σᵢ σᵢ uᵢ vᵢᴴ)` (Eckart–Young applied to the
    /// displacement; Thomas et al., NeurIPS 2018, §2). Returns the map and the Frobenius error
    /// `‖dense − W‖_F`.
    ///
    /// Exact whenever `∇(dense)` has rank `≤ rank` (a square Toeplitz matrix: rank 2). It
    /// minimises the displacement's error, not `‖dense − W‖_F`, so it is a starting point for
    /// fitting rather than an optimal projection. A rectangular `dense` is zero-padded to
    /// `n × n`, `n = max(out, in)` (for Hankel-like, placed in the rows `J` maps it to).
    ///
    /// `class` must have the operators `Z_1`, `Z_{-1}` or be able to hold them:
    /// `ToeplitzLike { corner: true }`, `HankelLike { corner: true }`,
    /// `Subdiagonal { corner: true, tied: false }` and `Tridiagonal { corners: true,
    /// tied: false }` (their operators are set to `Z_1` and `Z_{-1}`). No bias.
    pub fn from_displacement(
        dense: ArrayView2<T>,
        class: LdrClass,
        rank: usize,
    ) -> Result<(Self, f64)> {
        let (out, inp) = dense.dim();
        let n = check_sizes(inp, out, rank)?;
        let (op_a, op_b): (Vec<T>, Vec<T>) = {
            let (o, z) = (T::one(), T::zero());
            let sub = |corner: T| {
                let mut p = vec![o; n - 1];
                p.push(corner);
                p
            };
            let tri = |corner: T| {
                let mut p = vec![o; n - 1];
                p.extend(std::iter::repeat_n(z, 2 * n - 1));
                p.extend([corner, z]);
                p
            };
            match class {
                LdrClass::ToeplitzLike { corner: true } | LdrClass::HankelLike { corner: true } => {
                    (vec![], vec![])
                }
                LdrClass::Subdiagonal {
                    corner: true,
                    tied: false,
                } => (sub(o), sub(-o)),
                LdrClass::Tridiagonal {
                    corners: true,
                    tied: false,
                } => (tri(o), tri(-o)),
                _ => {
                    return Err(Error::InvalidArgument {
                        what: "class",
                        message: format!(
                            "expected a class whose operators can be Z_1 and Z_-1 \
                             (ToeplitzLike or HankelLike with corner, Subdiagonal with corner \
                             untied, Tridiagonal with corners untied), got {class:?}"
                        ),
                    })
                }
            }
        };
        let hankel = matches!(class, LdrClass::HankelLike { .. });
        // The n × n Toeplitz-like target: `dense` zero-padded (rows reversed for Hankel-like).
        let mut t = Array2::<T>::zeros((n, n));
        for ((i, j), &v) in dense.indexed_iter() {
            t[(if hankel { n - 1 - i } else { i }, j)] = v;
        }
        let disp = Array2::from_shape_fn((n, n), |(i, j)| {
            let up = t[((i + n - 1) % n, j)];
            let right = if j + 1 < n { t[(i, j + 1)] } else { -t[(i, 0)] };
            up - right
        });
        let (u, sigma, v) = T::thin_svd(crate::dense::faer_ref(disp.view()))?;
        let mut g = Array2::<T>::zeros((rank, n));
        let mut h = Array2::<T>::zeros((rank, n));
        for k in 0..rank {
            let s = (sigma[k].to_c64().re / 2.0).sqrt();
            for i in 0..n {
                g[(k, i)] = u[(i, k)] * T::from_f64(s);
            }
            // h = −s Z_{-1} v̄: (Z_{-1} w)_0 = −w_{n−1}, (Z_{-1} w)_i = w_{i−1}.
            h[(k, 0)] = v[(n - 1, k)].conj() * T::from_f64(s);
            for i in 1..n {
                h[(k, i)] = -v[(i - 1, k)].conj() * T::from_f64(s);
            }
        }
        let mut ops = op_a;
        ops.extend(op_b);
        let m = Self::from_generators(inp, out, class, g.view(), h.view(), &ops, None)?;
        let w = m.to_dense();
        let err = w
            .iter()
            .zip(dense.iter())
            .map(|(&a, &b)| (a - b).modulus_sqr().to_c64().re)
            .sum::<f64>()
            .sqrt();
        Ok((m, err))
    }

    fn operator_len(&self) -> usize {
        let (ka, kb, _, tied) = self.class.kinds();
        ka.num_params(self.n) + if tied { 0 } else { kb.num_params(self.n) }
    }
    fn expected_len(&self) -> usize {
        2 * self.rank * self.n
            + self.operator_len()
            + if self.has_bias { self.out_features } else { 0 }
    }

    /// The operator class.
    pub fn class(&self) -> LdrClass {
        self.class
    }
    /// The displacement rank bound `r` (number of generator pairs).
    pub fn rank(&self) -> usize {
        self.rank
    }
    /// The size `n = max(in, out)` of the square matrix and its operators.
    pub fn n(&self) -> usize {
        self.n
    }
    /// `G`, shape `(r, n)` (row `i` is `gᵢ`).
    pub fn g(&self) -> ArrayView2<'_, T> {
        let k = self.rank * self.n;
        ArrayView2::from_shape((self.rank, self.n), &self.params[..k]).expect("layout")
    }
    /// `H`, shape `(r, n)`.
    pub fn h(&self) -> ArrayView2<'_, T> {
        let k = self.rank * self.n;
        ArrayView2::from_shape((self.rank, self.n), &self.params[k..2 * k]).expect("layout")
    }
    /// The learned operator entries (`A`'s, then `B`'s unless tied or fixed).
    pub fn operator_params(&self) -> &[T] {
        let a = 2 * self.rank * self.n;
        &self.params[a..a + self.operator_len()]
    }
    /// The bias, if any.
    pub fn bias(&self) -> Option<&[T]> {
        let a = 2 * self.rank * self.n + self.operator_len();
        self.has_bias.then(|| &self.params[a..])
    }

    /// The Krylov operators `(A, B)` as dense `n × n` matrices.
    pub fn krylov_operators(&self) -> (Array2<T>, Array2<T>) {
        let (ka, kb, _, tied) = self.class.kinds();
        let ops: Vec<Cx<f64>> = self.operator_params().iter().map(|&p| to_cx(p)).collect();
        let pa = ka.num_params(self.n);
        let (a, b) = if tied {
            (&ops[..pa], &ops[..pa])
        } else {
            (&ops[..pa], &ops[pa..])
        };
        let dense = |kind: OpKind, p: &[Cx<f64>]| {
            let band = kind.band(self.n, p);
            let mut m = Array2::zeros((self.n, self.n));
            let mut e = vec![zero::<f64>(); self.n];
            let mut col = vec![zero::<f64>(); self.n];
            for j in 0..self.n {
                e.fill(zero());
                e[j] = Cx::new(1.0, 0.0);
                band.apply_axpy(&e, zero(), &e, &mut col);
                for i in 0..self.n {
                    m[(i, j)] = from_cx::<T, f64>(col[i]);
                }
            }
            m
        };
        (dense(ka, a), dense(kb, b))
    }

    /// Whether `T`'s real type is `f32` (FFTs then run in single precision).
    fn single() -> bool {
        TypeId::of::<T::Real>() == TypeId::of::<f32>()
    }

    /// The per-call plans and prepared generators in float type `F`: the fast algorithms, or
    /// Horner's rule for every operator when `!fast`.
    fn context<F: FftFloat>(&self, fast: bool) -> Ctx<F> {
        let n = self.n;
        let (ka, kb, flip, tied) = self.class.kinds();
        let ops: Vec<Cx<F>> = self.operator_params().iter().map(|&p| to_cx(p)).collect();
        let pa = ka.num_params(n);
        let pb = if tied { &ops[..pa] } else { &ops[pa..] };
        let leaf = fast.then_some(LEAF);
        let a = OpPlan::new(ka, n, &ops[..pa], leaf);
        let b = OpPlan::new(kb, n, pb, leaf);
        let mut ws = Ws::default();
        let cvt =
            |row: ndarray::ArrayView1<T>| -> Vec<Cx<F>> { row.iter().map(|&v| to_cx(v)).collect() };
        let g = self.g();
        let h = self.h();
        let ga = (0..self.rank)
            .map(|i| a.prepare(&cvt(g.row(i)), &mut ws))
            .collect();
        let hb = (0..self.rank)
            .map(|i| b.prepare(&cvt(h.row(i)), &mut ws))
            .collect();
        Ctx {
            n,
            rank: self.rank,
            kinds: (ka, kb),
            tied,
            flip,
            conj_pairs: !T::IS_COMPLEX,
            a,
            b,
            ga,
            hb,
        }
    }

    /// `y = x Wᵀ` (or `x = y W` when `transpose`) without the bias; `conj` conjugates the
    /// input and the output (giving the adjoint from the transpose).
    fn linear<F: FftFloat>(
        &self,
        x: ArrayView2<T>,
        mut y: ArrayViewMut2<T>,
        transpose: bool,
        conj: bool,
        fast: bool,
    ) {
        let ctx = self.context::<F>(fast);
        let n = self.n;
        let (rows, inp) = pack::<T, F>(x, n, conj);
        let mut out = vec![zero::<F>(); rows * n];
        let chunk = chunk_rows(rows);
        out.par_chunks_mut(chunk * n)
            .zip(inp.par_chunks(chunk * n))
            .for_each_init(CallWs::new, |ws, (o, i)| {
                ctx.apply_chunk(i, o, transpose, ws)
            });
        unpack::<T, F>(&out, n, &mut y, conj);
    }

    fn backward_f<F: FftFloat>(
        &self,
        x: ArrayView2<T>,
        dy: ArrayView2<T>,
        grads: &mut [T],
    ) -> Array2<T> {
        let ctx = self.context::<F>(true);
        let n = self.n;
        let (rows, xp) = pack::<T, F>(x, n, false);
        // With u = conj(dy) every gradient is the conjugate of a holomorphic derivative.
        let (_, mut up) = pack::<T, F>(dy, n, T::IS_COMPLEX);
        if ctx.flip {
            for row in up.chunks_mut(n) {
                row.reverse();
            }
        }
        let mut dxp = vec![zero::<F>(); rows * n];
        let chunk = chunk_rows(rows);
        let acc = dxp
            .par_chunks_mut(chunk * n)
            .zip(xp.par_chunks(chunk * n))
            .zip(up.par_chunks(chunk * n))
            .fold(
                || (GradAcc::new(ctx.rank, n), Ws::default()),
                |(mut acc, mut ws), ((dxc, xc), uc)| {
                    ctx.backward_chunk(xc, uc, dxc, &mut acc, &mut ws);
                    (acc, ws)
                },
            )
            .map(|(a, _)| a)
            .reduce(|| GradAcc::new(ctx.rank, n), GradAcc::merged);
        // Back to the crate's convention: real parts (real T, paired rows) or conjugates.
        let fin = |z: Cx<F>| -> T {
            if T::IS_COMPLEX {
                from_cx(z.conj())
            } else {
                from_cx(Cx::new(z.re, F::zero()))
            }
        };
        let rn = self.rank * n;
        for (gr, &a) in grads[..rn].iter_mut().zip(&acc.g) {
            *gr += fin(a);
        }
        for (gr, &a) in grads[rn..2 * rn].iter_mut().zip(&acc.h) {
            *gr += fin(a);
        }
        let (ka, kb) = ctx.kinds;
        let pa = ka.num_params(n);
        let mut ops = vec![zero::<F>(); self.operator_len()];
        ka.scatter_grad(n, &acc.opa, &mut ops[..pa]);
        if ctx.tied {
            kb.scatter_grad(n, &acc.opb, &mut ops[..pa]);
        } else {
            kb.scatter_grad(n, &acc.opb, &mut ops[pa..]);
        }
        for (gr, &a) in grads[2 * rn..2 * rn + ops.len()].iter_mut().zip(&ops) {
            *gr += fin(a);
        }
        let mut dx = Array2::zeros((x.nrows(), self.in_features));
        unpack::<T, F>(&dxp, n, &mut dx.view_mut(), T::IS_COMPLEX);
        dx
    }
}

/// Packed rows per parallel job.
fn chunk_rows(rows: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    rows.div_ceil(2 * threads).clamp(1, 16)
}

/// The rows of `x` as complex rows of width `n` (zero-padded), conjugated if asked. Real
/// scalars are packed two rows per complex row (`x_{2j} + i x_{2j+1}`): every multiply here
/// is complex-linear with real coefficients, so the halves stay apart.
fn pack<T: Scalar, F: FftFloat>(x: ArrayView2<T>, n: usize, conj: bool) -> (usize, Vec<Cx<F>>) {
    let (batch, w) = x.dim();
    if T::IS_COMPLEX {
        let mut buf = vec![zero::<F>(); batch * n];
        for (b, row) in x.rows().into_iter().enumerate() {
            for (d, &v) in buf[b * n..b * n + w].iter_mut().zip(row.iter()) {
                let z: Cx<F> = to_cx(v);
                *d = if conj { z.conj() } else { z };
            }
        }
        (batch, buf)
    } else {
        let rows = batch.div_ceil(2);
        let mut buf = vec![zero::<F>(); rows * n];
        for (b, row) in x.rows().into_iter().enumerate() {
            let dst = &mut buf[(b / 2) * n..(b / 2) * n + w];
            for (d, &v) in dst.iter_mut().zip(row.iter()) {
                let r = F::of(v.to_c64().re);
                if b % 2 == 0 {
                    d.re = r;
                } else {
                    d.im = r;
                }
            }
        }
        (rows, buf)
    }
}

/// The inverse of [`pack`], truncating each row to `y`'s width.
fn unpack<T: Scalar, F: FftFloat>(buf: &[Cx<F>], n: usize, y: &mut ArrayViewMut2<T>, conj: bool) {
    let w = y.ncols();
    for (b, mut row) in y.rows_mut().into_iter().enumerate() {
        if T::IS_COMPLEX {
            for (d, &z) in row.iter_mut().zip(&buf[b * n..b * n + w]) {
                *d = from_cx(if conj { z.conj() } else { z });
            }
        } else {
            let src = &buf[(b / 2) * n..(b / 2) * n + w];
            for (d, z) in row.iter_mut().zip(src) {
                let v = if b % 2 == 0 { z.re } else { z.im };
                *d = from_cx(Cx::new(v, F::zero()));
            }
        }
    }
}

/// Gradient accumulators (holomorphic derivatives, before the final conjugation).
struct GradAcc<F: FftFloat> {
    g: Vec<Cx<F>>,
    h: Vec<Cx<F>>,
    opa: BandGrad<F>,
    opb: BandGrad<F>,
}

impl<F: FftFloat> GradAcc<F> {
    fn new(rank: usize, n: usize) -> Self {
        Self {
            g: vec![zero(); rank * n],
            h: vec![zero(); rank * n],
            opa: BandGrad::new(n),
            opb: BandGrad::new(n),
        }
    }
    fn merged(mut self, o: Self) -> Self {
        for (a, b) in self.g.iter_mut().zip(&o.g) {
            *a += *b;
        }
        for (a, b) in self.h.iter_mut().zip(&o.h) {
            *a += *b;
        }
        self.opa.add_assign(&o.opa);
        self.opb.add_assign(&o.opb);
        self
    }
}

/// One call's operators and prepared generators.
struct Ctx<F: FftFloat> {
    n: usize,
    rank: usize,
    kinds: (OpKind, OpKind),
    tied: bool,
    flip: bool,
    /// Real scalars: rows are packed pairs, and gradients pair `u` with `c̄`.
    conj_pairs: bool,
    a: OpPlan<F>,
    b: OpPlan<F>,
    ga: Vec<Prepared<F>>,
    hb: Vec<Prepared<F>>,
}

/// The spectra of generators prepared for a shift.
fn spectra<F: FftFloat>(p: &[Prepared<F>]) -> Vec<&[Cx<F>]> {
    p.iter()
        .map(|v| match v {
            Prepared::Spectrum(s) => &s[..],
            _ => unreachable!("shift operators prepare spectra"),
        })
        .collect()
}

/// The vectors of generators prepared for a subdiagonal operator.
fn subdiag_vecs<F: FftFloat>(p: &[Prepared<F>]) -> Vec<&SubdiagVec<F>> {
    p.iter()
        .map(|v| match v {
            Prepared::Subdiag(s) => s,
            _ => unreachable!("subdiagonal operators prepare subdiagonal vectors"),
        })
        .collect()
}

/// `out = Σᵢ K(Z_p, uᵢ) J K(Z_q, wᵢ) J x` for every row `x` of `inp` (`K(Z_q, w)ᵀ = J K(Z_q, w) J`),
/// with the spectra `S_p uᵢ`, `S_q wᵢ`: one transform of the input, two per rank, and one
/// inverse of the rank-summed spectrum, batched over the rows.
fn fused_shift<F: FftFloat>(
    p: &ShiftPlan<F>,
    pu: &[&[Cx<F>]],
    q: &ShiftPlan<F>,
    qw: &[&[Cx<F>]],
    inp: &[Cx<F>],
    out: &mut [Cx<F>],
    ws: &mut FusedWs<F>,
) {
    let n = p.n;
    let rows = inp.len() / n;
    let (lp, lq) = (p.len(), q.len());
    ws.resize(rows, lp, lq, n);
    // From q's inverse transform to p's input: J, the twists and 1/lq in one factor.
    for (j, c) in ws.comb.iter_mut().enumerate() {
        *c = q.back[n - 1 - j] * p.twist[j];
    }
    for (x, b) in inp.chunks(n).zip(ws.xq.chunks_mut(lq)) {
        q.load(x, true, b);
    }
    q.plan.forward(&mut ws.xq, &mut ws.scratch);
    ws.acc.fill(zero());
    for (su, sw) in pu.iter().zip(qw) {
        for (t, x) in ws.tq.chunks_mut(lq).zip(ws.xq.chunks(lq)) {
            simd::mul(t, x, sw);
        }
        q.plan.inverse(&mut ws.tq, &mut ws.scratch);
        for (t, b) in ws.tq.chunks(lq).zip(ws.bp.chunks_mut(lp)) {
            simd::mul_rev(&mut b[..n], &t[..n], &ws.comb);
            b[n..].fill(zero());
        }
        p.plan.forward(&mut ws.bp, &mut ws.scratch);
        for (a, b) in ws.acc.chunks_mut(lp).zip(ws.bp.chunks(lp)) {
            simd::mul_acc(a, b, su);
        }
    }
    p.plan.inverse(&mut ws.acc, &mut ws.scratch);
    for (a, o) in ws.acc.chunks(lp).zip(out.chunks_mut(n)) {
        simd::mul_acc(o, &a[..n], &p.back);
    }
}

/// Buffers of [`fused_shift`].
struct FusedWs<F: FftFloat> {
    xq: Vec<Cx<F>>,
    tq: Vec<Cx<F>>,
    bp: Vec<Cx<F>>,
    acc: Vec<Cx<F>>,
    comb: Vec<Cx<F>>,
    scratch: Vec<Cx<F>>,
}

impl<F: FftFloat> FusedWs<F> {
    fn new() -> Self {
        Self {
            xq: vec![],
            tq: vec![],
            bp: vec![],
            acc: vec![],
            comb: vec![],
            scratch: vec![],
        }
    }
    fn resize(&mut self, rows: usize, lp: usize, lq: usize, n: usize) {
        self.xq.resize(rows * lq, zero());
        self.tq.resize(rows * lq, zero());
        self.bp.resize(rows * lp, zero());
        self.acc.resize(rows * lp, zero());
        self.comb.resize(n, zero());
    }
}

/// Per-thread buffers of a call.
struct CallWs<F: FftFloat> {
    krylov: Ws<F>,
    fused: FusedWs<F>,
}

impl<F: FftFloat> CallWs<F> {
    fn new() -> Self {
        Self {
            krylov: Ws::default(),
            fused: FusedWs::new(),
        }
    }
}

impl<F: FftFloat> Ctx<F> {
    /// `out = W x` (or `Wᵀ x`) for each row `x` of `inp`.
    fn apply_chunk(&self, inp: &[Cx<F>], out: &mut [Cx<F>], transpose: bool, ws: &mut CallWs<F>) {
        let n = self.n;
        let reversed: Vec<Cx<F>>;
        let inp = if self.flip && transpose {
            let mut r = inp.to_vec();
            r.chunks_mut(n).for_each(|row| row.reverse());
            reversed = r;
            &reversed[..]
        } else {
            inp
        };
        if let (OpPlan::Shift(sa), OpPlan::Shift(sb)) = (&self.a, &self.b) {
            let (ga, hb) = (spectra(&self.ga), spectra(&self.hb));
            if transpose {
                fused_shift(sb, &hb, sa, &ga, inp, out, &mut ws.fused);
            } else {
                fused_shift(sa, &ga, sb, &hb, inp, out, &mut ws.fused);
            }
        } else if let (OpPlan::Subdiag(sa), OpPlan::Subdiag(sb)) = (&self.a, &self.b) {
            // All ranks at once: out = Σᵢ K(P, pᵢ) K(Q, qᵢ)ᵀ x.
            let (ga, hb) = (subdiag_vecs(&self.ga), subdiag_vecs(&self.hb));
            let (p, pv, q, qv) = if transpose {
                (sb, hb, sa, ga)
            } else {
                (sa, ga, sb, hb)
            };
            let ws = &mut ws.krylov;
            let mut t = vec![zero::<F>(); self.rank * n];
            for (x, y) in inp.chunks(n).zip(out.chunks_mut(n)) {
                t.fill(zero());
                q.tr_multi(&qv, x, &mut t, ws);
                p.fwd_multi(&pv, &t, y, ws);
            }
        } else {
            let ws = &mut ws.krylov;
            let mut t = vec![zero::<F>(); n];
            for (x, y) in inp.chunks(n).zip(out.chunks_mut(n)) {
                for i in 0..self.rank {
                    t.fill(zero());
                    if transpose {
                        self.a.tr(&self.ga[i], x, &mut t, ws);
                        self.b.fwd(&self.hb[i], &t, y, ws);
                    } else {
                        self.b.tr(&self.hb[i], x, &mut t, ws);
                        self.a.fwd(&self.ga[i], &t, y, ws);
                    }
                }
            }
        }
        if self.flip && !transpose {
            out.chunks_mut(n).for_each(|row| row.reverse());
        }
    }

    /// Rows `xc` (inputs) and `uc` (output cotangents, already `J`-reversed for Hankel-like):
    /// `dxc += Wᵀ u`, and the holomorphic derivatives of `Σ uᵀ W x` with respect to the
    /// generators and operators into `acc`. For real scalars the rows are packed pairs
    /// `a + ib`, and `Re Φ(u, ·, c̄)` is the sum of the pair's derivatives.
    fn backward_chunk(
        &self,
        xc: &[Cx<F>],
        uc: &[Cx<F>],
        dxc: &mut [Cx<F>],
        acc: &mut GradAcc<F>,
        ws: &mut Ws<F>,
    ) {
        let n = self.n;
        let rows = xc.len() / n;
        let mut t = vec![zero::<F>(); rows * n];
        let mut dt = vec![zero::<F>(); rows * n];
        let us: Vec<&[Cx<F>]> = uc.chunks(n).collect();
        let xs: Vec<&[Cx<F>]> = xc.chunks(n).collect();
        for i in 0..self.rank {
            t.fill(zero());
            dt.fill(zero());
            for r in 0..rows {
                let row = r * n..(r + 1) * n;
                self.b.tr(&self.hb[i], xs[r], &mut t[row.clone()], ws);
                self.a.tr(&self.ga[i], us[r], &mut dt[row.clone()], ws);
                self.b.fwd(&self.hb[i], &dt[row.clone()], &mut dxc[row], ws);
            }
            if self.conj_pairs {
                for z in t.iter_mut().chain(dt.iter_mut()) {
                    *z = z.conj();
                }
            }
            let ts: Vec<&[Cx<F>]> = t.chunks(n).collect();
            let dts: Vec<&[Cx<F>]> = dt.chunks(n).collect();
            let gi = i * n..(i + 1) * n;
            self.a.grad(
                &self.ga[i],
                &us,
                &ts,
                &mut acc.g[gi.clone()],
                &mut acc.opa,
                ws,
            );
            self.b
                .grad(&self.hb[i], &xs, &dts, &mut acc.h[gi], &mut acc.opb, ws);
        }
    }

    /// Estimated real flops of one complex row.
    fn flops_per_complex_row(&self) -> usize {
        let fft = |len: usize| 5 * len * (usize::BITS - len.leading_zeros()) as usize;
        let r = self.rank;
        let cost = |op: &OpPlan<F>| -> usize {
            match op {
                OpPlan::Shift(s) => 2 * fft(s.len()) + 8 * s.len(),
                OpPlan::Subdiag(s) => s.flops(),
                OpPlan::Band(b) => {
                    let w = b.sub.is_some() as usize
                        + b.diag.is_some() as usize
                        + b.sup.is_some() as usize;
                    8 * (w + 1) * b.n * b.n
                }
            }
        };
        match (&self.a, &self.b) {
            (OpPlan::Shift(p), OpPlan::Shift(q)) => {
                (r + 1) * (fft(p.len()) + fft(q.len())) + 8 * r * (p.len() + q.len())
            }
            (a, b) => r * (cost(a) + cost(b)),
        }
    }
}

impl<T: Scalar> Ldr<T> {
    fn linear_map_into(&self, x: ArrayView2<T>, y: ArrayViewMut2<T>, transpose: bool, conj: bool) {
        if Self::single() {
            self.linear::<f32>(x, y, transpose, conj, true)
        } else {
            self.linear::<f64>(x, y, transpose, conj, true)
        }
    }

    /// `y = x Wᵀ + b` with every Krylov product `K(M, v) c` evaluated by Horner's rule,
    /// `c₀ v + M(c₁ v + M(…))`: `O(r n²)` per row for any operator class. This is the
    /// quadratic baseline that the FFT (`O(r n log n)`, shifts) and divide-and-conquer
    /// (`O(r n log² n)`, subdiagonals) multiplies of [`apply`](LinearMap::apply) replace
    /// (Thomas et al., NeurIPS 2018, §3.2); the same matrix, for checking and benchmarking.
    pub fn apply_horner(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features)?;
        let mut y = Array2::zeros((x.nrows(), self.out_features));
        if Self::single() {
            self.linear::<f32>(x, y.view_mut(), false, false, false)
        } else {
            self.linear::<f64>(x, y.view_mut(), false, false, false)
        }
        add_bias(&mut y.view_mut(), self.bias());
        Ok(y)
    }
}

impl<T: Scalar> LinearMap<T> for Ldr<T> {
    fn in_features(&self) -> usize {
        self.in_features
    }
    fn out_features(&self) -> usize {
        self.out_features
    }
    fn apply_into(&self, x: ArrayView2<T>, mut y: ArrayViewMut2<T>) -> Result<()> {
        check_apply_shapes_ok(self.in_features, self.out_features, &x, &y)?;
        self.linear_map_into(x, y.view_mut(), false, false);
        add_bias(&mut y, self.bias());
        Ok(())
    }
    fn apply_transpose(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.in_features));
        self.linear_map_into(y, x.view_mut(), true, false);
        Ok(x)
    }
    fn apply_adjoint(&self, y: ArrayView2<T>) -> Result<Array2<T>> {
        check_cols("y", y.dim(), self.out_features)?;
        let mut x = Array2::zeros((y.nrows(), self.in_features));
        self.linear_map_into(y, x.view_mut(), true, T::IS_COMPLEX);
        Ok(x)
    }
    fn to_dense(&self) -> Array2<T> {
        dense_via_transpose(self).expect("identity of the output width")
    }
    fn num_params(&self) -> usize {
        self.params.len()
    }
    /// An estimate from the algorithm used: FFT lengths `L` cost `5 L log₂ L`; real rows are
    /// multiplied two at a time.
    fn flops_per_row(&self) -> usize {
        let c = if Self::single() {
            self.context::<f32>(true).flops_per_complex_row()
        } else {
            self.context::<f64>(true).flops_per_complex_row()
        };
        let c = if T::IS_COMPLEX { c } else { c / 2 };
        c + if self.has_bias { self.out_features } else { 0 }
    }
}

impl<T: Scalar> Differentiable<T> for Ldr<T> {
    fn backward(&self, x: ArrayView2<T>, dy: ArrayView2<T>, grads: &mut [T]) -> Result<Array2<T>> {
        check_cols("x", x.dim(), self.in_features)?;
        check_shape("dy", dy.dim(), (x.nrows(), self.out_features))?;
        check_len("grads", grads.len(), self.params.len())?;
        let dx = if Self::single() {
            self.backward_f::<f32>(x, dy, grads)
        } else {
            self.backward_f::<f64>(x, dy, grads)
        };
        if self.has_bias {
            let nb = self.out_features;
            let k = grads.len() - nb;
            bias_grad(dy, &mut grads[k..]);
        }
        Ok(dx)
    }
    fn params(&self) -> &[T] {
        &self.params
    }
    fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
}
