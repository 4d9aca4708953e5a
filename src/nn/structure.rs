//! [`Structure`]: which structured matrix a [`Linear`](super::Linear) layer holds, and its
//! command-line spelling (`dense`, `monarch:4`, `lowrank:16`, …).

use crate::error::{Error, Result};
use crate::ldr::LdrClass;
use std::fmt;
use std::str::FromStr;

/// The weight matrix of a [`Linear`](super::Linear) layer.
///
/// | variant | `W` | parameters (no bias) |
/// | --- | --- | --- |
/// | `Dense` | any `(out, in)` matrix | `out·in` |
/// | `Monarch { nblocks }` | `P L Pᵀ R` (Dao et al., *Monarch*, ICML 2022) | `nblocks·(q·p + s·r)` |
/// | `BlockDiagonal { nblocks }` | `diag(W_1, …, W_nblocks)` | `out·in / nblocks` |
/// | `Butterfly { nblocks }` | product of `nblocks·log₂ n` butterfly factors (Dao et al., ICML 2019) | `2 n log₂ n` per block |
/// | `LowRank { rank }` | `U Vᵀ` | `rank·(in + out)` |
/// | `PixelatedButterfly { .. }` | flat block butterfly + low rank (Chen et al., ICLR 2022) | |
/// | `Ldr { class, rank }` | low displacement rank (Thomas et al., NeurIPS 2018) | `2·rank·max(in, out)` + operators |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    Dense,
    Monarch {
        nblocks: usize,
    },
    BlockDiagonal {
        nblocks: usize,
    },
    Butterfly {
        nblocks: usize,
    },
    LowRank {
        rank: usize,
    },
    PixelatedButterfly {
        nblocks: usize,
        levels: usize,
        rank: usize,
    },
    Ldr {
        class: LdrClass,
        rank: usize,
    },
}

impl Structure {
    /// Whether the structure is the unstructured dense matrix.
    pub fn is_dense(&self) -> bool {
        matches!(self, Structure::Dense)
    }

    /// Check the structure's parameters against a layer `in_features → out_features`, naming the
    /// first that does not fit (e.g. `nblocks` not dividing a width).
    pub fn validate(&self, in_features: usize, out_features: usize) -> Result<()> {
        if in_features == 0 {
            return Err(Error::Zero {
                what: "in_features",
            });
        }
        if out_features == 0 {
            return Err(Error::Zero {
                what: "out_features",
            });
        }
        let divides = |what: &'static str, nblocks: usize| -> Result<()> {
            if nblocks == 0 {
                return Err(Error::Zero { what });
            }
            for (name, n) in [("in_features", in_features), ("out_features", out_features)] {
                if !n.is_multiple_of(nblocks) {
                    return Err(Error::InvalidArgument {
                        what,
                        message: format!(
                            "{what} = {nblocks} does not divide {name} = {n} (structure {self})"
                        ),
                    });
                }
            }
            Ok(())
        };
        match *self {
            Structure::Dense => Ok(()),
            Structure::Monarch { nblocks } | Structure::BlockDiagonal { nblocks } => {
                divides("nblocks", nblocks)
            }
            Structure::Butterfly { nblocks } => {
                if nblocks == 0 {
                    Err(Error::Zero { what: "nblocks" })
                } else {
                    Ok(())
                }
            }
            Structure::LowRank { rank } => {
                let max = in_features.min(out_features);
                if rank == 0 || rank > max {
                    return Err(Error::InvalidArgument {
                        what: "rank",
                        message: format!("must be in 1..={max} (min(in, out)), got {rank}"),
                    });
                }
                Ok(())
            }
            Structure::PixelatedButterfly {
                nblocks,
                levels,
                rank,
            } => {
                divides("nblocks", nblocks)?;
                if !nblocks.is_power_of_two() {
                    return Err(Error::NotPowerOfTwo {
                        what: "nblocks",
                        got: nblocks,
                    });
                }
                let max_levels = nblocks.trailing_zeros() as usize;
                if levels > max_levels {
                    return Err(Error::InvalidArgument {
                        what: "levels",
                        message: format!("at most log2(nblocks) = {max_levels}, got {levels}"),
                    });
                }
                let max = in_features.min(out_features);
                if rank > max {
                    return Err(Error::InvalidArgument {
                        what: "rank",
                        message: format!("must be at most min(in, out) = {max}, got {rank}"),
                    });
                }
                Ok(())
            }
            Structure::Ldr { rank, .. } => {
                let max = in_features.max(out_features);
                if rank == 0 || rank > max {
                    return Err(Error::InvalidArgument {
                        what: "rank",
                        message: format!("must be in 1..={max} (max(in, out)), got {rank}"),
                    });
                }
                Ok(())
            }
        }
    }
}

fn ldr_class_name(class: LdrClass) -> &'static str {
    match class {
        LdrClass::ToeplitzLike { corner: true } => "toeplitz",
        LdrClass::ToeplitzLike { corner: false } => "toeplitz0",
        LdrClass::HankelLike { corner: true } => "hankel",
        LdrClass::HankelLike { corner: false } => "hankel0",
        LdrClass::VandermondeLike => "vandermonde",
        LdrClass::Subdiagonal {
            corner: true,
            tied: false,
        } => "subdiagonal",
        LdrClass::Subdiagonal {
            corner: false,
            tied: false,
        } => "subdiagonal0",
        LdrClass::Subdiagonal {
            corner: true,
            tied: true,
        } => "subdiagonal-tied",
        LdrClass::Subdiagonal {
            corner: false,
            tied: true,
        } => "subdiagonal0-tied",
        LdrClass::Tridiagonal {
            corners: true,
            tied: false,
        } => "tridiagonal",
        LdrClass::Tridiagonal {
            corners: false,
            tied: false,
        } => "tridiagonal0",
        LdrClass::Tridiagonal {
            corners: true,
            tied: true,
        } => "tridiagonal-tied",
        LdrClass::Tridiagonal {
            corners: false,
            tied: true,
        } => "tridiagonal0-tied",
    }
}

const LDR_CLASSES: [LdrClass; 13] = [
    LdrClass::ToeplitzLike { corner: true },
    LdrClass::ToeplitzLike { corner: false },
    LdrClass::HankelLike { corner: true },
    LdrClass::HankelLike { corner: false },
    LdrClass::VandermondeLike,
    LdrClass::Subdiagonal {
        corner: true,
        tied: false,
    },
    LdrClass::Subdiagonal {
        corner: false,
        tied: false,
    },
    LdrClass::Subdiagonal {
        corner: true,
        tied: true,
    },
    LdrClass::Subdiagonal {
        corner: false,
        tied: true,
    },
    LdrClass::Tridiagonal {
        corners: true,
        tied: false,
    },
    LdrClass::Tridiagonal {
        corners: false,
        tied: false,
    },
    LdrClass::Tridiagonal {
        corners: true,
        tied: true,
    },
    LdrClass::Tridiagonal {
        corners: false,
        tied: true,
    },
];

/// The spelling [`FromStr`] reads back: `dense`, `monarch:4`, `blockdiag:4`, `butterfly:2`,
/// `lowrank:16`, `pixelfly:8:3:16` (nblocks, levels, rank), `ldr:toeplitz:4`.
impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Structure::Dense => write!(f, "dense"),
            Structure::Monarch { nblocks } => write!(f, "monarch:{nblocks}"),
            Structure::BlockDiagonal { nblocks } => write!(f, "blockdiag:{nblocks}"),
            Structure::Butterfly { nblocks } => write!(f, "butterfly:{nblocks}"),
            Structure::LowRank { rank } => write!(f, "lowrank:{rank}"),
            Structure::PixelatedButterfly {
                nblocks,
                levels,
                rank,
            } => write!(f, "pixelfly:{nblocks}:{levels}:{rank}"),
            Structure::Ldr { class, rank } => write!(f, "ldr:{}:{rank}", ldr_class_name(class)),
        }
    }
}

fn parse_count(what: &'static str, s: &str, spec: &str) -> Result<usize> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| Error::InvalidArgument {
            what,
            message: format!("expected a non-negative integer in structure `{spec}`, got `{s}`"),
        })
}

/// Parse `dense`, `monarch:NBLOCKS`, `blockdiag:NBLOCKS`, `butterfly[:NBLOCKS]` (1 by default),
/// `lowrank:RANK`, `pixelfly:NBLOCKS[:LEVELS[:RANK]]` (all levels and rank 0 by default),
/// `ldr:CLASS:RANK` with `CLASS` one of `toeplitz`, `hankel`, `vandermonde`, `subdiagonal`,
/// `tridiagonal` (suffix `0` drops the corners, `-tied` ties the two operators).
impl FromStr for Structure {
    type Err = Error;
    fn from_str(spec: &str) -> Result<Self> {
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let bad = || Error::InvalidArgument {
            what: "structure",
            message: format!(
                "unknown structure `{spec}`: expected dense, monarch:N, blockdiag:N, \
                 butterfly[:N], lowrank:R, pixelfly:N[:LEVELS[:R]] or ldr:CLASS:R"
            ),
        };
        let name = parts[0].to_ascii_lowercase();
        let s = match (name.as_str(), parts.len()) {
            ("dense", 1) => Structure::Dense,
            ("monarch", 2) => Structure::Monarch {
                nblocks: parse_count("nblocks", parts[1], spec)?,
            },
            ("blockdiag" | "blockdiagonal", 2) => Structure::BlockDiagonal {
                nblocks: parse_count("nblocks", parts[1], spec)?,
            },
            ("butterfly", 1) => Structure::Butterfly { nblocks: 1 },
            ("butterfly", 2) => Structure::Butterfly {
                nblocks: parse_count("nblocks", parts[1], spec)?,
            },
            ("lowrank", 2) => Structure::LowRank {
                rank: parse_count("rank", parts[1], spec)?,
            },
            ("pixelfly", 2..=4) => {
                let nblocks = parse_count("nblocks", parts[1], spec)?;
                let levels = match parts.get(2) {
                    Some(l) => parse_count("levels", l, spec)?,
                    None => nblocks.max(1).trailing_zeros() as usize,
                };
                let rank = match parts.get(3) {
                    Some(r) => parse_count("rank", r, spec)?,
                    None => 0,
                };
                Structure::PixelatedButterfly {
                    nblocks,
                    levels,
                    rank,
                }
            }
            ("ldr", 3) => {
                let cname = parts[1].to_ascii_lowercase();
                let class = LDR_CLASSES
                    .iter()
                    .copied()
                    .find(|&c| ldr_class_name(c) == cname)
                    .ok_or_else(|| Error::InvalidArgument {
                        what: "ldr class",
                        message: format!(
                            "unknown class `{}` in `{spec}`: expected one of {}",
                            parts[1],
                            LDR_CLASSES
                                .iter()
                                .map(|&c| ldr_class_name(c))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?;
                Structure::Ldr {
                    class,
                    rank: parse_count("rank", parts[2], spec)?,
                }
            }
            _ => return Err(bad()),
        };
        Ok(s)
    }
}
