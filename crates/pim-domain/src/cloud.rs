//! Which Azure cloud an endpoint belongs to, so that every token scope follows its endpoint.
//!
//! A token for the public cloud is refused by a sovereign cloud's service and the other way
//! round (`InvalidAuthenticationTokenAudience`), so each adapter derives its scope from the host
//! of the endpoint it calls, through [`AzureCloud::of_endpoint`]. The same function serves
//! `--check`, so the scope that preflight tests is the scope the adapter requests.
//!
//! ```
//! use pim_domain::cloud::AzureCloud;
//!
//! assert_eq!(AzureCloud::of_endpoint("https://api.loganalytics.azure.cn"), Some(AzureCloud::China));
//! assert_eq!(AzureCloud::of_endpoint("https://api.loganalytics.us/"), Some(AzureCloud::UsGovernment));
//! assert_eq!(AzureCloud::of_endpoint("https://res.openai.azure.com/openai/v1/"), Some(AzureCloud::Public));
//! assert_eq!(AzureCloud::of_endpoint("http://127.0.0.1:8080"), None);
//! assert_eq!(AzureCloud::pick(None, ["public", "china", "usgov"]), "public");
//! ```

/// An Azure cloud with its own Entra audiences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AzureCloud {
    /// The global (public) cloud: `*.azure.com`, `api.loganalytics.io`.
    Public,
    /// Azure operated by 21Vianet in China: `*.azure.cn`, `*.chinacloudapi.cn`.
    China,
    /// Azure US Government: `*.azure.us`, `*.usgovcloudapi.net`, `api.loganalytics.us`.
    UsGovernment,
}

/// Host suffixes (matched whole labels) of each cloud, most specific clouds first.
const SUFFIXES: [(AzureCloud, &[&str]); 3] = [
    (AzureCloud::China, &["azure.cn", "chinacloudapi.cn"]),
    (
        AzureCloud::UsGovernment,
        &["azure.us", "usgovcloudapi.net", "loganalytics.us"],
    ),
    (
        AzureCloud::Public,
        &["azure.com", "loganalytics.io", "windows.net"],
    ),
];

impl AzureCloud {
    /// The cloud whose DNS zone holds the host of `endpoint` (a URL, scheme optional), or
    /// `None` for any other host: loopback, a proxy, a custom domain. Callers then use the
    /// public cloud's scope and say so.
    pub fn of_endpoint(endpoint: &str) -> Option<Self> {
        let host = host_of(endpoint)?;
        SUFFIXES.iter().find_map(|(cloud, suffixes)| {
            suffixes
                .iter()
                .any(|suffix| {
                    host == *suffix
                        || host
                            .strip_suffix(suffix)
                            .is_some_and(|head| head.ends_with('.'))
                })
                .then_some(*cloud)
        })
    }

    /// Picks the value for `cloud` from `[public, china, us_government]`; an unknown cloud
    /// (`None`) gets the public one.
    pub fn pick<T>(cloud: Option<Self>, [public, china, us_government]: [T; 3]) -> T {
        match cloud {
            Some(Self::China) => china,
            Some(Self::UsGovernment) => us_government,
            Some(Self::Public) | None => public,
        }
    }

    /// A short name for messages: "public", "China", "US Government".
    pub fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::China => "China",
            Self::UsGovernment => "US Government",
        }
    }
}

/// The token scope of the Logs Ingestion API in the public cloud (`*.ingest.monitor.azure.com`).
pub const MONITOR_SCOPE: &str = "https://monitor.azure.com/.default";

/// The token scope of the Logs Ingestion API in Azure China (`*.ingest.monitor.azure.cn`).
pub const MONITOR_SCOPE_CHINA: &str = "https://monitor.azure.cn/.default";

/// The token scope of the Logs Ingestion API in Azure US Government (`*.ingest.monitor.azure.us`).
pub const MONITOR_SCOPE_US_GOVERNMENT: &str = "https://monitor.azure.us/.default";

/// The token scope for the data collection endpoint `endpoint`: its cloud's Azure Monitor
/// audience (reference §6.1), the public one ([`MONITOR_SCOPE`]) for a host of no known cloud.
/// The Logs Ingestion client in `pim-deliver` and `--check` in `pim-core` both call this, so
/// they can never disagree.
///
/// ```
/// use pim_domain::cloud::monitor_scope;
/// assert_eq!(monitor_scope("https://dce.westeurope-1.ingest.monitor.azure.com"), "https://monitor.azure.com/.default");
/// assert_eq!(monitor_scope("https://dce.chinaeast2-1.ingest.monitor.azure.cn"), "https://monitor.azure.cn/.default");
/// assert_eq!(monitor_scope("https://dce.usgovvirginia-1.ingest.monitor.azure.us"), "https://monitor.azure.us/.default");
/// ```
pub fn monitor_scope(endpoint: &str) -> &'static str {
    AzureCloud::pick(
        AzureCloud::of_endpoint(endpoint),
        [
            MONITOR_SCOPE,
            MONITOR_SCOPE_CHINA,
            MONITOR_SCOPE_US_GOVERNMENT,
        ],
    )
}

/// How `--check` names the cloud a scope was chosen for: "public cloud", "China cloud", or,
/// for a host of no known cloud, that the public-cloud scope was assumed.
pub fn describe_choice(endpoint: &str) -> String {
    match AzureCloud::of_endpoint(endpoint) {
        Some(cloud) => format!("{} cloud", cloud.name()),
        None => format!(
            "host {} is in no known Azure cloud, public-cloud scope assumed",
            host_of(endpoint).unwrap_or_else(|| "(none)".to_owned())
        ),
    }
}

/// The lower-case host of a URL without scheme, user info, port or trailing dot.
fn host_of(endpoint: &str) -> Option<String> {
    let endpoint = endpoint.trim();
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if host_port.starts_with('[') {
        // An IPv6 literal: never a cloud's name.
        host_port.split_once(']').map(|(h, _)| h)?
    } else {
        host_port.split(':').next()?
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cloud_is_recognised_by_its_hosts() {
        let cases = [
            (
                "https://api.loganalytics.azure.com",
                Some(AzureCloud::Public),
            ),
            ("https://api.loganalytics.io/v1", Some(AzureCloud::Public)),
            (
                "https://api.loganalytics.azure.cn/",
                Some(AzureCloud::China),
            ),
            (
                "https://api.loganalytics.us",
                Some(AzureCloud::UsGovernment),
            ),
            (
                "https://dce-1.westeurope-1.ingest.monitor.azure.com",
                Some(AzureCloud::Public),
            ),
            (
                "https://dce-1.chinaeast2-1.ingest.monitor.azure.cn",
                Some(AzureCloud::China),
            ),
            (
                "https://dce-1.usgovvirginia-1.ingest.monitor.azure.us",
                Some(AzureCloud::UsGovernment),
            ),
            (
                "https://res.openai.azure.cn/openai/v1/",
                Some(AzureCloud::China),
            ),
            (
                "https://RES.OpenAI.Azure.US.:443/",
                Some(AzureCloud::UsGovernment),
            ),
            (
                "https://user@res.openai.azure.com",
                Some(AzureCloud::Public),
            ),
            ("res.openai.azure.com", Some(AzureCloud::Public)),
        ];
        for (endpoint, expected) in cases {
            assert_eq!(AzureCloud::of_endpoint(endpoint), expected, "{endpoint}");
        }
    }

    #[test]
    fn lookalike_and_local_hosts_are_no_cloud() {
        for endpoint in [
            "http://127.0.0.1:8080",
            "http://[::1]:9000/x",
            "https://evilazure.com",
            "https://azure.com.example.org",
            "https://notloganalytics.us",
            "https://proxy.corp.example/loganalytics.azure.cn",
            "",
            "https://",
        ] {
            assert_eq!(AzureCloud::of_endpoint(endpoint), None, "{endpoint:?}");
        }
    }

    #[test]
    fn the_choice_is_described_for_known_and_unknown_hosts() {
        assert_eq!(
            describe_choice("https://api.loganalytics.us"),
            "US Government cloud"
        );
        assert_eq!(
            describe_choice("http://127.0.0.1:1234"),
            "host 127.0.0.1 is in no known Azure cloud, public-cloud scope assumed"
        );
    }
}
