//! Model-backed assessment for the PIM Activity Audit Agent: versioned prompts, the structured-output schema, answer parsing, held in check by the rules.
