//! The MLLP source: frames from the listener go through the channel pipeline and
//! the ACK goes back on the same connection.

use std::sync::Arc;

use bytes::Bytes;
use mllp::{ConnectionEvent, Handler, Peer};

use crate::channel::Channel;

pub struct MllpSource {
    pub channel: Arc<Channel>,
}

impl Handler for MllpSource {
    async fn on_frame(&self, peer: &Peer, payload: Bytes) -> Option<Bytes> {
        let reply = self
            .channel
            .receive(payload.to_vec(), Some(peer.addr.to_string()))
            .await;
        Some(Bytes::from(reply.ack))
    }

    async fn on_oversized(
        &self,
        peer: &Peer,
        head: Bytes,
        len: usize,
        limit: usize,
    ) -> Option<Bytes> {
        let reply = self
            .channel
            .receive_oversized(head.to_vec(), len, limit, Some(peer.addr.to_string()))
            .await;
        Some(Bytes::from(reply.ack))
    }

    /// The listener logs connection events itself (inside the channel's span);
    /// here they only feed the metrics.
    fn on_event(&self, event: ConnectionEvent) {
        if matches!(
            event,
            ConnectionEvent::Refused { .. } | ConnectionEvent::TlsHandshakeFailed { .. }
        ) {
            self.channel.metrics.refused.increment(1);
        }
    }
}
