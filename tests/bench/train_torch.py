"""The PyTorch peer of bench_train.sh (benchmark-only): training steps of the same model with the
optimisation `train` does, on random blocks, in fp32 --
  gpt2: GPT-2 (tied embeddings), next-token cross-entropy over B blocks of T tokens;
  sedd: SEDD (absorbing graph, log-linear noise), the score-entropy loss at t ~ U(1e-3, 1) per
        block (losses.py: masked positions, weighted by dsigma);
then backward, global gradient-norm clipping at 1 and AdamW (betas 0.9/0.95, weight decay 0.1 on
matrices and embeddings).
    python3 train_torch.py gpt2|sedd LAYERS HEADS WIDTH COND VOCAB T B STEPS THREADS REPEATS
prints "train_steps_per_s <steps per second>", the best of REPEATS timings of STEPS steps after a
warm-up step."""
import math
import sys
import time

import torch
import torch.nn.functional as F

from gpt2_torch import GPT2
from sedd_torch import NOISE_EPS, Sedd


def gpt2_loss(m, ids):
    logits, _ = m(ids)
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))


def sedd_loss(m, x0):
    B = x0.shape[0]
    mask = m.v - 1
    t = NOISE_EPS + (1 - NOISE_EPS) * torch.rand(B)
    sigma = -torch.log1p(-(1 - NOISE_EPS) * t)
    dsigma = (1 - NOISE_EPS) / (1 - (1 - NOISE_EPS) * t)
    xt = torch.where(torch.rand(x0.shape) < -torch.expm1(-sigma)[:, None], mask, x0)
    ls = m(xt, sigma)
    r = 1 / torch.expm1(sigma)[:, None]
    ent = ls[..., :-1].exp().sum(-1) - r * ls.gather(-1, x0[..., None])[..., 0] \
        + r * (torch.log(r) - 1)
    return (dsigma[:, None] * ent * (xt == mask)).sum(-1).mean()


def main():
    arch = sys.argv[1]
    L, H, C, cond, V, T, B, steps, threads, repeats = map(int, sys.argv[2:12])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if arch == "gpt2":
        m = GPT2(L, H, C, V, T)
        params = [t for _, t in m.hf_names()]
        for t in params:
            t.requires_grad_(True)
        loss_of = gpt2_loss
    else:
        m = Sedd((V, C, cond, H, L))
        params = list(m.parameters())
        loss_of = sedd_loss
    decay = [t for t in params if t.dim() == 2]
    no_decay = [t for t in params if t.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95))
    data = torch.randint(0, V, (steps + 1, B, T), generator=torch.Generator().manual_seed(1))

    def step(ids):
        loss = loss_of(m, ids)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step(data[steps])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in range(steps):
            step(data[s])
        best = min(best, time.perf_counter() - t0)
    print(f"train_steps_per_s {steps / best:.4f}", flush=True)


if __name__ == "__main__":
    main()
