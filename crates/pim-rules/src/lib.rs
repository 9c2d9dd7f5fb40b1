//! Deterministic assessment: sensitive-operation catalogue, intent vocabulary, justification checks, verdict and risk.
