// Preload for `npm run bench` (scale part): samples process.memoryUsage() every 20 ms and, at exit, writes
// the peaks (MB) to $BENCH_MEM_OUT: which of heap, Buffers (external) and the rest of RSS grows with hosts.
// With $BENCH_SNAP_AT_MB, writes one heap snapshot ($BENCH_SNAP_FILE) the first time RSS crosses that many MB.
const fs = require('fs');
const v8 = require('v8');
const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
let snapped = false;
const t = setInterval(() => {
  const m = process.memoryUsage();
  for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
  if (!snapped && process.env.BENCH_SNAP_AT_MB && m.rss > Number(process.env.BENCH_SNAP_AT_MB) * 2 ** 20) {
    snapped = true;
    v8.writeHeapSnapshot(process.env.BENCH_SNAP_FILE || '/tmp/provision-bench.heapsnapshot');
  }
}, 20);
t.unref();
process.on('exit', () => {
  if (process.env.BENCH_MEM_OUT) fs.writeFileSync(process.env.BENCH_MEM_OUT, JSON.stringify(Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, +(v / 2 ** 20).toFixed(1)]))));
});
