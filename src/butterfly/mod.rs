//! The butterfly family: [`Butterfly`] (and the Kaleidoscope hierarchy `(BB*)^k` through
//! `nblocks`), [`Permutation`], [`Diagonal`].

mod butterfly_matrix;
mod chain;
mod diagonal;
mod init;
pub(crate) mod kernel;
mod permutation;
pub mod special;

pub use butterfly_matrix::{Butterfly, ButterflyConfig};
pub use chain::{BoxedMap, Chain, RealPart};
pub use diagonal::Diagonal;
pub use init::Init;
pub use permutation::Permutation;
