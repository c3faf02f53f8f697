#!/usr/bin/env node
// Merges the JSON documents bench/run.sh collected (caliprox_bench peak and
// model runs, ort_bench.js runs) into one results file and prints the tables
// described in bench/README.md.
//
//   node report.js --dir WORK_DIR --out RESULTS.json
// WORK_DIR holds peak_*.json, caliprox_<net>_b<B>_t<T>.json and
// ort_<net>_b<B>_t<T>.json.
'use strict';

const fs = require('fs');
const path = require('path');

// The targets: convolutions of at least this many MFLOP (batch 64)
// should reach at least this fraction of the measured FP32 peak.
const BIG_CONV_MFLOP = 50;
const PEAK_TARGET = 0.7;
// Below this CPU share (see cpuShare) the efficiency verdicts are marked as estimates.
const BUSY_SHARE = 0.8;
// The engine-speed target: caliprox no slower than ONNX Runtime.
const TARGET_RATIO = 1.0;

function parseArgs(argv) {
  const a = {};
  for (let i = 2; i < argv.length; i += 2) {
    if (argv[i] === '--dir') a.dir = argv[i + 1];
    else if (argv[i] === '--out') a.out = argv[i + 1];
    else throw new Error(`unknown argument '${argv[i]}' (expected --dir DIR --out FILE)`);
  }
  if (!a.dir || !a.out) throw new Error('usage: report.js --dir WORK_DIR --out RESULTS.json');
  return a;
}

function median(values) {
  const v = [...values].sort((x, y) => x - y);
  const mid = Math.floor(v.length / 2);
  return v.length === 0 ? 0 : v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// Columns: [header, align ('l' | 'r')]; rows: arrays of strings.
function table(columns, rows) {
  const widths = columns.map(([h], i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const cell = (text, i) => (columns[i][1] === 'l' ? String(text).padEnd(widths[i]) : String(text).padStart(widths[i]));
  const lines = [columns.map(([h], i) => cell(h, i)).join('  ').trimEnd()];
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) lines.push(r.map(cell).join('  ').trimEnd());
  return lines.join('\n');
}

const fmt = (x, digits = 3) => (x === undefined || x === null || Number.isNaN(x) ? '-' : x.toFixed(digits));

function compareOutputs(a, b) {
  if (JSON.stringify(a.shape) !== JSON.stringify(b.shape))
    return { max_abs_diff: null, note: `shapes differ: ${JSON.stringify(a.shape)} vs ${JSON.stringify(b.shape)}` };
  let maxDiff = 0;
  for (let i = 0; i < a.values.length; ++i) maxDiff = Math.max(maxDiff, Math.abs(a.values[i] - b.values[i]));
  // Top-1 agreement per sample ([N, classes] outputs).
  let agree = 0;
  const n = a.shape[0];
  const k = a.values.length / n;
  const argmax = (v, s) => {
    let best = s * k;
    for (let j = s * k; j < (s + 1) * k; ++j) if (v[j] > v[best]) best = j;
    return best;
  };
  for (let s = 0; s < n; ++s) if (argmax(a.values, s) === argmax(b.values, s)) ++agree;
  return { max_abs_diff: maxDiff, argmax_agree: agree, samples: n };
}

// Peak trials come from the dedicated measurements at the start and the end
// of the run and from the short samples caliprox_bench takes next to each
// configuration; the best trial is the machine's capability (a loaded trial
// can only be slower).
function loadPeak(dir) {
  const byThreads = {};
  const files = fs.readdirSync(dir).filter((f) => /^(peak_|caliprox_).*\.json$/.test(f)).sort();
  for (const f of files) {
    for (const p of readJson(path.join(dir, f)).peak || []) {
      const e = (byThreads[p.threads] ||= { threads: p.threads, isa: p.isa, trials_gflops: [], measurements: [] });
      e.trials_gflops.push(...p.trials_gflops);
      e.measurements.push({ file: f, median_gflops: p.median_gflops, max_gflops: p.max_gflops });
    }
  }
  for (const e of Object.values(byThreads)) {
    e.median_gflops = median(e.trials_gflops);
    e.max_gflops = Math.max(...e.trials_gflops);
  }
  // The reference for "fraction of peak": the best trial, or t times the best
  // single-thread trial when that is higher (t threads on t cores can do t
  // times one core's work; a busy machine rarely frees every core at once).
  const one = byThreads[1];
  for (const e of Object.values(byThreads))
    e.reference_gflops = Math.max(e.max_gflops, one ? e.threads * one.max_gflops : 0);
  return byThreads;
}

function collectConfigs(dir) {
  const nets = new Map();
  for (const f of fs.readdirSync(dir).sort()) {
    const m = /^(caliprox|ort)_(.+)_b(\d+)_t(\d+)\.json$/.exec(f);
    if (!m) continue;
    const [, tool, net, batch, threads] = m;
    const doc = readJson(path.join(dir, f));
    if (!nets.has(net)) nets.set(net, { network: net, model: doc.model, configs: new Map() });
    const key = `${batch}/${threads}`;
    const cfgs = nets.get(net).configs;
    if (!cfgs.has(key)) cfgs.set(key, { batch: Number(batch), threads: Number(threads) });
    const cfg = cfgs.get(key);
    cfg[tool] = doc.runs[0];
    if (tool === 'caliprox') {
      cfg.caliprox_backend = doc.backend;
      cfg.cpu = doc.cpu;
    }
    else cfg.ort_version = doc.version;
    cfg.warmup = doc.warmup;
    cfg.repeats = doc.repeats;
  }
  return nets;
}

// caliprox CPU ms per run: the timed loop's CPU time / runs when the JSON
// has it (see model_bench.h, LoopTotals), else the per-run median.
function caliproxCpuMs(run) {
  if (!run) return undefined;
  if (run.loop && run.samples_ms && run.samples_ms.length > 0) return run.loop.cpu_ms / run.samples_ms.length;
  return run.cpu_ms && run.cpu_ms.median;
}

function latencyTable(net) {
  const rows = [];
  for (const c of net.configs) {
    const cp = c.caliprox && c.caliprox.latency_ms;
    const ort = c.ort && c.ort.latency_ms;
    rows.push([
      c.batch, c.threads,
      fmt(cp && cp.median), cp ? `${fmt(cp.min)}/${fmt(cp.mad)}` : '-',
      fmt(ort && ort.median), ort ? `${fmt(ort.min)}/${fmt(ort.mad)}` : '-',
      cp && ort ? fmt(cp.median / ort.median, 2) : '-',
      fmt(caliproxCpuMs(c.caliprox)),
      fmt(c.ort && c.ort.cpu_ms && c.ort.cpu_ms.median),
      c.cpu_ratio === undefined ? '-' : fmt(c.cpu_ratio, 2),
      c.outputs && c.outputs.max_abs_diff !== null ? c.outputs.max_abs_diff.toExponential(1) : '-',
      c.outputs && c.outputs.samples ? `${c.outputs.argmax_agree}/${c.outputs.samples}` : '-',
    ]);
  }
  return table([['batch', 'r'], ['threads', 'r'], ['caliprox ms', 'r'], ['min/MAD', 'r'], ['ORT ms', 'r'],
                ['min/MAD', 'r'], ['ratio', 'r'], ['CPU ms', 'r'], ['ORT CPU ms', 'r'], ['CPU ratio', 'r'],
                ['max|diff|', 'r'], ['top-1 agree', 'r']], rows);
}

// ORT renames the convolutions it moves to its NCHWc layout or fuses, so a
// caliprox Conv is paired with the first not yet paired ORT convolution of the
// same input, weight and output shapes (then, failing that, of the same name).
function pairConvs(cpLayers, ortLayers) {
  const used = new Set();
  const key = (x, w, y) => JSON.stringify([x, w, y]);
  const pairs = new Map();
  for (const l of cpLayers || []) {
    if (!l.conv) continue;
    const want = key(l.conv.input, l.conv.weights, l.conv.output);
    let hit = (ortLayers || []).find((o, i) => !used.has(i) && /Conv/.test(o.op_type) &&
      key(o.input_shapes && o.input_shapes[0], o.input_shapes && o.input_shapes[1], o.output_shapes && o.output_shapes[0]) === want);
    if (!hit) hit = (ortLayers || []).find((o, i) => !used.has(i) && o.node === l.node);
    if (hit) {
      used.add(ortLayers.indexOf(hit));
      pairs.set(l.node, hit);
    }
  }
  return pairs;
}

// Share of its cores the timing session actually got: process CPU time over
// the timed loop / (wall time of the loop x threads) (per-run figures when an
// older JSON has no loop totals). Node times are wall times, so on a busy
// machine they include time the process spent preempted; dividing by this
// share estimates the time on the CPU (assuming preemption hits every node
// alike). 1 on a quiet machine.
function cpuShare(run) {
  const loop = run.layered_loop;
  if (loop && loop.wall_ms > 0) return Math.min(1, loop.cpu_ms / (loop.wall_ms * run.threads));
  if (!run.layered_cpu_ms || !run.layered_run_ms || run.layered_run_ms.median <= 0) return 1;
  return Math.min(1, run.layered_cpu_ms.median / (run.layered_run_ms.median * run.threads));
}

function convTable(c, peak) {
  const rows = [];
  const share = cpuShare(c.caliprox);
  const busy = share < BUSY_SHARE;
  const pairs = pairConvs(c.caliprox.layers, c.ort && c.ort.layers);
  let bigCount = 0;
  let bigOk = 0;
  for (const l of c.caliprox.layers || []) {
    if (!l.conv) continue;
    const frac = peak ? l.conv.gflops / peak.reference_gflops : undefined;
    const fracAdj = frac === undefined ? undefined : frac / share;
    const ort = pairs.get(l.node);
    const big = l.conv.mflop >= BIG_CONV_MFLOP;
    rows.push([l.node, l.conv.geometry, fmt(l.conv.mflop, 1), l.backend, fmt(l.ms.median), fmt(l.conv.gflops, 1),
               frac === undefined ? '-' : `${(100 * frac).toFixed(0)}%`,
               fracAdj === undefined ? '-' : `${(100 * fracAdj).toFixed(0)}%`,
               big ? (fracAdj >= PEAK_TARGET ? 'yes' : 'NO') + (busy ? '*' : '') : '', fmt(ort && ort.ms.median),
               ort ? fmt(l.ms.median / ort.ms.median, 2) : '-']);
    if (big) {
      ++bigCount;
      if (fracAdj >= PEAK_TARGET) ++bigOk;
    }
  }
  return table([['conv node', 'l'], ['geometry (X -> Y)', 'l'], ['MFLOP', 'r'], ['backend', 'l'], ['ms', 'r'],
                ['GFLOP/s', 'r'], ['%peak', 'r'], ['%peak/CPU share', 'r'], [`>=${BIG_CONV_MFLOP}MF: >=70%?`, 'l'],
                ['ORT ms', 'r'], ['ratio', 'r']], rows) +
    `\nCPU share of the timing session ${fmt(share, 2)}; ${bigOk} of ${bigCount} convolutions of >= ` +
    `${BIG_CONV_MFLOP} MFLOP reach ${100 * PEAK_TARGET}% of peak (after the CPU-share correction)` +
    (busy ? `\n* CPU share below ${BUSY_SHARE}: the machine was busy, the verdicts are estimates` : '');
}

// Where the time goes: caliprox nodes by median time (with backend), next to ORT's op-type totals.
function layerSummary(c) {
  const layers = [...(c.caliprox.layers || [])].sort((a, b) => b.ms.median - a.ms.median);
  const total = layers.reduce((s, l) => s + l.ms.median, 0);
  const rows = layers.slice(0, 8).map((l) => [l.node, l.op_type, l.backend, fmt(l.ms.median),
                                               `${(100 * l.ms.median / total).toFixed(0)}%`]);
  const byOp = (ls) => {
    const m = {};
    for (const l of ls || []) m[l.op_type] = (m[l.op_type] || 0) + l.ms.median;
    return Object.entries(m).sort((a, b) => b[1] - a[1]).map(([op, ms]) => `${op} ${fmt(ms)}`).join(', ');
  };
  return [table([['node (caliprox, slowest first)', 'l'], ['op', 'l'], ['backend', 'l'], ['ms', 'r'], ['share', 'r']], rows),
          `caliprox per op: ${byOp(c.caliprox.layers)}  (sum of node medians ${fmt(total)} ms, ` +
          `run ${fmt(c.caliprox.layered_run_ms && c.caliprox.layered_run_ms.median)} ms with timing on)`,
          `ORT per op:      ${byOp(c.ort && c.ort.layers)}`].join('\n');
}

// Every configuration of every network against the target (caliprox median
// latency <= ONNX Runtime's, same run); CPU ratios beside the wall ones.
function summaryTable(nets) {
  const rows = [];
  let met = 0;
  let judged = 0;
  const tiers = new Set();
  for (const net of nets) {
    for (const c of net.configs) {
      if (c.cpu) tiers.add(c.cpu);
      if (c.ratio === undefined) continue;
      judged += 1;
      if (c.ratio <= TARGET_RATIO) met += 1;
      rows.push([net.network, c.batch, c.threads, fmt(c.ratio, 2), c.cpu_ratio === undefined ? '-' : fmt(c.cpu_ratio, 2),
                 c.ratio <= TARGET_RATIO ? 'yes' : 'no']);
    }
  }
  const capped = [...tiers].some((t) => t.includes('capped'));
  return [`== summary: caliprox / ONNX Runtime latency (target <= ${TARGET_RATIO.toFixed(2)}); caliprox CPU tier: ` +
          `${[...tiers].join(', ')} ==` +
          (capped ? '\n(ONNX Runtime has no ISA cap: it runs at the native tier, so compute-bound layers compare the ' +
                    'capped tier against the native one)' : ''),
          table([['network', 'l'], ['batch', 'r'], ['threads', 'r'], ['ratio', 'r'], ['CPU ratio', 'r'], ['met', 'l']], rows),
          `${met} of ${judged} configurations met the target`].join('\n');
}

function main() {
  const args = parseArgs(process.argv);
  const peak = loadPeak(args.dir);
  const nets = collectConfigs(args.dir);
  const out = { peak: Object.values(peak), targets: { big_conv_mflop: BIG_CONV_MFLOP, peak_fraction: PEAK_TARGET }, networks: [] };
  const text = [];
  text.push('FP32 FMA peak (same run): ' + Object.values(peak).map((p) =>
    `${p.threads} thread(s) ${fmt(p.median_gflops, 1)} GFLOP/s median, ${fmt(p.max_gflops, 1)} best (${p.isa}, ` +
    `${p.trials_gflops.length} trials)`).join('; ') +
    '\nreference for %peak: ' + Object.values(peak).map((p) => `${p.threads} thread(s) ${fmt(p.reference_gflops, 1)}`).join(', ') +
    ' GFLOP/s (best trial, or threads x best 1-thread trial if higher)');
  for (const net of nets.values()) {
    net.configs = [...net.configs.values()].sort((a, b) => a.batch - b.batch || a.threads - b.threads);
    for (const c of net.configs) {
      if (c.caliprox && c.ort) {
        c.ratio = c.caliprox.latency_ms.median / c.ort.latency_ms.median;
        const cpu = caliproxCpuMs(c.caliprox);
        if (cpu !== undefined && c.ort.cpu_ms) c.cpu_ratio = cpu / c.ort.cpu_ms.median;
        c.outputs = compareOutputs(c.caliprox.output, c.ort.output);
      }
      // The compared values stay in the work folder's files (BENCH_KEEP=1):
      // a detector's batch-64 maps would not fit one results document.
      for (const run of [c.caliprox, c.ort]) if (run && run.output) delete run.output.values;
      const fallbacks = ((c.caliprox && c.caliprox.node_backends) || []).filter((n) => n.backend !== c.caliprox_backend);
      c.fallback_nodes = fallbacks;
    }
    const first = net.configs[0] || {};
    text.push('');
    text.push(`== ${net.network} (${net.model}) — caliprox ${first.caliprox_backend} vs ONNX Runtime ${first.ort_version}, ` +
              `median of ${first.repeats} runs after ${first.warmup} warm-up; caliprox CPU tier: ${first.cpu} ==`);
    text.push(latencyTable(net));
    const fb = new Set(net.configs.flatMap((c) => c.fallback_nodes.map((n) => `${n.node} (${n.backend})`)));
    text.push(fb.size ? `nodes not on ${first.caliprox_backend}: ${[...fb].join(', ')}` : `every node runs on ${first.caliprox_backend}`);
    for (const c of net.configs) {
      if (!c.caliprox || !c.caliprox.layers) continue;
      if (c.batch === Math.max(...net.configs.map((x) => x.batch))) {
        text.push('');
        text.push(`convolutions, batch ${c.batch}, ${c.threads} thread(s) (peak ${fmt(peak[c.threads] && peak[c.threads].reference_gflops, 1)} GFLOP/s):`);
        text.push(convTable(c, peak[c.threads]));
      }
      text.push('');
      text.push(`per-node time, batch ${c.batch}, ${c.threads} thread(s):`);
      text.push(layerSummary(c));
    }
    out.networks.push(net);
  }
  text.push('');
  text.push(summaryTable(out.networks));
  fs.writeFileSync(args.out, JSON.stringify(out, null, 1) + '\n');
  text.push('');
  text.push(`complete results: ${args.out}`);
  process.stdout.write(text.join('\n') + '\n');
}

try {
  main();
} catch (e) {
  process.stderr.write(`report: ${e.stack || e}\n`);
  process.exit(1);
}
