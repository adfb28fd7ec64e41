#!/usr/bin/env python3
"""The reference side of `helios bench --random-weights`: the same parts at the same shapes with PyPI
diffusers (0.42.1) on PyTorch, random weights built from the same configs, the same output lines.

    python scripts/bench_torch.py --config assets/configs/helios-distilled [--layers N]
        [--height 384 --width 640] [--runs R] [--warmup W] [--device cuda|cpu] [--dtype bf16|f32]
        [--steps 2,2,2] [--max-sequence-length 512] [--threads N]

Needs torch, diffusers==0.42.1 and transformers. On CUDA (the default when present) the DiT runs in
bf16 with diffusers' `_keep_in_fp32_modules` in float32, as `from_pretrained(dtype=torch.bfloat16)`
loads it; the VAE and the text encoder run in float32, as in the Rust port. Every module is built
directly on the device, with PyTorch's default random initialisation (on the CPU the UMT5 token
embedding keeps only its first 4096 rows, the ones the prompt reads).

Measured (each after --warmup untimed calls, median and min over --runs, torch.cuda.synchronize
around every call): the text encoder on one prompt (once); the DiT forward per pyramid stage with the
inputs the pyramid pipeline builds (the chunk's latents at 1/4, 1/2, 1x of the latent size, the
history at full size, frame indices from arange(29).split([1, 16, 2, 1, 9]), short = [prefix, 1x]);
the VAE decode of one 9-latent chunk; one whole chunk through HeliosPyramidPipeline (33 frames from
random prompt embeddings: every DiT call with the scheduler, then the decode) and its frames/s; the
peak CUDA memory (torch.cuda.max_memory_allocated / max_memory_reserved).

The pipeline's block noise factors a singular float32 covariance (torch.linalg.cholesky fails on it
on CPU); this script factors it in float64, which changes nothing else.
"""

import argparse
import json
import os
import statistics
import sys
import time

# Prompt token ids are drawn below this row of the UMT5 embedding (as `helios bench` does).
TEXT_ROWS = 4096


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="diffusers-layout folder of configs (model_index.json, ...)")
    ap.add_argument("--layers", type=int, default=None, help="DiT blocks to build (and at most N text encoder layers)")
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default=None, help="cuda or cpu [default: cuda when available]")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default=None, help="DiT dtype [default: bf16 on cuda, f32 on cpu]")
    ap.add_argument("--steps", default=None, help="steps per pyramid stage, e.g. 2,2,2 [default: 2,2,2 for Distilled]")
    ap.add_argument("--max-sequence-length", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    if args.layers is not None and args.layers < 1:
        ap.error("--layers must be at least 1")
    return args


def read_json(path):
    with open(path) as f:
        return json.load(f)


def public(config):
    """A diffusers config.json without its `_` keys."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def block_noise_f64(self, batch_size, channel, num_frames, height, width, patch_size=(1, 2, 2), device=None,
                    generator=None):
    """HeliosPyramidPipeline.sample_block_noise with the covariance and its Cholesky factor in float64."""
    import torch

    if generator is None:
        generator = torch.Generator(device=device)
    elif isinstance(generator, list):
        generator = generator[0]
    gamma = self.scheduler.config.gamma
    _, ph, pw = patch_size
    n = ph * pw
    cov = torch.eye(n, dtype=torch.float64) * (1 + gamma) - torch.ones(n, n, dtype=torch.float64) * gamma
    cov += torch.eye(n, dtype=torch.float64) * 1e-8
    factor = torch.linalg.cholesky(cov).to(device=device, dtype=torch.float32)
    blocks = batch_size * channel * num_frames * (height // ph) * (width // pw)
    z = torch.randn(blocks, n, generator=generator, device=generator.device).to(device=device)
    noise = (z @ factor.T).view(batch_size, channel, num_frames, height // ph, width // pw, ph, pw)
    return noise.permute(0, 1, 2, 3, 5, 4, 6).reshape(batch_size, channel, num_frames, height, width)


class Bench:
    def __init__(self, args):
        import torch

        self.torch = torch
        self.args = args
        self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cuda = self.device.type == "cuda"
        dtype = args.dtype or ("bf16" if self.cuda else "f32")
        self.dtype = torch.bfloat16 if dtype == "bf16" else torch.float32

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def time(self, fn, runs, warmup):
        for _ in range(warmup):
            fn()
            self.sync()
        times = []
        for _ in range(runs):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return dict(median_s=statistics.median(times), min_s=min(times), runs=runs)


def fields(t):
    return f"median_s={t['median_s']:.5f} min_s={t['min_s']:.5f} runs={t['runs']}"


def main(argv=None):
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    import torch
    from diffusers import AutoencoderKLWan, HeliosDMDScheduler, HeliosPyramidPipeline, HeliosScheduler
    from diffusers import HeliosTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    b = Bench(args)
    dev = b.device
    root = args.config
    index = read_json(os.path.join(root, "model_index.json"))
    t_cfg = public(read_json(os.path.join(root, "transformer", "config.json")))
    v_cfg = public(read_json(os.path.join(root, "vae", "config.json")))
    e_cfg = read_json(os.path.join(root, "text_encoder", "config.json"))
    s_cfg = public(read_json(os.path.join(root, "scheduler", "scheduler_config.json")))
    sched_class = read_json(os.path.join(root, "scheduler", "scheduler_config.json")).get("_class_name")
    if index.get("_class_name") != "HeliosPyramidPipeline":
        sys.exit(f"error: {root}: only HeliosPyramidPipeline configs are benchmarked here")

    all_layers = t_cfg.get("num_layers", 40)
    layers = args.layers or all_layers
    if layers > all_layers:
        sys.exit(f"error: --layers {layers}: the transformer has {all_layers}")
    text_layers = min(layers, e_cfg["num_layers"])
    stages = s_cfg.get("stages", 3)
    distilled = bool(index.get("is_distilled"))
    steps = [int(s) for s in args.steps.split(",")] if args.steps else [2 if distilled else 10] * stages
    if len(steps) != stages:
        sys.exit(f"error: --steps: give {stages} step counts")
    patch = t_cfg.get("patch_size", [1, 2, 2])
    spatial = v_cfg.get("scale_factor_spatial", 8)
    multiple = spatial * max(patch[1], patch[2]) * 2 ** (stages - 1)
    if args.height % multiple or args.width % multiple:
        sys.exit(f"error: height and width must be multiples of {multiple}")
    H, W = args.height // spatial, args.width // spatial
    C, T, L = t_cfg.get("in_channels", 16), 9, args.max_sequence_length
    text_dim = t_cfg.get("text_dim", 4096)

    t0 = time.perf_counter()
    with torch.device(dev):
        # Initialised directly in the DiT's dtype: a 14B DiT in float32 would not fit beside UMT5 on
        # an 80 GB GPU. diffusers' float32 modules are cast back below.
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(b.dtype)
        try:
            dit = HeliosTransformer3DModel(**{**t_cfg, "num_layers": layers}).eval()
        finally:
            torch.set_default_dtype(default_dtype)
        vae = AutoencoderKLWan(**v_cfg).eval()
        te_cfg = UMT5Config(**{k: v for k, v in e_cfg.items() if k != "architectures"})
        te_cfg.num_layers = text_layers
        if not b.cuda:
            # A lookup costs the same whatever the table's size; on the CPU the 4 GB table would only
            # cost memory (which is not measured there).
            te_cfg.vocab_size = min(te_cfg.vocab_size, TEXT_ROWS)
        text = UMT5EncoderModel(te_cfg).eval()
    # What from_pretrained(dtype=torch.bfloat16) loads: `_keep_in_fp32_modules` in float32.
    keep = list(dit._keep_in_fp32_modules or [])
    for name, p in dit.named_parameters():
        if any(k in name.split(".") for k in keep):
            p.data = p.data.to(torch.float32)
    if b.cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    weights = torch.cuda.memory_allocated() if b.cuda else None
    print(f"random weights from {root}: DiT {layers}/{all_layers} blocks at {b.dtype}, text encoder "
          f"{text_layers}/{e_cfg['num_layers']} layers, VAE; {args.width}x{args.height}, steps "
          f"{','.join(map(str, steps))}, torch {torch.__version__} on {dev}; built in {time.perf_counter() - t0:.1f} s")

    g = torch.Generator(device=dev).manual_seed(args.seed)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, device=dev, dtype=torch.float32).to(dtype)

    indices = torch.arange(0, 1 + 16 + 2 + 1 + T)
    prefix_i, long_i, mid_i, one_i, cur_i = indices.split([1, 16, 2, 1, T])
    history = randn(1, C, 19, H, W)
    prefix = randn(1, C, 1, H, W)
    cond = randn(1, L, text_dim)

    with torch.inference_mode():
        ids = (torch.arange(L) * 7919 % min(TEXT_ROWS, e_cfg["vocab_size"])).unsqueeze(0).to(dev)
        mask = torch.ones(1, L, dtype=torch.long, device=dev)
        t_text = b.time(lambda: text(input_ids=ids, attention_mask=mask).last_hidden_state, 1, args.warmup)
        print(f"bench part=text tokens={L} layers={text_layers} {fields(t_text)}")

        stage_medians = []
        for stage in range(stages):
            down = 2 ** (stages - 1 - stage)
            h, w = H // down, W // down
            inputs = dict(
                hidden_states=randn(1, C, T, h, w, dtype=b.dtype),
                timestep=torch.tensor([1000 * (stages - stage) // stages - 1], dtype=torch.int64, device=dev),
                encoder_hidden_states=cond.to(b.dtype),
                latents_history_short=torch.cat([prefix, history[:, :, 18:]], dim=2).to(b.dtype),
                latents_history_mid=history[:, :, 16:18].to(b.dtype),
                latents_history_long=history[:, :, :16].to(b.dtype),
                indices_hidden_states=cur_i.unsqueeze(0).to(dev),
                indices_latents_history_short=torch.cat([prefix_i, one_i]).unsqueeze(0).to(dev),
                indices_latents_history_mid=mid_i.unsqueeze(0).to(dev),
                indices_latents_history_long=long_i.unsqueeze(0).to(dev),
            )
            t = b.time(lambda: dit(return_dict=False, **inputs)[0], args.runs, args.warmup)
            tokens = (T * (h // 2) * (w // 2) + 2 * (H // 2) * (W // 2) + -(-H // 4) * -(-W // 4)
                      + 4 * -(-H // 8) * -(-W // 8))
            print(f"bench part=dit stage={stage} latents={T}x{h}x{w} tokens={tokens} {fields(t)}")
            stage_medians.append(t["median_s"])

        z = randn(1, C, T, H, W)
        frames = (T - 1) * v_cfg.get("scale_factor_temporal", 4) + 1
        t_vae = b.time(lambda: vae.decode(z, return_dict=False)[0], args.runs, args.warmup)
        print(f"bench part=vae_decode latents={T}x{H}x{W} frames={frames} {fields(t_vae)}")

        scheduler = (HeliosDMDScheduler if sched_class == "HeliosDMDScheduler" else HeliosScheduler)(**s_cfg)
        pipe = HeliosPyramidPipeline(tokenizer=None, text_encoder=None, vae=vae, scheduler=scheduler, transformer=dit,
                                     is_cfg_zero_star=bool(index.get("is_cfg_zero_star")), is_distilled=distilled)
        HeliosPyramidPipeline.sample_block_noise = block_noise_f64
        pipe.set_progress_bar_config(disable=True)
        calls = []
        hook = dit.register_forward_pre_hook(lambda m, a: calls.append(1))

        def chunk():
            calls.clear()
            return pipe(prompt_embeds=cond, negative_prompt_embeds=cond if not distilled else None,
                        height=args.height, width=args.width, num_frames=frames,
                        guidance_scale=1.0 if distilled else 5.0, pyramid_num_inference_steps_list=steps,
                        max_sequence_length=L, generator=torch.Generator(device=dev).manual_seed(args.seed),
                        output_type="latent").frames

        t_chunk = b.time(chunk, args.runs, args.warmup)
        hook.remove()
        fps = frames / t_chunk["median_s"]
        print(f"bench part=chunk dit_calls={len(calls)} frames={frames} frames_per_s={fps:.3f} {fields(t_chunk)}")

    peak_in_use = torch.cuda.max_memory_allocated() if b.cuda else None
    peak_reserved = torch.cuda.max_memory_reserved() if b.cuda else None
    na = lambda v: "n/a" if v is None else str(v)  # noqa: E731
    print(f"bench part=memory weights_bytes={na(weights)} peak_in_use_bytes={na(peak_in_use)} "
          f"peak_reserved_bytes={na(peak_reserved)}")
    dit_s = sum(n * s for n, s in zip(steps, stage_medians))
    mem = "n/a" if peak_in_use is None else f"{peak_in_use / 2**30:.2f} GiB in use, {peak_reserved / 2**30:.2f} GiB reserved"
    print(f"summary: one chunk of {frames} frames in {t_chunk['median_s']:.3f} s = {fps:.2f} frames/s "
          f"({len(calls)} DiT calls ~{dit_s:.3f} s by the per-stage medians, VAE decode {t_vae['median_s']:.3f} s, "
          f"text encoder {t_text['median_s']:.3f} s once per prompt); peak device memory {mem}")
    print(f"median_s={t_chunk['median_s']:.4f} frames_per_s={fps:.3f} min_s={t_chunk['min_s']:.4f} "
          f"frames={frames} runs={t_chunk['runs']}")


if __name__ == "__main__":
    main()
