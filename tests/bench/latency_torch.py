"""latency_torch: the PyTorch eager peer of bin/latency (benchmark-only; tests/gpu-check.sh runs
it on the GPU beside ours). Same jobs, same protocol, same CSV:
  gpt2  B sequences of L tokens with a KV cache: the prefill of <|endoftext|>, then L-1 decoding
        steps; every token drawn from the full softmax (torch.multinomial) -- row steps = L;
  sedd  SEDD's analytic sampler at k steps plus the denoiser (k+1 forward passes on (B, L)).
W warm-up runs, then R timed runs, each from the start of sampling until the tokens are in host
memory (a synchronisation before each run, .cpu() of the tokens ending it); median and 10th/90th
percentiles interpolated as numpy does. The models (gpt2_torch.py, sedd_torch.py: our own eager
definitions, random weights, fp32 storage) take their shape from a config.json; --precision bf16
runs them under torch.autocast(bfloat16), PyTorch's eager mixed precision.

    python3 latency_torch.py write DIR
        random BF16 weights of DIR/config.json (GPT-2 or SEDD) into DIR/model.safetensors, made
        on the GPU when there is one: a checkpoint our tools load, with nothing downloaded
    python3 latency_torch.py time (--gpt2 DIR | --sedd DIR) [--steps LIST] [--batch LIST]
        [-l L] [-r R] [-w W] [--device cpu|cuda] [--precision fp32|bf16]
        prints latency's CSV (model,steps,batch,length,median_s,p10,p90,repeats,device,precision)
"""
import argparse
import contextlib
import json
import math
import os
import sys
import time

import torch

from gpt2_torch import GPT2
from sedd_torch import Sedd, dims_of, released_names, sample_analytic, write_safetensors


def load_config(dirname):
    with open(os.path.join(dirname, "config.json")) as f:
        return json.load(f)


def make_model(cfg, device):
    """The eager model of a config.json (GPT-2 if it has n_embd, else SEDD), random weights."""
    torch.manual_seed(0)
    if "n_embd" in cfg:
        return GPT2(cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["vocab_size"],
                    cfg["n_positions"], device=device)
    return Sedd(dims_of(cfg), device=device).eval()


def write(dirname):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    m = make_model(load_config(dirname), device)
    named = m.hf_names() if isinstance(m, GPT2) else released_names(m)
    tmp = os.path.join(dirname, f"model.safetensors.tmp.{os.getpid()}")
    write_safetensors(tmp, named)
    os.replace(tmp, os.path.join(dirname, "model.safetensors"))


def run_gpt2(m, B, L, eos, device):
    tok = torch.full((B, 1), eos, dtype=torch.long, device=device)
    out = torch.empty(B, L, dtype=torch.long, device=device)
    logits, cache = m(tok)
    for k in range(1, L + 1):
        tok = torch.multinomial(logits[:, -1].float().softmax(-1), 1)
        out[:, k - 1] = tok[:, 0]
        if k < L:
            logits, cache = m(tok, cache, k)
    return out


def quantile(t, q):
    h = q * (len(t) - 1)
    lo = math.floor(h)
    hi = min(lo + 1, len(t) - 1)
    return t[lo] + (h - lo) * (t[hi] - t[lo])


def timed(fn, warmup, repeats, device):
    """Sorted wall times of `repeats` runs of fn (which returns tokens on device)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn().cpu()
    t = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn().cpu()
        t.append(time.perf_counter() - t0)
    return sorted(t)


def int_list(s):
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}': expected comma-separated integers")
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"'{s}': expected positive integers")
    return v


def time_main(a):
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("latency_torch: --device cuda: PyTorch sees no CUDA device")
    if a.precision == "bf16" and a.device != "cuda":
        sys.exit("latency_torch: --precision bf16 needs --device cuda (as latency)")
    device = torch.device(a.device)
    cfg = load_config(a.gpt2 or a.sedd)
    m = make_model(cfg, device)
    ctx = cfg["n_positions"] if a.gpt2 else cfg["model"]["length"]
    L = a.length or ctx
    if L > ctx:
        sys.exit(f"latency_torch: --length {L} is longer than the model's context ({ctx})")
    amp = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if a.precision == "bf16"
           else contextlib.nullcontext())
    print("model,steps,batch,length,median_s,p10,p90,repeats,device,precision")
    with torch.inference_mode(), amp:
        for B in a.batch:
            if a.gpt2:
                eos = cfg.get("eos_token_id", cfg["vocab_size"] - 1)
                jobs = [("gpt2", L, lambda: run_gpt2(m, B, L, eos, device))]
            else:
                jobs = [("sedd", k, lambda k=k: sample_analytic(m, B, L, k, True, device))
                        for k in a.steps]
            for model, steps, fn in jobs:
                t = timed(fn, a.warmup, a.repeats, device)
                print(f"{model},{steps},{B},{L},{quantile(t, 0.5):.6g},{quantile(t, 0.1):.6g},"
                      f"{quantile(t, 0.9):.6g},{a.repeats},{a.device},{a.precision}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="random BF16 weights for DIR/config.json")
    w.add_argument("dir")
    t = sub.add_parser("time", help="time GPT-2 or SEDD as bin/latency does")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--gpt2", metavar="DIR")
    which.add_argument("--sedd", metavar="DIR")
    t.add_argument("--steps", type=int_list, default=[16, 32, 64, 128])
    t.add_argument("--batch", type=int_list, default=[1])
    t.add_argument("-l", "--length", type=int, default=0)
    t.add_argument("-r", "--repeats", type=int, default=5)
    t.add_argument("-w", "--warmup", type=int, default=1)
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    t.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    a = p.parse_args()
    if a.cmd == "write":
        write(a.dir)
    else:
        if a.repeats < 1 or a.warmup < 0 or a.length < 0:
            p.error("--repeats must be >= 1, --warmup and --length >= 0")
        time_main(a)


if __name__ == "__main__":
    main()
