//! The loopback world both chat benchmarks (`bench_chat`, `bench_serve`) run against: the Log
//! Analytics fake serving the demo tables, the model fake answering the conversation's
//! KQL-writing and answer-in-words calls, and the real adapters pointed at them. Included with
//! `#[path]` by each benchmark, so the two measure the same conversation on the same fakes.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::Secret;
use pim_auth::StaticTokenCredential;
use pim_core::KqlSource;
use pim_loganalytics::{LogAnalyticsClient, LogAnalyticsOptions};
use pim_openai::{AzureOpenAi, ChatModel, OpenAiAuth};
use pim_testkit::{FakeReply, LogAnalyticsFake, OpenAiFake, Responder};
use time::OffsetDateTime;

/// The fakes and the adapters that talk to them.
pub struct ChatFakes {
    pub la: LogAnalyticsFake,
    pub oai: OpenAiFake,
    pub source: Arc<dyn KqlSource>,
    pub model: Arc<dyn ChatModel>,
}

/// Starts both fakes with these latencies, serving `audit` and `activity` to the scan.
pub async fn start(
    audit: pim_domain::Table,
    activity: pim_domain::Table,
    query_latency: Duration,
    model_latency: Duration,
) -> Result<ChatFakes, Box<dyn std::error::Error + Send + Sync>> {
    let la = LogAnalyticsFake::start().await;
    // The fake runs no KQL: the free-form question gets the small result its `summarize`
    // would return (registered first, so it wins), the scan's queries the demo tables.
    la.with_table_for(
        |kql: &str| kql.contains("deletions = count()"),
        pim_domain::Table {
            name: "PrimaryResult".into(),
            columns: vec![
                pim_domain::Column {
                    name: "Caller".into(),
                    kind: "string".into(),
                },
                pim_domain::Column {
                    name: "deletions".into(),
                    kind: "long".into(),
                },
            ],
            rows: vec![
                vec!["jane.doe@contoso-demo.com".into(), 3.into()],
                vec!["kim.lee@contoso-demo.com".into(), 1.into()],
            ],
        },
    );
    la.with_table_for(pim_testkit::reads_table("AuditLogs"), audit);
    la.with_table_for(pim_testkit::reads_table("AzureActivity"), activity);
    la.set_latency(query_latency);
    // The KQL-writing call gets a query; the answer-in-words call gets a sentence.
    let oai = OpenAiFake::start_with(Responder::new(|call| {
        if call.system_text().contains("Kusto Query Language") {
            FakeReply::Json(
                "```kql\nAzureActivity\n| where OperationNameValue endswith \"/delete\"\n| summarize deletions = count() by Caller\n```".into(),
            )
        } else {
            FakeReply::Json("Two identities deleted resources; the largest share was jane.doe.".into())
        }
    }))
    .await;
    oai.set_latency(model_latency);

    let credential = Arc::new(StaticTokenCredential::new(
        "bench-token",
        OffsetDateTime::now_utc() + time::Duration::hours(1),
    ));
    let source: Arc<dyn KqlSource> = Arc::new(LogAnalyticsClient::new(
        vec!["11111111-2222-4333-8444-555555555555".into()],
        credential,
        Some(LogAnalyticsOptions {
            endpoint: la.uri(),
            ..LogAnalyticsOptions::default()
        }),
    )?);
    let model: Arc<dyn ChatModel> = Arc::new(AzureOpenAi::new(
        &oai.uri(),
        "gpt-4o",
        OpenAiAuth::ApiKey(Secret::new("bench-key")),
        None,
    )?);
    Ok(ChatFakes {
        la,
        oai,
        source,
        model,
    })
}
