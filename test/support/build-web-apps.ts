/**
 * Vitest global setup: builds the web apps (dist/web) once before any test file runs.
 * Test files that built them in their own beforeAll ran in parallel and rewrote the bundles
 * while another file's browser was loading them (esbuild does not write atomically).
 */
import { buildWebApps } from '../../scripts/build-web.js';

export default async function setup(): Promise<void> {
  await buildWebApps();
}
