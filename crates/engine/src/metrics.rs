//! Metric names and per-channel handles.
//!
//! Handles are registered once per channel and destination so the hot path only
//! bumps atomics instead of looking labels up for every message.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

pub const RECEIVED: &str = "medrelay_messages_received_total";
pub const ACKNOWLEDGED: &str = "medrelay_messages_acknowledged_total";
pub const ERRORED: &str = "medrelay_messages_errored_total";
pub const DUPLICATES: &str = "medrelay_messages_duplicate_total";
pub const FILTERED: &str = "medrelay_messages_filtered_total";
pub const INBOUND_LATENCY: &str = "medrelay_inbound_latency_seconds";
pub const QUEUE_DEPTH: &str = "medrelay_queue_depth";
pub const QUEUE_OLDEST: &str = "medrelay_queue_oldest_age_seconds";
pub const DELIVERIES: &str = "medrelay_deliveries_total";
pub const DELIVERY_LATENCY: &str = "medrelay_delivery_latency_seconds";
pub const CONNECTIONS_REFUSED: &str = "medrelay_connections_refused_total";

/// Every metric family the engine writes, with its help text, for the exporter.
pub fn describe() {
    metrics::describe_counter!(RECEIVED, "Messages received, per channel");
    metrics::describe_counter!(
        ACKNOWLEDGED,
        "Messages answered with a positive ACK (AA/CA) after being stored"
    );
    metrics::describe_counter!(
        ERRORED,
        "Messages answered with AE/AR (unparseable, invalid, or not stored)"
    );
    metrics::describe_counter!(DUPLICATES, "Retransmissions answered with the original ACK");
    metrics::describe_counter!(FILTERED, "Messages stopped by the channel filter");
    metrics::describe_histogram!(
        INBOUND_LATENCY,
        metrics::Unit::Seconds,
        "From a complete frame to its ACK being ready (parse, store, commit)"
    );
    metrics::describe_gauge!(QUEUE_DEPTH, "Deliveries waiting per destination");
    metrics::describe_gauge!(
        QUEUE_OLDEST,
        metrics::Unit::Seconds,
        "Age of the oldest waiting delivery per destination"
    );
    metrics::describe_counter!(DELIVERIES, "Delivery attempts by outcome");
    metrics::describe_histogram!(
        DELIVERY_LATENCY,
        metrics::Unit::Seconds,
        "Duration of one delivery attempt"
    );
    metrics::describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused (allow-list, connection limit, TLS handshake)"
    );
}

#[derive(Clone)]
pub struct ChannelMetrics {
    pub received: Counter,
    pub acknowledged: Counter,
    pub errored: Counter,
    pub duplicates: Counter,
    pub filtered: Counter,
    pub latency: Histogram,
    pub refused: Counter,
}

impl ChannelMetrics {
    pub fn new(channel: &str) -> Self {
        let ch = channel.to_string();
        ChannelMetrics {
            received: counter!(RECEIVED, "channel" => ch.clone()),
            acknowledged: counter!(ACKNOWLEDGED, "channel" => ch.clone()),
            errored: counter!(ERRORED, "channel" => ch.clone()),
            duplicates: counter!(DUPLICATES, "channel" => ch.clone()),
            filtered: counter!(FILTERED, "channel" => ch.clone()),
            latency: histogram!(INBOUND_LATENCY, "channel" => ch.clone()),
            refused: counter!(CONNECTIONS_REFUSED, "channel" => ch),
        }
    }
}

#[derive(Clone)]
pub struct DestinationMetrics {
    pub sent: Counter,
    pub retried: Counter,
    pub failed: Counter,
    pub latency: Histogram,
    pub depth: Gauge,
    pub oldest: Gauge,
}

impl DestinationMetrics {
    pub fn new(channel: &str, destination: &str) -> Self {
        let (c, d) = (channel.to_string(), destination.to_string());
        let outcome = |o: &'static str| counter!(DELIVERIES, "channel" => c.clone(), "destination" => d.clone(), "outcome" => o);
        DestinationMetrics {
            sent: outcome("sent"),
            retried: outcome("retry"),
            failed: outcome("failed"),
            latency: histogram!(DELIVERY_LATENCY, "channel" => c.clone(), "destination" => d.clone()),
            depth: gauge!(QUEUE_DEPTH, "channel" => c.clone(), "destination" => d.clone()),
            oldest: gauge!(QUEUE_OLDEST, "channel" => c, "destination" => d),
        }
    }
}
