//! The catalogue of sensitive operations.
//!
//! [`classify`] looks an [`Activity`] up in the catalogue and returns the rule it falls under and
//! its risk. Operations outside the catalogue return `None`: they still count for the verdict
//! (explained or not) but raise no risk by themselves.
//!
//! Azure operations are matched on the lower-cased `operation` (the logged case varies, sometimes
//! ALL CAPS), with `*` standing for any run of characters. Entries are tried in the order below
//! and the first match wins, so specific entries come before the generic ones.
//!
//! # Azure Resource Manager operations
//!
//! | operation | rule | risk |
//! |---|---|---|
//! | `microsoft.authorization/roleassignments/write`, `/delete` | role assignment written / deleted | critical |
//! | `microsoft.authorization/roledefinitions/write`, `/delete` | custom role definition written / deleted | critical |
//! | `microsoft.authorization/elevateaccess/action` | tenant root access elevated | critical |
//! | `microsoft.authorization/roleeligibilityschedulerequests/write` | PIM eligibility granted or changed | critical |
//! | `microsoft.authorization/rolemanagementpolicies/write` | PIM role settings changed | high |
//! | `microsoft.managedidentity/userassignedidentities/federatedidentitycredentials/write` | federated credential added to a managed identity | high |
//! | `microsoft.authorization/policyassignments/delete`, `policydefinitions/delete`, `policysetdefinitions/delete` | policy assignment / definition / initiative deleted | high |
//! | `microsoft.authorization/policyexemptions/write` | policy exemption written | high |
//! | `microsoft.authorization/policyassignments/write` | policy assignment written | medium |
//! | `microsoft.authorization/locks/delete` | resource lock deleted | high |
//! | `microsoft.insights/diagnosticsettings/delete` | diagnostic setting deleted | high |
//! | `microsoft.insights/diagnosticsettings/write` | diagnostic setting written | medium |
//! | `microsoft.operationalinsights/workspaces/delete` | Log Analytics workspace deleted | high |
//! | `microsoft.security/pricings/write` | Defender for Cloud plan changed | medium |
//! | `microsoft.keyvault/vaults/delete`, `microsoft.keyvault/*purge/action` | key vault deleted / purged | critical |
//! | `microsoft.keyvault/vaults/accesspolicies/write` | key vault access policy written | high |
//! | `microsoft.keyvault/vaults/secrets/read`, `keys/read`, `keys/versions/read`, `secrets/write` | key vault secret or key accessed via ARM | medium |
//! | `microsoft.storage/storageaccounts/listkeys/action`, `regeneratekey/action` | storage account keys listed / regenerated | high |
//! | `microsoft.storage/storageaccounts/listaccountsas/action`, `listservicesas/action` | SAS token created | high |
//! | `*/listkeys/action`, `*/listconnectionstrings/action` | access keys / connection strings listed | high |
//! | `microsoft.web/sites/config/list/action` | web app settings listed | high |
//! | `microsoft.compute/disks/begingetaccess/action`, `snapshots/begingetaccess/action` | disk export link created | high |
//! | `microsoft.compute/virtualmachines/runcommand/action`, `runcommands/write`, scale-set `runcommand/action` | command run on a virtual machine | high |
//! | `microsoft.compute/*/extensions/write`, `microsoft.hybridcompute/*/extensions/write` | VM extension written | high |
//! | `microsoft.network/networksecuritygroups/securityrules/write`, `networksecuritygroups/write` | network security rule written | medium |
//! | `microsoft.network/publicipaddresses/write` | public IP address written | medium |
//! | `microsoft.network/azurefirewalls/write`, `microsoft.network/firewallpolicies/*write`, `*/firewallrules/write` | firewall rule written | medium |
//! | `microsoft.resources/subscriptions/resourcegroups/delete` | resource group deleted | high |
//! | `microsoft.keyvault/managedhsms/delete` | key vault deleted | critical |
//! | `microsoft.keyvault/vaults/*/delete` | key vault secret, key or certificate deleted | high |
//! | `/delete` of virtual machines, scale sets and their instances, disks, snapshots, galleries, images, Arc machines, AKS clusters and node pools, container groups, registries and apps, web apps, slots and plans, Batch accounts, host pools | compute resource deleted | high |
//! | `/delete` of storage accounts and anything under them (containers, shares, queues, tables), SQL servers, databases and managed instances, PostgreSQL/MySQL/MariaDB servers and databases, Cosmos DB accounts and their databases, Redis, Data Explorer clusters and databases, Synapse, Data Factory, Databricks, Event Hubs and Service Bus namespaces, Recovery Services and backup vaults (and their items), NetApp, Cognitive Services accounts, Search services | data resource deleted | high |
//! | `/delete` of virtual networks, subnets, peerings, network security groups and rules, firewalls and firewall policies, VPN and virtual network gateways, ExpressRoute circuits, load balancers, application gateways, Front Door and CDN profiles, private endpoints, DNS and private DNS zones (and records), public IPs, network interfaces, route tables and routes, Bastion hosts, DDoS plans | network resource deleted | high |
//! | `/delete` of user-assigned managed identities (and their federated credentials), App Configuration stores | identity or secret store deleted | high |
//! | `*/delete` (except tags) | resource deleted | medium |
//! | `microsoft.resources/deployments/write` | ARM deployment | low |
//!
//! Whether a security rule opens a port to the internet cannot be told from the operation name,
//! so network exposure stays at medium. Reading secret *metadata* through ARM is medium because
//! secret values are read on the data plane, which `AzureActivity` does not log. Deleting a
//! resource that runs workloads, holds data, carries traffic or keeps secrets is high whatever
//! it is called, so that an unexplained one keeps a model from calling the activation aligned
//! (see [`guardrails`](crate::guardrails)); other deletes stay medium.
//!
//! # Directory changes (AuditLogs)
//!
//! Directory operation names are compared after lower-casing, folding typographic dashes to `-`
//! and collapsing spaces. A name is *privileged* when it contains any of
//! [`RulesConfig::privileged_name_patterns`](crate::RulesConfig::privileged_name_patterns),
//! case-insensitively and ignoring spaces, hyphens and underscores (so `tier 0`, `tier-0` and
//! `Tier0` are the same).
//!
//! | operation | rule | risk |
//! |---|---|---|
//! | `Add member to role…`, `Add eligible member to role…`, `Add scoped member to role…` on a privileged role | privileged directory role assigned | critical |
//! | the same on any other role | directory role assigned | high |
//! | `Add member to group…`, `Add owner to group…` on a privileged group | member added to privileged group | critical |
//! | the same on any other group | member added to group | low |
//! | `Add service principal credentials`, `Update application – Certificates and secrets management`, `Add owner to application`, `Add owner to service principal` | application credential or owner added | high |
//! | `Consent to application`, `Add app role assignment to service principal`, `Add delegated permission grant` | application permission granted | high |
//! | `Delete conditional access policy` | conditional access policy deleted | critical |
//! | `Add/Update conditional access policy` | conditional access policy changed | high |
//! | `… named location` | named location changed | medium |
//! | `Update user`, `Reset user password`, `Reset password (by admin)`, `Disable account`, … on *another* user | another user's account changed | medium |
//! | `Delete user`, `Hard delete user` | user deleted | high |
//! | `Set domain authentication`, `Set federation settings on domain`, `Add/Remove/Verify/Update domain…` | domain or federation setting changed | critical |
//!
//! Adding someone to a privileged group is critical, not high, because a privileged (typically
//! role-assignable) group passes its roles on to its members: it is a role assignment by another
//! route. A user changing their own account (the `User` target is the caller) is not a finding.
//!
//! # Failed operations
//!
//! An operation whose status is `failed` is an attempt: it stays in the evidence, at one risk
//! level below its entry (never below low). Started or accepted operations may still have
//! succeeded and keep the full risk.
//!
//! # Elevation bookkeeping
//!
//! The activation's own records (`… (PIM activation)`, `… (PIM deactivate)`, `PIM activation
//! request expired` in AuditLogs, `microsoft.authorization/roleassignmentschedulerequests/*` in
//! AzureActivity) are the elevation itself, not work done with it: [`is_elevation_bookkeeping`]
//! recognises them and the engine counts them as explained. Known limit: an administrator who
//! assigns a resource role *to someone else* through PIM's ARM API produces the same
//! `roleAssignmentScheduleRequests/write` operation and is not told apart here.

use pim_domain::{Activity, ActivityStatus, Risk};

use crate::RulesConfig;

/// The catalogue entry an operation falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueMatch {
    /// The human rule name, e.g. `role assignment written`.
    pub rule: &'static str,
    /// The risk of this occurrence: the entry's risk, one level lower for a failed operation.
    pub risk: Risk,
    /// The entry's own risk, before any reduction for failure.
    pub entry_risk: Risk,
    /// Whether the operation failed (and so was an attempt only).
    pub failed: bool,
}

struct Entry {
    pattern: &'static str,
    rule: &'static str,
    risk: Risk,
}

const fn e(pattern: &'static str, rule: &'static str, risk: Risk) -> Entry {
    Entry {
        pattern,
        rule,
        risk,
    }
}

const ARM: &[Entry] = &[
    // Who can do what: changes here grant or remove privilege.
    e(
        "microsoft.authorization/roleassignments/write",
        "role assignment written",
        Risk::Critical,
    ),
    e(
        "microsoft.authorization/roleassignments/delete",
        "role assignment deleted",
        Risk::Critical,
    ),
    e(
        "microsoft.authorization/roledefinitions/write",
        "custom role definition written",
        Risk::Critical,
    ),
    e(
        "microsoft.authorization/roledefinitions/delete",
        "custom role definition deleted",
        Risk::Critical,
    ),
    e(
        "microsoft.authorization/elevateaccess/action",
        "tenant root access elevated",
        Risk::Critical,
    ),
    e(
        "microsoft.authorization/roleeligibilityschedulerequests/write",
        "PIM eligibility granted or changed",
        Risk::Critical,
    ),
    e(
        "microsoft.authorization/rolemanagementpolicies/write",
        "PIM role settings changed",
        Risk::High,
    ),
    e(
        "microsoft.managedidentity/userassignedidentities/federatedidentitycredentials/write",
        "federated credential added to a managed identity",
        Risk::High,
    ),
    // Security controls: policy, locks, logging.
    e(
        "microsoft.authorization/policyassignments/delete",
        "policy assignment deleted",
        Risk::High,
    ),
    e(
        "microsoft.authorization/policydefinitions/delete",
        "policy definition deleted",
        Risk::High,
    ),
    e(
        "microsoft.authorization/policysetdefinitions/delete",
        "policy initiative deleted",
        Risk::High,
    ),
    e(
        "microsoft.authorization/policyexemptions/write",
        "policy exemption written",
        Risk::High,
    ),
    e(
        "microsoft.authorization/policyassignments/write",
        "policy assignment written",
        Risk::Medium,
    ),
    e(
        "microsoft.authorization/locks/delete",
        "resource lock deleted",
        Risk::High,
    ),
    e(
        "microsoft.insights/diagnosticsettings/delete",
        "diagnostic setting deleted",
        Risk::High,
    ),
    e(
        "microsoft.insights/diagnosticsettings/write",
        "diagnostic setting written",
        Risk::Medium,
    ),
    e(
        "microsoft.operationalinsights/workspaces/delete",
        "Log Analytics workspace deleted",
        Risk::High,
    ),
    e(
        "microsoft.security/pricings/write",
        "Defender for Cloud plan changed",
        Risk::Medium,
    ),
    // Key Vault.
    e(
        "microsoft.keyvault/vaults/delete",
        "key vault deleted",
        Risk::Critical,
    ),
    e(
        "microsoft.keyvault/*purge/action",
        "key vault or vault object purged",
        Risk::Critical,
    ),
    e(
        "microsoft.keyvault/vaults/accesspolicies/write",
        "key vault access policy written",
        Risk::High,
    ),
    e(
        "microsoft.keyvault/vaults/secrets/read",
        "key vault secret read via ARM",
        Risk::Medium,
    ),
    e(
        "microsoft.keyvault/vaults/secrets/write",
        "key vault secret written via ARM",
        Risk::Medium,
    ),
    e(
        "microsoft.keyvault/vaults/keys/read",
        "key vault key read via ARM",
        Risk::Medium,
    ),
    e(
        "microsoft.keyvault/vaults/keys/versions/read",
        "key vault key read via ARM",
        Risk::Medium,
    ),
    // Credentials handed out by resource providers.
    e(
        "microsoft.storage/storageaccounts/listkeys/action",
        "storage account keys listed",
        Risk::High,
    ),
    e(
        "microsoft.storage/storageaccounts/regeneratekey/action",
        "storage account key regenerated",
        Risk::High,
    ),
    e(
        "microsoft.storage/storageaccounts/listaccountsas/action",
        "account SAS token created",
        Risk::High,
    ),
    e(
        "microsoft.storage/storageaccounts/listservicesas/action",
        "service SAS token created",
        Risk::High,
    ),
    e("*/listkeys/action", "access keys listed", Risk::High),
    e(
        "*/listconnectionstrings/action",
        "connection strings listed",
        Risk::High,
    ),
    e(
        "microsoft.web/sites/config/list/action",
        "web app settings listed",
        Risk::High,
    ),
    e(
        "microsoft.compute/disks/begingetaccess/action",
        "disk export link created",
        Risk::High,
    ),
    e(
        "microsoft.compute/snapshots/begingetaccess/action",
        "snapshot export link created",
        Risk::High,
    ),
    // Code execution on machines.
    e(
        "microsoft.compute/virtualmachines/runcommand/action",
        "command run on a virtual machine",
        Risk::High,
    ),
    e(
        "microsoft.compute/virtualmachines/runcommands/write",
        "run command written on a virtual machine",
        Risk::High,
    ),
    e(
        "microsoft.compute/virtualmachinescalesets/virtualmachines/runcommand/action",
        "command run on a scale set instance",
        Risk::High,
    ),
    e(
        "microsoft.compute/*/extensions/write",
        "VM extension written",
        Risk::High,
    ),
    e(
        "microsoft.hybridcompute/*/extensions/write",
        "VM extension written",
        Risk::High,
    ),
    // Network exposure.
    e(
        "microsoft.network/networksecuritygroups/securityrules/write",
        "network security rule written",
        Risk::Medium,
    ),
    e(
        "microsoft.network/networksecuritygroups/write",
        "network security group written",
        Risk::Medium,
    ),
    e(
        "microsoft.network/publicipaddresses/write",
        "public IP address written",
        Risk::Medium,
    ),
    e(
        "microsoft.network/azurefirewalls/write",
        "firewall rule written",
        Risk::Medium,
    ),
    e(
        "microsoft.network/firewallpolicies/*write",
        "firewall rule written",
        Risk::Medium,
    ),
    e(
        "*/firewallrules/write",
        "firewall rule written",
        Risk::Medium,
    ),
    // Destruction.
    e(
        "microsoft.resources/subscriptions/resourcegroups/delete",
        "resource group deleted",
        Risk::High,
    ),
    // Deleting what holds compute, data, networking or secrets destroys service or evidence; see
    // issue 9 (an unexplained VM delete at medium let an obeying model call it aligned).
    e(
        "microsoft.keyvault/managedhsms/delete",
        "key vault deleted",
        Risk::Critical,
    ),
    e(
        "microsoft.keyvault/vaults/*/delete",
        "key vault secret, key or certificate deleted",
        Risk::High,
    ),
    e(
        "microsoft.compute/virtualmachines/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.compute/virtualmachinescalesets/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.compute/virtualmachinescalesets/virtualmachines/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.compute/disks/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.compute/snapshots/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.compute/galleries/*delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.compute/images/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.hybridcompute/machines/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.containerservice/managedclusters/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.containerservice/managedclusters/agentpools/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.containerinstance/containergroups/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.containerregistry/registries/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.app/containerapps/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.app/managedenvironments/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.web/sites/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.web/sites/slots/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.web/serverfarms/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.batch/batchaccounts/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.desktopvirtualization/hostpools/delete",
        "compute resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.storage/storageaccounts/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.storage/storageaccounts/*/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.sql/servers/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.sql/servers/databases/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.sql/managedinstances/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.sql/managedinstances/databases/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.dbforpostgresql/*/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.dbformysql/*/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.dbformariadb/*/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.documentdb/databaseaccounts/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.documentdb/databaseaccounts/*/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.cache/redis/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.cache/redisenterprise/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.kusto/clusters/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.kusto/clusters/databases/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.synapse/workspaces/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.datafactory/factories/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.databricks/workspaces/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.eventhub/namespaces/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.servicebus/namespaces/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.recoveryservices/vaults/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.recoveryservices/vaults/*/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.dataprotection/backupvaults/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.dataprotection/backupvaults/*/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.netapp/netappaccounts/*delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.cognitiveservices/accounts/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.search/searchservices/delete",
        "data resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/virtualnetworks/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/virtualnetworks/subnets/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/virtualnetworks/virtualnetworkpeerings/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/networksecuritygroups/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/networksecuritygroups/securityrules/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/azurefirewalls/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/firewallpolicies/*delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/virtualnetworkgateways/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/vpngateways/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/expressroutecircuits/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/loadbalancers/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/applicationgateways/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/frontdoors/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.cdn/profiles/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/privateendpoints/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/privatednszones/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/dnszones/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/dnszones/*/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/publicipaddresses/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/networkinterfaces/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/routetables/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/routetables/routes/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/bastionhosts/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.network/ddosprotectionplans/delete",
        "network resource deleted",
        Risk::High,
    ),
    e(
        "microsoft.managedidentity/userassignedidentities/delete",
        "identity or secret store deleted",
        Risk::High,
    ),
    e(
        "microsoft.managedidentity/userassignedidentities/*/delete",
        "identity or secret store deleted",
        Risk::High,
    ),
    e(
        "microsoft.appconfiguration/configurationstores/delete",
        "identity or secret store deleted",
        Risk::High,
    ),
    e("*/delete", "resource deleted", Risk::Medium),
    // Change delivery.
    e(
        "microsoft.resources/deployments/write",
        "ARM deployment",
        Risk::Low,
    ),
];

/// Operations never in the catalogue even though a generic entry would match them.
const ARM_IGNORED: &[&str] = &["microsoft.resources/tags/*"];

/// The activation's own ARM records (see the module docs).
const ARM_BOOKKEEPING: &[&str] = &["microsoft.authorization/roleassignmentschedulerequests/*"];

/// Looks an activity up in the catalogue. See the [module docs](self) for the table.
///
/// ```
/// use pim_domain::{Activity, ActivitySource, ActivityStatus, Risk};
/// use pim_rules::{RulesConfig, catalogue::classify};
///
/// let activity = Activity {
///     time: time::macros::datetime!(2026-11-20 09:20 UTC),
///     operation: "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE".into(),
///     status: ActivityStatus::Succeeded,
///     resource_id: None,
///     resource_group: None,
///     subscription_id: None,
///     provider: None,
///     source: ActivitySource::AzureActivity,
///     caller: None,
///     caller_object_id: None,
///     correlation_id: None,
///     targets: vec![],
/// };
/// let found = classify(&activity, &RulesConfig::default()).unwrap();
/// assert_eq!((found.rule, found.risk), ("role assignment written", Risk::Critical));
/// ```
pub fn classify(activity: &Activity, config: &RulesConfig) -> Option<CatalogueMatch> {
    let op = normalise_operation(&activity.operation);
    let entry = if is_arm_operation(&op) {
        classify_arm(&op)?
    } else {
        classify_directory(&op, activity, config)?
    };
    Some(occurrence(entry, activity.status))
}

/// The match for one occurrence of a catalogue entry: failed attempts are one level lower.
pub(crate) fn occurrence(
    (rule, entry_risk): (&'static str, Risk),
    status: ActivityStatus,
) -> CatalogueMatch {
    let failed = status == ActivityStatus::Failed;
    let risk = if failed {
        lower(entry_risk)
    } else {
        entry_risk
    };
    CatalogueMatch {
        rule,
        risk,
        entry_risk,
        failed,
    }
}

/// The catalogue entry of a normalised ARM operation. For ARM operations the entry depends on
/// the name alone, which is what lets the engine look each distinct name up only once.
pub(crate) fn classify_arm(op: &str) -> Option<(&'static str, Risk)> {
    if ARM_IGNORED
        .iter()
        .chain(ARM_BOOKKEEPING)
        .any(|p| glob_match(p, op))
    {
        return None;
    }
    ARM.iter()
        .find(|e| glob_match(e.pattern, op))
        .map(|e| (e.rule, e.risk))
}

/// The catalogue entry of a normalised directory operation; it may depend on the activity's
/// targets and caller.
pub(crate) fn classify_directory(
    op: &str,
    activity: &Activity,
    config: &RulesConfig,
) -> Option<(&'static str, Risk)> {
    if is_directory_bookkeeping(op) {
        return None;
    }
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| op.starts_with(p));
    if starts(&[
        "add member to role",
        "add eligible member to role",
        "add scoped member to role",
    ]) {
        return Some(
            if targets_privileged(
                activity,
                &["role", "directoryrole", "roledefinition"],
                config,
            ) {
                ("privileged directory role assigned", Risk::Critical)
            } else {
                ("directory role assigned", Risk::High)
            },
        );
    }
    if starts(&["add member to group", "add owner to group"]) {
        return Some(if targets_privileged(activity, &["group"], config) {
            ("member added to privileged group", Risk::Critical)
        } else {
            ("member added to group", Risk::Low)
        });
    }
    if starts(&[
        "add service principal credentials",
        "update application - certificates and secrets management",
        "add owner to application",
        "add owner to service principal",
    ]) {
        return Some(("application credential or owner added", Risk::High));
    }
    if starts(&[
        "consent to application",
        "add app role assignment to service principal",
        "add delegated permission grant",
    ]) {
        return Some(("application permission granted", Risk::High));
    }
    if op.contains("conditional access policy") {
        return Some(if op.starts_with("delete") {
            ("conditional access policy deleted", Risk::Critical)
        } else {
            ("conditional access policy changed", Risk::High)
        });
    }
    if op.contains("named location") {
        return Some(("named location changed", Risk::Medium));
    }
    if op.contains("federation")
        || (op.contains("domain")
            && starts(&["add", "set", "update", "remove", "verify", "delete"]))
    {
        return Some(("domain or federation setting changed", Risk::Critical));
    }
    if starts(&["delete user", "hard delete user"]) {
        return Some(("user deleted", Risk::High));
    }
    if starts(&[
        "update user",
        "reset user password",
        "reset password",
        "change user password",
        "disable account",
        "enable account",
        "update strongauthentication",
        "admin registered security info",
        "admin deleted security info",
        "admin updated security info",
    ]) {
        return (!acts_on_self(activity))
            .then_some(("another user's account changed", Risk::Medium));
    }
    None
}

/// Whether the activity is the activation's own record rather than work done with it (see the
/// [module docs](self)).
pub fn is_elevation_bookkeeping(activity: &Activity) -> bool {
    is_bookkeeping_operation(&normalise_operation(&activity.operation))
}

/// [`is_elevation_bookkeeping`] on a normalised operation: it depends on the name alone.
pub(crate) fn is_bookkeeping_operation(op: &str) -> bool {
    if is_arm_operation(op) {
        ARM_BOOKKEEPING.iter().any(|p| glob_match(p, op))
    } else {
        is_directory_bookkeeping(op)
    }
}

fn is_directory_bookkeeping(op: &str) -> bool {
    op.contains("(pim activation)")
        || op.contains("(pim deactivate)")
        || op.contains("(pim activation expired)")
        || op == "pim activation request expired"
}

/// Whether an operation only reads: an ARM `*/read`, or a `list…`/`get…` action, that is not in
/// the catalogue (listing keys, SAS tokens or app settings is in the catalogue and so never
/// counts as a plain read).
pub fn is_read_only(activity: &Activity, config: &RulesConfig) -> bool {
    let op = normalise_operation(&activity.operation);
    if !is_arm_operation(&op) || classify(activity, config).is_some() {
        return false;
    }
    has_read_verb(&op)
}

/// [`is_read_only`] on a normalised operation. Only ARM operations can be read-only, and their
/// catalogue entry depends on the name alone, so this depends on the name alone too.
pub(crate) fn is_read_only_operation(op: &str) -> bool {
    is_arm_operation(op) && classify_arm(op).is_none() && has_read_verb(op)
}

/// Whether a normalised ARM operation's verb only reads: `*/read`, or a `list…`/`get…` action.
fn has_read_verb(op: &str) -> bool {
    if op.ends_with("/read") {
        return true;
    }
    op.strip_suffix("/action")
        .and_then(|rest| rest.rsplit('/').next())
        .is_some_and(|verb| verb.starts_with("list") || verb.starts_with("get"))
}

/// The form operations are matched in: lower case, typographic dashes folded to `-`, runs of
/// whitespace collapsed, trimmed.
pub fn normalise_operation(operation: &str) -> String {
    let folded: String = operation
        .chars()
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            _ => c,
        })
        .collect();
    folded
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// ARM operation names are `provider/type/.../verb` with no spaces; directory operation names
/// are sentences.
pub(crate) fn is_arm_operation(normalised: &str) -> bool {
    normalised.contains('/') && !normalised.contains(' ')
}

/// Whether a directory change's relevant target (a role or group) has a privileged name. Targets
/// of the wanted kinds are checked; when the log carries none of those, every non-user target is.
fn targets_privileged(activity: &Activity, kinds: &[&str], config: &RulesConfig) -> bool {
    let of_kind = |t: &&pim_domain::ActivityTarget| {
        kinds.iter().any(|k| t.kind.trim().eq_ignore_ascii_case(k))
    };
    let mut names: Vec<&str> = activity
        .targets
        .iter()
        .filter(of_kind)
        .filter_map(|t| t.name.as_deref())
        .collect();
    if names.is_empty() {
        names = activity
            .targets
            .iter()
            .filter(|t| !t.kind.trim().eq_ignore_ascii_case("user"))
            .filter_map(|t| t.name.as_deref())
            .collect();
    }
    names.iter().any(|n| config.is_privileged_name(n))
}

fn acts_on_self(activity: &Activity) -> bool {
    let Some(caller) = activity
        .caller
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    else {
        return false;
    };
    let users: Vec<_> = activity
        .targets
        .iter()
        .filter(|t| t.kind.trim().eq_ignore_ascii_case("user"))
        .collect();
    !users.is_empty()
        && users.iter().all(|t| {
            t.name
                .as_deref()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(caller))
                || t.id.as_deref().is_some_and(|id| {
                    activity
                        .caller_object_id
                        .as_deref()
                        .is_some_and(|oid| oid.trim().eq_ignore_ascii_case(id.trim()))
                })
        })
}

/// One risk level lower, never below low.
pub(crate) fn lower(risk: Risk) -> Risk {
    match risk {
        Risk::Critical => Risk::High,
        Risk::High => Risk::Medium,
        Risk::Medium | Risk::Low => Risk::Low,
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters (including `/`)
/// and everything else matches itself. Both are expected in lower case.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen and the text position it currently stands in for: on a
    // mismatch the star swallows one more byte. Linear in practice, never recursive.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pim_domain::{ActivitySource, ActivityTarget};

    pub(crate) fn arm(op: &str) -> Activity {
        Activity {
            time: time::macros::datetime!(2026-11-20 09:20 UTC),
            operation: op.into(),
            status: ActivityStatus::Succeeded,
            resource_id: Some("/subscriptions/s1/resourcegroups/rg-prod-web/providers/microsoft.compute/virtualmachines/web01".into()),
            resource_group: Some("rg-prod-web".into()),
            subscription_id: Some("s1".into()),
            provider: None,
            source: ActivitySource::AzureActivity,
            caller: Some("jane@contoso.com".into()),
            caller_object_id: None,
            correlation_id: None,
            targets: vec![],
        }
    }

    pub(crate) fn dir(op: &str, targets: &[(&str, &str)]) -> Activity {
        Activity {
            source: ActivitySource::AuditLogs,
            resource_id: None,
            resource_group: None,
            subscription_id: None,
            targets: targets
                .iter()
                .map(|(k, n)| ActivityTarget {
                    kind: (*k).into(),
                    name: Some((*n).into()),
                    id: None,
                })
                .collect(),
            ..arm(op)
        }
    }

    fn risk_of(a: &Activity) -> Option<(&'static str, Risk)> {
        classify(a, &RulesConfig::default()).map(|m| (m.rule, m.risk))
    }

    fn arm_risk(op: &str) -> Option<Risk> {
        risk_of(&arm(op)).map(|(_, r)| r)
    }

    #[test]
    fn glob_matches_like_a_shell_star() {
        assert!(glob_match(
            "*/delete",
            "microsoft.compute/virtualmachines/delete"
        ));
        assert!(!glob_match(
            "*/delete",
            "microsoft.compute/virtualmachines/deleted"
        ));
        assert!(glob_match(
            "microsoft.keyvault/*purge/action",
            "microsoft.keyvault/locations/deletedvaults/purge/action"
        ));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("*", ""));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
    }

    #[test]
    fn identity_and_access_are_critical_in_any_case() {
        for op in [
            "Microsoft.Authorization/roleAssignments/write",
            "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/DELETE",
            "microsoft.authorization/roledefinitions/write",
            "Microsoft.Authorization/roleDefinitions/delete",
            "Microsoft.Authorization/elevateAccess/action",
            "Microsoft.Authorization/roleEligibilityScheduleRequests/write",
        ] {
            assert_eq!(arm_risk(op), Some(Risk::Critical), "{op}");
        }
        assert_eq!(
            arm_risk("Microsoft.Authorization/roleManagementPolicies/write"),
            Some(Risk::High)
        );
    }

    #[test]
    fn security_controls() {
        assert_eq!(
            arm_risk("Microsoft.Authorization/policyAssignments/delete"),
            Some(Risk::High)
        );
        assert_eq!(
            arm_risk("Microsoft.Authorization/policyDefinitions/delete"),
            Some(Risk::High)
        );
        assert_eq!(
            arm_risk("Microsoft.Authorization/policyExemptions/write"),
            Some(Risk::High)
        );
        assert_eq!(
            arm_risk("Microsoft.Authorization/locks/delete"),
            Some(Risk::High)
        );
        assert_eq!(
            arm_risk("Microsoft.Insights/diagnosticSettings/delete"),
            Some(Risk::High)
        );
        assert_eq!(
            arm_risk("microsoft.insights/diagnosticsettings/write"),
            Some(Risk::Medium)
        );
        assert_eq!(
            risk_of(&arm("Microsoft.Authorization/locks/delete")).map(|m| m.0),
            Some("resource lock deleted")
        );
    }

    #[test]
    fn key_vault() {
        assert_eq!(
            arm_risk("Microsoft.KeyVault/vaults/secrets/read"),
            Some(Risk::Medium)
        );
        assert_eq!(
            arm_risk("Microsoft.KeyVault/vaults/delete"),
            Some(Risk::Critical)
        );
        assert_eq!(
            arm_risk("Microsoft.KeyVault/locations/deletedVaults/purge/action"),
            Some(Risk::Critical)
        );
        assert_eq!(
            arm_risk("Microsoft.KeyVault/vaults/accessPolicies/write"),
            Some(Risk::High)
        );
    }

    #[test]
    fn storage_and_credential_listing() {
        for op in [
            "Microsoft.Storage/storageAccounts/listKeys/action",
            "Microsoft.Storage/storageAccounts/regenerateKey/action",
            "Microsoft.Storage/storageAccounts/listAccountSas/action",
            "Microsoft.DocumentDB/databaseAccounts/listKeys/action",
            "Microsoft.Web/sites/config/list/action",
            "Microsoft.Compute/disks/beginGetAccess/action",
        ] {
            assert_eq!(arm_risk(op), Some(Risk::High), "{op}");
        }
    }

    #[test]
    fn network_exposure_is_medium() {
        for op in [
            "Microsoft.Network/networkSecurityGroups/securityRules/write",
            "Microsoft.Network/publicIPAddresses/write",
            "Microsoft.Sql/servers/firewallRules/write",
            "Microsoft.Network/firewallPolicies/ruleCollectionGroups/write",
        ] {
            assert_eq!(arm_risk(op), Some(Risk::Medium), "{op}");
        }
    }

    #[test]
    fn code_execution_on_machines_is_high() {
        for op in [
            "Microsoft.Compute/virtualMachines/runCommand/action",
            "Microsoft.Compute/virtualMachines/runCommands/write",
            "Microsoft.Compute/virtualMachines/extensions/write",
            "Microsoft.Compute/virtualMachineScaleSets/extensions/write",
        ] {
            assert_eq!(arm_risk(op), Some(Risk::High), "{op}");
        }
    }

    #[test]
    fn deletes_deployments_and_plain_operations() {
        // Issue 9: destroying compute, data, network or secrets is high (it was medium).
        for op in [
            "Microsoft.Compute/virtualMachines/delete",
            "MICROSOFT.COMPUTE/DISKS/DELETE",
            "Microsoft.Sql/servers/databases/delete",
            "Microsoft.Storage/storageAccounts/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
            "Microsoft.Network/virtualNetworks/delete",
            "Microsoft.Network/virtualNetworks/subnets/delete",
            "Microsoft.DocumentDB/databaseAccounts/delete",
            "Microsoft.DBforPostgreSQL/flexibleServers/delete",
            "Microsoft.KeyVault/vaults/secrets/delete",
            "Microsoft.ContainerService/managedClusters/delete",
            "Microsoft.RecoveryServices/vaults/delete",
        ] {
            assert_eq!(arm_risk(op), Some(Risk::High), "{op}");
        }
        assert_eq!(
            arm_risk("Microsoft.KeyVault/managedHSMs/delete"),
            Some(Risk::Critical)
        );
        assert_eq!(
            arm_risk("Microsoft.Insights/actionGroups/delete"),
            Some(Risk::Medium)
        );
        assert_eq!(
            arm_risk("Microsoft.Resources/subscriptions/resourceGroups/delete"),
            Some(Risk::High)
        );
        assert_eq!(
            arm_risk("Microsoft.Resources/deployments/write"),
            Some(Risk::Low)
        );
        assert_eq!(arm_risk("Microsoft.Resources/tags/delete"), None);
        assert_eq!(
            arm_risk("Microsoft.Compute/virtualMachines/restart/action"),
            None
        );
        assert_eq!(arm_risk("Microsoft.Compute/virtualMachines/write"), None);
        assert_eq!(
            arm_risk("Microsoft.Authorization/roleAssignmentScheduleRequests/write"),
            None
        );
    }

    #[test]
    fn failed_operations_are_one_level_lower() {
        let mut a = arm("Microsoft.Authorization/roleAssignments/write");
        a.status = ActivityStatus::Failed;
        let m = classify(&a, &RulesConfig::default()).unwrap();
        assert_eq!(
            (m.risk, m.entry_risk, m.failed),
            (Risk::High, Risk::Critical, true)
        );
        let mut d = arm("Microsoft.Resources/deployments/write");
        d.status = ActivityStatus::Failed;
        assert_eq!(
            classify(&d, &RulesConfig::default()).map(|m| m.risk),
            Some(Risk::Low)
        );
        a.status = ActivityStatus::Started;
        assert_eq!(
            classify(&a, &RulesConfig::default()).map(|m| m.risk),
            Some(Risk::Critical)
        );
    }

    #[test]
    fn directory_role_assignment_depends_on_the_role_name() {
        let ga = dir(
            "Add member to role",
            &[
                ("User", "bob@contoso.com"),
                ("Role", "Global Administrator"),
            ],
        );
        assert_eq!(
            risk_of(&ga),
            Some(("privileged directory role assigned", Risk::Critical))
        );
        let reader = dir(
            "Add member to role",
            &[("User", "bob@contoso.com"), ("Role", "Directory Readers")],
        );
        assert_eq!(
            risk_of(&reader),
            Some(("directory role assigned", Risk::High))
        );
        let eligible = dir(
            "Add eligible member to role in PIM completed (permanent)",
            &[("Role", "Owner")],
        );
        assert_eq!(risk_of(&eligible).map(|r| r.1), Some(Risk::Critical));
        // A user whose name looks privileged does not make the role privileged.
        let sneaky = dir(
            "Add member to role",
            &[("User", "admin@contoso.com"), ("Role", "Directory Readers")],
        );
        assert_eq!(risk_of(&sneaky).map(|r| r.1), Some(Risk::High));
    }

    #[test]
    fn group_membership_depends_on_the_group_name() {
        for name in [
            "SG-Tier0-Admins",
            "Break Glass Accounts",
            "tier 0 ops",
            "breakglass",
            "Emergency access",
        ] {
            let a = dir(
                "Add member to group",
                &[("Group", name), ("User", "bob@contoso.com")],
            );
            assert_eq!(
                risk_of(&a),
                Some(("member added to privileged group", Risk::Critical)),
                "{name}"
            );
        }
        let plain = dir("Add member to group", &[("Group", "Marketing")]);
        assert_eq!(risk_of(&plain), Some(("member added to group", Risk::Low)));
        let custom = RulesConfig {
            privileged_name_patterns: vec!["marketing".into()],
            ..RulesConfig::default()
        };
        assert_eq!(
            classify(&plain, &custom).map(|m| m.risk),
            Some(Risk::Critical)
        );
    }

    #[test]
    fn applications_conditional_access_users_and_domains() {
        let cases = [
            ("Add service principal credentials", Risk::High),
            (
                "Update application \u{2013} Certificates and secrets management ",
                Risk::High,
            ),
            ("Add owner to application", Risk::High),
            ("Consent to application", Risk::High),
            ("Add conditional access policy", Risk::High),
            ("Update conditional access policy", Risk::High),
            ("Delete conditional access policy", Risk::Critical),
            ("Delete user", Risk::High),
            ("Set federation settings on domain", Risk::Critical),
            ("Add unverified domain", Risk::Critical),
            ("Set domain authentication", Risk::Critical),
        ];
        for (op, risk) in cases {
            assert_eq!(
                risk_of(&dir(op, &[("User", "bob@contoso.com")])).map(|r| r.1),
                Some(risk),
                "{op}"
            );
        }
    }

    #[test]
    fn changing_another_user_is_medium_but_self_is_not_a_finding() {
        let other = dir("Reset user password", &[("User", "bob@contoso.com")]);
        assert_eq!(
            risk_of(&other),
            Some(("another user's account changed", Risk::Medium))
        );
        let own = dir("Update user", &[("User", "JANE@contoso.com")]);
        assert_eq!(risk_of(&own), None);
        assert_eq!(
            risk_of(&dir("Update user", &[])).map(|r| r.1),
            Some(Risk::Medium)
        );
    }

    #[test]
    fn bookkeeping_and_read_only() {
        let cfg = RulesConfig::default();
        assert!(is_elevation_bookkeeping(&dir(
            "Add member to role completed (PIM activation)",
            &[]
        )));
        assert!(is_elevation_bookkeeping(&dir(
            "Remove member from role (PIM activation expired)",
            &[]
        )));
        assert!(is_elevation_bookkeeping(&arm(
            "Microsoft.Authorization/roleAssignmentScheduleRequests/write"
        )));
        assert_eq!(
            risk_of(&dir(
                "Add member to role completed (PIM activation)",
                &[("Role", "Global Administrator")]
            )),
            None
        );
        assert!(!is_elevation_bookkeeping(&dir("Add member to role", &[])));
        assert!(is_read_only(
            &arm("Microsoft.Compute/virtualMachines/read"),
            &cfg
        ));
        assert!(is_read_only(
            &arm("Microsoft.Web/sites/listsyncfunctiontriggerstatus/action"),
            &cfg
        ));
        assert!(!is_read_only(
            &arm("Microsoft.Storage/storageAccounts/listKeys/action"),
            &cfg
        ));
        assert!(!is_read_only(
            &arm("Microsoft.KeyVault/vaults/secrets/read"),
            &cfg
        ));
        assert!(!is_read_only(
            &arm("Microsoft.Compute/virtualMachines/write"),
            &cfg
        ));
        assert!(!is_read_only(&dir("Read user", &[]), &cfg));
    }

    #[test]
    fn odd_operation_strings_do_not_panic() {
        for op in ["", "/", "*", "\u{0}", "ü/ß/delete", &"a/".repeat(10_000)] {
            let _ = classify(&arm(op), &RulesConfig::default());
            let _ = classify(&dir(op, &[]), &RulesConfig::default());
        }
        assert_eq!(arm_risk("ü/ß/delete"), Some(Risk::Medium));
    }
}
