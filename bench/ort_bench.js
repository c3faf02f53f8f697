#!/usr/bin/env node
// ONNX Runtime side of the caliprox benchmark (bench/README.md): the same ONNX
// network, the same input batch (the raw float32 file caliprox_bench wrote),
// the same warm-up and repeat counts; prints one JSON document with latency
// statistics, the output values and (unless --no-layers) per-node times from
// ORT's profiler.
//
//   node ort_bench.js --model M.onnx --input input_b64.f32 --batch 64 [--input-shape C,H,W]
//                     [--threads 1,2] [--warmup 5] [--repeats 30]
//                     [--profile-dir DIR] [--no-layers] [--json FILE]
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');

function usage(message) {
  process.stderr.write(`ort_bench: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { sample: [], threads: [1, 2], warmup: 5, repeats: 30, layers: true, json: '', profileDir: '' };
  const positiveInt = (key, text) => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < (key === 'warmup' ? 0 : 1)) usage(`--${key}: expected an integer, found '${text}'`);
    return v;
  };
  for (let i = 2; i < argv.length; ++i) {
    const key = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${key} needs a value`);
      return argv[++i];
    };
    switch (key) {
      case '--model': args.model = value(); break;
      case '--input': args.input = value(); break;
      case '--batch': args.batch = positiveInt('batch', value()); break;
      case '--input-shape': args.sample = value().split(',').map((d) => positiveInt('input-shape', d)); break;
      case '--threads': args.threads = value().split(',').map((t) => positiveInt('threads', t)); break;
      case '--warmup': args.warmup = positiveInt('warmup', value()); break;
      case '--repeats': args.repeats = positiveInt('repeats', value()); break;
      case '--profile-dir': args.profileDir = value(); break;
      case '--no-layers': args.layers = false; break;
      case '--json': args.json = value(); break;
      default: usage(`unknown argument '${key}'`);
    }
  }
  for (const k of ['model', 'input', 'batch']) if (args[k] === undefined) usage(`--${k} is required`);
  return args;
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return 0;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

// Same summary as caliprox's util/stats (median, min, max, median absolute deviation).
function summarize(samples) {
  const m = median(samples);
  return {
    median: m,
    min: Math.min(...samples),
    max: Math.max(...samples),
    mad: median(samples.map((x) => Math.abs(x - m))),
    count: samples.length,
  };
}

// The raw float32 batch caliprox_bench wrote; `sample` is the shape of one
// sample (--input-shape), or empty for the square single-channel images of
// the bundled networks.
function readInput(file, batch, sample) {
  const bytes = fs.readFileSync(file);
  const count = bytes.length / 4;
  if (!Number.isInteger(count) || count % batch !== 0)
    usage(`${file}: ${bytes.length} bytes is not a float32 batch of ${batch}`);
  const per = count / batch;
  let dims = sample;
  if (dims.length === 0) {
    const side = Math.round(Math.sqrt(per));
    if (side * side !== per) usage(`${file}: ${per} values per image is not a square single-channel image`);
    dims = [1, side, side];
  }
  if (dims.reduce((a, b) => a * b, 1) !== per)
    usage(`${file}: ${per} values per sample, --input-shape ${dims.join(',')} holds ${dims.reduce((a, b) => a * b, 1)}`);
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return new ort.Tensor('float32', data, [batch, ...dims]);
}

function sessionOptions(threads, profilePrefix) {
  const o = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
    // Errors only: third-party exports draw warnings (unused initializers) on every session.
    logSeverityLevel: 3,
  };
  if (profilePrefix) {
    o.enableProfiling = true;
    o.profileFilePrefix = profilePrefix;
  }
  return o;
}

async function timeRuns(session, feeds, warmup, repeats) {
  for (let i = 0; i < warmup; ++i) await session.run(feeds);
  const samples = [];
  const cpu = [];
  let last;
  for (let i = 0; i < repeats; ++i) {
    // Process CPU time (user + system, every thread), as caliprox_bench records it.
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    last = await session.run(feeds);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { samples, cpu, last };
}

// Per-node kernel times from ORT's Chrome-trace profile: one "<node>_kernel_time"
// event per node per run; the warm-up runs come first and are dropped.
function profileLayers(file, warmup) {
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  const nodes = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const node = e.name.slice(0, -'_kernel_time'.length);
    if (!nodes.has(node)) {
      // *_type_shape: [{"float": [dims]}, ...]; lets report.js pair nodes ORT
      // renamed (NCHWc layout, fusions) with caliprox's by their shapes.
      const shapes = (list) => (list || []).map((o) => Object.values(o)[0]);
      nodes.set(node, {
        node,
        op_type: e.args.op_name,
        provider: e.args.provider,
        input_shapes: shapes(e.args.input_type_shape),
        output_shapes: shapes(e.args.output_type_shape),
        us: [],
      });
    }
    nodes.get(node).us.push(e.dur);
  }
  return [...nodes.values()].map((n) => ({
    node: n.node,
    op_type: n.op_type,
    provider: n.provider,
    input_shapes: n.input_shapes,
    output_shapes: n.output_shapes,
    ms: summarize(n.us.slice(warmup).map((us) => us / 1000)),
  }));
}

async function benchOne(args, input, threads) {
  const feeds = {};
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(args.model, sessionOptions(threads, ''));
  const createMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (session.inputNames.length !== 1) usage(`${args.model}: expected one input, found ${session.inputNames.length}`);
  feeds[session.inputNames[0]] = input;
  const { samples, cpu, last } = await timeRuns(session, feeds, args.warmup, args.repeats);
  const outName = session.outputNames[0];
  const out = last[outName];
  const run = {
    batch: args.batch,
    threads,
    create_ms: createMs,
    latency_ms: summarize(samples),
    samples_ms: samples,
    cpu_ms: summarize(cpu),
    cpu_samples_ms: cpu,
    output: { name: outName, shape: out.dims, values: Array.from(out.data) },
  };
  await session.release();
  if (!args.layers) return run;

  // A second session with the profiler on, so the end-to-end figures above
  // carry no profiling overhead.
  const dir = args.profileDir || fs.mkdtempSync(path.join(os.tmpdir(), 'ort-profile-'));
  fs.mkdirSync(dir, { recursive: true });
  const tag = `ort_${path.basename(args.model, '.onnx')}_b${args.batch}_t${threads}_${process.pid}`;
  const prof = await ort.InferenceSession.create(args.model, sessionOptions(threads, path.join(dir, tag)));
  const profiled = await timeRuns(prof, feeds, args.warmup, args.repeats);
  prof.endProfiling();
  await prof.release();
  const file = fs.readdirSync(dir).filter((f) => f.startsWith(tag) && f.endsWith('.json')).sort().pop();
  if (!file) throw new Error(`no ORT profile file ${tag}*.json in ${dir}`);
  run.layered_run_ms = summarize(profiled.samples);
  run.layers = profileLayers(path.join(dir, file), args.warmup);
  if (!args.profileDir) fs.rmSync(dir, { recursive: true, force: true });
  return run;
}

async function main() {
  const args = parseArgs(process.argv);
  const input = readInput(args.input, args.batch, args.sample);
  const runs = [];
  for (const threads of args.threads) {
    const run = await benchOne(args, input, threads);
    process.stderr.write(`ort ${args.model} batch ${args.batch} threads ${threads}: median ` +
                         `${run.latency_ms.median.toFixed(3)} ms over ${run.latency_ms.count} runs\n`);
    runs.push(run);
  }
  const doc = {
    tool: 'onnxruntime',
    version: ort.env.versions.node,
    model: args.model,
    input: args.input,
    warmup: args.warmup,
    repeats: args.repeats,
    runs,
  };
  const text = JSON.stringify(doc) + '\n';
  if (args.json) fs.writeFileSync(args.json, text);
  else process.stdout.write(text);
}

main().catch((e) => {
  process.stderr.write(`ort_bench: ${e.stack || e}\n`);
  process.exit(1);
});
