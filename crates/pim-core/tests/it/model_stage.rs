//! A slow or failing model cannot stall a scan or hide (issue 9). The model is the real Azure
//! OpenAI adapter (`live::chat_model`) talking to the loopback fake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::Secret;
use pim_core::config::ModelLimits;
use pim_core::domain::retry::RetryPolicy;
use pim_core::domain::{Report, Verdict};
use pim_core::{Auditor, ScanOptions, demo_source, live};
use pim_openai::{AzureOpenAi, AzureOpenAiOptions, OpenAiAuth};
use pim_testkit::{FakeReply, OpenAiFake, Responder, aligned_responder};
use time::macros::datetime;

const END: time::OffsetDateTime = datetime!(2026-11-20 18:00 UTC);

/// An auditor over the demo tenant whose model is the real Azure OpenAI adapter on the fake,
/// retrying quickly (3 attempts, millisecond backoff, the default two-minute budget), with a
/// model stage deadline.
fn auditor(oai: &OpenAiFake, deadline: Duration) -> Auditor {
    let options = AzureOpenAiOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(10),
            max_total: Duration::from_secs(120),
        },
        ..AzureOpenAiOptions::default()
    };
    let model = AzureOpenAi::new(
        &oai.uri(),
        "pim-gpt",
        OpenAiAuth::ApiKey(Secret::new("oai-key-model-stage")),
        Some(options),
    )
    .unwrap();
    let (assessor, limits) = live::model_assessor(Arc::new(model), ModelLimits::default());
    Auditor::builder(demo_source().unwrap())
        .assessor(assessor)
        .model_limits(limits)
        .model_deadline(deadline)
        .build()
}

async fn rules_only() -> Report {
    Auditor::builder(demo_source().unwrap())
        .build()
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap()
}

/// The activations the model is asked about: those the rules could judge.
fn judged(report: &Report) -> Vec<&pim_core::domain::ActivationReport> {
    report
        .activations
        .iter()
        .filter(|a| !matches!(a.assessment.verdict, Verdict::Unknown | Verdict::NoActivity))
        .collect()
}

#[tokio::test]
async fn a_hung_model_is_cut_off_at_the_stage_deadline_keeping_the_rules_findings() {
    let rules = rules_only().await;
    let asked = judged(&rules).len();
    assert!(asked >= 10, "{asked}");
    // Every call hangs for a minute; the stage may take one second.
    let oai = OpenAiFake::start_with(Responder::fixed(FakeReply::delayed(
        Duration::from_secs(60),
        FakeReply::Json("{}".into()),
    )))
    .await;
    let started = Instant::now();
    let report = auditor(&oai, Duration::from_secs(1))
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    // Bounded by the deadline, not by the minute-long calls (the margin is for a busy machine).
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    for before in judged(&rules) {
        let a = report
            .activations
            .iter()
            .find(|a| a.id == before.id)
            .unwrap();
        assert_eq!(a.assessment.verdict, Verdict::Unknown, "{}", a.id);
        assert_eq!(
            a.assessment.error.as_deref(),
            Some("model stage deadline reached")
        );
        assert_eq!(a.assessment.risk, before.assessment.risk);
        assert_eq!(a.assessment.flags, before.assessment.flags);
        assert_eq!(
            a.assessment.evidence.risk_findings,
            before.assessment.evidence.risk_findings
        );
    }
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("model stage deadline (1s) was reached"))
        .unwrap_or_else(|| panic!("{:#?}", report.warnings));
    assert!(
        warning.contains(&format!("{asked} activations")),
        "{warning}"
    );
}

#[tokio::test]
async fn the_warnings_say_how_many_model_assessments_failed_and_why() {
    // Server errors first (retried, then given up), then the content filter, then success.
    let oai = OpenAiFake::start_with(aligned_responder()).await;
    let rules = rules_only().await;
    let asked = judged(&rules).len();
    oai.fail_next(usize::MAX, FakeReply::ServerError(503));
    let report = auditor(&oai, Duration::from_secs(600))
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    let failed = report
        .activations
        .iter()
        .filter(|a| {
            a.assessment
                .error
                .as_deref()
                .is_some_and(|e| e.contains("model assessment failed"))
        })
        .count();
    assert_eq!(failed, asked);
    let expected = format!(
        "{asked} model assessments failed ({asked} server error (5xx)); those activations are unknown"
    );
    assert!(
        report.warnings.iter().any(|w| w.starts_with(&expected)),
        "{:#?}",
        report.warnings
    );

    oai.clear_failures();
    oai.fail_next(usize::MAX, FakeReply::ContentFilterBlocked);
    let report = auditor(&oai, Duration::from_secs(600))
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    assert!(
        report.warnings.iter().any(|w| w.starts_with(&format!(
            "{asked} model assessments failed ({asked} content filter)"
        ))),
        "{:#?}",
        report.warnings
    );

    oai.clear_failures();
    let report = auditor(&oai, Duration::from_secs(600))
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    assert!(
        !report.warnings.iter().any(|w| w.contains("model")),
        "{:#?}",
        report.warnings
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_budget_fails_the_call_at_once_naming_the_wait() {
    let rules = rules_only().await;
    let asked = judged(&rules).len();
    // Five minutes asked; the adapter's retry budget is two minutes in all.
    let oai = OpenAiFake::start_with(Responder::fixed(FakeReply::RateLimited {
        retry_after_ms: 300_000,
    }))
    .await;
    let started = Instant::now();
    let report = auditor(&oai, Duration::from_secs(600))
        .scan(&ScanOptions::new(END), END)
        .await
        .unwrap();
    // No waiting (the old policy slept 30 s and retried into the same throttle).
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        oai.calls().len(),
        asked,
        "one call per activation, no retry"
    );
    // Every activation the model was asked about is `unknown`: none kept a judged verdict.
    assert!(judged(&report).is_empty());
    let a = report
        .activations
        .iter()
        .find(|a| a.id == judged(&rules)[0].id)
        .unwrap();
    let error = a.assessment.error.as_deref().unwrap();
    assert!(
        error.contains("rate limiting (the service asked to wait 300 s)"),
        "{error}"
    );
    assert!(
        report.warnings.iter().any(|w| w.starts_with(&format!(
            "{asked} model assessments failed ({asked} throttling)"
        ))),
        "{:#?}",
        report.warnings
    );
}
