#!/usr/bin/env node
// The ONNX Runtime side of tests/ort_export_test.py: runs every case of a
// folder written by caliprox_export_cases (manifest.json) in ONNX Runtime's
// CPU provider with its default graph optimizations ('all', what a user of
// the exported file gets), writes each output as <case>.ort.f32 and prints
// one JSON object: {"onnxruntime": version, "cases": {name: {"ok": bool,
// "error": text}}}.
//
//   node ort_export_run.js CASE_DIR BENCH_DIR
'use strict';

const fs = require('fs');
const path = require('path');

async function main() {
  const [dir, benchDir] = process.argv.slice(2);
  if (!dir || !benchDir) {
    process.stderr.write('usage: node ort_export_run.js CASE_DIR BENCH_DIR\n');
    process.exit(2);
  }
  const ort = require(require.resolve('onnxruntime-node', { paths: [benchDir] }));
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const bytes = fs.readFileSync(path.join(dir, manifest.input.file));
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const feeds = { [manifest.input.name]: new ort.Tensor('float32', data, manifest.input.shape) };
  const options = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu'] };
  const result = { onnxruntime: ort.env.versions.common, cases: {} };
  for (const c of manifest.cases) {
    try {
      const session = await ort.InferenceSession.create(path.join(dir, c.model), options);
      const out = await session.run(feeds, [manifest.output]);
      const y = out[manifest.output];
      fs.writeFileSync(path.join(dir, `${c.name}.ort.f32`), Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
      result.cases[c.name] = { ok: true, dims: y.dims };
    } catch (e) {
      result.cases[c.name] = { ok: false, error: String(e && e.message ? e.message : e) };
    }
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ort_export_run: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
