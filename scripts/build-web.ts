/**
 * Builds the browser side: the client SDK as an ESM bundle with type
 * declarations (client-sdk/dist, hls.js and mediasoup-client left to the
 * consumer's bundler), and the web apps the server serves (dist/web: each
 * app's page and one bundle, those libraries included). `npm run build` runs it; tests call `buildWebApps()`.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The apps: `web/<name>/index.html`, `<name>.ts`, `<name>.css` (plus `web/common.css` for all). */
export const WEB_APPS = ['watch', 'studio', 'support'] as const;

export async function buildWebApps(outDir = join(root, 'dist/web')): Promise<void> {
  mkdirSync(join(outDir, 'assets'), { recursive: true });
  await build({
    entryPoints: Object.fromEntries(WEB_APPS.map((app) => [app, join(root, 'web', app, `${app}.ts`)])),
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    outdir: join(outDir, 'assets'),
    logLevel: 'warning',
  });
  copyFileSync(join(root, 'web', 'common.css'), join(outDir, 'assets', 'common.css'));
  for (const app of WEB_APPS) {
    copyFileSync(join(root, 'web', app, 'index.html'), join(outDir, `${app}.html`));
    copyFileSync(join(root, 'web', app, `${app}.css`), join(outDir, 'assets', `${app}.css`));
  }
}

export async function buildSdk(): Promise<void> {
  await build({
    entryPoints: [join(root, 'client-sdk/src/index.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    external: ['hls.js', 'mediasoup-client'],
    sourcemap: true,
    outfile: join(root, 'client-sdk/dist/index.js'),
    logLevel: 'warning',
  });
  execFileSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'client-sdk/tsconfig.json')],
    {
      stdio: 'inherit',
    },
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await buildSdk();
  await buildWebApps();
  process.stdout.write('built client-sdk/dist and dist/web\n');
}
