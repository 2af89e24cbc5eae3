"""The PyTorch peer of bench_gpt2.sh (benchmark-only): a plain GPT-2 (eval, fp32, random weights of
the given shape) timed on the same jobs as ours -- scoring (logits + log-softmax of the next
token) at B x T, and sampling N tokens with a KV cache at batch B. Prints one line per job:
"<job> <tokens per second>". Written for this benchmark; follows the GPT-2 definition in
shared/specs/gpt2.md section 2 (Conv1D weights [in, out], tanh GELU, pre-LN blocks)."""
import math
import sys
import time

import torch
import torch.nn.functional as F


class GPT2(torch.nn.Module):
    def __init__(self, L, H, C, V, NP):
        super().__init__()
        self.L, self.H, self.C = L, H, C
        g = torch.Generator().manual_seed(0)
        r = lambda *s: torch.randn(*s, generator=g) * 0.02
        self.wte, self.wpe = r(V, C), r(NP, C)
        self.blocks = [dict(ln1w=torch.ones(C), ln1b=torch.zeros(C), attn_w=r(C, 3 * C),
                            attn_b=torch.zeros(3 * C), proj_w=r(C, C), proj_b=torch.zeros(C),
                            ln2w=torch.ones(C), ln2b=torch.zeros(C), fc_w=r(C, 4 * C),
                            fc_b=torch.zeros(4 * C), fcp_w=r(4 * C, C), fcp_b=torch.zeros(C))
                       for _ in range(L)]
        self.lnfw, self.lnfb = torch.ones(C), torch.zeros(C)

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
                mask = torch.ones(T, past + T, dtype=torch.bool).tril(past)
                s = s.masked_fill(~mask, float("-inf"))
            a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B * T, C)
            x = x + torch.addmm(p["proj_b"], a, p["proj_w"]).view(B, T, C)
            h = F.layer_norm(x, (C,), p["ln2w"], p["ln2b"], 1e-5)
            m = F.gelu(torch.addmm(p["fc_b"], h.view(-1, C), p["fc_w"]), approximate="tanh")
            x = x + torch.addmm(p["fcp_b"], m, p["fcp_w"]).view(B, T, C)
        x = F.layer_norm(x, (C,), self.lnfw, self.lnfb, 1e-5)
        return x @ self.wte.t(), new_cache


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
        for B in (1, 8):
            def sample():
                tok = torch.full((B, 1), V - 1, dtype=torch.long)
                cache, past = None, 0
                for _ in range(N):
                    logits, cache = m(tok, cache, past)
                    past += 1
                    tok = torch.multinomial(logits[:, -1].softmax(-1), 1)

            print(f"sample_B{B} {B * N / best(sample, 1, warm=False):.1f}", flush=True)


if __name__ == "__main__":
    main()
