//! [`SharedText`]: immutable text that many values hold at once.
//!
//! A scan reads hundreds of thousands of operations, and most of their texts repeat: one
//! caller does dozens of operations, a dozen operation names cover a day, one subscription
//! holds them all. An [`Activity`](crate::Activity) therefore holds its texts as
//! `SharedText`, which a parser can hand to every operation that logged the same text (one
//! allocation instead of one per operation), and which clones by a reference count. It reads,
//! compares, hashes, prints and serialises exactly as the `String` it replaces.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Immutable, reference-counted text that reads, compares, hashes, prints and serialises as
/// the `String` it replaces; a clone copies no text. A parser hands one `SharedText` to every
/// operation that logged the same caller or operation name.
///
/// ```
/// use pim_domain::SharedText;
///
/// let caller = SharedText::from("alice@contoso.com");
/// let again = caller.clone(); // no copy of the text
/// assert_eq!(again, "alice@contoso.com");
/// assert_eq!(again.as_str().len(), 17);
/// assert_eq!(serde_json::to_string(&again).unwrap(), r#""alice@contoso.com""#);
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedText(Arc<str>);

impl SharedText {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether two values hold the very same allocation (then their texts are equal without
    /// comparing them).
    pub fn same_allocation(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Default for SharedText {
    fn default() -> Self {
        Self::from("")
    }
}

impl Deref for SharedText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedText {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        Self(Arc::from(text))
    }
}

impl From<&String> for SharedText {
    fn from(text: &String) -> Self {
        Self(Arc::from(text.as_str()))
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        Self(Arc::from(text))
    }
}

impl From<std::borrow::Cow<'_, str>> for SharedText {
    fn from(text: std::borrow::Cow<'_, str>) -> Self {
        Self(Arc::from(text.as_ref()))
    }
}

impl From<SharedText> for String {
    fn from(text: SharedText) -> Self {
        text.0.as_ref().to_owned()
    }
}

impl fmt::Debug for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedText {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<SharedText> for str {
    fn eq(&self, other: &SharedText) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SharedText> for &str {
    fn eq(&self, other: &SharedText) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SharedText> for String {
    fn eq(&self, other: &SharedText) -> bool {
        self.as_str() == &*other.0
    }
}

impl Serialize for SharedText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl JsonSchema for SharedText {
    fn inline_schema() -> bool {
        String::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        String::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        String::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_compares_and_hashes_as_its_text() {
        let a = SharedText::from("Microsoft.Compute/virtualMachines/write");
        let b = SharedText::from(String::from("Microsoft.Compute/virtualMachines/write"));
        assert_eq!(a, b);
        assert!(!SharedText::same_allocation(&a, &b));
        assert!(SharedText::same_allocation(&a, &a.clone()));
        assert_eq!(a, "Microsoft.Compute/virtualMachines/write");
        assert_eq!("Microsoft.Compute/virtualMachines/write", a);
        assert_eq!(format!("{a}"), "Microsoft.Compute/virtualMachines/write");
        assert_eq!(
            format!("{a:?}"),
            "\"Microsoft.Compute/virtualMachines/write\""
        );
        let (low, high) = (SharedText::from("a"), SharedText::from("b"));
        assert!(low < high);
        let mut by_text = HashMap::new();
        by_text.insert(a.clone(), 1);
        assert_eq!(
            by_text.get("Microsoft.Compute/virtualMachines/write"),
            Some(&1)
        );
        assert_eq!(SharedText::default(), "");
        assert_eq!(String::from(a), "Microsoft.Compute/virtualMachines/write");
    }

    #[test]
    fn serialises_and_describes_itself_as_a_string() {
        let text = SharedText::from("a \"quoted\"\nline");
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, serde_json::to_string("a \"quoted\"\nline").unwrap());
        let back: SharedText = serde_json::from_str(&json).unwrap();
        assert_eq!(back, text);
        assert!(serde_json::from_str::<SharedText>("12").is_err());
        assert_eq!(
            serde_json::to_value(schemars::schema_for!(SharedText)).unwrap(),
            serde_json::to_value(schemars::schema_for!(String)).unwrap()
        );
    }
}
