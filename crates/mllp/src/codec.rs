//! MLLP framing: `0x0B payload 0x1C 0x0D`.
//!
//! [`MllpCodec`] is a [`tokio_util::codec`] decoder and encoder. It moves opaque
//! payloads and never looks inside them.
//!
//! # Decoding rules
//!
//! * Bytes before a start block (stray CR/LF between frames, garbage) are skipped.
//!   Their count is reported in the next [`Inbound`] item and logged with
//!   `tracing::warn!` (the count only, never the bytes: they may be patient data).
//! * A `0x1C` that is not followed by `0x0D` is kept as payload data. Some senders
//!   put stray file separators in free text; rejecting them would lose the message.
//! * A `0x0B` inside a frame means the sender gave up on the frame and started a new
//!   one (typically after its own timeout). The partial frame is dropped and counted as
//!   skipped junk, and decoding starts anew at the new start block. The sender never
//!   got a reply for the abandoned frame, so it will resend it.
//! * A frame whose payload exceeds the configured maximum is not buffered: the decoder
//!   keeps its first [`OVERSIZED_HEAD`] bytes, discards the rest up to the end block
//!   and yields [`Inbound::Oversized`], so the caller can answer with a rejection
//!   and the stream stays in sync. Memory stays bounded by the larger of the limit
//!   and [`OVERSIZED_HEAD`], plus the size of one read.
//! * End of stream inside a frame is [`CodecError::Truncated`].
//!
//! # Encoding rules
//!
//! The encoder refuses payloads that would break the framing (a `0x0B`, or the end
//! sequence `0x1C 0x0D`) and payloads over the maximum, rather than sending a stream
//! the peer would misread.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Start block (vertical tab).
pub const START_BLOCK: u8 = 0x0B;
/// First byte of the end block (file separator).
pub const END_BLOCK: u8 = 0x1C;
/// Second byte of the end block (carriage return).
pub const CARRIAGE_RETURN: u8 = 0x0D;
/// Default maximum payload size: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
/// How many leading payload bytes of an oversized frame are kept in
/// [`Inbound::Oversized::head`]: enough for the MSH segment and evidence.
pub const OVERSIZED_HEAD: usize = 64 * 1024;

/// One decoded item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A complete frame.
    Frame {
        /// The bytes between the start block and the end block.
        payload: Bytes,
        /// Bytes skipped since the previous item (junk or abandoned partial frames).
        junk_skipped: usize,
    },
    /// A complete frame whose payload was larger than the limit. Its body was
    /// discarded; the stream is still in sync.
    Oversized {
        /// The first bytes of the payload (at most [`OVERSIZED_HEAD`]).
        head: Bytes,
        /// Total payload length seen.
        len: usize,
        /// The limit that was exceeded.
        limit: usize,
        /// Bytes skipped since the previous item.
        junk_skipped: usize,
    },
}

/// Errors of [`MllpCodec`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Transport error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame after {bytes} payload bytes")]
    Truncated {
        /// Payload bytes received for the unfinished frame.
        bytes: usize,
    },
    /// A payload to encode is larger than the limit.
    #[error("payload of {len} bytes exceeds the frame limit of {limit} bytes")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A payload to encode contains a start block or an end block sequence, which
    /// would corrupt the framing.
    #[error("payload contains MLLP framing bytes at offset {offset}")]
    InvalidPayload {
        /// Offset of the offending byte.
        offset: usize,
    },
}

#[derive(Debug)]
enum State {
    /// Looking for a start block.
    Seeking,
    /// Inside a frame; the payload starts at the beginning of the buffer.
    InFrame {
        /// Everything before this offset has been searched without finding the end.
        scanned: usize,
    },
    /// Inside an oversized frame; its bytes are dropped as they arrive.
    Discarding {
        /// Grows up to `OVERSIZED_HEAD` even when the limit is smaller.
        head: BytesMut,
        len: usize,
        /// The last byte seen was `0x1C`; whether it ends the frame depends on the
        /// next byte, which has not arrived yet.
        after_end_block: bool,
    },
}

/// MLLP framing codec. See the [module documentation](self) for the rules.
#[derive(Debug)]
pub struct MllpCodec {
    max_frame: usize,
    state: State,
    /// Skipped bytes to report with the next item.
    junk: usize,
    /// Part of `junk` not logged yet.
    unlogged: usize,
}

impl Default for MllpCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl MllpCodec {
    /// A codec that accepts payloads of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            state: State::Seeking,
            junk: 0,
            unlogged: 0,
        }
    }

    /// The maximum payload size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Check that `payload` can be framed.
    pub fn validate_payload(&self, payload: &[u8]) -> Result<(), CodecError> {
        if payload.len() > self.max_frame {
            return Err(CodecError::PayloadTooLarge {
                len: payload.len(),
                limit: self.max_frame,
            });
        }
        let mut from = 0;
        while let Some(i) = memchr::memchr2(START_BLOCK, END_BLOCK, &payload[from..]) {
            let at = from + i;
            if payload[at] == START_BLOCK || payload.get(at + 1) == Some(&CARRIAGE_RETURN) {
                return Err(CodecError::InvalidPayload { offset: at });
            }
            from = at + 1;
        }
        Ok(())
    }

    fn take_junk(&mut self) -> usize {
        self.unlogged = 0;
        std::mem::take(&mut self.junk)
    }

    /// Count skipped bytes and log everything skipped since the last log line.
    fn add_junk(&mut self, n: usize, why: &'static str) {
        self.junk = self.junk.saturating_add(n);
        let total = std::mem::take(&mut self.unlogged).saturating_add(n);
        if total > 0 {
            tracing::warn!(
                bytes = total,
                reason = why,
                "MLLP: skipped bytes outside a frame"
            );
        }
    }

    fn oversized(&mut self, head: Bytes, len: usize) -> Inbound {
        let junk_skipped = self.take_junk();
        tracing::warn!(
            len,
            limit = self.max_frame,
            "MLLP: oversized frame discarded"
        );
        Inbound::Oversized {
            head,
            len,
            limit: self.max_frame,
            junk_skipped,
        }
    }
}

fn head_of(payload: &[u8]) -> BytesMut {
    BytesMut::from(&payload[..payload.len().min(OVERSIZED_HEAD)])
}

fn extend_head(head: &mut BytesMut, data: &[u8]) {
    let room = OVERSIZED_HEAD.saturating_sub(head.len());
    head.extend_from_slice(&data[..data.len().min(room)]);
}

impl Decoder for MllpCodec {
    type Item = Inbound;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, CodecError> {
        loop {
            match &mut self.state {
                State::Seeking => match memchr::memchr(START_BLOCK, src) {
                    Some(i) => {
                        self.add_junk(i, "junk before start block");
                        src.advance(i + 1);
                        self.state = State::InFrame { scanned: 0 };
                    }
                    None => {
                        // Counted but not logged yet: garbage may arrive byte by byte
                        // and one warning per read would flood the log.
                        self.junk = self.junk.saturating_add(src.len());
                        self.unlogged = self.unlogged.saturating_add(src.len());
                        src.clear();
                        return Ok(None);
                    }
                },
                State::InFrame { scanned } => {
                    let from = *scanned;
                    let Some(i) = memchr::memchr2(END_BLOCK, START_BLOCK, &src[from..]) else {
                        *scanned = src.len();
                        if src.len() > self.max_frame {
                            let head = head_of(src);
                            let len = src.len();
                            src.clear();
                            self.state = State::Discarding {
                                head,
                                len,
                                after_end_block: false,
                            };
                            continue;
                        }
                        return Ok(None);
                    };
                    let at = from + i;
                    if src[at] == START_BLOCK {
                        // +1: the abandoned frame's own start block.
                        self.add_junk(at + 1, "frame restarted by a new start block");
                        src.advance(at + 1);
                        self.state = State::InFrame { scanned: 0 };
                        continue;
                    }
                    match src.get(at + 1) {
                        None => {
                            // Re-examine this 0x1C once the next byte is here.
                            *scanned = at;
                            if at > self.max_frame {
                                let head = head_of(&src[..at]);
                                src.clear();
                                self.state = State::Discarding {
                                    head,
                                    len: at,
                                    after_end_block: true,
                                };
                                continue;
                            }
                            return Ok(None);
                        }
                        Some(&CARRIAGE_RETURN) => {
                            self.state = State::Seeking;
                            if at > self.max_frame {
                                let head = head_of(&src[..at]).freeze();
                                src.advance(at + 2);
                                return Ok(Some(self.oversized(head, at)));
                            }
                            let payload = src.split_to(at).freeze();
                            src.advance(2);
                            return Ok(Some(Inbound::Frame {
                                payload,
                                junk_skipped: self.take_junk(),
                            }));
                        }
                        Some(_) => {
                            // Lenient: a lone 0x1C is payload data.
                            *scanned = at + 1;
                        }
                    }
                }
                State::Discarding {
                    head,
                    len,
                    after_end_block,
                } => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    if *after_end_block {
                        *after_end_block = false;
                        if src[0] == CARRIAGE_RETURN {
                            src.advance(1);
                            let (head, len) = (std::mem::take(head).freeze(), *len);
                            self.state = State::Seeking;
                            return Ok(Some(self.oversized(head, len)));
                        }
                        *len = len.saturating_add(1);
                        extend_head(head, &[END_BLOCK]);
                        continue;
                    }
                    match memchr::memchr2(END_BLOCK, START_BLOCK, src) {
                        None => {
                            *len = len.saturating_add(src.len());
                            extend_head(head, src);
                            src.clear();
                            return Ok(None);
                        }
                        Some(at) if src[at] == START_BLOCK => {
                            let abandoned = len.saturating_add(at).saturating_add(1);
                            src.advance(at + 1);
                            self.state = State::InFrame { scanned: 0 };
                            self.add_junk(
                                abandoned,
                                "oversized frame restarted by a new start block",
                            );
                        }
                        Some(at) => {
                            *len = len.saturating_add(at);
                            extend_head(head, &src[..at]);
                            src.advance(at + 1);
                            *after_end_block = true;
                        }
                    }
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, CodecError> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        let truncated = match &self.state {
            State::Seeking => None,
            State::InFrame { .. } => Some(src.len()),
            State::Discarding {
                len,
                after_end_block,
                ..
            } => Some(len.saturating_add(usize::from(*after_end_block))),
        };
        self.state = State::Seeking;
        src.clear();
        let unlogged = std::mem::take(&mut self.unlogged);
        self.junk = 0;
        if unlogged > 0 {
            tracing::warn!(bytes = unlogged, "MLLP: skipped bytes before end of stream");
        }
        match truncated {
            Some(bytes) => Err(CodecError::Truncated { bytes }),
            None => Ok(None),
        }
    }
}

impl MllpCodec {
    fn encode_slice(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        self.validate_payload(payload)?;
        dst.reserve(payload.len() + 3);
        dst.put_u8(START_BLOCK);
        dst.extend_from_slice(payload);
        dst.put_u8(END_BLOCK);
        dst.put_u8(CARRIAGE_RETURN);
        Ok(())
    }
}

impl Encoder<&[u8]> for MllpCodec {
    type Error = CodecError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_slice(payload, dst)
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = CodecError;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_slice(&payload, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut v = vec![START_BLOCK];
        v.extend_from_slice(payload);
        v.extend_from_slice(&[END_BLOCK, CARRIAGE_RETURN]);
        v
    }

    fn payload(item: &Inbound) -> &[u8] {
        match item {
            Inbound::Frame { payload, .. } => payload,
            Inbound::Oversized { .. } => panic!("unexpected oversized: {item:?}"),
        }
    }

    /// Feed `input` in chunks of `chunk` bytes, collecting every item; then EOF.
    fn decode_chunked(
        codec: &mut MllpCodec,
        input: &[u8],
        chunk: usize,
    ) -> (Vec<Inbound>, Result<(), CodecError>) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(item) = codec.decode(&mut buf).expect("decode") {
                out.push(item);
            }
        }
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    #[test]
    fn single_frame() {
        let mut c = MllpCodec::default();
        let (items, end) = decode_chunked(&mut c, &frame(b"MSH|^~\\&|A\rPID|1"), 1024);
        end.unwrap();
        assert_eq!(
            items,
            vec![Inbound::Frame {
                payload: Bytes::from_static(b"MSH|^~\\&|A\rPID|1"),
                junk_skipped: 0
            }]
        );
    }

    #[test]
    fn byte_by_byte_and_many_frames_in_one_read() {
        let mut input = Vec::new();
        for i in 0..20 {
            input.extend(frame(format!("MSH|{i}\rPID|{i}").as_bytes()));
        }
        for chunk in [1, 2, 3, 7, 64, input.len()] {
            let mut c = MllpCodec::default();
            let (items, end) = decode_chunked(&mut c, &input, chunk);
            end.unwrap();
            assert_eq!(items.len(), 20, "chunk {chunk}");
            for (i, item) in items.iter().enumerate() {
                assert_eq!(payload(item), format!("MSH|{i}\rPID|{i}").as_bytes());
            }
        }
    }

    #[test]
    fn empty_payload() {
        let mut c = MllpCodec::default();
        let (items, end) = decode_chunked(&mut c, &frame(b""), 1);
        end.unwrap();
        assert_eq!(payload(&items[0]), b"");
    }

    #[test]
    fn junk_between_frames_is_skipped_and_counted() {
        let mut input = b"\r\n".to_vec();
        input.extend(frame(b"one"));
        input.extend(b"\r\ngarbage");
        input.extend(frame(b"two"));
        input.extend(frame(b"three"));
        input.extend(b"\n\n");
        for chunk in [1, 5, input.len()] {
            let mut c = MllpCodec::default();
            let (items, end) = decode_chunked(&mut c, &input, chunk);
            end.unwrap();
            let got: Vec<_> = items
                .iter()
                .map(|i| match i {
                    Inbound::Frame {
                        payload,
                        junk_skipped,
                    } => (payload.to_vec(), *junk_skipped),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    (b"one".to_vec(), 2),
                    (b"two".to_vec(), 9),
                    (b"three".to_vec(), 0)
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn lone_end_block_is_data() {
        let mut input = vec![START_BLOCK];
        input.extend(b"a\x1Cb\x1C");
        input.extend([END_BLOCK, CARRIAGE_RETURN]);
        for chunk in [1, 2, input.len()] {
            let mut c = MllpCodec::default();
            let (items, end) = decode_chunked(&mut c, &input, chunk);
            end.unwrap();
            assert_eq!(payload(&items[0]), b"a\x1Cb\x1C", "chunk {chunk}");
        }
    }

    #[test]
    fn start_block_inside_frame_restarts_it() {
        let mut input = vec![START_BLOCK];
        input.extend(b"partial");
        input.extend(frame(b"whole"));
        input.extend(frame(b"next"));
        for chunk in [1, 3, input.len()] {
            let mut c = MllpCodec::default();
            let (items, end) = decode_chunked(&mut c, &input, chunk);
            end.unwrap();
            assert_eq!(
                items,
                vec![
                    Inbound::Frame {
                        payload: Bytes::from_static(b"whole"),
                        junk_skipped: 1 + 7
                    },
                    Inbound::Frame {
                        payload: Bytes::from_static(b"next"),
                        junk_skipped: 0
                    }
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn truncated_at_eof() {
        let mut c = MllpCodec::default();
        let mut input = frame(b"ok");
        input.extend([START_BLOCK]);
        input.extend(b"MSH|half");
        let (items, end) = decode_chunked(&mut c, &input, 4);
        assert_eq!(payload(&items[0]), b"ok");
        assert!(
            matches!(end, Err(CodecError::Truncated { bytes: 8 })),
            "{end:?}"
        );
        // Including a dangling end-block byte.
        let mut c = MllpCodec::default();
        let (_, end) = decode_chunked(&mut c, b"\x0Babc\x1C", 1);
        assert!(
            matches!(end, Err(CodecError::Truncated { bytes: 4 })),
            "{end:?}"
        );
    }

    #[test]
    fn junk_only_then_eof_is_clean() {
        let mut c = MllpCodec::default();
        let (items, end) = decode_chunked(&mut c, b"\r\n\r\n", 1);
        assert!(items.is_empty());
        end.unwrap();
    }

    #[test]
    fn oversized_then_normal_frame() {
        let limit = 100;
        let big: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut input = frame(&big);
        input.extend(frame(b"small"));
        input.extend(frame(&big[..limit]));
        for chunk in [1, 7, 99, 100, 101, 1003, input.len()] {
            let mut c = MllpCodec::new(limit);
            let mut buf = BytesMut::new();
            let mut items = Vec::new();
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(item) = c.decode(&mut buf).unwrap() {
                    items.push(item);
                }
                // Memory bound: limit + one read (+ the pending end block bytes).
                assert!(buf.len() <= limit + chunk + 2, "buffered {}", buf.len());
            }
            assert_eq!(items.len(), 3, "chunk {chunk}");
            match &items[0] {
                Inbound::Oversized {
                    head,
                    len,
                    limit: l,
                    junk_skipped,
                } => {
                    assert_eq!(*len, 1000, "chunk {chunk}");
                    assert_eq!(*l, limit);
                    assert_eq!(*junk_skipped, 0);
                    assert!(!head.is_empty() && head.len() <= OVERSIZED_HEAD);
                    assert_eq!(&big[..head.len()], &head[..]);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(payload(&items[1]), b"small");
            assert_eq!(
                payload(&items[2]),
                &big[..limit],
                "exactly the limit is fine"
            );
        }
    }

    #[test]
    fn oversized_with_lone_end_blocks_inside() {
        let limit = 10;
        let mut body = vec![b'x'; 30];
        body[15] = END_BLOCK;
        body[29] = END_BLOCK;
        let mut input = frame(&body);
        input.extend(frame(b"ok"));
        for chunk in [1, 2, 16, input.len()] {
            let mut c = MllpCodec::new(limit);
            let (items, end) = decode_chunked(&mut c, &input, chunk);
            end.unwrap();
            match &items[0] {
                Inbound::Oversized { head, len: 30, .. } => {
                    assert_eq!(&head[..], &body[..], "chunk {chunk}: head keeps lone 0x1C");
                }
                other => panic!("chunk {chunk}: {other:?}"),
            }
            assert_eq!(payload(&items[1]), b"ok");
        }
    }

    #[test]
    fn oversized_head_is_capped() {
        let big = vec![b'z'; OVERSIZED_HEAD * 3];
        let mut c = MllpCodec::new(1024);
        let (items, end) = decode_chunked(&mut c, &frame(&big), 4096);
        end.unwrap();
        match &items[0] {
            Inbound::Oversized { head, len, .. } => {
                assert_eq!(head.len(), OVERSIZED_HEAD);
                assert_eq!(*len, big.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_truncated_and_restarted() {
        let mut c = MllpCodec::new(4);
        let (items, end) = decode_chunked(&mut c, b"\x0B0123456789", 3);
        assert!(items.is_empty());
        assert!(
            matches!(end, Err(CodecError::Truncated { bytes: 10 })),
            "{end:?}"
        );

        let mut c = MllpCodec::new(4);
        let mut input = b"\x0B0123456789".to_vec();
        input.extend(frame(b"ok"));
        let (items, end) = decode_chunked(&mut c, &input, 3);
        end.unwrap();
        assert_eq!(
            items,
            vec![Inbound::Frame {
                payload: Bytes::from_static(b"ok"),
                junk_skipped: 11
            }]
        );
    }

    #[test]
    fn encode_roundtrip_and_validation() {
        let mut c = MllpCodec::new(8);
        let mut dst = BytesMut::new();
        c.encode(&b"abc"[..], &mut dst).unwrap();
        c.encode(Bytes::from_static(b"a\x1Cb"), &mut dst).unwrap();
        assert_eq!(&dst[..], b"\x0Babc\x1C\r\x0Ba\x1Cb\x1C\r");
        let mut dec = MllpCodec::new(8);
        let (items, end) = decode_chunked(&mut dec, &dst, 1);
        end.unwrap();
        assert_eq!(payload(&items[0]), b"abc");
        assert_eq!(payload(&items[1]), b"a\x1Cb");

        assert!(matches!(
            c.encode(&b"123456789"[..], &mut dst),
            Err(CodecError::PayloadTooLarge { len: 9, limit: 8 })
        ));
        assert!(matches!(
            c.encode(&b"ab\x0B"[..], &mut dst),
            Err(CodecError::InvalidPayload { offset: 2 })
        ));
        assert!(matches!(
            c.encode(&b"a\x1C\r"[..], &mut dst),
            Err(CodecError::InvalidPayload { offset: 1 })
        ));
    }

    /// Decoding must not depend on how the stream is split into reads, and must
    /// never panic, whatever the bytes.
    #[test]
    fn chunking_invariance_on_random_streams() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let alphabet = [START_BLOCK, END_BLOCK, CARRIAGE_RETURN, b'a', b'b', b'\n'];
        for _ in 0..500 {
            let len = next() % 200;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            let limit = next() % 40;
            let summarise = |chunk: usize| {
                let mut c = MllpCodec::new(limit);
                let (items, end) = decode_chunked(&mut c, &input, chunk);
                (items, end.map_err(|e| e.to_string()))
            };
            let whole = summarise(input.len().max(1));
            for chunk in [1, 2, 3, 5, 17] {
                assert_eq!(
                    summarise(chunk),
                    whole,
                    "chunk {chunk}, limit {limit}, input {input:?}"
                );
            }
        }
    }

    #[test]
    fn scanning_is_incremental() {
        // A large frame arriving in small reads must not be rescanned from the
        // start each time; verify via the remembered scan offset.
        let mut c = MllpCodec::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[START_BLOCK]);
        buf.extend_from_slice(&[b'x'; 1000]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(matches!(c.state, State::InFrame { scanned: 1000 }));
        buf.extend_from_slice(&[b'y'; 10]);
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(matches!(c.state, State::InFrame { scanned: 1010 }));
    }
}
