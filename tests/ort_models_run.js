#!/usr/bin/env node
// The ONNX Runtime side of tests/ort_models_test.py: runs one model on the
// inputs a manifest names (raw little-endian files) in ONNX Runtime's CPU
// provider, writes every output as OUT_DIR/<index>.bin and prints one JSON
// object: {"onnxruntime": version, "outputs": [{"name", "type", "dims",
// "file"}]} or {"error": text}.
//
//   node ort_models_run.js MANIFEST.json OUT_DIR BENCH_DIR
'use strict';

const fs = require('fs');
const path = require('path');

const ARRAYS = {
  float32: Float32Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array
};

async function main() {
  const [manifestPath, outDir, benchDir] = process.argv.slice(2);
  if (!manifestPath || !outDir || !benchDir) {
    process.stderr.write('usage: node ort_models_run.js MANIFEST.json OUT_DIR BENCH_DIR\n');
    process.exit(2);
  }
  const ort = require(require.resolve('onnxruntime-node', {paths: [benchDir]}));
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  const feeds = {};
  for (const input of manifest.inputs) {
    const bytes = fs.readFileSync(input.file);
    const Array = ARRAYS[input.type];
    if (!Array) throw new Error(`input ${input.name}: type ${input.type} is not handled`);
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    feeds[input.name] = new ort.Tensor(input.type, new Array(copy), input.shape);
  }
  const options =
      {intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu']};
  const result = {onnxruntime: ort.env.versions.common, outputs: []};
  try {
    const session = await ort.InferenceSession.create(manifest.model, options);
    const out = await session.run(feeds);
    session.outputNames.forEach((name, i) => {
      const y = out[name];
      const file = path.join(outDir, `${i}.bin`);
      fs.writeFileSync(file, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
      result.outputs.push({name, type: y.type, dims: y.dims, file});
    });
  } catch (e) {
    result.error = String(e && e.message ? e.message : e);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`ort_models_run: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
