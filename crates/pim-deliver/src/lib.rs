//! Delivery of PIM audit findings: the Azure Monitor Logs Ingestion API and webhooks.
