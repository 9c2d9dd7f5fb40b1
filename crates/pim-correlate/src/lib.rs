//! Parsing of raw AuditLogs and AzureActivity rows, elevation windows, and correlation of activity to activations.
