//! Evidence that could not be read, and which activations it could belong to.
//!
//! An activity row that cannot be parsed is not evidence of innocence: if it could be one of an
//! activation's operations, the activation must say so. [`attribute_unreadable`] decides which
//! activations each unreadable row could belong to.

use pim_domain::{Activation, DataProblem, RoleKind};
use time::OffsetDateTime;

/// One activity row that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRow {
    /// The row's time, when it could be read; `None` means "any time".
    pub time: Option<OffsetDateTime>,
    /// The identities the row names (caller UPN, caller object id), trimmed and lower-cased;
    /// empty when none could be read, which means "anyone".
    pub identities: Vec<String>,
    /// What is wrong with the row (source, row, field).
    pub problem: DataProblem,
}

impl UnreadableRow {
    /// Whether the row could belong to `activation`: its identity matches (or is unreadable)
    /// and its time falls in the window (or is unreadable).
    pub fn could_belong_to(&self, activation: &Activation) -> bool {
        let window = &activation.window;
        let in_window = self.time.is_none_or(|t| window.contains(t));
        if !in_window {
            return false;
        }
        if self.identities.is_empty() {
            return true;
        }
        let p = &activation.principal;
        [&p.upn, &p.object_id]
            .into_iter()
            .flatten()
            .map(|k| k.trim().to_lowercase())
            .any(|k| self.identities.contains(&k))
    }
}

/// For each activation (index-aligned), the problems of the unreadable rows that could belong to
/// it, in input order.
///
/// `azure` rows (from `AzureActivity`) count against every activation: Azure resource roles and
/// groups are judged on them, and a directory role's `elevateAccess` is one. `directory` rows
/// (directory changes in `AuditLogs`) count against directory roles and groups only, the
/// activations judged on them.
///
/// At most [`MAX_LISTED_PER_ACTIVATION`] rows are listed per activation; when more could belong
/// to it, one last problem (with no row) says how many more, so a file of broken rows cannot
/// multiply into millions of records.
pub fn attribute_unreadable(
    activations: &[Activation],
    azure: &[UnreadableRow],
    directory: &[UnreadableRow],
) -> Vec<Vec<DataProblem>> {
    activations
        .iter()
        .map(|activation| {
            let reads_directory = activation.role.kind != RoleKind::AzureResource;
            let mut listed = Vec::new();
            let mut more = 0usize;
            let mut last_source = None;
            for row in azure
                .iter()
                .chain(directory.iter().filter(|_| reads_directory))
                .filter(|row| row.could_belong_to(activation))
            {
                if listed.len() < MAX_LISTED_PER_ACTIVATION {
                    listed.push(row.problem.clone());
                } else {
                    more += 1;
                    last_source = Some(&row.problem.source);
                }
            }
            if let Some(source) = last_source {
                listed.push(DataProblem::source(
                    source.clone(),
                    format!(
                        "{more} more unreadable rows could belong to this activation and are not listed"
                    ),
                ));
            }
            listed
        })
        .collect()
}

/// Most unreadable rows listed on one activation.
pub const MAX_LISTED_PER_ACTIVATION: usize = 100;

/// Lower-cased, trimmed identity keys, blanks dropped.
pub(crate) fn identity_keys<'a>(keys: impl IntoIterator<Item = Option<&'a str>>) -> Vec<String> {
    let mut out: Vec<String> = keys
        .into_iter()
        .flatten()
        .map(|k| k.trim().to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::activation_at;
    use time::macros::datetime;

    fn row(time: Option<OffsetDateTime>, who: &[&str]) -> UnreadableRow {
        UnreadableRow {
            time,
            identities: who.iter().map(|s| s.to_string()).collect(),
            problem: DataProblem::field("AzureActivity.json", 3, "TimeGenerated", "bad"),
        }
    }

    #[test]
    fn identity_and_time_must_match_unless_unreadable() {
        // jane@contoso.com, 09:00 to 13:00
        let a = activation_at("jane@contoso.com", datetime!(2026-11-20 09:00 UTC), 4);
        let inside = Some(datetime!(2026-11-20 10:00 UTC));
        let outside = Some(datetime!(2026-11-20 14:00 UTC));
        assert!(row(inside, &["jane@contoso.com"]).could_belong_to(&a));
        assert!(row(None, &["jane@contoso.com"]).could_belong_to(&a));
        assert!(row(inside, &[]).could_belong_to(&a));
        assert!(row(None, &[]).could_belong_to(&a));
        assert!(!row(outside, &["jane@contoso.com"]).could_belong_to(&a));
        assert!(!row(inside, &["bob@contoso.com"]).could_belong_to(&a));
        assert!(!row(outside, &[]).could_belong_to(&a));
    }

    #[test]
    fn directory_rows_do_not_count_against_azure_roles() {
        let mut azure_role = activation_at("jane@contoso.com", datetime!(2026-11-20 09:00 UTC), 4);
        azure_role.role.kind = RoleKind::AzureResource;
        let dir_role = activation_at("jane@contoso.com", datetime!(2026-11-20 09:00 UTC), 4);
        let rows = [row(None, &[])];
        let got = attribute_unreadable(&[azure_role.clone(), dir_role.clone()], &[], &rows);
        assert_eq!(got[0].len(), 0);
        assert_eq!(got[1].len(), 1);
        let got = attribute_unreadable(&[azure_role, dir_role], &rows, &[]);
        assert_eq!((got[0].len(), got[1].len()), (1, 1));
    }

    #[test]
    fn long_lists_are_capped_with_a_count_of_the_rest() {
        let a = activation_at("jane@contoso.com", datetime!(2026-11-20 09:00 UTC), 4);
        let rows: Vec<UnreadableRow> = (0..MAX_LISTED_PER_ACTIVATION + 7)
            .map(|_| row(None, &[]))
            .collect();
        let got = attribute_unreadable(&[a], &rows, &[]);
        assert_eq!(got[0].len(), MAX_LISTED_PER_ACTIVATION + 1);
        let last = got[0].last().unwrap();
        assert_eq!(last.row, None);
        assert!(last.message.starts_with("7 more unreadable rows"), "{last}");
    }

    #[test]
    fn keys_are_trimmed_lowercased_and_blank_free() {
        assert_eq!(
            identity_keys([Some(" Jane@Contoso.com "), None, Some("  ")]),
            ["jane@contoso.com"]
        );
    }
}
