//! The CUDA device (the `cuda` feature). burn's CUDA runtime panics when it cannot load the
//! driver library; a missing driver is a [`WorkerError::BackendUnavailable`] instead.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::backend::Cuda;
use burn::backend::cuda::CudaDevice;
use burn::tensor::backend::Backend;

use crate::error::{WorkerError, WorkerResult};

fn unavailable(reason: impl Into<String>) -> WorkerError {
    WorkerError::BackendUnavailable {
        backend: "CUDA",
        reason: reason.into(),
    }
}

/// The first CUDA device, once its driver answered. burn's CUDA runtime panics when it cannot
/// load the driver library; that is checked for first where it can be, and caught otherwise.
pub(super) fn device() -> WorkerResult<CudaDevice> {
    if driver_present() == Some(false) {
        return Err(unavailable(
            "no CUDA driver library (libcuda / nvcuda) on this machine",
        ));
    }
    let device = CudaDevice::default();
    match catch_unwind(AssertUnwindSafe(|| <Cuda as Backend>::sync(&device))) {
        Ok(Ok(())) => Ok(device),
        Ok(Err(e)) => Err(unavailable(format!("the device failed: {e:?}"))),
        Err(panic) => Err(unavailable(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the CUDA runtime failed to start".to_owned()),
        )),
    }
}

/// Whether the CUDA driver library is where the dynamic loader looks: on Linux the loader cache
/// (`/etc/ld.so.cache`), `LD_LIBRARY_PATH` and the usual library folders, on Windows `System32`.
/// `None` where this is not known (other systems).
fn driver_present() -> Option<bool> {
    if cfg!(target_os = "linux") {
        const LIB: &str = "libcuda.so";
        let in_cache = std::fs::read("/etc/ld.so.cache")
            .is_ok_and(|cache| cache.windows(LIB.len()).any(|w| w == LIB.as_bytes()));
        let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        for dir in [
            "/lib",
            "/lib64",
            "/usr/lib",
            "/usr/lib64",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib/wsl/lib",
            "/usr/local/cuda/lib64",
            "/usr/local/cuda/compat",
            "/run/opengl-driver/lib",
        ] {
            dirs.push(dir.into());
        }
        let in_dirs = dirs
            .iter()
            .any(|d| d.join(LIB).exists() || d.join(format!("{LIB}.1")).exists());
        Some(in_cache || in_dirs)
    } else if cfg!(target_os = "windows") {
        let root = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
        Some(
            std::path::Path::new(&root)
                .join("System32")
                .join("nvcuda.dll")
                .exists(),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a CUDA driver (CI), the CUDA backend is a typed error and the process goes on;
    /// with one, the device answers.
    #[test]
    fn cuda_without_a_driver_is_a_typed_error() {
        match device() {
            Ok(device) => assert!(<Cuda as Backend>::sync(&device).is_ok()),
            Err(WorkerError::BackendUnavailable { backend, reason }) => {
                assert_eq!(backend, "CUDA");
                assert!(!reason.is_empty());
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}
