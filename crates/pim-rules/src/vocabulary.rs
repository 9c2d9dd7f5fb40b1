//! The intent vocabulary: what the justification says the work is, and which operations that
//! work explains.
//!
//! # Intents
//!
//! The justification is split into words (lower-cased, split at anything that is not a letter or
//! digit, so `read-only` is `read only` and `key-vault` is `key vault`). A word matches a trigger
//! word when it is that word or a simple inflection of it: plural `-s`/`-es`/`-ies`, `-ing`,
//! `-ed` (`VMs` → `vm`, `restarting` → `restart`, `scaled` → `scale`, `stopped` → `stop`).
//! Derived words do **not** match: `restartable` is not `restart`, and nothing matches inside a
//! longer word. A trigger is a phrase of such words in order; `*` in a trigger allows up to three
//! words in between (`add * to group` matches "add bob to the group"). Only the first
//! [`MAX_WORDS`] words are read.
//!
//! Each [`Intent`] lists the operations it explains as lower-case patterns with `*` wildcards
//! (ARM operation names, or directory operation names such as `add member to group*`), minus the
//! patterns in its `excludes`: an intent built on a broad pattern such as `*/write` or `*/delete`
//! never explains changes to access control, Key Vault access policies, diagnostic settings,
//! policy, locks, run commands or extensions; those need their own intent.
//!
//! See [`INTENTS`] for the full table; in short:
//!
//! | intent | triggers (examples) | explains |
//! |---|---|---|
//! | restart | restart, reboot, bounce | `*/restart/action` |
//! | start or stop | start, stop, deallocate, shut down, power off | `*/start/action`, `*/stop/action`, `*/deallocate/action`, `*/poweroff/action` |
//! | virtual machine | vm, virtual machine, server | `microsoft.compute/virtualmachines/*` (not run command, extensions) |
//! | run command | run command, script, extension | VM run command and extension operations |
//! | storage account | storage, storage account, blob, container | `microsoft.storage/*` |
//! | network security rule | nsg, network security group, firewall, security rule, port | NSG, firewall policy and `*/firewallrules/*` operations |
//! | network | vnet, subnet, public ip, load balancer, dns | `microsoft.network/*` (not NSGs) |
//! | deploy | deploy, deployment, release, pipeline, rollout | deployments and common resource writes |
//! | scale | scale, resize, sku | VM, scale set, app plan, database writes, autoscale |
//! | key vault | key vault, kv, secret, certificate | `microsoft.keyvault/*` |
//! | rotate credentials | rotate, regenerate, renew | key/secret writes, `regeneratekey`, `listkeys` |
//! | tag | tag | `microsoft.resources/tags/*`, `*/write` (broad; excludes security controls) |
//! | delete | delete, remove, cleanup, decommission, tear down | `*/delete` (excludes security controls) |
//! | role assignment | role assignment, assign role, rbac, grant access, iam | `microsoft.authorization/roleassignments/*`, directory role membership |
//! | group membership | add … to group, group membership, remove … from group | `add/remove member to/from group`, group owners |
//! | user account | reset password, mfa, unlock, user account | user updates, password resets, security info |
//! | user lifecycle | onboard, offboard, leaver, create user, delete user | add/delete/disable user |
//! | application credentials | app registration, client secret, service principal, enterprise app | application and service principal credential/owner/permission operations |
//! | conditional access | conditional access, ca policy | conditional access policy and named location operations |
//! | domain | domain, federation, sso | domain and federation settings |
//! | lock | lock | `microsoft.authorization/locks/*` |
//! | azure policy | azure policy, policy assignment, exemption, initiative | `microsoft.authorization/policy*` |
//! | diagnostics | diagnostic setting, logging | `microsoft.insights/diagnosticsettings/*` |
//! | database | sql, database, cosmos | `microsoft.sql/*`, `microsoft.dbfor*`, `microsoft.documentdb/*` |
//! | web app | web app, app service, function app | `microsoft.web/*` |
//! | kubernetes | aks, kubernetes, cluster | `microsoft.containerservice/*` |
//! | backup | backup, restore, snapshot | recovery services, snapshots, disks |
//! | patch | patch, upgrade | patch assessment/installation, maintenance, upgrades |
//! | read-only investigation | investigate, review, audit, read only, troubleshoot, check logs | `*/read` and plain list actions |
//!
//! # Named resources
//!
//! A word of the justification *looks like a resource name* when it has a letter and also a digit,
//! hyphen or underscore (`web01`, `rg-prod-web`, `kv-prod-01`, `sg_tier0`), after trimming
//! surrounding punctuation. Such a name is *named* when it equals (case-insensitively) a path
//! segment of some activity's resource id, its resource group, or the name or id of a directory
//! target. When the justification names resources, an operation is explained only if it also
//! touches one of them (its own name, its resource group or any parent segment): "restart web01"
//! does not explain a restart of `db01`. Names that match nothing constrain nothing (a ticket
//! number such as `INC0012345` is never a resource).

use std::collections::HashMap;
use std::sync::LazyLock;

use pim_domain::Activity;

use crate::catalogue::{glob_match, normalise_operation};

/// Only this many words of a justification are read for intents and names; a longer text is
/// not more of a justification, and the cap bounds the work on hostile input.
pub const MAX_WORDS: usize = 4096;

/// One recognisable kind of work and the operations it explains.
#[derive(Debug, PartialEq, Eq)]
pub struct Intent {
    /// Stable human name, shown in the evidence (e.g. `restart`).
    pub name: &'static str,
    /// Phrases that announce this intent (words in base form; `*` = up to three other words).
    pub triggers: &'static [&'static str],
    /// Operations this intent explains (lower case, `*` = any run of characters).
    pub patterns: &'static [&'static str],
    /// Operations it never explains even when a pattern matches.
    pub excludes: &'static [&'static str],
}

impl Intent {
    /// Whether this intent explains the activity's operation (regardless of named resources).
    pub fn explains(&self, activity: &Activity) -> bool {
        self.explains_operation(&normalise_operation(&activity.operation))
    }

    /// [`Intent::explains`] on an operation already passed through
    /// [`normalise_operation`].
    pub fn explains_operation(&self, normalised: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, normalised))
            && !self.excludes.iter().any(|p| glob_match(p, normalised))
    }
}

/// Operations a broad intent (`*/write`, `*/delete`) must never explain.
const SECURITY_CONTROLS: &[&str] = &[
    "microsoft.authorization/*",
    "microsoft.keyvault/*",
    "microsoft.insights/diagnosticsettings/*",
    "microsoft.network/networksecuritygroups/*",
    "microsoft.managedidentity/*",
    "microsoft.security/*",
    "microsoft.operationalinsights/*",
    "*/runcommand*",
    "*/extensions/*",
    "*/listkeys/*",
    "*/firewallrules/*",
];

const fn intent(
    name: &'static str,
    triggers: &'static [&'static str],
    patterns: &'static [&'static str],
    excludes: &'static [&'static str],
) -> Intent {
    Intent {
        name,
        triggers,
        patterns,
        excludes,
    }
}

/// Every intent the engine knows, in the order they are reported.
pub const INTENTS: &[Intent] = &[
    intent(
        "restart",
        &["restart", "reboot", "bounce", "recycle"],
        &["*/restart/action"],
        &[],
    ),
    intent(
        "start or stop",
        &[
            "start",
            "stop",
            "deallocate",
            "shutdown",
            "shut down",
            "power on",
            "power off",
            "poweroff",
            "boot",
        ],
        &[
            "*/start/action",
            "*/stop/action",
            "*/deallocate/action",
            "*/poweroff/action",
        ],
        &[],
    ),
    intent(
        "virtual machine",
        &[
            "vm",
            "virtual machine",
            "virtualmachine",
            "server",
            "vmss",
            "scale set",
        ],
        &[
            "microsoft.compute/virtualmachines/*",
            "microsoft.compute/virtualmachinescalesets/*",
        ],
        &["*/runcommand*", "*/extensions/*"],
    ),
    intent(
        "run command",
        &["run command", "runcommand", "script", "extension", "agent"],
        &[
            "*/runcommand/action",
            "*/runcommands/*",
            "microsoft.compute/*/extensions/*",
            "microsoft.hybridcompute/*/extensions/*",
        ],
        &[],
    ),
    intent(
        "storage account",
        &[
            "storage",
            "storage account",
            "storageaccount",
            "blob",
            "container",
            "file share",
        ],
        &["microsoft.storage/*"],
        &[],
    ),
    intent(
        "network security rule",
        &[
            "nsg",
            "network security group",
            "firewall",
            "security rule",
            "port",
            "nsg rule",
            "inbound",
            "outbound",
            "whitelist",
            "allowlist",
        ],
        &[
            "microsoft.network/networksecuritygroups/*",
            "microsoft.network/azurefirewalls/*",
            "microsoft.network/firewallpolicies/*",
            "*/firewallrules/*",
        ],
        &[],
    ),
    intent(
        "network",
        &[
            "network",
            "vnet",
            "virtual network",
            "subnet",
            "public ip",
            "load balancer",
            "dns",
            "peering",
            "route table",
            "gateway",
            "private endpoint",
        ],
        &["microsoft.network/*"],
        &["microsoft.network/networksecuritygroups/*"],
    ),
    intent(
        "deploy",
        &[
            "deploy",
            "deployment",
            "release",
            "pipeline",
            "rollout",
            "roll out",
            "hotfix",
        ],
        &[
            "microsoft.resources/deployments/*",
            "microsoft.resources/subscriptions/resourcegroups/write",
            "microsoft.web/*/write",
            "microsoft.web/*/action",
            "microsoft.compute/*/write",
            "microsoft.containerservice/*/write",
            "microsoft.containerinstance/*/write",
            "microsoft.sql/servers/databases/write",
            "microsoft.storage/storageaccounts/write",
            "microsoft.storage/storageaccounts/blobservices/containers/write",
            "microsoft.insights/components/write",
            "microsoft.network/*/write",
        ],
        SECURITY_CONTROLS,
    ),
    intent(
        "scale",
        &[
            "scale",
            "resize",
            "upsize",
            "downsize",
            "sku",
            "capacity",
            "autoscale",
        ],
        &[
            "microsoft.compute/virtualmachines/write",
            "microsoft.compute/virtualmachines/deallocate/action",
            "microsoft.compute/virtualmachines/start/action",
            "microsoft.compute/virtualmachinescalesets/*",
            "microsoft.web/serverfarms/write",
            "microsoft.web/sites/write",
            "microsoft.sql/servers/databases/write",
            "microsoft.sql/servers/elasticpools/write",
            "microsoft.insights/autoscalesettings/write",
            "microsoft.containerservice/managedclusters/*write",
        ],
        SECURITY_CONTROLS,
    ),
    intent(
        "key vault",
        &[
            "key vault",
            "keyvault",
            "kv",
            "secret",
            "certificate",
            "cert",
        ],
        &["microsoft.keyvault/*"],
        &[],
    ),
    intent(
        "rotate credentials",
        &[
            "rotate",
            "rotation",
            "regenerate",
            "renew",
            "renewal",
            "expiring",
        ],
        &[
            "microsoft.keyvault/vaults/secrets/*",
            "microsoft.keyvault/vaults/keys/*",
            "*/regeneratekey/action",
            "*/listkeys/action",
            "add service principal credentials",
            "remove service principal credentials",
            "update application - certificates and secrets management*",
        ],
        &[],
    ),
    intent(
        "tag",
        &["tag", "tagging", "retag"],
        &["microsoft.resources/tags/*", "*/write"],
        SECURITY_CONTROLS,
    ),
    intent(
        "delete",
        &[
            "delete",
            "remove",
            "cleanup",
            "clean up",
            "decommission",
            "teardown",
            "tear down",
            "deprovision",
            "purge",
        ],
        &["*/delete"],
        SECURITY_CONTROLS,
    ),
    intent(
        "role assignment",
        &[
            "role assignment",
            "assign * role",
            "rbac",
            "grant * access",
            "grant * permission",
            "iam",
            "role membership",
            "directory role",
        ],
        &[
            "microsoft.authorization/roleassignments/*",
            "add member to role*",
            "remove member from role*",
            "add eligible member to role*",
            "remove eligible member from role*",
        ],
        &[],
    ),
    intent(
        "group membership",
        &[
            "add * to * group",
            "group membership",
            "group member",
            "remove * from * group",
            "group owner",
            "security group",
        ],
        &[
            "add member to group*",
            "remove member from group*",
            "add owner to group*",
            "remove owner from group*",
        ],
        &[],
    ),
    intent(
        "user account",
        &[
            "reset * password",
            "password reset",
            "mfa",
            "unlock",
            "user account",
            "authentication method",
            "security info",
            "locked out",
        ],
        &[
            "update user*",
            "reset user password*",
            "reset password*",
            "change user password*",
            "*security info*",
            "*strongauthentication*",
            "enable account*",
            "*authentication method*",
        ],
        &[],
    ),
    intent(
        "user lifecycle",
        &[
            "onboard",
            "offboard",
            "leaver",
            "joiner",
            "new starter",
            "create * user",
            "delete * user",
            "disable * user",
            "disable * account",
        ],
        &[
            "add user*",
            "delete user*",
            "hard delete user*",
            "update user*",
            "disable account*",
            "restore user*",
        ],
        &[],
    ),
    intent(
        "application credentials",
        &[
            "app registration",
            "client secret",
            "service principal",
            "spn",
            "enterprise app",
            "enterprise application",
            "app secret",
            "application secret",
            "app credential",
        ],
        &[
            "add service principal*",
            "remove service principal*",
            "update service principal*",
            "update application*",
            "add application*",
            "add owner to application*",
            "add owner to service principal*",
            "consent to application*",
            "add app role assignment*",
            "add delegated permission grant*",
        ],
        &[],
    ),
    intent(
        "conditional access",
        &["conditional access", "ca policy", "named location"],
        &["*conditional access policy*", "*named location*"],
        &[],
    ),
    intent(
        "domain",
        &["domain", "federation", "sso", "adfs"],
        &["*domain*", "*federation*"],
        &[],
    ),
    intent(
        "lock",
        &["lock", "resource lock"],
        &["microsoft.authorization/locks/*"],
        &[],
    ),
    intent(
        "azure policy",
        &[
            "azure policy",
            "policy assignment",
            "policy definition",
            "policy exemption",
            "exemption",
            "initiative",
            "remediation",
        ],
        &["microsoft.authorization/policy*"],
        &[],
    ),
    intent(
        "diagnostics",
        &[
            "diagnostic setting",
            "diagnostic",
            "logging",
            "log forwarding",
        ],
        &["microsoft.insights/diagnosticsettings/*"],
        &[],
    ),
    intent(
        "database",
        &[
            "sql",
            "database",
            "db",
            "cosmos",
            "cosmosdb",
            "postgres",
            "postgresql",
            "mysql",
        ],
        &[
            "microsoft.sql/*",
            "microsoft.dbfor*",
            "microsoft.documentdb/*",
        ],
        &[
            "*/firewallrules/*",
            "*/listkeys/*",
            "*/listconnectionstrings/*",
        ],
    ),
    intent(
        "web app",
        &[
            "web app",
            "webapp",
            "app service",
            "function app",
            "functionapp",
            "site",
        ],
        &["microsoft.web/*"],
        &["microsoft.web/sites/config/list/action"],
    ),
    intent(
        "kubernetes",
        &[
            "aks",
            "kubernetes",
            "k8s",
            "cluster",
            "node pool",
            "nodepool",
        ],
        &["microsoft.containerservice/*"],
        &[],
    ),
    intent(
        "backup",
        &["backup", "restore", "snapshot", "recovery"],
        &[
            "microsoft.recoveryservices/*",
            "microsoft.dataprotection/*",
            "microsoft.compute/snapshots/*",
            "microsoft.compute/disks/*",
        ],
        &["*/begingetaccess/action"],
    ),
    intent(
        "patch",
        &["patch", "upgrade"],
        &[
            "*/installpatches/action",
            "*/assesspatches/action",
            "microsoft.maintenance/*",
            "*/upgrade/action",
            "microsoft.containerservice/managedclusters/*write",
        ],
        &[],
    ),
    intent(
        "read-only investigation",
        &[
            "investigate",
            "review",
            "audit",
            "read only",
            "readonly",
            "troubleshoot",
            "check * log",
            "diagnose",
            "inspect",
            "look into",
            "analyse",
            "analyze",
            "query",
        ],
        &["*/read"],
        &[],
    ),
];

/// The lower-cased words of the justification (at most [`MAX_WORDS`]).
fn words(justification: &str) -> Vec<String> {
    crate::justification::normalise(justification)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .map(str::to_owned)
        .collect()
}

/// A word and the base forms it may be an inflection of.
fn forms(word: &str) -> Vec<String> {
    let mut out = vec![word.to_owned()];
    let n = word.chars().count();
    if let Some(stem) = word.strip_suffix("ies").filter(|_| n > 4) {
        out.push(format!("{stem}y"));
    }
    if let Some(stem) = word.strip_suffix("es").filter(|_| n > 3) {
        out.push(stem.to_owned());
    }
    if let Some(stem) = word
        .strip_suffix('s')
        .filter(|s| n > 2 && !s.ends_with('s'))
    {
        out.push(stem.to_owned());
    }
    for suffix in ["ing", "ed"] {
        if let Some(stem) = word.strip_suffix(suffix).filter(|s| s.chars().count() >= 3) {
            out.push(stem.to_owned());
            out.push(format!("{stem}e"));
            // stopping → stopp → stop
            let mut chars = stem.chars().rev();
            if let (Some(a), Some(b)) = (chars.next(), chars.next())
                && a == b
            {
                let mut undoubled = stem.to_owned();
                undoubled.pop();
                out.push(undoubled);
            }
        }
    }
    out
}

/// Whether the phrase (trigger words, `*` gaps) occurs in the word forms starting at `at`.
fn phrase_at(forms: &[Vec<String>], at: usize, phrase: &[&str]) -> bool {
    let Some((first, rest)) = phrase.split_first() else {
        return true;
    };
    if *first == "*" {
        return (0..=3).any(|skip| at + skip <= forms.len() && phrase_at(forms, at + skip, rest));
    }
    forms.get(at).is_some_and(|f| f.iter().any(|x| x == first)) && phrase_at(forms, at + 1, rest)
}

/// A trigger's words (empty when the trigger is blank, which then never matches).
fn phrase(trigger: &'static str) -> Vec<&'static str> {
    trigger.split(' ').filter(|w| !w.is_empty()).collect()
}

/// Every trigger split into its words and indexed by its first word, so reading a justification
/// tries at each word only the triggers that can start there, instead of every trigger.
struct TriggerIndex {
    /// First word → (index in [`INTENTS`], the trigger's words).
    by_first: HashMap<&'static str, Vec<(usize, Vec<&'static str>)>>,
    /// Triggers that start with a gap, tried at every word.
    gapped: Vec<(usize, Vec<&'static str>)>,
}

static TRIGGERS: LazyLock<TriggerIndex> = LazyLock::new(|| {
    let mut index = TriggerIndex {
        by_first: HashMap::new(),
        gapped: Vec::new(),
    };
    for (i, intent) in INTENTS.iter().enumerate() {
        for trigger in intent.triggers {
            let words = phrase(trigger);
            match words.first() {
                None => {}
                Some(&"*") => index.gapped.push((i, words)),
                Some(&first) => index.by_first.entry(first).or_default().push((i, words)),
            }
        }
    }
    index
});

/// The intents the justification announces, in [`INTENTS`] order.
///
/// ```
/// use pim_rules::vocabulary::intents;
/// let names: Vec<_> = intents("Reboot the VMs in rg-prod-web").iter().map(|i| i.name).collect();
/// assert_eq!(names, ["restart", "virtual machine"]);
/// ```
pub fn intents(justification: &str) -> Vec<&'static Intent> {
    intents_in(intent_mask(justification))
}

// Sets of intents are bit masks over `INTENTS` indices, so the engine can precompute which
// intents explain an operation name once and test a case's intents with one `&`.
const _: () = assert!(INTENTS.len() <= 64, "intent sets are held in a u64");

/// The intents the justification announces, as a bit set over [`INTENTS`] indices.
pub(crate) fn intent_mask(justification: &str) -> u64 {
    let all_forms: Vec<Vec<String>> = words(justification).iter().map(|w| forms(w)).collect();
    let triggers = &*TRIGGERS;
    let mut mask = 0u64;
    for (at, word_forms) in all_forms.iter().enumerate() {
        for form in word_forms {
            for (i, words) in triggers.by_first.get(form.as_str()).into_iter().flatten() {
                if (mask >> i) & 1 == 0 && phrase_at(&all_forms, at, words) {
                    mask |= 1 << i;
                }
            }
        }
    }
    for (i, words) in &triggers.gapped {
        if (0..all_forms.len()).any(|at| phrase_at(&all_forms, at, words)) {
            mask |= 1 << i;
        }
    }
    mask
}

/// The intents in a bit set from [`intent_mask`], in [`INTENTS`] order.
pub(crate) fn intents_in(mask: u64) -> Vec<&'static Intent> {
    INTENTS
        .iter()
        .enumerate()
        .filter(|(i, _)| (mask >> i) & 1 == 1)
        .map(|(_, intent)| intent)
        .collect()
}

/// The intents that explain a normalised operation, as a bit set over [`INTENTS`] indices.
pub(crate) fn explaining_mask(normalised: &str) -> u64 {
    INTENTS
        .iter()
        .enumerate()
        .filter(|(_, intent)| intent.explains_operation(normalised))
        .fold(0, |mask, (i, _)| mask | (1 << i))
}

/// Words of the justification that look like resource names (see the [module docs](self)),
/// lower-cased, in order of appearance, without duplicates. `exclude` (e.g. the activation's
/// ticket references) are never names.
pub fn resource_name_candidates(justification: &str, exclude: &[String]) -> Vec<String> {
    let text = crate::justification::normalise(justification);
    let mut out: Vec<String> = Vec::new();
    let tokens = text
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .map(|t| t.trim_matches(|c: char| matches!(c, '-' | '_' | '.')))
        .filter(|t| t.chars().count() >= 3)
        .take(MAX_WORDS);
    for token in tokens {
        let has_letter = token.chars().any(char::is_alphabetic);
        let has_mark = token
            .chars()
            .any(|c| c.is_ascii_digit() || c == '-' || c == '_');
        let excluded = exclude.iter().any(|x| x.trim().eq_ignore_ascii_case(token));
        if has_letter && has_mark && !excluded && !out.iter().any(|o| o == token) {
            out.push(token.to_owned());
        }
    }
    out
}

/// The lower-cased names an activity touches: every segment of its resource id, its resource
/// group, and its directory targets' names and ids.
pub fn touched_names(activity: &Activity) -> Vec<String> {
    let mut names: Vec<String> = touched_segments(activity).map(str::to_lowercase).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The names of [`touched_names`] before lower-casing, borrowed, possibly repeated.
fn touched_segments(activity: &Activity) -> impl Iterator<Item = &str> {
    activity
        .resource_id
        .iter()
        .flat_map(|id| id.split('/'))
        .chain(activity.resource_group.as_deref())
        .chain(
            activity
                .targets
                .iter()
                .flat_map(|t| t.name.as_deref().into_iter().chain(t.id.as_deref())),
        )
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `name` lower-cased, exactly as [`str::to_lowercase`] would, but borrowed when it already is
/// lower case and written into `buf` otherwise: this runs for every segment of every resource
/// id, and ids are usually logged in lower case.
fn lowered<'s>(name: &'s str, buf: &'s mut String) -> &'s str {
    if crate::bytes::is_ascii_lower(name) {
        return name;
    }
    if name.is_ascii() {
        buf.clear();
        buf.push_str(name);
        buf.make_ascii_lowercase();
    } else {
        *buf = name.to_lowercase();
    }
    buf
}

/// The candidates (from [`resource_name_candidates`]) that name something in the activities,
/// sorted.
pub fn named_resources(
    justification: &str,
    exclude: &[String],
    activities: &[Activity],
) -> Vec<String> {
    let mut candidates = resource_name_candidates(justification, exclude);
    if candidates.is_empty() {
        return Vec::new();
    }
    // Candidates are unique, so after sorting each touched name finds at most one; looking the
    // touched names up in the candidates (rather than the other way round) needs no set of
    // touched names and stays O(names × log candidates) for hostile justifications.
    candidates.sort_unstable();
    let mut found = vec![false; candidates.len()];
    let mut missing = candidates.len();
    let mut buf = String::new();
    'activities: for activity in activities {
        for segment in touched_segments(activity) {
            let name = lowered(segment, &mut buf);
            if let Ok(i) = candidates.binary_search_by(|c| c.as_str().cmp(name))
                && !found[i]
            {
                found[i] = true;
                missing -= 1;
                if missing == 0 {
                    break 'activities;
                }
            }
        }
    }
    candidates
        .into_iter()
        .zip(found)
        .filter_map(|(c, f)| f.then_some(c))
        .collect()
}

/// Whether the activity touches any of the named resources.
///
/// A touched name also counts when it extends a named one after a separator: deployments and
/// dependent resources are named after what they serve (`payments-api-7.3` deploys
/// `payments-api`, `web01-osdisk` is `web01`'s disk), and a justification names the service.
pub fn touches_any(activity: &Activity, named: &[String]) -> bool {
    if named.is_empty() {
        return false;
    }
    let mut buf = String::new();
    touched_segments(activity).any(|segment| {
        let touched = lowered(segment, &mut buf);
        named.iter().any(|n| {
            touched == n
                || touched
                    .strip_prefix(n.as_str())
                    .is_some_and(|rest| rest.starts_with(['-', '_', '.']))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::tests::{arm, dir};

    fn names(text: &str) -> Vec<&'static str> {
        intents(text).iter().map(|i| i.name).collect()
    }

    fn explained_by(text: &str, op: &str) -> bool {
        let a = if op.contains('/') {
            arm(op)
        } else {
            dir(op, &[])
        };
        intents(text).iter().any(|i| i.explains(&a))
    }

    #[test]
    fn every_intent_is_reachable_from_its_first_trigger() {
        for i in INTENTS {
            let text = i.triggers[0].replace('*', "the");
            assert!(names(&text).contains(&i.name), "{} from {text:?}", i.name);
        }
    }

    #[test]
    fn words_tolerate_case_plurals_hyphens_and_inflections() {
        assert!(names("Restarting the VMs").contains(&"restart"));
        assert!(names("Restarting the VMs").contains(&"virtual machine"));
        assert!(names("virtual-machine patching").contains(&"virtual machine"));
        assert!(names("stopped web01").contains(&"start or stop"));
        assert!(names("Scaled out the plan").contains(&"scale"));
        assert!(names("Key-Vault secrets").contains(&"key vault"));
        assert!(names("update NSG rules").contains(&"network security rule"));
        assert!(names("READ-ONLY review").contains(&"read-only investigation"));
        assert!(names("add bob to the tier1 group").contains(&"group membership"));
        assert!(names("check the activity logs").contains(&"read-only investigation"));
        assert!(names("grant bob access to rg").contains(&"role assignment"));
    }

    #[test]
    fn no_accidental_substring_matches() {
        assert!(!names("restartable service").contains(&"restart"));
        assert!(!names("tagline").contains(&"tag"));
        assert!(!names("vmware migration").contains(&"virtual machine"));
        assert!(!names("activate my role").contains(&"role assignment"));
        assert!(names("").is_empty());
        // "policy" alone is too vague (conditional access? Azure Policy?) to explain policy deletes.
        assert!(!names("update the CA policy").contains(&"azure policy"));
    }

    #[test]
    fn intents_explain_their_operations() {
        let cases = [
            (
                "restart web01",
                "Microsoft.Compute/virtualMachines/restart/action",
            ),
            ("restart the app", "MICROSOFT.WEB/SITES/RESTART/ACTION"),
            (
                "deallocate vm",
                "Microsoft.Compute/virtualMachines/deallocate/action",
            ),
            (
                "storage account config",
                "Microsoft.Storage/storageAccounts/write",
            ),
            (
                "nsg rule for port 443",
                "Microsoft.Network/networkSecurityGroups/securityRules/write",
            ),
            (
                "firewall rule for sql",
                "Microsoft.Sql/servers/firewallRules/write",
            ),
            ("deploy release 5", "Microsoft.Resources/deployments/write"),
            ("deploy release 5", "Microsoft.Web/sites/write"),
            (
                "scale the app service plan",
                "Microsoft.Web/serverfarms/write",
            ),
            (
                "rotate secret in key vault",
                "Microsoft.KeyVault/vaults/secrets/write",
            ),
            (
                "rotate storage keys",
                "Microsoft.Storage/storageAccounts/regenerateKey/action",
            ),
            (
                "tag resources for billing",
                "Microsoft.Resources/tags/write",
            ),
            (
                "tag resources for billing",
                "Microsoft.Compute/virtualMachines/write",
            ),
            ("cleanup old disks", "Microsoft.Compute/disks/delete"),
            (
                "rbac for new joiner",
                "Microsoft.Authorization/roleAssignments/write",
            ),
            ("add user to group", "Add member to group"),
            ("reset password for bob", "Reset user password"),
            ("reset MFA for bob", "Update user"),
            (
                "app registration client secret",
                "Add service principal credentials",
            ),
            ("update CA policy", "Update conditional access policy"),
            (
                "investigate alert",
                "Microsoft.Compute/virtualMachines/read",
            ),
            (
                "run command on web01",
                "Microsoft.Compute/virtualMachines/runCommand/action",
            ),
            (
                "remove resource lock",
                "Microsoft.Authorization/locks/delete",
            ),
            (
                "policy exemption for legacy app",
                "Microsoft.Authorization/policyExemptions/write",
            ),
        ];
        for (text, op) in cases {
            assert!(explained_by(text, op), "{text:?} should explain {op}");
        }
    }

    #[test]
    fn broad_intents_never_explain_security_controls() {
        let cases = [
            (
                "tag resources",
                "Microsoft.Authorization/roleAssignments/write",
            ),
            (
                "cleanup old resources",
                "Microsoft.Authorization/locks/delete",
            ),
            (
                "cleanup old resources",
                "Microsoft.Insights/diagnosticSettings/delete",
            ),
            (
                "deploy release",
                "Microsoft.Authorization/roleAssignments/write",
            ),
            (
                "deploy release",
                "Microsoft.Compute/virtualMachines/runCommand/action",
            ),
            (
                "scale the vm",
                "Microsoft.Compute/virtualMachines/extensions/write",
            ),
            (
                "vm maintenance",
                "Microsoft.Compute/virtualMachines/runCommand/action",
            ),
            (
                "investigate",
                "Microsoft.Storage/storageAccounts/listKeys/action",
            ),
            ("restart web01", "Microsoft.Compute/virtualMachines/delete"),
            ("storage account review", "Add member to group"),
        ];
        for (text, op) in cases {
            assert!(!explained_by(text, op), "{text:?} should not explain {op}");
        }
    }

    #[test]
    fn resource_name_candidates_need_a_digit_hyphen_or_underscore() {
        let c = resource_name_candidates(
            "Restart web01, rg-prod-web and kv_prod. Also server. INC0012345 (db02)",
            &["INC0012345".into()],
        );
        assert_eq!(c, ["web01", "rg-prod-web", "kv_prod", "db02"]);
        assert!(resource_name_candidates("restart the web server", &[]).is_empty());
        assert!(resource_name_candidates("port 443 and 2026-11-20", &[]).is_empty());
    }

    #[test]
    fn named_resources_are_those_that_exist_in_the_activities() {
        let activities = vec![arm("Microsoft.Compute/virtualMachines/restart/action")];
        let named = named_resources("restart web01 and app99 (CHG-1)", &[], &activities);
        assert_eq!(named, ["web01"]);
        assert!(touches_any(&activities[0], &named));
        let by_rg = named_resources("work in RG-PROD-WEB", &[], &activities);
        assert_eq!(by_rg, ["rg-prod-web"]);
        let mut db = arm("Microsoft.Compute/virtualMachines/restart/action");
        db.resource_id = Some("/subscriptions/s1/resourcegroups/rg-prod-db/providers/microsoft.compute/virtualmachines/db01".into());
        db.resource_group = Some("rg-prod-db".into());
        assert!(!touches_any(&db, &named));
    }

    #[test]
    fn directory_targets_can_be_named() {
        let a = dir(
            "Add member to group",
            &[("Group", "SG-Tier1-Ops"), ("User", "bob@contoso.com")],
        );
        let named = named_resources("add bob to sg-tier1-ops", &[], std::slice::from_ref(&a));
        assert_eq!(named, ["sg-tier1-ops"]);
        assert!(touches_any(&a, &named));
    }

    #[test]
    fn hostile_text_is_bounded() {
        let big = "add ".repeat(100_000) + "to group";
        // Past MAX_WORDS: the trigger at the end is not read.
        assert!(!names(&big).contains(&"group membership"));
        let _ = resource_name_candidates(&"a-1 ".repeat(100_000), &[]);
    }

    #[test]
    fn a_named_service_covers_resources_named_after_it() {
        let mut deployment = arm("Microsoft.Resources/deployments/write");
        deployment.resource_id = Some(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.resources/deployments/payments-api-7.3"
                .into(),
        );
        assert!(touches_any(&deployment, &["payments-api".to_owned()]));
        // A prefix that stops inside a word is a different name.
        assert!(!touches_any(&deployment, &["pay".to_owned()]));
        assert!(!touches_any(&deployment, &["payments-ap".to_owned()]));
        assert!(!touches_any(&deployment, &["other-api".to_owned()]));
    }
}
