//! KQL building with safe literals: the scan queries, escaping of every spliced value.
