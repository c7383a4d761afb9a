/** Summarises a .cpuprofile: top functions by self time (for looking at bench profiles). */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}
const file = process.argv[2]!;
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[] };
const total = profile.samples.length;
const byFn = new Map<string, number>();
for (const n of profile.nodes) {
  const url = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/\/work\/main\//, '');
  const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber}`;
  byFn.set(key, (byFn.get(key) ?? 0) + n.hitCount);
}
const byPkg = new Map<string, number>();
for (const n of profile.nodes) {
  const m = /node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(n.callFrame.url);
  const pkg = m
    ? m[1]!
    : n.callFrame.url.includes('/work/main/')
      ? 'project'
      : n.callFrame.url
        ? 'node:internal'
        : n.callFrame.functionName;
  byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + n.hitCount);
}
const top = (m: Map<string, number>, k: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([name, hits]) => `${((hits / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
console.log(`by package:\n${top(byPkg, 15).join('\n')}`);
console.log(`\nby function:\n${top(byFn, 30).join('\n')}`);
