//! How a part's burn parameter paths map to checkpoint keys, and the dtype (and quantisation)
//! each parameter is stored in.

use burn::tensor::DType;

/// Maps burn parameter paths (`blocks.0.attn1.to_out.weight`) to checkpoint keys
/// (`blocks.0.attn1.to_out.0.weight`), by path only. A leaf named `gamma` / `beta` (burn's norms)
/// is renamed `weight` / `bias` first, then the rules are applied in order as plain substring
/// replacements. A 2-D parameter named `weight` is a linear layer's, stored `[out, in]` in the
/// checkpoint and `[in, out]` in burn, unless its path matches a [`KeyMap::keeping_layout`] pattern
/// (embeddings).
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    rules: Vec<(&'static str, &'static str)>,
    prefix: &'static str,
    pub(super) ignore_unused: Vec<&'static str>,
    keep_layout: Vec<&'static str>,
}

impl KeyMap {
    /// A map with substring rules `(burn, checkpoint)`.
    pub fn new(rules: &[(&'static str, &'static str)]) -> Self {
        Self {
            rules: rules.to_vec(),
            ..Self::default()
        }
    }

    /// Prepends `prefix` to every checkpoint key.
    pub fn with_prefix(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// Checkpoint keys containing any of these substrings may stay unused (tied or legacy weights).
    pub fn ignoring_unused(mut self, patterns: &[&'static str]) -> Self {
        self.ignore_unused = patterns.to_vec();
        self
    }

    /// 2-D `weight` parameters whose burn path contains any of these substrings are stored as in
    /// the checkpoint (embedding tables), not transposed as a linear layer's.
    pub fn keeping_layout(mut self, patterns: &[&'static str]) -> Self {
        self.keep_layout = patterns.to_vec();
        self
    }

    /// The checkpoint key of a burn path.
    pub fn checkpoint_key(&self, burn_path: &str) -> String {
        let mut key = match burn_path.rsplit_once('.') {
            Some((parent, "gamma")) => format!("{parent}.weight"),
            Some((parent, "beta")) => format!("{parent}.bias"),
            _ => burn_path.to_string(),
        };
        for (from, to) in &self.rules {
            key = key.replace(from, to);
        }
        format!("{}{}", self.prefix, key)
    }

    /// Whether the parameter at `burn_path` with `rank` axes is a linear weight (stored transposed).
    pub fn is_transposed(&self, burn_path: &str, rank: usize) -> bool {
        rank == 2
            && (burn_path == "weight" || burn_path.ends_with(".weight"))
            && !self.keep_layout.iter().any(|p| burn_path.contains(p))
    }
}

/// The dtype floats are stored in on the device as they are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreAs {
    /// float32.
    #[default]
    F32,
    /// A native half dtype (`F16` or `BF16`), converted on the host straight from the stored dtype.
    Half(DType),
    /// float32 values rounded to bf16 precision (bf16 emulated on a backend without half types).
    RoundedBf16,
}

/// Which parameters are loaded in which dtype: `store` for all, except the parameters with a path
/// segment in `keep_f32` (diffusers' `_keep_in_fp32_modules` matching), which stay float32.
#[derive(Debug, Clone, Copy, Default)]
pub struct DtypePolicy {
    /// The dtype of most parameters.
    pub store: StoreAs,
    /// Weight-only quantisation, applied to each matching tensor right after it is loaded (so
    /// the device never holds the unquantised model).
    pub quantize: Option<QuantizePolicy>,
    /// Module names kept in float32.
    pub keep_f32: &'static [&'static str],
}

impl DtypePolicy {
    /// Everything float32.
    pub const F32: Self = Self {
        store: StoreAs::F32,
        quantize: None,
        keep_f32: &[],
    };

    /// How the parameter at `burn_path` is stored.
    pub fn store_for(&self, burn_path: &str) -> StoreAs {
        if burn_path.split('.').any(|s| self.keep_f32.contains(&s)) {
            StoreAs::F32
        } else {
            self.store
        }
    }
}

/// Which parameters are quantised as they are loaded, and how.
#[derive(Debug, Clone, Copy)]
pub struct QuantizePolicy {
    /// burn's quantisation scheme.
    pub scheme: burn::tensor::quantization::QuantScheme,
    /// Whether the parameter at this burn path (`blocks.0.attn1.to_q.weight`) with this shape
    /// is quantised.
    pub applies: fn(&str, &[usize]) -> bool,
}
