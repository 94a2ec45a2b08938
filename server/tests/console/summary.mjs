// Prints the accessibility violations the run found (lib.mjs writes them,
// one JSON object a line), grouped by rule: which pages, how many elements,
// and whether each is known (reported, not failed on) or new.
import fs from 'node:fs';

const file = process.argv[2];
const rows = fs.existsSync(file)
  ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
  : [];
if (rows.length === 0) {
  console.log('accessibility: axe-core found no violation on any page');
  process.exit(0);
}
const byRule = new Map();
for (const v of rows) {
  const key = `${v.impact} ${v.id}`;
  if (!byRule.has(key)) byRule.set(key, { help: v.help, known: v.known, pages: new Map() });
  byRule.get(key).pages.set(v.page, v.nodes.length);
}
console.log('accessibility: violations axe-core found (serious and critical ones not known fail their test)');
for (const [key, { help, known, pages }] of byRule) {
  console.log(`- ${key}: ${help}${known ? ` [known: ${known}]` : ''}`);
  for (const [page, n] of pages) console.log(`    ${page}: ${n} element(s)`);
}
