//! Issue 16: a scripted pim-chat session exports each scan as a run, with its trace, to a
//! loopback OTLP/HTTP receiver.

use pim_testkit::OtlpReceiver;

use crate::support::chat_with_env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scan_of_a_session_is_an_exported_run() {
    let rx = OtlpReceiver::start().await;
    let env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), rx.endpoint())];
    let run = tokio::task::spawn_blocking(move || {
        chat_with_env(&["--demo"], "scan\nscan 12\nexit\n", &env)
    })
    .await
    .unwrap();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    // Two scans (24 h and 12 h): two runs, two traces, each rooted at its own pim.scan.
    assert_eq!(rx.counter("pim.runs", &[("outcome", "success")]), 2.0);
    assert_eq!(rx.histogram_count("pim.run.duration", &[]), 2);
    let spans = rx.spans();
    let scans: Vec<_> = spans.iter().filter(|s| s.name == "pim.scan").collect();
    assert_eq!(scans.len(), 2, "{spans:#?}");
    assert_ne!(scans[0].trace_id, scans[1].trace_id);
    assert!(
        scans
            .iter()
            .all(|s| s.service_name.as_deref() == Some("pim-chat"))
    );
    let day: f64 = scans
        .iter()
        .map(|s| s.attributes["activations"].parse::<f64>().unwrap())
        .sum();
    assert_eq!(rx.counter("pim.activations", &[]), day);
    assert!(day >= 15.0, "{day}");
}
