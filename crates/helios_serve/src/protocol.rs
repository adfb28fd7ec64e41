//! The wire protocol of `helios serve`, version [`PROTOCOL_VERSION`].
//!
//! One WebSocket connection is one *session*. Control messages are JSON text messages, tagged by
//! `"type"`; pictures travel as binary messages: a little-endian `u32` with the length of a JSON
//! header, the header, then the payload (see [`encode_binary`] / [`decode_binary`]).
//!
//! A session starts with [`ClientMessage::Hello`] and is answered with [`ServerMessage::Welcome`];
//! then the client starts streams (numbered by the client), changes their prompts and priorities,
//! sends conditioning images and stops them. Every frame of a chunk comes as one binary message
//! ([`FrameHeader`] + RGBA8 rows, a PNG or a JPEG, as the stream asked), followed by a
//! [`ServerMessage::Chunk`] text message once the chunk is complete.
//!
//! ```text
//! client                                   server
//! {"type":"hello","version":1,"token":"s3cret"}  →
//!                                          ←  {"type":"welcome","version":1,"session":7,...}
//! {"type":"start","stream":0,"prompt":"a knight smiles","params":{"width":128,"height":128},
//!  "format":"png"}                         →
//!                                          ←  {"type":"started","stream":0}
//!                                          ←  binary: {"stream":0,"chunk":0,"frame":0,...} + PNG
//!                                          ←  ... one per frame ...
//!                                          ←  {"type":"chunk","stream":0,"index":0,"frames":33,...}
//! {"type":"prompt","stream":0,"prompt":"a knight frowns","over_chunks":2}  →
//!                                          ←  {"type":"prompt_applied","stream":0,"prompt":"..."}
//! {"type":"stop","stream":0}               →
//!                                          ←  {"type":"stopped","stream":0}
//! ```
//!
//! Unknown fields are ignored (a newer client can talk to an older server of the same version);
//! a message that cannot be read is answered with [`ErrorCode::Malformed`] and the session goes
//! on.

use helios_model::pipeline::GenerationParams;
use serde::{Deserialize, Serialize};

/// The protocol version this server speaks; a [`ClientMessage::Hello`] must name it.
pub const PROTOCOL_VERSION: u32 = 1;

/// A client's stream number, unique within its session.
pub type ClientStream = u32;

/// What a client sends as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message of a session.
    Hello {
        /// Must be [`PROTOCOL_VERSION`].
        version: u32,
        /// The server's shared token, when it has one.
        #[serde(default)]
        token: Option<String>,
    },
    /// Starts (or restarts) a stream.
    Start {
        /// The client's number for the stream.
        stream: ClientStream,
        /// What the video shows.
        prompt: String,
        /// Size, steps, guidance, seed...; absent fields take the checkpoint's defaults.
        #[serde(default)]
        params: GenerationParams,
        /// How frames are sent back.
        #[serde(default)]
        format: FrameFormat,
        /// Scheduling priority among all streams of the server (lower first).
        #[serde(default)]
        priority: f32,
        /// Chunks to make before the stream stops by itself; absent: until stopped.
        #[serde(default)]
        chunks: Option<u32>,
        /// `false` (default): the server makes the next chunk as soon as the client has read
        /// the last one. `true`: only the chunks the client grants ([`ClientMessage::Grant`]),
        /// for a client that plays frames at its own pace (a game's ring buffer).
        #[serde(default)]
        paced: bool,
    },
    /// Lets a paced stream make `chunks` more chunks (the server still never runs more than its
    /// `chunks_ahead` ahead of what was sent).
    Grant {
        /// The stream.
        stream: ClientStream,
        /// How many more.
        chunks: u32,
    },
    /// Switches a stream's prompt, interpolated over `over_chunks` chunks.
    Prompt {
        /// The stream.
        stream: ClientStream,
        /// The new prompt.
        prompt: String,
        /// Chunks over which the old prompt blends into the new one (at least 1).
        #[serde(default = "one")]
        over_chunks: usize,
    },
    /// Changes a stream's priority; `null` pauses it (it keeps its history).
    Priority {
        /// The stream.
        stream: ClientStream,
        /// Lower first; `None` pauses.
        priority: Option<f32>,
    },
    /// Stops a stream.
    Stop {
        /// The stream.
        stream: ClientStream,
    },
}

fn one() -> usize {
    1
}

/// How a stream's frames are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameFormat {
    /// Raw RGBA8 rows, `width * height * 4` bytes, top row first.
    #[default]
    Rgba8,
    /// A PNG (RGBA8).
    Png,
    /// A JPEG (RGB, quality 85).
    Jpeg,
}

/// What the server sends as text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to [`ClientMessage::Hello`].
    Welcome {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// The session's number on this server (for logs).
        session: u64,
        /// How many streams one session may run at once.
        max_streams: usize,
        /// The largest `width * height` a stream may ask for.
        max_pixels: usize,
    },
    /// A stream was created; its frames follow.
    Started {
        /// The stream.
        stream: ClientStream,
    },
    /// Every frame of a chunk was sent (each as a binary message before this one).
    Chunk {
        /// The stream.
        stream: ClientStream,
        /// Chunk number in the stream (0, 1, ...).
        index: usize,
        /// Frames in the chunk.
        frames: usize,
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Seconds the model took for the chunk.
        seconds: f32,
    },
    /// The model now follows this prompt on the stream.
    PromptApplied {
        /// The stream.
        stream: ClientStream,
        /// The prompt.
        prompt: String,
    },
    /// A stream ended (on request, after its `chunks`, or after an error).
    Stopped {
        /// The stream.
        stream: ClientStream,
    },
    /// Something the client asked for failed; the session goes on unless the code says otherwise
    /// ([`ErrorCode::closes_session`]).
    Error {
        /// The stream it concerns, if any.
        stream: Option<ClientStream>,
        /// What kind of error.
        code: ErrorCode,
        /// What happened, for people.
        message: String,
    },
}

impl ServerMessage {
    /// A [`ServerMessage::Error`].
    pub fn error(
        stream: Option<ClientStream>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Self {
        Self::Error {
            stream,
            code,
            message: message.into(),
        }
    }
}

/// The kinds of [`ServerMessage::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message could not be read (not JSON, unknown type, a missing or mistyped field, a bad
    /// binary header).
    Malformed,
    /// The first message was not a `hello`.
    HelloExpected,
    /// The client speaks another protocol version. Closes the session.
    UnsupportedVersion,
    /// The token is missing or wrong. Closes the session.
    Unauthorized,
    /// The server has as many sessions as it allows. Closes the session.
    Busy,
    /// A limit of the session was reached: too many streams, or too many pixels per frame.
    Limit,
    /// The message names a stream the session has not started.
    UnknownStream,
    /// A conditioning image could not be decoded.
    BadImage,
    /// The model failed on the stream (or could not be loaded), which is then stopped.
    Model,
    /// The client read its frames too slowly for too long. Closes the session.
    SlowClient,
    /// The server is shutting down or its worker is gone. Closes the session.
    Unavailable,
}

impl ErrorCode {
    /// Whether the server closes the session after sending this error.
    pub fn closes_session(self) -> bool {
        matches!(
            self,
            Self::UnsupportedVersion
                | Self::Unauthorized
                | Self::Busy
                | Self::SlowClient
                | Self::Unavailable
        )
    }
}

/// The header of a binary message the server sends: one frame of a chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameHeader {
    /// The stream.
    pub stream: ClientStream,
    /// Chunk number in the stream.
    pub chunk: usize,
    /// Frame number in the chunk.
    pub frame: usize,
    /// Frames in the chunk.
    pub frames: usize,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// How the payload is encoded.
    pub format: FrameFormat,
}

/// The header of a binary message a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientBinary {
    /// The payload is an image (PNG or JPEG) that conditions the stream (I2V) from its next
    /// chunk on.
    Image {
        /// The stream.
        stream: ClientStream,
    },
    /// The payload is `frames` raw RGB8 frames of `width x height` (rows top to bottom, frames
    /// oldest first): the latest frames of a live video (e.g. the game's own picture) that the
    /// stream continues from its next chunk on (V2V). The last `1 + 4k` of them, at most
    /// [`MAX_VIDEO_FRAMES`], are encoded into the stream's history.
    Video {
        /// The stream.
        stream: ClientStream,
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Frames in the payload.
        frames: usize,
    },
}

/// The most frames one [`ClientBinary::Video`] message may carry (one chunk's 33 frames).
pub const MAX_VIDEO_FRAMES: usize = 33;

impl ClientBinary {
    /// The stream the message is about.
    pub fn stream(&self) -> ClientStream {
        match self {
            Self::Image { stream } | Self::Video { stream, .. } => *stream,
        }
    }
}

/// Why a binary message could not be split.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// Shorter than its 4-byte header length, or than the header it announces.
    #[error("binary message of {len} bytes is shorter than its header")]
    Truncated {
        /// The message's length.
        len: usize,
    },
    /// The header is not the JSON expected.
    #[error("binary header: {0}")]
    Header(#[from] serde_json::Error),
}

/// A binary message: `u32` little-endian header length, the header as JSON, the payload.
pub fn encode_binary<H: Serialize>(header: &H, payload: &[u8]) -> Vec<u8> {
    // Serialising these plain structs cannot fail (no maps with non-string keys, no I/O).
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len() + payload.len());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(payload);
    out
}

/// Splits a binary message into its header and payload.
pub fn decode_binary<H: for<'de> Deserialize<'de>>(
    message: &[u8],
) -> Result<(H, &[u8]), BinaryError> {
    let truncated = BinaryError::Truncated { len: message.len() };
    let Some((len, rest)) = message.split_first_chunk::<4>() else {
        return Err(truncated);
    };
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(truncated);
    }
    let (header, payload) = rest.split_at(len);
    Ok((serde_json::from_slice(header)?, payload))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn messages_read_as_documented() {
        let start: ClientMessage = serde_json::from_str(
            r#"{"type":"start","stream":3,"prompt":"a fox","params":{"width":64,"height":64,"seed":9},"format":"png","future_field":1}"#,
        )
        .unwrap();
        let ClientMessage::Start {
            stream,
            params,
            format,
            priority,
            chunks,
            paced,
            ..
        } = start
        else {
            panic!("not a start: {start:?}");
        };
        assert_eq!((stream, params.width, params.seed), (3, Some(64), 9));
        assert_eq!(
            (format, priority, chunks, paced),
            (FrameFormat::Png, 0.0, None, false)
        );
        let prompt: ClientMessage =
            serde_json::from_str(r#"{"type":"prompt","stream":1,"prompt":"x"}"#).unwrap();
        assert_eq!(
            prompt,
            ClientMessage::Prompt {
                stream: 1,
                prompt: "x".into(),
                over_chunks: 1
            }
        );
        let error = ServerMessage::Error {
            stream: None,
            code: ErrorCode::SlowClient,
            message: "m".into(),
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"type":"error","stream":null,"code":"slow_client","message":"m"}"#
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            "not json",
            r#"{"type":"launch","stream":1}"#,
            r#"{"type":"start","prompt":"no stream"}"#,
            r#"{"type":"stop","stream":-1}"#,
        ] {
            assert!(serde_json::from_str::<ClientMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn binary_messages_round_trip_and_reject_truncation() {
        let header = ClientBinary::Image { stream: 2 };
        let message = encode_binary(&header, b"payload");
        let (back, payload) = decode_binary::<ClientBinary>(&message).unwrap();
        assert_eq!((back, payload), (header, &b"payload"[..]));
        assert!(matches!(
            decode_binary::<ClientBinary>(&message[..6]),
            Err(BinaryError::Truncated { .. })
        ));
        assert!(matches!(
            decode_binary::<ClientBinary>(&[1, 0]),
            Err(BinaryError::Truncated { len: 2 })
        ));
        assert!(matches!(
            decode_binary::<ClientBinary>(&encode_binary(&"nope", b"")),
            Err(BinaryError::Header(_))
        ));
    }
}
