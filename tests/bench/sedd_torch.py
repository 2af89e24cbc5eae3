"""SEDD in PyTorch for the benchmarks only (bench_sedd.sh on the CPU; latency_torch.py, which
imports it, on the GPU): the same model shape and the same per-step work as sedd-sample (analytic
predictor, absorbing graph) and sedd-score (score-entropy loss), written here from
../shared/specs/sedd.md. It also writes random weights of a shape as a released-layout checkpoint
(config.json + model.safetensors, BF16) for our tools to load.

    python3 sedd_torch.py write DIR small|tiny
    python3 sedd_torch.py time small|tiny LENGTH BATCH THREADS STEPS K
prints "sample_steps_per_s=… score_tokens_per_s=…" (per sequence-step and per scored token).
"""
import json
import math
import struct
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = {  # tokens, hidden, cond, heads, blocks
    "small": (50257, 768, 128, 12, 12),
    "tiny": (1000, 64, 32, 4, 2),
}


def config(shape):
    n, h, c, nh, nb = SHAPES[shape]
    return {"tokens": n, "graph": {"type": "absorb"},
            "noise": {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
            "model": {"name": shape, "type": "ddit", "hidden_size": h, "cond_dim": c,
                      "length": 1024, "n_blocks": nb, "n_heads": nh, "scale_by_sigma": True,
                      "dropout": 0.1}}


def dims_of(cfg):
    """The SHAPES tuple of a released-layout config.json (a dict)."""
    m = cfg["model"]
    return cfg["tokens"], m["hidden_size"], m["cond_dim"], m["n_heads"], m["n_blocks"]


class Block(torch.nn.Module):
    def __init__(self, h, c, device):
        super().__init__()
        self.norm1 = torch.nn.Parameter(torch.ones(h, device=device))
        self.attn_qkv = torch.nn.Linear(h, 3 * h, bias=False, device=device)
        self.attn_out = torch.nn.Linear(h, h, bias=False, device=device)
        self.norm2 = torch.nn.Parameter(torch.ones(h, device=device))
        self.fc1 = torch.nn.Linear(h, 4 * h, device=device)
        self.fc2 = torch.nn.Linear(4 * h, h, device=device)
        self.ada = torch.nn.Linear(c, 6 * h, device=device)


class Sedd(torch.nn.Module):
    """Random weights of dims = (tokens, hidden, cond, heads, blocks), made on `device`."""

    def __init__(self, dims, device="cpu"):
        super().__init__()
        n, h, c, nh, nb = dims
        self.v, self.h, self.nh = n + 1, h, nh
        self.embed = torch.nn.Parameter(torch.randn(n + 1, h, device=device) * 0.02)
        self.map0 = torch.nn.Linear(256, c, device=device)
        self.map2 = torch.nn.Linear(c, c, device=device)
        self.blocks = torch.nn.ModuleList(Block(h, c, device) for _ in range(nb))
        self.norm_f = torch.nn.Parameter(torch.ones(h, device=device))
        self.out = torch.nn.Linear(h, n + 1, device=device)
        self.out_ada = torch.nn.Linear(c, 2 * h, device=device)

    def forward(self, x, sigma):
        b, L = x.shape
        h, nh = self.h, self.nh
        d = h // nh
        dev = x.device
        freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32, device=dev) / 128)
        a = sigma[:, None].float() * freqs[None]
        c = F.silu(self.map2(F.silu(self.map0(torch.cat([torch.cos(a), torch.sin(a)], -1)))))
        inv = 1.0 / (10000 ** (torch.arange(0, d, 2, device=dev).float() / d))
        th = torch.arange(L, device=dev).float()[:, None] * inv[None]
        th = torch.cat([th, th], -1)
        cos, sin = th.cos()[None, :, None, :], th.sin()[None, :, None, :]

        def rot(u):
            u1, u2 = u[..., : d // 2], u[..., d // 2:]
            return u * cos + torch.cat([-u2, u1], -1) * sin

        z = self.embed[x]
        for blk in self.blocks:
            m = blk.ada(c)[:, None, :].chunk(6, dim=2)
            y = F.layer_norm(z, [h]) * blk.norm1 * (1 + m[1]) + m[0]
            qkv = blk.attn_qkv(y).view(b, L, 3, nh, d)
            q, k, v = rot(qkv[:, :, 0]), rot(qkv[:, :, 1]), qkv[:, :, 2]
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1) @ v
            z = z + m[2] * blk.attn_out(att.transpose(1, 2).reshape(b, L, h))
            y = F.layer_norm(z, [h]) * blk.norm2 * (1 + m[4]) + m[3]
            z = z + m[5] * blk.fc2(F.gelu(blk.fc1(y), approximate="tanh"))
        shift, scale = self.out_ada(c)[:, None, :].chunk(2, dim=2)
        out = self.out(F.layer_norm(z, [h]) * self.norm_f * (1 + scale) + shift)
        out = out - torch.log(torch.expm1(sigma))[:, None, None] - math.log(self.v - 1)
        return torch.scatter(out, -1, x[..., None], torch.zeros_like(out[..., :1]))


def write_safetensors(path, named):
    """Writes (name, tensor) pairs to path as a safetensors file of BF16 tensors."""
    header, blobs, off = {}, [], 0
    for name, t in named:
        raw = t.detach().to(torch.bfloat16).contiguous().cpu().view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def released_names(m):
    """m's tensors under the names of the released checkpoints (SEDD's DDiT module)."""
    names = {"embed": "vocab_embed.embedding", "map0.weight": "sigma_map.mlp.0.weight",
             "map0.bias": "sigma_map.mlp.0.bias", "map2.weight": "sigma_map.mlp.2.weight",
             "map2.bias": "sigma_map.mlp.2.bias", "norm_f": "output_layer.norm_final.weight",
             "out.weight": "output_layer.linear.weight", "out.bias": "output_layer.linear.bias",
             "out_ada.weight": "output_layer.adaLN_modulation.weight",
             "out_ada.bias": "output_layer.adaLN_modulation.bias"}
    sub = {"norm1": "norm1.weight", "attn_qkv.weight": "attn_qkv.weight",
           "attn_out.weight": "attn_out.weight", "norm2": "norm2.weight",
           "fc1.weight": "mlp.0.weight", "fc1.bias": "mlp.0.bias", "fc2.weight": "mlp.2.weight",
           "fc2.bias": "mlp.2.bias", "ada.weight": "adaLN_modulation.weight",
           "ada.bias": "adaLN_modulation.bias"}
    for k, t in m.state_dict().items():
        if k.startswith("blocks."):
            _, i, rest = k.split(".", 2)
            yield f"blocks.{i}.{sub[rest]}", t
        else:
            yield names[k], t


def write(dirname, shape):
    torch.manual_seed(0)
    write_safetensors(f"{dirname}/model.safetensors", released_names(Sedd(SHAPES[shape])))
    with open(f"{dirname}/config.json", "w") as f:
        json.dump(config(shape), f)


NOISE_EPS = 1e-3  # the log-linear noise: total noise sigma(t) = -log(1 - (1 - eps) t)


def total_noise(t):
    return -math.log1p(-(1 - NOISE_EPS) * t)


def analytic_update(m, x, sigma, dsigma, drop_mask):
    """One analytic step of the absorbing graph at total noise sigma, moving back by dsigma
    (the denoiser: dsigma = sigma and the mask column dropped): the model's scores, staggered,
    times the transposed transition, then a Gumbel-max draw, as sampling.py does."""
    B, mask = x.shape[0], m.v - 1
    s = m(x, torch.full((B,), sigma, device=x.device)).exp()
    stag = s * math.exp(dsigma)
    stag[..., -1] += -math.expm1(dsigma) * s.sum(-1)
    tr = torch.where(x[..., None] == mask, -math.expm1(-dsigma), 0.0).expand_as(s).clone()
    tr[..., -1] = torch.where(x == mask, 1.0, 0.0)
    tr.scatter_(-1, x[..., None], torch.where(x[..., None] == mask, 1.0, math.exp(-dsigma)))
    p = stag * tr
    if drop_mask:
        p = p[..., :-1]
    g = 1e-10 - (torch.rand_like(p) + 1e-10).log()
    return (p / g).argmax(-1)


def sample_analytic(m, B, L, steps, denoise, device="cpu"):
    """B sequences of L tokens from all-mask: `steps` analytic predictor steps on
    linspace(1, 1e-5, steps + 1), then (denoise) the denoiser at t = 1e-5."""
    x = torch.full((B, L), m.v - 1, device=device)
    dt = (1 - 1e-5) / steps
    for i in range(steps):
        t = 1 - i * dt
        sc = total_noise(t)
        x = analytic_update(m, x, sc, sc - total_noise(t - dt), False)
    if denoise:
        sc = total_noise(1e-5)
        x = analytic_update(m, x, sc, sc, True)
    return x


def best_of(fn, repeats=2):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timing(shape, L, B, threads, steps, K):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = Sedd(SHAPES[shape]).eval()
    mask, eps = m.v - 1, NOISE_EPS

    def sample():
        return sample_analytic(m, B, L, steps, denoise=False)

    def score():
        x0 = torch.randint(0, mask, (B, L))
        for k in range(K):
            t = eps + (1 - eps) * (k + 0.5) / K
            sig = -math.log1p(-(1 - eps) * t)
            xt = torch.where(torch.rand(B, L) < -math.expm1(-sig), mask, x0)
            ls = m(xt, torch.full((B,), sig))
            r = 1 / math.expm1(sig)
            dse = ls[..., :-1].exp().sum(-1) - r * ls.gather(-1, x0[..., None])[..., 0] \
                + r * (math.log(r) - 1)
            (dse * (xt == mask)).sum(-1)

    with torch.inference_mode():
        ts = best_of(sample)
        tk = best_of(score)
    print(f"sample_steps_per_s={B * steps / ts:.4g} score_tokens_per_s={B * L / tk:.4g}")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        a = sys.argv[2:]
        timing(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]))
