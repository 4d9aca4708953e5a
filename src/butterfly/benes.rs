//! Every permutation as an exact butterfly product (Dao et al., *Kaleidoscope*, ICLR 2020,
//! appendix): the Beneš network (Beneš, 1964), routed by the looping algorithm (Opferman and
//! Tsao-Wu, 1971).

use super::init::fill_identity;
use super::{Butterfly, Permutation};
use crate::error::Result;
use crate::scalar::Scalar;

/// The crossing switch `[[0, 1], [1, 0]]` as a twiddle block `[t00, t01, t10, t11]`.
fn swap_block<T: Scalar>() -> [T; 4] {
    [T::zero(), T::one(), T::one(), T::zero()]
}

/// Which 2×2 switches of a size-`n` Beneš network cross, in the twiddle layout of a butterfly
/// with `nblocks = 2`, `increasing_stride = false`: index `(block·log2 n + level)·n/2 + pair`.
struct Switches {
    n: usize,
    log_n: usize,
    cross: Vec<bool>,
}

impl Switches {
    fn set(&mut self, block: usize, level: usize, pair: usize) {
        self.cross[(block * self.log_n + level) * self.n / 2 + pair] = true;
    }

    /// Route the gather permutation `perm` (`out[i] = in[perm[i]]`) of the sub-network of size
    /// `perm.len()` that occupies coordinates `offset ..` at recursion depth `depth`.
    ///
    /// Its input switches pair `(j, j + h)` (stride `h = len/2`, level `depth` of the
    /// decreasing block) and send one signal to each half; its output switches (level
    /// `log2 len − 1` of the increasing block) collect them. The two signals that share an
    /// input switch, and the two that share an output switch, must use different halves: the
    /// union of these two matchings is a set of even cycles, 2-coloured by walking them.
    fn route(&mut self, perm: &[usize], offset: usize, depth: usize) {
        let k = perm.len();
        if k == 1 {
            return;
        }
        let h = k / 2;
        let mut inv = vec![0; k];
        for (d, &s) in perm.iter().enumerate() {
            inv[s] = d;
        }
        // Colour of each source coordinate: 1 = upper half, 2 = lower half.
        let mut colour = vec![0u8; k];
        for start in 0..k {
            if colour[start] != 0 {
                continue;
            }
            let mut s = start;
            loop {
                colour[s] = 1;
                let t = s ^ h;
                colour[t] = 2;
                let u = perm[inv[t] ^ h];
                if colour[u] != 0 {
                    debug_assert!(u == start && colour[u] == 1);
                    break;
                }
                s = u;
            }
        }
        let pair0 = offset / 2;
        for (j, &c) in colour[..h].iter().enumerate() {
            if c == 2 {
                self.set(0, depth, pair0 + j);
            }
        }
        let mut upper = vec![0; h];
        let mut lower = vec![0; h];
        for i in 0..h {
            let (s0, s1) = (perm[i], perm[i + h]);
            let (u, l) = if colour[s0] == 1 {
                (s0, s1)
            } else {
                self.set(1, h.trailing_zeros() as usize, pair0 + i);
                (s1, s0)
            };
            upper[i] = u % h;
            lower[i] = l % h;
        }
        self.route(&upper, offset, depth + 1);
        self.route(&lower, offset + h, depth + 1);
    }
}

impl Permutation {
    /// This permutation as an exact butterfly `P = B₂ B₁` with `B₁` of decreasing stride
    /// (`n/2, …, 1`) and `B₂` of increasing stride (`1, …, n/2`): a Beneš network, every 2×2
    /// block `[[1, 0], [0, 1]]` or `[[0, 1], [1, 0]]` (Kaleidoscope, ICLR 2020: every permutation
    /// is in `BB*`).
    ///
    /// The butterfly has `nblocks = 2`, `increasing_stride = false`, no bias and no fixed
    /// permutations; `B₁`'s stride-1 level is always the identity, so `2 log2 n − 1` levels
    /// switch. A length that is not a power of two is padded to `n = 2^⌈log2 len⌉` with fixed
    /// points; the map is `len → len` and equals `y[i] = x[perm[i]]` exactly.
    pub fn to_butterfly<T: Scalar>(&self) -> Result<Butterfly<T>> {
        let len = self.len();
        let n = len.next_power_of_two();
        let log_n = n.trailing_zeros() as usize;
        let mut perm = self.as_slice().to_vec();
        perm.extend(len..n);
        let mut sw = Switches {
            n,
            log_n,
            cross: vec![false; 2 * log_n * n / 2],
        };
        sw.route(&perm, 0, 0);
        let mut tw = vec![T::zero(); sw.cross.len() * 4];
        fill_identity(&mut tw);
        for (block, &c) in tw.chunks_exact_mut(4).zip(&sw.cross) {
            if c {
                block.copy_from_slice(&swap_block::<T>());
            }
        }
        Butterfly::from_twiddle(len, len, 2, false, tw, None)
    }
}
