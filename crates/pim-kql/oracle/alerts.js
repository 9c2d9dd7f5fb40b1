// Checks the alerting docs with Microsoft's Kusto parser (the oracle's pinned
// `@kusto/language-service-next`), issue 16:
// - every KQL query of docs/alerting.bicep (its ''' strings) and every ```kusto block of
//   docs/alerting.md parses and resolves without error against the two custom tables, whose
//   columns are read from the Bicep's `columns` and `runColumns`;
// - the column tables of docs/alerting.md ("The table `PimAudit_CL`", "The table `PimRun_CL`")
//   list exactly those columns, with those types;
// - the ```bicep block of docs/alerting.md is docs/alerting.bicep, byte for byte.
//
//   cd crates/pim-kql/oracle && npm ci && node alerts.js
//
// Exits 1 naming each problem. `format()` placeholders ({0}, {1}) are replaced by a number
// before parsing, as every placeholder in these queries stands for one.
'use strict';

require('@kusto/language-service-next/bridge.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.js');

const fs = require('fs');
const path = require('path');

const K = Kusto.Language;
const S = K.Symbols;
const DOCS = path.join(__dirname, '..', '..', '..', 'docs');
const bicep = fs.readFileSync(path.join(DOCS, 'alerting.bicep'), 'utf8');
const markdown = fs.readFileSync(path.join(DOCS, 'alerting.md'), 'utf8');
const problems = [];

// `var NAME = [ { name: 'X', type: 'y' } ... ]` -> [[X, y], ...]
function bicepColumns(name) {
  const m = bicep.match(new RegExp(`^var ${name} = \\[\\n([\\s\\S]*?)^\\]`, 'm'));
  if (!m) throw new Error(`docs/alerting.bicep has no \`var ${name} = [\``);
  return [...m[1].matchAll(/\{ name: '(\w+)', type: '(\w+)' \}/g)].map((c) => [c[1], c[2]]);
}

// The | `Column` | type | rows of the markdown section headed `## The table `NAME``.
function markdownColumns(table) {
  const start = markdown.indexOf('## The table `' + table + '`');
  if (start < 0) return null;
  const next = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/^\| `(\w+)` \| (\w+) \|/gm)].map((c) => [c[1], c[2]]);
}

const KUSTO_TYPE = { boolean: 'bool' };
function tableSymbol(name, columns) {
  const schema = '(' + columns.map(([c, t]) => `${c}:${KUSTO_TYPE[t] || t}`).join(', ') + ')';
  return new S.TableSymbol.$ctor7(name, schema, null);
}

const tables = {
  PimAudit_CL: bicepColumns('columns'),
  PimRun_CL: bicepColumns('runColumns'),
};
const database = new S.DatabaseSymbol.ctor(
  'workspace',
  Object.entries(tables).map(([name, columns]) => tableSymbol(name, columns)),
);
const globals = K.GlobalState.Default.WithDatabase(database);

function list(items) {
  if (Array.isArray(items)) return items;
  const out = [];
  for (let i = 0; i < items.Count; i++) out.push(items.getItem(i));
  return out;
}

// Errors (syntax and semantic) of one query, and the tables it reads.
function analyze(kql) {
  const code = K.KustoCode.ParseAndAnalyze(kql, globals);
  const errors = list(code.GetDiagnostics())
    .filter((d) => d.Severity === 'Error')
    .map((d) => d.Message);
  const read = new Set();
  K.Syntax.SyntaxElement.WalkElements(code.Syntax, (element) => {
    const symbol = element.ReferencedSymbol;
    if (symbol && symbol.Kind === S.SymbolKind.Table) read.add(symbol.Name);
  });
  return { errors, tables: [...read] };
}

// The check must be able to fail: an unknown column and a syntax error are both reported.
for (const broken of ['PimRun_CL | where NoSuchColumn > 0', 'PimRun_CL | where Status ==']) {
  if (analyze(broken).errors.length === 0) {
    problems.push(`the parser found no error in ${JSON.stringify(broken)}: the check is broken`);
  }
}

const queries = [];
for (const m of bicep.matchAll(/'''([\s\S]*?)'''/g)) {
  // Named by the `var` it is assigned to, or by the resource it sits in.
  const before = bicep.slice(0, m.index);
  const line = before.slice(before.lastIndexOf('\n') + 1);
  const owner = line.match(/var (\w+) =/) || [...before.matchAll(/^resource (\w+) /gm)].pop();
  queries.push({ where: `docs/alerting.bicep (${owner ? owner[1] : 'query'})`, kql: m[1] });
}
const bicepBlocks = [];
for (const m of markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
  if (m[1] === 'kusto') queries.push({ where: 'docs/alerting.md', kql: m[2] });
  if (m[1] === 'bicep') bicepBlocks.push(m[2]);
}

for (const { where, kql } of queries) {
  const text = kql.replace(/\{\d+\}/g, '2').trim();
  const { errors, tables: read } = analyze(text);
  const first = text.split('\n').find((l) => !l.startsWith('let ')) || text;
  const label = `${where}: query starting ${JSON.stringify(first)}`;
  for (const e of errors) problems.push(`${label}: ${e}`);
  if (read.length === 0) problems.push(`${label}: reads no known table`);
  console.log(`${errors.length === 0 ? 'ok  ' : 'FAIL'} ${label} (reads ${read.join(', ')})`);
}

for (const [table, columns] of Object.entries(tables)) {
  const documented = markdownColumns(table);
  if (documented === null) {
    problems.push(`docs/alerting.md has no section "## The table \`${table}\`"`);
  } else if (JSON.stringify(documented) !== JSON.stringify(columns)) {
    problems.push(
      `docs/alerting.md's columns of ${table} differ from docs/alerting.bicep's:\n` +
        `  md:    ${documented.map((c) => c.join(':')).join(' ')}\n` +
        `  bicep: ${columns.map((c) => c.join(':')).join(' ')}`,
    );
  } else {
    console.log(`ok   docs/alerting.md documents the ${columns.length} columns of ${table}`);
  }
}

if (bicepBlocks.length !== 1 || bicepBlocks[0] !== bicep) {
  problems.push('the ```bicep block of docs/alerting.md is not docs/alerting.bicep (copy the file into it)');
} else {
  console.log('ok   the ```bicep block of docs/alerting.md is docs/alerting.bicep');
}

console.log(`${queries.length} queries checked, ${problems.length} problems`);
for (const p of problems) console.error(`problem: ${p}`);
process.exit(problems.length === 0 ? 0 : 1);
