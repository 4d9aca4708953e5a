//! The butterfly family: [`Butterfly`] (and the Kaleidoscope hierarchy `(BB*)^k` through
//! `nblocks`), [`Permutation`], [`Diagonal`].

mod butterfly_matrix;
mod diagonal;
mod init;
pub(crate) mod kernel;
mod permutation;

pub use butterfly_matrix::{Butterfly, ButterflyConfig};
pub use diagonal::Diagonal;
pub use init::Init;
pub use permutation::Permutation;
