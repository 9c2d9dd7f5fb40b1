//! The sources that need no Azure: the embedded demo tenant and a directory of exports.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Error, KqlSource, Result};

/// The bundled demo tenant: a realistic, fixed set of PIM activations and activity embedded in
/// the library, with a fixed scan end ([`SourceInfo::default_end`](crate::SourceInfo::default_end)).
///
/// # Errors
/// [`Error::Source`] if the embedded data cannot be parsed (a build defect, reported not panicked).
pub fn demo_source() -> Result<Arc<dyn KqlSource>> {
    let demo = pim_loganalytics::DemoTenant::new().map_err(Error::Source)?;
    Ok(Arc::new(demo))
}

/// A directory of offline exports: `AuditLogs.json` (required) and `AzureActivity.json`, each a
/// Log Analytics query API response or an array of row objects as `az monitor log-analytics
/// query -o json` prints them.
///
/// # Errors
/// [`Error::Source`] naming the path when the directory or `AuditLogs.json` is missing.
pub fn export_source(dir: impl Into<PathBuf>) -> Result<Arc<dyn KqlSource>> {
    let export = pim_loganalytics::ExportDir::open(dir).map_err(Error::Source)?;
    Ok(Arc::new(export))
}
