//! Metrics (Prometheus text at `/metrics`) and logging helpers.
//!
//! Each [`Metrics`] owns its own recorder instead of installing a global one, so several hubs in
//! one process (the integration tests) keep separate counts. The handles are registered once at
//! start and kept, so the hot path increments an atomic and never looks a metric up by name.

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// Why a stream was closed, the `reason` label of `herald_clients_disconnected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The client went away.
    Client,
    /// The client fell behind its queue (SPEC §7).
    Lagged,
    /// The node is draining.
    Shutdown,
    /// The stream's token expired.
    Expired,
    /// The event log failed while the stream read from it.
    Error,
}

impl Disconnect {
    const ALL: [Disconnect; 5] = [Self::Client, Self::Lagged, Self::Shutdown, Self::Expired, Self::Error];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Lagged => "lagged",
            Self::Shutdown => "shutdown",
            Self::Expired => "expired",
            Self::Error => "error",
        }
    }
}

/// The hub's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    /// Open SSE streams on this node.
    pub clients_connected: Gauge,
    /// Events accepted by `POST /publish` (or a source) and appended to the log.
    pub events_published: Counter,
    /// Events written to streams, counting each stream once per event.
    pub events_delivered: Counter,
    /// Events a stream skipped because they cannot be encoded in its format (a stored event
    /// that today's publish checks would refuse), counting each stream once per event:
    /// `herald_events_skipped_total{reason="encode"}`.
    pub events_skipped_encode: Counter,
    /// Time from receiving a publish request to its durable answer.
    pub publish_duration: Histogram,
    disconnected: [Counter; 5],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

const METADATA: Metadata<'static> = Metadata::new("herald", metrics::Level::INFO, Some("herald"));

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric with a fresh recorder.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("herald_publish_duration_seconds".into()),
                &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let describe = |name: &'static str, unit: Option<Unit>, help: &'static str| {
            recorder.describe_counter(name.into(), unit, help.into());
        };
        describe("herald_clients_connected", None, "Open SSE streams on this node");
        describe("herald_events_published_total", None, "Events appended to the log");
        describe("herald_events_delivered_total", None, "Events written to streams, once per stream");
        describe("herald_events_skipped_total", None, "Events a stream could not send, once per stream, by reason");
        describe("herald_clients_disconnected_total", None, "Closed SSE streams by reason");
        describe("herald_publish_duration_seconds", Some(Unit::Seconds), "Publish request to durable answer");
        let disconnected = Disconnect::ALL.map(|reason| {
            let key = Key::from_parts("herald_clients_disconnected_total", vec![Label::new("reason", reason.as_str())]);
            recorder.register_counter(&key, &METADATA)
        });
        Self {
            clients_connected: recorder.register_gauge(&Key::from_name("herald_clients_connected"), &METADATA),
            events_published: recorder.register_counter(&Key::from_name("herald_events_published_total"), &METADATA),
            events_delivered: recorder.register_counter(&Key::from_name("herald_events_delivered_total"), &METADATA),
            events_skipped_encode: recorder.register_counter(
                &Key::from_parts("herald_events_skipped_total", vec![Label::new("reason", "encode")]),
                &METADATA,
            ),
            publish_duration: recorder
                .register_histogram(&Key::from_name("herald_publish_duration_seconds"), &METADATA),
            disconnected,
            recorder,
        }
    }

    /// Counts one closed stream.
    pub fn disconnected(&self, reason: Disconnect) {
        self.disconnected[reason as usize].increment(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let handle = self.recorder.handle();
        handle.run_upkeep();
        handle.render()
    }
}
