"""The PyTorch peer of bench_gpt2.sh (benchmark-only): a plain GPT-2 (eval, fp32, random weights of
the given shape) timed on the same jobs as ours -- scoring (logits + log-softmax of the next
token) at B x T, and sampling N tokens with a KV cache at batch B. Prints one line per job:
"<job> <tokens per second>". Written for this benchmark; follows the GPT-2 definition in
shared/specs/gpt2.md section 2 (Conv1D weights [in, out], tanh GELU, pre-LN blocks).
latency_torch.py imports the model for the GPU timings (and writes its weights as a checkpoint)."""
import math
import sys
import time

import torch
import torch.nn.functional as F


class GPT2(torch.nn.Module):
    """Random weights (N(0, 0.02), unit norms, zero biases) made on `device`."""

    def __init__(self, L, H, C, V, NP, device="cpu"):
        super().__init__()
        self.L, self.H, self.C = L, H, C
        g = torch.Generator(device=device).manual_seed(0)
        r = lambda *s: torch.randn(*s, generator=g, device=device) * 0.02
        one = lambda n: torch.ones(n, device=device)
        zero = lambda n: torch.zeros(n, device=device)
        self.wte, self.wpe = r(V, C), r(NP, C)
        self.blocks = [dict(ln1w=one(C), ln1b=zero(C), attn_w=r(C, 3 * C),
                            attn_b=zero(3 * C), proj_w=r(C, C), proj_b=zero(C),
                            ln2w=one(C), ln2b=zero(C), fc_w=r(C, 4 * C),
                            fc_b=zero(4 * C), fcp_w=r(4 * C, C), fcp_b=zero(C))
                       for _ in range(L)]
        self.lnfw, self.lnfb = one(C), zero(C)

    def hf_names(self):
        """(name, tensor) pairs in the layout of the Hugging Face checkpoints (Conv1D [in, out])."""
        yield "wte.weight", self.wte
        yield "wpe.weight", self.wpe
        keys = (("ln1w", "ln_1.weight"), ("ln1b", "ln_1.bias"), ("attn_w", "attn.c_attn.weight"),
                ("attn_b", "attn.c_attn.bias"), ("proj_w", "attn.c_proj.weight"),
                ("proj_b", "attn.c_proj.bias"), ("ln2w", "ln_2.weight"), ("ln2b", "ln_2.bias"),
                ("fc_w", "mlp.c_fc.weight"), ("fc_b", "mlp.c_fc.bias"),
                ("fcp_w", "mlp.c_proj.weight"), ("fcp_b", "mlp.c_proj.bias"))
        for i, p in enumerate(self.blocks):
            for k, name in keys:
                yield f"h.{i}.{name}", p[k]
        yield "ln_f.weight", self.lnfw
        yield "ln_f.bias", self.lnfb

    def forward(self, ids, cache=None, past=0):
        B, T = ids.shape
        H, C, d = self.H, self.C, self.C // self.H
        x = self.wte[ids] + self.wpe[past:past + T]
        new_cache = []
        for i, p in enumerate(self.blocks):
            h = F.layer_norm(x, (C,), p["ln1w"], p["ln1b"], 1e-5)
            qkv = torch.addmm(p["attn_b"], h.view(-1, C), p["attn_w"]).view(B, T, 3, H, d)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B,H,T,d) each
            if cache is not None:
                k = torch.cat([cache[i][0], k], dim=2)
                v = torch.cat([cache[i][1], v], dim=2)
            new_cache.append((k, v))
            s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
            if T > 1:
                mask = torch.ones(T, past + T, dtype=torch.bool, device=ids.device).tril(past)
                s = s.masked_fill(~mask, float("-inf"))
            a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B * T, C)
            x = x + torch.addmm(p["proj_b"], a, p["proj_w"]).view(B, T, C)
            h = F.layer_norm(x, (C,), p["ln2w"], p["ln2b"], 1e-5)
            m = F.gelu(torch.addmm(p["fc_b"], h.view(-1, C), p["fc_w"]), approximate="tanh")
            x = x + torch.addmm(p["fcp_b"], m, p["fcp_w"]).view(B, T, C)
        x = F.layer_norm(x, (C,), self.lnfw, self.lnfb, 1e-5)
        return x @ self.wte.t(), new_cache


def nucleus(z, top_p):
    """Hugging Face's TopPLogitsWarper: the tokens outside the smallest set of highest
    probability whose mass reaches top_p get -inf."""
    sz, order = z.sort(dim=-1)
    drop = sz.softmax(-1).cumsum(-1) <= 1 - top_p
    drop[..., -1] = False
    return z.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def best(fn, repeats, warm=True):
    if warm:
        fn()  # warm-up
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main():
    L, H, C, V, NP, threads, repeats = map(int, sys.argv[1:8])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = GPT2(L, H, C, V, NP)
    with torch.inference_mode():
        for B, T in ((1, 1024), (8, 128)):
            ids = torch.randint(0, V - 1, (B, T))

            def score():
                logits, _ = m(ids)
                lp = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None])
                return lp.sum()

            print(f"score_B{B}_T{T} {B * T / best(score, repeats):.1f}", flush=True)
        N = 256
        for B, top_p in ((1, 1.0), (8, 1.0), (8, 0.95)):
            def sample():
                tok = torch.full((B, 1), V - 1, dtype=torch.long)
                cache, past = None, 0
                for _ in range(N):
                    logits, cache = m(tok, cache, past)
                    past += 1
                    z = logits[:, -1]
                    if top_p < 1:
                        z = nucleus(z, top_p)
                    tok = torch.multinomial(z.softmax(-1), 1)

            name = f"sample_B{B}" + ("_topp" if top_p < 1 else "")
            print(f"{name} {B * N / best(sample, 1, warm=False):.1f}", flush=True)


if __name__ == "__main__":
    main()
