/**
 * Preloaded into the servers of `npm run bench -- chat-fanout` (ours and the
 * bare baseline) with `node --expose-gc --import bench/chat-fanout-probe.mjs`,
 * so memory is read from inside without touching the server's code. On
 * SIGUSR2 it runs two full garbage collections (what is left is live: the
 * connections, not the garbage of setting them up), waits for the heap to
 * settle, and prints one line on stdout:
 *
 *   {"chatFanoutProbe":{"rssKib":…,"heapUsedKib":…,"externalKib":…,"cpuUserUs":…,"cpuSystemUs":…}}
 */
const kib = (bytes) => Math.round(bytes / 1024);

process.on('SIGUSR2', () => {
  globalThis.gc?.();
  setTimeout(() => {
    globalThis.gc?.();
    setTimeout(() => {
      const mem = process.memoryUsage();
      const cpu = process.cpuUsage();
      process.stdout.write(
        `${JSON.stringify({
          chatFanoutProbe: {
            rssKib: kib(mem.rss),
            heapUsedKib: kib(mem.heapUsed),
            heapTotalKib: kib(mem.heapTotal),
            externalKib: kib(mem.external),
            gc: typeof globalThis.gc === 'function',
            cpuUserUs: cpu.user,
            cpuSystemUs: cpu.system,
          },
        })}\n`,
      );
    }, 200);
  }, 50);
});
