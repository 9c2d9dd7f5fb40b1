// The test oracle of pim-kql: Microsoft's own Kusto parser (`@kusto/language-service-next`,
// pinned in package.json) reads queries and reports, for each, its syntax errors, its other
// errors, and the tables it reads by Kusto's own name resolution.
//
// Input on stdin: one JSON object per line, {"id": "...", "kql": "..."}, or
// {"id": "...", "builtins": true} for the catalogue of built-in functions and aggregates.
// Output on stdout: one JSON object per line, in input order:
//   {"id", "syntax": [messages], "errors": [messages], "tables": [names], "other": [kind:name],
//    "tail": [the last two operators of the last statement, right-most first, spaces removed]}
//   or {"id", "builtins": [names]}
// `other` lists references to databases, clusters, materialized views, entity groups and
// stored query results. With `--builtins`, prints the names of the built-in functions and
// aggregates instead, one per line (how src/builtins.rs was generated).
//
// One process reads the whole corpus: the parser takes about a second to load.
'use strict';

require('@kusto/language-service-next/bridge.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.js');

const K = Kusto.Language;
const S = K.Symbols;
const readline = require('readline');

const AUDIT_LOGS =
  '(TimeGenerated:datetime, ActivityDateTime:datetime, OperationName:string, ActivityDisplayName:string, ' +
  'Category:string, LoggedByService:string, Result:string, ResultReason:string, ResultDescription:string, ' +
  'AADOperationType:string, Identity:string, CorrelationId:string, Id:string, InitiatedBy:dynamic, ' +
  'TargetResources:dynamic, AdditionalDetails:dynamic, SourceSystem:string, TenantId:string, Type:string)';
const AZURE_ACTIVITY =
  '(TimeGenerated:datetime, Caller:string, CallerIpAddress:string, OperationName:string, OperationNameValue:string, ' +
  'ActivityStatus:string, ActivityStatusValue:string, ActivitySubstatusValue:string, Category:string, ' +
  'CategoryValue:string, Level:string, ResourceProviderValue:string, ResourceGroup:string, SubscriptionId:string, ' +
  '_ResourceId:string, ResourceId:string, CorrelationId:string, OperationId:string, EventDataId:string, ' +
  'EventSubmissionTimestamp:datetime, ' +
  'Properties:string, Properties_d:dynamic, Claims:string, Claims_d:dynamic, Authorization:string, ' +
  'Authorization_d:dynamic, HTTPRequest:string, TenantId:string, Type:string)';
// Tables the policy refuses: they exist in a real workspace, so Kusto resolves them.
const OTHER = '(TimeGenerated:datetime, Id:string, UserPrincipalName:string, Caller:string, OperationName:string, Computer:string, Type:string)';
const OTHER_TABLES = [
  'SigninLogs', 'AADNonInteractiveUserSignInLogs', 'OfficeActivity', 'Heartbeat', 'SecurityEvent',
  'Usage', 'IdentityInfo', 'Syslog', 'AzureDiagnostics', 'SecurityAlert', 'Perf', 'Event',
  'AppTraces', 'StorageBlobLogs', 'KeyVaultData',
];

function table(name, schema) {
  return new S.TableSymbol.$ctor7(name, schema, null);
}

const members = [table('AuditLogs', AUDIT_LOGS), table('AzureActivity', AZURE_ACTIVITY)];
for (const name of OTHER_TABLES) members.push(table(name, OTHER));
const database = new S.DatabaseSymbol.ctor('workspace', members);
const globals = K.GlobalState.Default.WithDatabase(database);

function list(items) {
  if (Array.isArray(items)) return items;
  const out = [];
  for (let i = 0; i < items.Count; i++) out.push(items.getItem(i));
  return out;
}

function analyze(kql) {
  const code = K.KustoCode.ParseAndAnalyze(kql, globals);
  const syntax = list(code.GetSyntaxDiagnostics()).map((d) => d.Message);
  const errors = list(code.GetDiagnostics())
    .filter((d) => d.Severity === 'Error')
    .map((d) => d.Message);
  const tables = new Set();
  const other = new Set();
  K.Syntax.SyntaxElement.WalkElements(code.Syntax, (element) => {
    const symbol = element.ReferencedSymbol;
    if (!symbol) return;
    switch (symbol.Kind) {
      case S.SymbolKind.Table:
        if (symbol.Name) tables.add(symbol.Name);
        break;
      case S.SymbolKind.Database:
      case S.SymbolKind.Cluster:
      case S.SymbolKind.MaterializedView:
      case S.SymbolKind.EntityGroup:
      case S.SymbolKind.StoredQueryResult:
        other.add(`${symbol.Kind}:${symbol.Name}`);
        break;
      default:
    }
  });
  return { syntax, errors, tables: [...tables].sort(), other: [...other].sort(), tail: tail(code) };
}

// The last operators of the last statement, right-most first, without spaces ("take1000"):
// where Kusto, not the checker, sees the row cap.
function tail(code) {
  const statements = code.Syntax.Statements;
  if (!statements || statements.Count === 0) return [];
  const last = statements.getItem(statements.Count - 1).Element;
  const ops = [];
  let e = last && last.Expression;
  while (e && e.Kind === K.Syntax.SyntaxKind.PipeExpression && ops.length < 2) {
    ops.push(e.Operator.ToString().replace(/\s+/g, ''));
    e = e.Expression;
  }
  return ops;
}

function builtins() {
  const names = new Set([...list(K.Functions.All), ...list(K.Aggregates.All)].map((s) => s.Name));
  return [...names].sort();
}

if (process.argv.includes('--builtins')) {
  process.stdout.write(builtins().join('\n') + '\n');
} else {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  const out = [];
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const request = JSON.parse(line);
    if (request.builtins) {
      out.push(JSON.stringify({ id: request.id, builtins: builtins() }));
    } else {
      out.push(JSON.stringify({ id: request.id, ...analyze(request.kql) }));
    }
  });
  rl.on('close', () => {
    process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
  });
}
