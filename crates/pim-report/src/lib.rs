//! Report rendering: Markdown from embedded tera templates, and the JSON report.
