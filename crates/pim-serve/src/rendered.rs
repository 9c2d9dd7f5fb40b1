//! Each activation of a shared report, serialized to JSON once.
//!
//! Sessions that ran the same scan share one [`Report`] (through the scan cache), and an
//! activation can carry thousands of operations: the demo tenant's runaway script alone makes
//! a scan's answer about 2 MB of JSON. Serializing it again for every session that lists it
//! made fifty analysts' `scan` turns queue behind each other on the server's cores, so each
//! activation's JSON is kept, keyed by its report and its index, for as long as the report
//! lives anywhere else. Answers send the kept text as it is, one chunk per activation, never
//! copied into a body of their own, so what a client reads is byte for byte what serializing
//! the activation would write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use axum::body::Bytes;
use pim_agent::ReportActivation;
use pim_core::domain::Report;

/// An activation's JSON, or why it could not be serialized.
type Kept = Result<Bytes, String>;

/// One report's activations, each serialized on first use.
struct Slots {
    report: Weak<Report>,
    json: Arc<[OnceLock<Kept>]>,
}

/// The serialized activations of every report still alive (see the module docs).
#[derive(Default)]
pub struct Rendered {
    /// Keyed by the report's address; the weak handle tells a live report from a new one that
    /// reuses a dropped report's address.
    by_report: Mutex<HashMap<usize, Slots>>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.by_report.lock().map_or(0, |m| m.len());
        f.debug_struct("Rendered").field("reports", &n).finish()
    }
}

impl Rendered {
    /// The JSON text of each of `activations`, in order, serializing those not seen before.
    /// Each is shared, not copied: cloning [`Bytes`] counts a reference.
    ///
    /// # Errors
    /// The serializer's message, should an activation not serialize (it always does: every
    /// field is a plain value).
    pub fn activations(&self, activations: &[&ReportActivation]) -> Result<Vec<Bytes>, String> {
        let mut out = Vec::with_capacity(activations.len());
        let mut last: Option<(usize, Arc<[OnceLock<Kept>]>)> = None;
        for a in activations {
            let key = Arc::as_ptr(a.report()) as usize;
            let slots = match &last {
                Some((k, slots)) if *k == key => slots.clone(),
                _ => {
                    let slots = self.slots(a.report());
                    last = Some((key, slots.clone()));
                    slots
                }
            };
            let serialize = || {
                serde_json::to_vec(&**a)
                    .map(Bytes::from)
                    .map_err(|e| e.to_string())
            };
            let json = match slots.get(a.index()) {
                // Sessions that finish the same scan together wait for the first one's text
                // rather than each serializing it again. A failure is kept too: it would fail
                // again.
                Some(slot) => slot.get_or_init(serialize).clone()?,
                // Not reachable (the index came from this report), but never index blindly.
                None => serialize()?,
            };
            out.push(json);
        }
        Ok(out)
    }

    /// The slots of `report`, made when it is first seen; reports no one holds any more are
    /// dropped then.
    fn slots(&self, report: &Arc<Report>) -> Arc<[OnceLock<Kept>]> {
        let key = Arc::as_ptr(report) as usize;
        let mut map = self
            .by_report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = map.get(&key)
            && s.report.upgrade().is_some_and(|r| Arc::ptr_eq(&r, report))
        {
            return s.json.clone();
        }
        map.retain(|_, s| s.report.strong_count() > 0);
        let json: Arc<[OnceLock<Kept>]> = (0..report.activations.len())
            .map(|_| OnceLock::new())
            .collect();
        map.insert(
            key,
            Slots {
                report: Arc::downgrade(report),
                json: json.clone(),
            },
        );
        json
    }

    /// How many reports have serialized activations kept (for tests).
    #[cfg(test)]
    fn reports(&self) -> usize {
        self.by_report.lock().map_or(0, |m| m.len())
    }
}

/// `[a,b,…]` from each element's JSON text, as chunks to send one after another.
pub fn json_array(elements: Vec<Bytes>) -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(elements.len() * 2 + 1);
    chunks.push(Bytes::from_static(b"["));
    for (i, e) in elements.into_iter().enumerate() {
        if i > 0 {
            chunks.push(Bytes::from_static(b","));
        }
        chunks.push(e);
    }
    chunks.push(Bytes::from_static(b"]"));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use pim_agent::{Answer, Session, SessionOptions};
    use pim_core::Auditor;

    async fn scanned() -> Answer {
        let source = pim_core::demo_source().unwrap();
        let auditor = Arc::new(Auditor::builder(source.clone()).build());
        let mut session = Session::new(auditor, source, None, SessionOptions::default());
        let now = time::macros::datetime!(2026-11-20 18:00 UTC);
        session.handle_line("scan", now).await
    }

    #[tokio::test]
    async fn the_kept_json_is_what_serializing_writes_and_is_dropped_with_the_report() {
        let answer = scanned().await;
        let listed = answer.report_activations();
        assert!(listed.len() > 3, "the demo scan lists activations");
        let rendered = Rendered::default();
        let text = |chunks: Vec<Bytes>| String::from_utf8(chunks.concat()).unwrap();
        let first = text(json_array(rendered.activations(&listed).unwrap()));
        let again = text(json_array(rendered.activations(&listed).unwrap()));
        let direct = serde_json::to_string(&answer.activations()).unwrap();
        assert_eq!(first, direct, "byte for byte what serializing writes");
        assert_eq!(again, direct);
        assert_eq!(rendered.reports(), 1);

        // A subset, out of report order, of the same report.
        let some = vec![listed[2], listed[0]];
        assert_eq!(
            text(json_array(rendered.activations(&some).unwrap())),
            serde_json::to_string(&[&**listed[2], &**listed[0]]).unwrap()
        );
        assert_eq!(text(json_array(Vec::new())), "[]");

        // Once no answer holds the report, a new report's first use drops its slots.
        drop(some);
        drop(listed);
        drop(answer);
        let other = scanned().await;
        let listed = other.report_activations();
        rendered.activations(&listed).unwrap();
        assert_eq!(rendered.reports(), 1, "the dropped report's slots are gone");
    }
}
