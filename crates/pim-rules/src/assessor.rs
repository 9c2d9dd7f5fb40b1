//! The seam for a model-backed assessor.

use pim_domain::{Assessment, ModelUsage};

use crate::{AssessError, Case};

/// Something that judges a [`Case`] beyond the deterministic rules, typically a language model.
///
/// Callers hold it as `Arc<dyn Assessor>`, so the trait is object-safe (hence `async_trait`).
/// Its answer is never used as is: pass it through [`guardrails::combine`](crate::guardrails::combine)
/// together with the rules' assessment, which keeps the rules' risk as a floor and their flags.
///
/// Implementations must treat `case.activation.justification` (and every other text from the
/// logs) as untrusted data, never as instructions. `baseline` carries the rules' flags, including
/// `prompt_injection_suspected`, for the assessor to take into account.
///
/// Implementations repeat the method signature with its named lifetime,
/// `async fn assess<'c>(&self, case: &Case<'c>, baseline: &Assessment)`, inside
/// `#[async_trait::async_trait] impl Assessor for ...` (`async_trait` cannot match an elided
/// `Case<'_>` in the impl against the trait's named lifetime, which mockall needs).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait Assessor: Send + Sync + std::fmt::Debug {
    /// A short name for reports, e.g. `azure-openai:gpt-4o`.
    fn name(&self) -> &str;

    /// Returns the assessor's own judgement of the case; `baseline` is the rules engine's.
    ///
    /// # Errors
    ///
    /// An [`AssessError`]. [`AssessError::is_retryable`] tells which failures may succeed on a
    /// later attempt: transport failures, rate limiting, timeouts and backend (5xx) errors are
    /// retryable; an unusable answer, a refusal and a configuration error are not. Whatever the
    /// error, the caller keeps the rules' assessment for the activation.
    async fn assess<'c>(
        &self,
        case: &Case<'c>,
        baseline: &Assessment,
    ) -> Result<Assessment, AssessError>;

    /// What the assessor has used over its whole life so far (calls, retries, failures, tokens),
    /// or `None` for an assessor that does not count (the default).
    ///
    /// The counters only grow; a scan reads them before and after and reports the difference
    /// ([`ModelUsage::since`]), so an assessor shared between scans is counted per scan.
    fn usage(&self) -> Option<ModelUsage> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pim_domain::{AssessorKind, Risk, Verdict};

    use super::*;
    use crate::engine::tests::{activation, case_with};
    use crate::{RulesConfig, RulesEngine};

    /// A hand-written assessor that always answers the same, to show plain implementations work
    /// behind `Box<dyn Assessor>`.
    #[derive(Debug)]
    struct Fixed(Verdict);

    #[async_trait::async_trait]
    impl Assessor for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }

        async fn assess<'c>(
            &self,
            _case: &Case<'c>,
            baseline: &Assessment,
        ) -> Result<Assessment, AssessError> {
            let mut answer = baseline.clone();
            answer.verdict = self.0;
            answer.assessor = AssessorKind::Model;
            Ok(answer)
        }
    }

    #[tokio::test]
    async fn boxed_assessor_is_usable() {
        let act = activation("restart web01");
        let case = case_with(&act, &[]);
        let baseline = RulesEngine::new(RulesConfig::default()).assess(&case);
        let boxed: Box<dyn Assessor> = Box::new(Fixed(Verdict::Partial));
        assert_eq!(boxed.name(), "fixed");
        // An assessor that does not count its usage says so.
        assert_eq!(boxed.usage(), None);
        let answer = boxed.assess(&case, &baseline).await.unwrap();
        assert_eq!(answer.verdict, Verdict::Partial);
        assert_eq!(answer.assessor, AssessorKind::Model);
    }

    #[tokio::test]
    async fn mock_assessor_works_behind_arc_dyn() {
        let act = activation("restart web01");
        let case = case_with(&act, &[]);
        let baseline = RulesEngine::new(RulesConfig::default()).assess(&case);

        let mut mock = MockAssessor::new();
        mock.expect_name().return_const("mock".to_owned());
        mock.expect_assess()
            .times(1)
            .withf(|_, b| b.verdict == Verdict::NoActivity)
            .returning(|_, _| Err(AssessError::Timeout(std::time::Duration::from_secs(1))));
        let shared: Arc<dyn Assessor> = Arc::new(mock);
        let clone = Arc::clone(&shared);
        assert_eq!(clone.name(), "mock");
        let err = clone.assess(&case, &baseline).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(baseline.risk, Risk::Low);
    }
}
