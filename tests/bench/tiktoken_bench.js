// tiktoken_bench: throughput of tiktoken's GPT-2 encoder (Rust core compiled to WebAssembly)
// on one file, as the peer of bench_bpe. Usage: node tiktoken_bench.js FILE [REPEATS]
// Uses encode_ordinary (no special tokens), as OpenAI's encoder.py does. Prints:
//   tiktoken bytes=B tokens=T seconds=S mbps=M
"use strict";
const fs = require("fs");
const path = require("path");
const { get_encoding } = require(path.join(__dirname, "node_modules", "tiktoken"));

const file = process.argv[2];
const repeats = Number(process.argv[3] || 3);
const buf = fs.readFileSync(file);
const text = buf.toString("utf8");
const enc = get_encoding("gpt2");
enc.encode_ordinary(text.slice(0, 100000)); // warm-up: WebAssembly tiering, regex compilation

let best = Infinity, tokens = 0;
for (let r = 0; r < repeats; r++) {
  const t0 = process.hrtime.bigint();
  const ids = enc.encode_ordinary(text);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  tokens = ids.length;
  if (dt < best) best = dt;
}
if (process.env.TIKTOKEN_IDS) {
  const ids = enc.encode_ordinary(text);
  fs.writeFileSync(process.env.TIKTOKEN_IDS, Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength));
}
enc.free();
console.log(`tiktoken bytes=${buf.length} tokens=${tokens} seconds=${best.toFixed(4)} mbps=${(buf.length / best / 1e6).toFixed(2)}`);
