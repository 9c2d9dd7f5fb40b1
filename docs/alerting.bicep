// PIM audit alerting: custom tables, data collection rule, role assignment, action groups and
// log search alert rules, on the findings (PimAudit_CL) and on the job's own health
// (PimRun_CL, one heartbeat row per run). Deploy into the resource group of an existing Log
// Analytics workspace:
//
//   az deployment group create -g <rg> -f docs/alerting.bicep \
//     -p workspaceName=<workspace> principalId=<object id of the identity running pim-batch> \
//        alertEmail=secops@contoso.com runIntervalHours=1
//
// Outputs: the three values pim-batch needs (PIM_DCR_ENDPOINT, PIM_DCR_RULE_ID, PIM_DCR_STREAM),
// and the heartbeat's stream. See docs/alerting.md for what each piece does.

@description('Name of the existing Log Analytics workspace (same resource group).')
param workspaceName string

@description('Object id (not client id) of the identity that runs pim-batch: a managed identity or service principal.')
param principalId string

@description('principalType of that identity.')
@allowed(['ServicePrincipal', 'User', 'Group'])
param principalType string = 'ServicePrincipal'

@description('E-mail address the action group notifies.')
param alertEmail string

@description('Region of the data collection rule; must be the workspace region.')
param location string = resourceGroup().location

@description('Name of the data collection rule.')
param dcrName string = 'dcr-pim-audit'

@description('Name of the action group.')
param actionGroupName string = 'ag-pim-audit'

@description('Alert severity, 0 (critical) to 4 (verbose).')
@minValue(0)
@maxValue(4)
param severity int = 1

@description('How often the alert rule runs, and how far back it looks. Keep it >= the pim-batch schedule interval.')
param evaluationFrequency string = 'PT1H'
param windowSize string = 'PT1H'

@description('Deploy the job-health rules enabled (stalled, failed, model failures, input problems). They read the heartbeat rows of PimRun_CL: with a pim-batch that does not write them yet, the stalled rule fires; deploy with false until it does.')
param enableHealthAlerts bool = true

@description('How often pim-batch is scheduled, in hours. The stalled rule fires when no run has succeeded in twice this.')
@minValue(1)
@maxValue(24)
param runIntervalHours int = 1

@description('The model-failures rule fires for a run whose failed model calls are more than this percentage of its model calls.')
@minValue(0)
@maxValue(99)
param modelFailurePercent int = 10

@description('The input-problems rule fires for a run with more input problems than this (unreadable or duplicate rows, summary.problems of the report).')
@minValue(0)
param inputProblemThreshold int = 10

@description('E-mail address for the job-health alerts (the people who run the job); by default the findings address.')
param opsEmail string = alertEmail

@description('Name of the action group of the job-health alerts.')
param opsActionGroupName string = 'ag-pim-audit-ops'

@description('Severity of the stalled and failed rules (no audit is happening); 0 (critical) to 4 (verbose).')
@minValue(0)
@maxValue(4)
param healthSeverity int = 1

@description('Severity of the model-failures and input-problems rules (the audit ran, on weaker evidence).')
@minValue(0)
@maxValue(4)
param degradedSeverity int = 2

var tableName = 'PimAudit_CL'
var streamName = 'Custom-PimAudit_CL'

// The columns of AuditRow (crates/pim-deliver/src/row.rs), in order.
var columns = [
  { name: 'TimeGenerated', type: 'datetime' }
  { name: 'ReportId', type: 'string' }
  { name: 'ActivationId', type: 'string' }
  { name: 'PrincipalUpn', type: 'string' }
  { name: 'PrincipalObjectId', type: 'string' }
  { name: 'PrincipalName', type: 'string' }
  { name: 'RoleName', type: 'string' }
  { name: 'RoleKind', type: 'string' }
  { name: 'ScopeKind', type: 'string' }
  { name: 'ScopeId', type: 'string' }
  { name: 'WindowStart', type: 'datetime' }
  { name: 'WindowEnd', type: 'datetime' }
  { name: 'EndReason', type: 'string' }
  { name: 'Verdict', type: 'string' }
  { name: 'Risk', type: 'string' }
  { name: 'Flags', type: 'dynamic' }
  { name: 'Tickets', type: 'dynamic' }
  { name: 'Assessor', type: 'string' }
  { name: 'Rationale', type: 'string' }
  { name: 'Error', type: 'string' }
  { name: 'ActivityCount', type: 'long' }
  { name: 'IsFinding', type: 'boolean' }
  { name: 'Justification', type: 'string' }
  { name: 'Revision', type: 'long' }
]

var runTableName = 'PimRun_CL'
var runStreamName = 'Custom-PimRun_CL'

// The heartbeat row of each run, the run summary (docs/alerting.md, "The table PimRun_CL").
// pim-batch does not write it yet: the writer is a later part of issue 16.
var runColumns = [
  { name: 'TimeGenerated', type: 'datetime' }
  { name: 'RunId', type: 'string' }
  { name: 'Status', type: 'string' }
  { name: 'StartedAt', type: 'datetime' }
  { name: 'EndedAt', type: 'datetime' }
  { name: 'DurationMs', type: 'long' }
  { name: 'Activations', type: 'long' }
  { name: 'Findings', type: 'long' }
  { name: 'ModelCalls', type: 'long' }
  { name: 'ModelFailures', type: 'long' }
  { name: 'InputProblems', type: 'long' }
  { name: 'Queries', type: 'long' }
  { name: 'Version', type: 'string' }
  { name: 'Host', type: 'string' }
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: tableName
  properties: {
    plan: 'Analytics' // log search alerts need the Analytics plan
    retentionInDays: 90
    schema: {
      name: tableName
      columns: columns
    }
  }
}

resource runTable 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: runTableName
  properties: {
    plan: 'Analytics' // log search alerts need the Analytics plan
    retentionInDays: 90
    schema: {
      name: runTableName
      columns: runColumns
    }
  }
}

// kind Direct: the rule has its own logs ingestion endpoint, no separate DCE needed.
resource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: dcrName
  location: location
  kind: 'Direct'
  properties: {
    streamDeclarations: {
      '${streamName}': {
        columns: columns
      }
      '${runStreamName}': {
        columns: runColumns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [streamName]
        destinations: ['workspace']
        transformKql: 'source'
        outputStream: streamName
      }
      // The heartbeat: one row per run, unchanged, into PimRun_CL.
      {
        streams: [runStreamName]
        destinations: ['workspace']
        transformKql: 'source'
        outputStream: runStreamName
      }
    ]
  }
  dependsOn: [table, runTable]
}

// Monitoring Metrics Publisher, scoped to this rule only.
var monitoringMetricsPublisher = subscriptionResourceId(
  'Microsoft.Authorization/roleDefinitions',
  '3913510d-42f4-4e42-8a64-420c390055eb'
)

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: dcr
  name: guid(dcr.id, principalId, monitoringMetricsPublisher)
  properties: {
    roleDefinitionId: monitoringMetricsPublisher
    principalId: principalId
    principalType: principalType
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  properties: {
    groupShortName: 'pimaudit' // at most 12 characters
    enabled: true
    emailReceivers: [
      {
        name: 'security-team'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource alertRule 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'PIM activation findings'
  location: location
  properties: {
    displayName: 'PIM activation findings'
    description: 'A PIM activation whose activity does not fit its justification, or is high risk (rows written by pim-batch --send logs-ingestion).'
    severity: severity
    enabled: true
    scopes: [workspace.id]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    criteria: {
      allOf: [
        {
          query: '''
PimAudit_CL
| where IsFinding and (Risk in ("high", "critical") or Verdict != "aligned")
| summarize Activations = count(), Verdicts = make_set(Verdict), Risks = make_set(Risk),
            ActivationIds = make_set(ActivationId, 20), ReportId = take_any(ReportId)
            by PrincipalUpn, RoleName
'''
          timeAggregation: 'Count'
          dimensions: [
            { name: 'PrincipalUpn', operator: 'Include', values: ['*'] }
            { name: 'RoleName', operator: 'Include', values: ['*'] }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: [actionGroup.id]
    }
  }
  dependsOn: [table]
}

// ---- Alerts on the job's own health, over the heartbeat rows of PimRun_CL ----

resource opsActionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: opsActionGroupName
  location: 'global'
  properties: {
    groupShortName: 'pimauditops' // at most 12 characters
    enabled: true
    emailReceivers: [
      {
        name: 'job-operators'
        emailAddress: opsEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Multi-line strings take no interpolation, so the parameters go in with format(): {0}, {1}.
//
// Stalled: no run with Status "succeeded" for twice the schedule interval. The query reads two
// days (overrideQueryTimeRange), so the rows show the last run and the last success; an empty
// table (no heartbeat at all) summarizes to one row of nulls and fires too. It resolves itself
// once a run succeeds.
var stalledQuery = format('''
let stall = {0}h;
PimRun_CL
| summarize LastSuccess = maxif(TimeGenerated, Status == "succeeded"), LastRun = max(TimeGenerated),
            Runs = count(), FailedRuns = countif(Status == "failed")
| where isnull(LastSuccess) or LastSuccess < ago(stall)
''', 2 * runIntervalHours)

// The three per-run rules look at each heartbeat once: by the time it arrived in the workspace
// (ingestion_time(), within the last evaluation period), not by TimeGenerated, so a row that
// arrives a few minutes late is neither missed nor reported twice. The hour of windowSize lets
// rows be up to 45 minutes late.
var failedQuery = '''
PimRun_CL
| where ingestion_time() > ago(15m)
| where Status == "failed"
| project TimeGenerated, RunId, Host, Version, StartedAt, EndedAt, DurationMs, Queries, ModelFailures, InputProblems
'''

// Integer arithmetic: failures * 100 > calls * percent is "above percent % of the calls".
var modelFailuresQuery = format('''
PimRun_CL
| where ingestion_time() > ago(15m)
| where ModelCalls > 0 and ModelFailures * 100 > ModelCalls * {0}
| extend FailurePercent = round(100.0 * ModelFailures / ModelCalls, 1)
| project TimeGenerated, RunId, Host, Version, Status, ModelCalls, ModelFailures, FailurePercent
''', modelFailurePercent)

var inputProblemsQuery = format('''
PimRun_CL
| where ingestion_time() > ago(15m)
| where InputProblems > {0}
| project TimeGenerated, RunId, Host, Version, Status, Activations, InputProblems
''', inputProblemThreshold)

// Each failing run is its own alert: RunId and Host are dimensions, so they appear in the
// payload and the e-mail.
var runDimensions = [
  { name: 'RunId', operator: 'Include', values: ['*'] }
  { name: 'Host', operator: 'Include', values: ['*'] }
]

var perRunRules = [
  {
    name: 'PIM audit run failed'
    description: 'A pim-batch run ended with Status "failed" (heartbeat row in PimRun_CL): its report is missing or incomplete. The run\'s logs name the cause.'
    severity: healthSeverity
    query: failedQuery
  }
  {
    name: 'PIM audit model failures'
    description: 'More than ${modelFailurePercent}% of a run\'s model calls failed: those activations were judged by the rules alone or are unknown.'
    severity: degradedSeverity
    query: modelFailuresQuery
  }
  {
    name: 'PIM audit input problems'
    description: 'A run met more than ${inputProblemThreshold} input problems (unreadable or duplicate rows): see the report\'s problems.'
    severity: degradedSeverity
    query: inputProblemsQuery
  }
]

resource stalledRule 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'PIM audit job stalled'
  location: location
  properties: {
    displayName: 'PIM audit job stalled'
    description: 'No pim-batch run has succeeded in ${2 * runIntervalHours} hours, twice the schedule interval (no heartbeat row with Status "succeeded" in PimRun_CL): the job is not running, hangs, or fails every time.'
    severity: healthSeverity
    enabled: enableHealthAlerts
    scopes: [workspace.id]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: stalledQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true // a condition: it clears when a run succeeds
    actions: {
      actionGroups: [opsActionGroup.id]
    }
  }
  dependsOn: [runTable]
}

resource perRunRule 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [
  for rule in perRunRules: {
    name: rule.name
    location: location
    properties: {
      displayName: rule.name
      description: rule.description
      severity: rule.severity
      enabled: enableHealthAlerts
      scopes: [workspace.id]
      evaluationFrequency: 'PT15M' // = the ago(15m) of the queries
      windowSize: 'PT1H'
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Count'
            dimensions: runDimensions
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      autoMitigate: false // each run is a new fact, not a condition that clears
      actions: {
        actionGroups: [opsActionGroup.id]
      }
    }
    dependsOn: [runTable]
  }
]

@description('PIM_DCR_ENDPOINT: the rule\'s logs ingestion endpoint.')
output dcrEndpoint string = dcr.properties.endpoints.logsIngestion

@description('PIM_DCR_RULE_ID: the rule\'s immutable id (dcr-...).')
output dcrImmutableId string = dcr.properties.immutableId

@description('PIM_DCR_STREAM.')
output streamName string = streamName

@description('The heartbeat stream (one row per run, PimRun_CL), in the same rule.')
output runStreamName string = runStreamName
