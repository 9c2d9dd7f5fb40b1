//! `/readyz`: whether the source and the model answer, checked at most every
//! [`READY_TTL`] so that probes do not turn into a query and a model call each.

use std::sync::Arc;
use std::time::Duration;

use pim_core::domain::TimeRange;
use pim_core::{KqlSource, LogQuery};
use pim_openai::{ChatMessage, ChatModel, ChatRequest};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a readiness answer is reused.
pub const READY_TTL: Duration = Duration::from_secs(30);

/// The outcome of one check: which dependency failed, if any. The reasons go to the log, not
/// to the unauthenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The source answered.
    pub source: bool,
    /// The model answered (or none is configured).
    pub model: bool,
}

impl Readiness {
    /// Both answered.
    pub fn ready(&self) -> bool {
        self.source && self.model
    }
}

/// Cached readiness checks.
#[derive(Debug, Default)]
pub struct ReadyCheck {
    last: Mutex<Option<(Instant, Readiness)>>,
}

impl ReadyCheck {
    /// The readiness of `source` and `model`, from the cache when fresh. `now` ends the
    /// probe query's time range.
    pub async fn check(
        &self,
        source: &Arc<dyn KqlSource>,
        model: Option<&Arc<dyn ChatModel>>,
        now: OffsetDateTime,
    ) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < READY_TTL
        {
            return r.clone();
        }
        let r = Readiness {
            source: source_answers(source, now).await,
            model: match model {
                Some(m) => model_answers(m).await,
                None => true,
            },
        };
        *last = Some((Instant::now(), r.clone()));
        r
    }
}

async fn source_answers(source: &Arc<dyn KqlSource>, now: OffsetDateTime) -> bool {
    // An offline source (exports, the demo tenant) was read when it was opened and runs no
    // KQL: it is as ready as it will ever be.
    if !source.capabilities().runs_arbitrary_kql {
        return true;
    }
    let query = LogQuery {
        label: "readyz".to_owned(),
        table: None,
        kql: "print ready = 1".to_owned(),
        timespan: TimeRange::new(now - time::Duration::hours(1), now),
        scope: None,
    };
    match source.query(&query).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readyz: the source did not answer");
            false
        }
    }
}

async fn model_answers(model: &Arc<dyn ChatModel>) -> bool {
    let mut request = ChatRequest::new(vec![ChatMessage::user("Reply with the word ready.")]);
    request.max_tokens = Some(5);
    match model.complete(&request).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readyz: the model did not answer");
            false
        }
    }
}
