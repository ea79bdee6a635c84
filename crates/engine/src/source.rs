//! The MLLP source: frames from the listener go through the channel pipeline and
//! the ACK goes back on the same connection.

use std::sync::Arc;

use bytes::Bytes;
use mllp::{ConnectionEvent, Handler, Peer};
use tracing::{debug, warn};

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

    fn on_event(&self, event: ConnectionEvent) {
        match &event {
            ConnectionEvent::Refused { peer, reason } => {
                self.channel.metrics.refused.increment(1);
                warn!(channel = %self.channel.name, %peer, ?reason, "connection refused");
            }
            ConnectionEvent::TlsHandshakeFailed { peer, error } => {
                self.channel.metrics.refused.increment(1);
                warn!(channel = %self.channel.name, %peer, %error, "TLS handshake failed");
            }
            ConnectionEvent::AcceptFailed { error } => {
                warn!(channel = %self.channel.name, %error, "accept failed");
            }
            ConnectionEvent::Accepted { peer } => {
                debug!(channel = %self.channel.name, %peer, "connection accepted");
            }
            ConnectionEvent::Closed {
                peer,
                reason,
                frames,
            } => {
                debug!(channel = %self.channel.name, %peer, ?reason, frames, "connection closed");
            }
            _ => {}
        }
    }
}
