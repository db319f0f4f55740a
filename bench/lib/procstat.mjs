/** CPU time and resident memory of a process, read from /proc (Linux). */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clkTck = 100;
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // 100 on every mainstream Linux
}

/** utime + stime of `pid` in seconds. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(rest[11]) + Number(rest[12])) / clkTck;
}

/** VmRSS of `pid` in MiB. */
export function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

/**
 * Samples a process every `intervalMs`: CPU% of one core over the sampled window and RSS
 * (max and last). `stop()` resolves the summary.
 */
export function sampleProcess(pid, intervalMs = 500) {
  const t0 = performance.now();
  const c0 = cpuSeconds(pid);
  let rssMax = rssMiB(pid) ?? 0;
  let rssLast = rssMax;
  const perSecond = [];
  let prev = { t: t0, c: c0 };
  const timer = setInterval(() => {
    try {
      const t = performance.now();
      const c = cpuSeconds(pid);
      const r = rssMiB(pid);
      if (r !== null) {
        rssLast = r;
        rssMax = Math.max(rssMax, r);
      }
      perSecond.push((100 * (c - prev.c)) / ((t - prev.t) / 1000));
      prev = { t, c };
    } catch {
      // process gone; stop() reports what was seen
    }
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      let c1 = prev.c;
      try {
        c1 = cpuSeconds(pid);
      } catch {
        // gone
      }
      const elapsed = (performance.now() - t0) / 1000;
      return { cpu_percent: (100 * (c1 - c0)) / elapsed, cpu_seconds: c1 - c0, elapsed_s: elapsed, cpu_percent_max_interval: perSecond.length ? Math.max(...perSecond) : null, rss_max_mib: rssMax, rss_last_mib: rssLast };
    },
  };
}
