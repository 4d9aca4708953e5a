//! The butterfly family: [`Butterfly`] (and the Kaleidoscope hierarchy `(BB*)^k` through
//! `nblocks`), [`Permutation`], [`Diagonal`].

mod benes;
mod butterfly_matrix;
mod chain;
mod combine;
mod diagonal;
mod init;
pub(crate) mod kernel;
mod kronecker;
mod permutation;
mod projection;
mod real_part_projection;
pub mod special;
mod unitary;

pub use butterfly_matrix::{Butterfly, ButterflyConfig};
pub use chain::{BoxedMap, Chain, RealPart};
pub use diagonal::Diagonal;
pub use init::Init;
pub use kronecker::Kronecker;
pub use permutation::Permutation;
pub use unitary::ButterflyUnitary;
