//! The adapters between the agent's model and source and the KQL repair loop of
//! [`pim_kql::repair`]: the chat model writes KQL, the source runs it, and a query the service
//! rejects comes back as feedback the model can act on.

use pim_domain::TimeRange;
use pim_kql::CheckedQuery;
use pim_kql::repair::{KqlWriter, QueryRunner, Role, RunError, Turn};
use pim_loganalytics::{KqlSource, LogQuery, QueryOutcome};
use pim_openai::{ChatMessage, ChatModel, ChatRequest};

/// The chat model as a [`KqlWriter`].
pub(crate) struct ModelWriter<'a> {
    model: &'a dyn ChatModel,
}

impl<'a> ModelWriter<'a> {
    pub(crate) fn new(model: &'a dyn ChatModel) -> Self {
        Self { model }
    }
}

impl KqlWriter for ModelWriter<'_> {
    type Error = pim_openai::Error;

    async fn write(&mut self, conversation: &[Turn]) -> Result<String, Self::Error> {
        let messages = conversation
            .iter()
            .map(|turn| match turn.role {
                Role::System => ChatMessage::system(turn.content.clone()),
                Role::User => ChatMessage::user(turn.content.clone()),
                Role::Assistant => ChatMessage::assistant(turn.content.clone()),
            })
            .collect();
        let response = self.model.complete(&ChatRequest::new(messages)).await?;
        Ok(response.content.unwrap_or_default())
    }
}

/// The source as a [`QueryRunner`]: every query carries the API `timespan` (the time control;
/// the KQL filter is only a hint), and is noted in `last_kql` before it runs.
pub(crate) struct SourceRunner<'a> {
    source: &'a dyn KqlSource,
    timespan: TimeRange,
    last_kql: &'a mut Option<String>,
}

impl<'a> SourceRunner<'a> {
    pub(crate) fn new(
        source: &'a dyn KqlSource,
        timespan: TimeRange,
        last_kql: &'a mut Option<String>,
    ) -> Self {
        Self {
            source,
            timespan,
            last_kql,
        }
    }
}

impl QueryRunner for SourceRunner<'_> {
    type Output = QueryOutcome;
    type Error = pim_loganalytics::Error;

    async fn run(&mut self, query: &CheckedQuery) -> Result<QueryOutcome, RunError<Self::Error>> {
        *self.last_kql = Some(query.kql.clone());
        let request = LogQuery {
            label: "question".to_owned(),
            table: None,
            kql: query.kql.clone(),
            timespan: self.timespan,
            scope: None,
        };
        self.source
            .query(&request)
            .await
            .map_err(|e| match innermost(&e) {
                pim_loganalytics::Error::BadQuery {
                    message,
                    line,
                    pos,
                    token,
                    ..
                } => RunError::Rejected(bad_query_detail(message, *line, *pos, token.as_deref())),
                _ => RunError::Failed(e),
            })
    }

    fn tables(output: &QueryOutcome) -> &[pim_domain::Table] {
        &output.tables
    }
}

/// The error the service gave, under any retry wrapper.
pub(crate) fn innermost(e: &pim_loganalytics::Error) -> &pim_loganalytics::Error {
    match e {
        pim_loganalytics::Error::RetriesExhausted { last, .. } => innermost(last),
        other => other,
    }
}

fn bad_query_detail(
    message: &str,
    line: Option<u32>,
    pos: Option<u32>,
    token: Option<&str>,
) -> String {
    let mut where_ = Vec::new();
    if let Some(line) = line {
        where_.push(format!("line {line}"));
    }
    if let Some(pos) = pos {
        where_.push(format!("position {pos}"));
    }
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        where_.push(format!("near '{token}'"));
    }
    if where_.is_empty() {
        message.to_owned()
    } else {
        format!("{} ({})", message, where_.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_query_details_name_the_place() {
        assert_eq!(
            bad_query_detail("Query could not be parsed", Some(2), Some(7), Some("|")),
            "Query could not be parsed (line 2, position 7, near '|')"
        );
        assert_eq!(bad_query_detail("m", None, None, Some("")), "m");
    }
}
