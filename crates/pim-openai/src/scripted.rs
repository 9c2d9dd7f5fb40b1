//! A chat model that answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{ChatModel, ChatRequest, ChatResponse, Error, FinishReason, Usage};

/// Answers requests from a queue of scripted turns and records every request it receives, so a
/// test can assert on exactly what was sent. Clones share the script and the record.
#[derive(Debug, Clone, Default)]
pub struct ScriptedChatModel {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    script: VecDeque<Result<ChatResponse, Error>>,
    requests: Vec<ChatRequest>,
}

impl ScriptedChatModel {
    /// A model that answers with these texts, in order (finish reason `stop`).
    pub fn new<I, S>(answers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let model = Self::default();
        for a in answers {
            model.push_answer(a);
        }
        model
    }

    /// Queues a plain answer.
    pub fn push_answer(&self, content: impl Into<String>) {
        let content: String = content.into();
        let usage = Usage {
            prompt_tokens: 0,
            completion_tokens: content.len().div_ceil(4) as u64,
            total_tokens: content.len().div_ceil(4) as u64,
        };
        self.push(Ok(ChatResponse {
            content: Some(content),
            finish_reason: FinishReason::Stop,
            usage,
        }));
    }

    /// Queues any outcome, including errors.
    pub fn push(&self, outcome: Result<ChatResponse, Error>) {
        self.lock().script.push_back(outcome);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the record from the others.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ChatModel for ScriptedChatModel {
    fn describe(&self) -> String {
        "scripted model".to_owned()
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, Error> {
        let mut inner = self.lock();
        inner.requests.push(request.clone());
        let n = inner.requests.len();
        inner
            .script
            .pop_front()
            .unwrap_or(Err(Error::ScriptExhausted(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;

    #[tokio::test]
    async fn answers_in_order_records_requests_and_reports_exhaustion() {
        let model = ScriptedChatModel::new(["one"]);
        model.push(Err(Error::RateLimited { retry_after: None }));
        let req = ChatRequest::new(vec![ChatMessage::system("s"), ChatMessage::user("u")]);
        assert_eq!(
            model.complete(&req).await.unwrap().content.as_deref(),
            Some("one")
        );
        let err = model.complete(&req).await.unwrap_err();
        assert!(err.is_retryable());
        assert!(matches!(
            model.complete(&req).await,
            Err(Error::ScriptExhausted(3))
        ));
        assert_eq!(model.requests().len(), 3);
        assert_eq!(model.requests()[0].messages[1].content, "u");
    }

    #[test]
    fn errors_say_whether_to_retry() {
        assert!(
            Error::Http {
                status: 503,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !Error::Http {
                status: 400,
                message: String::new()
            }
            .is_retryable()
        );
        assert!(
            !Error::ContentFilter {
                message: String::new()
            }
            .is_retryable()
        );
        let e = Error::RateLimited {
            retry_after: Some(std::time::Duration::from_millis(1500)),
        };
        assert_eq!(
            e.to_string(),
            "rate limited by the model service (retry after 1500 ms)"
        );
    }

    #[test]
    fn request_serialises_as_the_chat_completions_shape() {
        let mut req = ChatRequest::new(vec![ChatMessage::user("hi")]);
        req.response_format = Some(crate::ResponseFormat::JsonObject);
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["messages"][0]["role"], "user");
        assert_eq!(v["response_format"]["type"], "json_object");
    }
}
