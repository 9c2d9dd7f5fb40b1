//! Conversation context: which users the last scan listed (and their numbers) and who was last
//! discussed, and the resolution of "they", "2" or a typed name against it.

use crate::intent::UserRef;

/// A user as the last scan listed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// The label reports use: the UPN, else display name, else object id.
    pub(crate) label: String,
    /// The display name, when known (so "Ju Cho" finds `ju.cho@…`).
    pub(crate) display_name: Option<String>,
}

/// Why a reference could not be resolved; the message tells the user what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// "they" with nobody discussed yet.
    #[error(
        "I'm not sure who you mean: run `scan` and pick a number (\"what did 2 do\"), or give a UPN"
    )]
    NoCurrentUser,
    /// A number beyond the last listing.
    #[error("there is no user {index}: {}", listing_hint(*listed))]
    NoSuchNumber {
        /// The number typed.
        index: usize,
        /// How many users the last scan listed.
        listed: usize,
    },
}

fn listing_hint(listed: usize) -> String {
    match listed {
        0 => "no scan has listed users yet; run `scan` first".to_owned(),
        1 => "the last scan listed 1 user".to_owned(),
        n => format!("the last scan listed users 1 to {n}"),
    }
}

/// Resolves `user` to the label of one user: a number against `listed` (1-based), a pronoun to
/// `current`, and a name to the listed user it names (UPN, display name or the part of the UPN
/// before `@`, case-insensitively), else to the name as typed so that any UPN can be asked
/// about.
///
/// # Errors
/// [`ResolveError`] when a pronoun has no antecedent or a number is out of range.
pub(crate) fn resolve(
    user: &UserRef,
    listed: &[Listed],
    current: Option<&str>,
) -> Result<String, ResolveError> {
    match user {
        UserRef::Current => match (current, listed) {
            (Some(current), _) => Ok(current.to_owned()),
            // One listed user is the obvious antecedent of "they".
            (None, [only]) => Ok(only.label.clone()),
            (None, _) => Err(ResolveError::NoCurrentUser),
        },
        UserRef::Index(index) => index
            .checked_sub(1)
            .and_then(|i| listed.get(i))
            .map(|l| l.label.clone())
            .ok_or(ResolveError::NoSuchNumber {
                index: *index,
                listed: listed.len(),
            }),
        UserRef::Name(name) => {
            let name = name.trim();
            if let Some(l) = listed.iter().find(|l| l.label.eq_ignore_ascii_case(name)) {
                return Ok(l.label.clone());
            }
            let by_display: Vec<&Listed> = listed
                .iter()
                .filter(|l| {
                    l.display_name
                        .as_deref()
                        .is_some_and(|d| d.trim().eq_ignore_ascii_case(name))
                })
                .collect();
            if let [only] = by_display.as_slice() {
                return Ok(only.label.clone());
            }
            if !name.contains('@') {
                let by_local: Vec<&Listed> = listed
                    .iter()
                    .filter(|l| {
                        l.label
                            .split_once('@')
                            .is_some_and(|(local, _)| local.eq_ignore_ascii_case(name))
                    })
                    .collect();
                if let [only] = by_local.as_slice() {
                    return Ok(only.label.clone());
                }
            }
            Ok(name.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Vec<Listed> {
        vec![
            Listed {
                label: "alice@contoso.com".into(),
                display_name: Some("Alice Ng".into()),
            },
            Listed {
                label: "bob@contoso.com".into(),
                display_name: None,
            },
            Listed {
                label: "bob@fabrikam.com".into(),
                display_name: None,
            },
        ]
    }

    #[test]
    fn numbers_resolve_against_the_listing() {
        let l = listing();
        assert_eq!(
            resolve(&UserRef::Index(1), &l, None).unwrap(),
            "alice@contoso.com"
        );
        assert_eq!(
            resolve(&UserRef::Index(3), &l, None).unwrap(),
            "bob@fabrikam.com"
        );
        assert_eq!(
            resolve(&UserRef::Index(0), &l, None),
            Err(ResolveError::NoSuchNumber {
                index: 0,
                listed: 3
            })
        );
        let err = resolve(&UserRef::Index(4), &l, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "there is no user 4: the last scan listed users 1 to 3"
        );
        let err = resolve(&UserRef::Index(1), &[], None).unwrap_err();
        assert!(err.to_string().contains("run `scan` first"));
    }

    #[test]
    fn pronouns_resolve_to_the_user_last_discussed() {
        let l = listing();
        assert_eq!(
            resolve(&UserRef::Current, &l, Some("bob@contoso.com")).unwrap(),
            "bob@contoso.com"
        );
        assert_eq!(
            resolve(&UserRef::Current, &l, None),
            Err(ResolveError::NoCurrentUser)
        );
        // With a single listed user, "they" can only mean them.
        assert_eq!(
            resolve(&UserRef::Current, &l[..1], None).unwrap(),
            "alice@contoso.com"
        );
    }

    #[test]
    fn names_match_listed_users_or_pass_through() {
        let l = listing();
        let name = |s: &str| UserRef::Name(s.into());
        assert_eq!(
            resolve(&name("ALICE@contoso.com"), &l, None).unwrap(),
            "alice@contoso.com"
        );
        assert_eq!(
            resolve(&name("alice ng"), &l, None).unwrap(),
            "alice@contoso.com"
        );
        assert_eq!(
            resolve(&name("alice"), &l, None).unwrap(),
            "alice@contoso.com"
        );
        // Ambiguous local part: kept as typed rather than guessed.
        assert_eq!(resolve(&name("bob"), &l, None).unwrap(), "bob");
        // Unlisted UPNs can be asked about.
        assert_eq!(
            resolve(
                &name(" mallory@contoso.com "),
                &l,
                Some("alice@contoso.com")
            )
            .unwrap(),
            "mallory@contoso.com"
        );
    }
}
