// PIM audit alerting: custom table, data collection rule, role assignment, action group and
// log search alert rule. Deploy into the resource group of an existing Log Analytics workspace:
//
//   az deployment group create -g <rg> -f docs/alerting.bicep \
//     -p workspaceName=<workspace> principalId=<object id of the identity running pim-batch> \
//        alertEmail=secops@contoso.com
//
// Outputs: the three values pim-batch needs (PIM_DCR_ENDPOINT, PIM_DCR_RULE_ID, PIM_DCR_STREAM).
// See docs/alerting.md for what each piece does.

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
    ]
  }
  dependsOn: [table]
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

@description('PIM_DCR_ENDPOINT: the rule\'s logs ingestion endpoint.')
output dcrEndpoint string = dcr.properties.endpoints.logsIngestion

@description('PIM_DCR_RULE_ID: the rule\'s immutable id (dcr-...).')
output dcrImmutableId string = dcr.properties.immutableId

@description('PIM_DCR_STREAM.')
output streamName string = streamName
