//! Reading server-sent events: how the gateway follows a subgraph's subscription over
//! HTTP (the subgraph answers `Accept: text/event-stream` with `next` events and a final
//! `complete`; comments are heartbeats).

/// One event read from a stream.
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub name: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// Splits a byte stream into events; feed it chunks as they arrive.
#[derive(Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
}

/// Largest event the decoder buffers (a subgraph response for one event).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// An event larger than [`MAX_EVENT_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("a server-sent event larger than {MAX_EVENT_BYTES} bytes")]
pub struct EventTooLarge;

impl SseDecoder {
    /// Adds `chunk`; returns the events it completed, or `Err` when an event grows past
    /// [`MAX_EVENT_BYTES`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some((end, skip)) = boundary(&self.buffer) {
            let block: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                events.push(event);
            }
        }
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(events)
    }
}

/// Where the first blank line ends an event: (end of the event, length of the separator).
fn boundary(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut name = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_owned()),
            "data" => match &mut data {
                Some(joined) => {
                    joined.push('\n');
                    joined.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    if name.is_none() && data.is_none() {
        return None;
    }
    Some(SseEvent {
        name: name.unwrap_or_else(|| "message".into()),
        data: data.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_reassembled_and_comments_skipped() {
        let mut decoder = SseDecoder::default();
        assert_eq!(
            decoder.push(b":\n\nevent: next\ndata: {\"a\"").ok(),
            Some(vec![])
        );
        let events = decoder
            .push(b":1}\n\nevent: complete\r\ndata: \r\n\r\n")
            .ok();
        assert_eq!(
            events,
            Some(vec![
                SseEvent {
                    name: "next".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    name: "complete".into(),
                    data: String::new()
                },
            ])
        );
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut decoder = SseDecoder::default();
        let events = decoder.push(b"data: a\ndata: b\n\n").ok();
        assert_eq!(
            events,
            Some(vec![SseEvent {
                name: "message".into(),
                data: "a\nb".into()
            }])
        );
    }
}
