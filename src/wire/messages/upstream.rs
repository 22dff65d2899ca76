//! Reading an Anthropic-wire provider's event stream on behalf of a chat-completions reader.

use bytes::Bytes;

use super::reverse_sse::ChatSseTranslator;
use crate::wire::{Fed, StreamReader};

/// An Anthropic-wire provider's event stream, read frame by frame: translated into
/// chat-completion chunks, or, for a Messages caller ([`passthrough`](Self::new)), passed through
/// as it is with the translation only telling the reader what happened.
pub(crate) struct MessagesStream {
    sse: ChatSseTranslator,
    passthrough: bool,
    /// The passed-through bytes stop inside an event.
    mid_event: bool,
}

impl MessagesStream {
    pub(crate) fn new(passthrough: bool, created: u64) -> Box<Self> {
        Box::new(MessagesStream {
            sse: ChatSseTranslator::new(created),
            passthrough,
            mid_event: false,
        })
    }
}

impl StreamReader for MessagesStream {
    fn feed(&mut self, data: Bytes) -> Fed {
        let chat = self.sse.feed(&data);
        if !self.passthrough {
            return Fed {
                out: chat.clone(),
                chat,
            };
        }
        if !data.is_empty() {
            self.mid_event = !(data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n"));
        }
        Fed { chat, out: data }
    }

    fn passes_through(&self) -> bool {
        self.passthrough
    }

    /// A passed-through stream ends with an Anthropic `error` event; a translated one with the
    /// chat in-band error chunk (so `None`).
    fn error_event(&self, message: &str) -> Option<Bytes> {
        if !self.passthrough {
            return None;
        }
        let v = serde_json::json!({
            "type": "error",
            "error": {"type": "api_error", "message": message},
        });
        let mut out = Vec::with_capacity(160);
        if self.mid_event {
            out.extend_from_slice(b"\n\n");
        }
        out.extend_from_slice(b"event: error\ndata: ");
        out.extend_from_slice(v.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
        Some(Bytes::from(out))
    }
}
