//! # kaleidoscope-gpu
//!
//! The CUDA backend of kaleidoscope: device discovery, device buffers and kernel launches
//! through [cudarc](https://docs.rs/cudarc). The crate builds on machines without CUDA (cudarc
//! loads the driver dynamically); at run time [`Device::new`] checks for the driver first and
//! returns [`Error::NoDevice`] instead of panicking.
//!
//! ```
//! match kaleidoscope_gpu::Device::new(0) {
//!     Ok(dev) => println!("{}", dev.describe()),
//!     Err(kaleidoscope::Error::NoDevice(why)) => println!("no GPU here: {why}"),
//!     Err(e) => panic!("{e}"),
//! }
//! ```

use cudarc::driver::CudaContext;
pub use kaleidoscope::{Error, Result};
use std::sync::Arc;

/// Whether the CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    // SAFETY: only probes whether the shared library can be opened.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Number of CUDA devices, or [`Error::NoDevice`] when there is no driver.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(Error::NoDevice(
            "the CUDA driver library was not found".into(),
        ));
    }
    let n = CudaContext::device_count()
        .map_err(|e| Error::NoDevice(format!("cuDeviceGetCount failed: {e}")))?;
    Ok(n.max(0) as usize)
}

/// A CUDA device with its primary context.
#[derive(Debug, Clone)]
pub struct Device {
    ctx: Arc<CudaContext>,
    ordinal: usize,
    name: String,
    compute_capability: (i32, i32),
    total_mem: usize,
}

impl Device {
    /// Open device `ordinal`: [`Error::NoDevice`] when there is no driver, no device, or the
    /// ordinal is out of range.
    pub fn new(ordinal: usize) -> Result<Self> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice(format!(
                "device ordinal {ordinal} requested, {count} device(s) present"
            )));
        }
        let no_dev = |what: &str, e: cudarc::driver::DriverError| {
            Error::NoDevice(format!("{what} failed on device {ordinal}: {e}"))
        };
        let ctx = CudaContext::new(ordinal).map_err(|e| no_dev("creating a context", e))?;
        let name = ctx.name().map_err(|e| no_dev("cuDeviceGetName", e))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(|e| no_dev("reading the compute capability", e))?;
        let total_mem = ctx.total_mem().map_err(|e| no_dev("cuDeviceTotalMem", e))?;
        Ok(Self {
            ctx,
            ordinal,
            name,
            compute_capability,
            total_mem,
        })
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `(major, minor)` compute capability; NVRTC compiles for `sm_{major}{minor}`.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }
    /// Total device memory in bytes.
    pub fn total_mem(&self) -> usize {
        self.total_mem
    }
    /// The cudarc context, for launches.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }
    /// One line: ordinal, name, compute capability and memory.
    pub fn describe(&self) -> String {
        let (ma, mi) = self.compute_capability;
        format!(
            "cuda:{} {} (sm_{ma}{mi}, {:.1} GiB)",
            self.ordinal,
            self.name,
            self.total_mem as f64 / (1u64 << 30) as f64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_reports_no_device_or_a_device() {
        match Device::new(0) {
            Ok(dev) => {
                assert!(!dev.name().is_empty());
                assert!(dev.compute_capability().0 >= 3);
                assert!(dev.total_mem() > 0);
                println!("found {}", dev.describe());
            }
            Err(Error::NoDevice(why)) => {
                assert!(!why.is_empty());
                println!("skipped: no CUDA device ({why})");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn out_of_range_ordinal_is_no_device() {
        assert!(matches!(Device::new(usize::MAX), Err(Error::NoDevice(_))));
    }
}
