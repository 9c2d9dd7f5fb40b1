//! Stable snake_case names for the fieldless enums of reports and the command line, and the
//! error a string that names none of them gives.

/// The error returned when a string does not name a known enum value (for example a
/// `--fail-on` argument or a verdict in a model's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What kind of value was expected ("verdict", "risk", ...).
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown {} {:?}: expected one of {}",
            self.kind,
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

/// Implements `as_str`, `Display`, `FromStr` and the list of all values for a fieldless enum
/// whose serde names are the snake_case strings given here.
macro_rules! string_enum {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            const NAMES: &'static [&'static str] = &[$($name),+];

            /// The stable snake_case name used in reports and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim();
                $(
                    if wanted.eq_ignore_ascii_case($name) {
                        return Ok($ty::$variant);
                    }
                )+
                Err($crate::UnknownValue { kind: $kind, value: s.to_owned(), expected: Self::NAMES })
            }
        }
    };
}
pub(crate) use string_enum;
