//! What a load did: its progress as it goes and its report at the end.

use std::collections::BTreeMap;

/// Progress of [`load_module`](super::load_module).
#[derive(Debug, Clone, Copy)]
pub struct LoadProgress {
    /// Tensors loaded so far.
    pub loaded: usize,
    /// Tensors in the set.
    pub total: usize,
    /// Bytes loaded so far.
    pub bytes: usize,
}

/// What [`load_module`](super::load_module) applied.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The model part.
    pub part: &'static str,
    /// Checkpoint keys applied.
    pub applied: Vec<String>,
    /// Checkpoint keys present but unused (only ignorable ones; others are an error).
    pub ignored: Vec<String>,
    /// Bytes read from the checkpoint.
    pub bytes_read: usize,
    /// Bytes of the parameters as stored on the device.
    pub bytes_stored: usize,
    /// Tensors per dtype conversion, `"BF16 -> F16"` (unchanged dtypes are listed too, `"F32 -> F32"`).
    pub conversions: BTreeMap<String, usize>,
    /// Tensors stored quantised ([`DtypePolicy::quantize`](super::DtypePolicy::quantize)).
    pub quantized: usize,
    /// Bytes of the parameters kept in host memory and moved to the device only while they are
    /// used (offloaded DiT blocks); not counted in `bytes_stored`.
    pub bytes_offloaded: usize,
}

impl LoadReport {
    /// Adds what another load of the same part applied.
    pub fn merge(&mut self, other: LoadReport) {
        self.applied.extend(other.applied);
        self.ignored.extend(other.ignored);
        self.bytes_read += other.bytes_read;
        self.bytes_stored += other.bytes_stored;
        self.bytes_offloaded += other.bytes_offloaded;
        self.quantized += other.quantized;
        for (conversion, n) in other.conversions {
            *self.conversions.entry(conversion).or_default() += n;
        }
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        write!(
            f,
            "{}: {} tensors, {:.1} MiB read, {:.1} MiB on the device",
            self.part,
            self.applied.len(),
            mib(self.bytes_read),
            mib(self.bytes_stored)
        )?;
        for (conversion, n) in &self.conversions {
            write!(f, ", {n} {conversion}")?;
        }
        if self.quantized > 0 {
            write!(f, ", {} quantised", self.quantized)?;
        }
        if self.bytes_offloaded > 0 {
            write!(
                f,
                ", {:.1} MiB offloaded to host memory",
                mib(self.bytes_offloaded)
            )?;
        }
        if !self.ignored.is_empty() {
            write!(f, ", {} unused keys ignored", self.ignored.len())?;
        }
        Ok(())
    }
}
