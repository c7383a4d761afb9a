/**
 * Writes docs/configuration.md from the config schema (`npm run docs:config`).
 * `test/config.test.ts` fails when the committed file differs, so the docs
 * cannot drift from the code.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderConfigDocs } from '../config/docs.js';

const target = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
writeFileSync(target, renderConfigDocs());
console.log(`wrote ${target}`);
