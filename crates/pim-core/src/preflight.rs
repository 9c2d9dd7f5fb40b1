//! Preflight checks for `pim-batch --check`.
