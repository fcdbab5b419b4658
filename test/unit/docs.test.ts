/** The README is part of the product: its configuration table must say what the code does. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeSettings } from '../../src/config';

const readme = readFileSync(path.resolve(__dirname, '..', '..', 'README.md'), 'utf8');

function readmeRows(): Map<string, { default: string; meaning: string }> {
  const rows = new Map<string, { default: string; meaning: string }>();
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## The auditor'));
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Z_]+(?:<REGION>)?)` \| (.+?) \| (.+) \|$/.exec(line);
    if (m) rows.set(m[1] as string, { default: m[2] as string, meaning: m[3] as string });
  }
  return rows;
}

test('every setting of schemas/config.schema.json is in the README table with its default and meaning', () => {
  const rows = readmeRows();
  const settings = describeSettings();
  expect([...rows.keys()].sort()).toEqual(settings.map((s) => s.name).sort());
  for (const s of settings) {
    const row = rows.get(s.name);
    const expectedDefault = s.default === undefined ? '(unset)' : s.default === '' ? '(empty)' : `\`${String(s.default)}\``;
    expect({ name: s.name, default: row?.default, meaning: row?.meaning }).toEqual({
      name: s.name,
      default: expectedDefault,
      meaning: s.description,
    });
  }
});

test('the README names the two commands: start and test', () => {
  expect(readme).toContain('npm ci && npm start');
  expect(readme).toMatch(/^npm test\b/m);
});
