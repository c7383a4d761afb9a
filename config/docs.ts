/** Renders the configuration reference from the schema. */
import { ConfigSchema, describeAllowed } from './schema.js';

type Prop = { description?: string; default?: unknown };

export function renderConfigDocs(): string {
  const props = ConfigSchema.properties as Record<string, Prop & Parameters<typeof describeAllowed>[0]>;
  const required = new Set<string>((ConfigSchema as { required?: string[] }).required ?? []);
  const rows = Object.entries(props).map(([name, schema]) => {
    const def =
      schema.default === undefined
        ? required.has(name)
          ? '(required)'
          : '(unset)'
        : schema.default === ''
          ? '(empty)'
          : `\`${String(schema.default)}\``;
    const desc = (schema.description ?? '').replaceAll('|', '\\|');
    return `| \`${name}\` | ${def} | ${describeAllowed(schema).replaceAll('|', '\\|')} | ${desc} |`;
  });
  return [
    '# Configuration',
    '',
    'Every setting is an environment variable, validated at start: a wrong value stops the server with one line',
    'naming the variable and what it allows. Empty counts as unset.',
    '',
    '<!-- Generated from config/schema.ts by `npm run docs:config`; a test fails if this file is stale. -->',
    '',
    '| variable | default | allowed | description |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
