//! `helios info`: what a checkpoint folder holds, without loading any weights: the pipeline class,
//! Distilled / CFG-Zero*, and per component its class, config, parameter count, dtypes and bytes on
//! disk (read from the safetensors headers).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use helios_model::config::{HeliosCheckpoint, PipelineClass};
use helios_model::weights::SafetensorsSet;
use serde_json::Value;

/// The components with weights: (folder, safetensors stem).
const WEIGHTED: [(&str, &str); 3] = [
    ("text_encoder", "model"),
    ("transformer", "diffusion_pytorch_model"),
    ("vae", "diffusion_pytorch_model"),
];

/// Parameter and byte counts of one component.
#[derive(Debug, Default)]
struct Weights {
    tensors: usize,
    params: usize,
    /// dtype -> (tensors, parameters)
    dtypes: BTreeMap<String, (usize, usize)>,
    tensor_bytes: usize,
    file_bytes: u64,
}

fn weights(part: &'static str, dir: &Path, stem: &str) -> Result<Weights> {
    let set = SafetensorsSet::open(part, dir, stem)?;
    let mut w = Weights {
        tensor_bytes: set.total_bytes(),
        ..Weights::default()
    };
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    for key in set.keys() {
        let n: usize = set.shape(key).map_or(0, |s| s.iter().product());
        let dtype = set.dtype(key).unwrap_or_else(|| "?".into());
        let entry = w.dtypes.entry(dtype).or_default();
        entry.0 += 1;
        entry.1 += n;
        w.tensors += 1;
        w.params += n;
        if let Some(f) = set.file_of(key) {
            files.insert(f.to_path_buf());
        }
    }
    for f in &files {
        w.file_bytes += std::fs::metadata(f)
            .with_context(|| format!("cannot stat {}", f.display()))?
            .len();
    }
    Ok(w)
}

/// `1.23 M`, `14.3 B`, ...
pub fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// `1.5 MiB`, `27.9 GiB`, ...
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= (1u64 << 30) as f64 => format!("{:.2} GiB", n / (1u64 << 30) as f64),
        n if n >= (1u64 << 20) as f64 => format!("{:.2} MiB", n / (1u64 << 20) as f64),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} B"),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// Runs `helios info` on a checkpoint folder.
pub fn run(dir: &Path) -> Result<()> {
    let mut out = String::new();
    let checkpoint = HeliosCheckpoint::from_dir(dir)
        .with_context(|| format!("{} is not a Helios checkpoint", dir.display()))?;
    let index = read_json(&dir.join("model_index.json"))?;
    let class_of = |part: &str| index[part][1].as_str().unwrap_or("?").to_owned();
    let yes = |b: bool| if b { "yes" } else { "no" };
    let pipeline = index["_class_name"].as_str().unwrap_or("?");
    let kind = match checkpoint.pipeline {
        PipelineClass::Single => "single stage".to_owned(),
        PipelineClass::Pyramid => match checkpoint.scheduler.stages {
            1 => "pyramid, 1 stage".to_string(),
            n => format!("pyramid, {n} stages"),
        },
    };
    writeln!(out, "checkpoint: {}", dir.display())?;
    writeln!(out, "pipeline: {pipeline} ({kind})")?;
    writeln!(out, "distilled: {}", yes(checkpoint.is_distilled))?;
    writeln!(out, "cfg-zero*: {}", yes(checkpoint.is_cfg_zero_star))?;
    let mut total_params = 0;
    let mut total_bytes = 0;
    for (part, stem) in WEIGHTED {
        let part_dir = dir.join(part);
        let w = weights(part, &part_dir, stem)?;
        writeln!(out, "\n{part}: {}", class_of(part))?;
        writeln!(
            out,
            "  parameters: {} ({}, {} tensors)",
            w.params,
            human_count(w.params),
            w.tensors
        )?;
        for (dtype, (tensors, params)) in &w.dtypes {
            writeln!(
                out,
                "  dtype {dtype}: {tensors} tensors, {} parameters",
                human_count(*params)
            )?;
        }
        writeln!(
            out,
            "  on disk: {} ({} of tensor data)",
            human_bytes(w.file_bytes),
            human_bytes(w.tensor_bytes as u64)
        )?;
        let config = read_json(&part_dir.join("config.json"))?;
        write!(
            out,
            "  config:\n{}",
            indent(&serde_json::to_string_pretty(&config)?)
        )?;
        total_params += w.params;
        total_bytes += w.file_bytes;
    }
    writeln!(out, "\ntokenizer: {}", class_of("tokenizer"))?;
    writeln!(out, "\nscheduler: {}", class_of("scheduler"))?;
    let config = read_json(&dir.join("scheduler/scheduler_config.json"))?;
    write!(
        out,
        "  config:\n{}",
        indent(&serde_json::to_string_pretty(&config)?)
    )?;
    writeln!(
        out,
        "\ntotal: {total_params} parameters ({}), {} of weights on disk",
        human_count(total_params),
        human_bytes(total_bytes)
    )?;
    // One write, so `helios info | head` ends quietly instead of failing on a closed pipe.
    match std::io::stdout().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
