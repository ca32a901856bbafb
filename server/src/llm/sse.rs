//! The `data` of server-sent events, read from a response body as it arrives (the event
//! stream format of the HTML standard: lines ended by CRLF, LF or CR; `data` lines appended,
//! one line feed between them; comments and the other fields ignored; an event dispatched at
//! an empty line, none when its data is empty; a leading byte order mark dropped; an event
//! still open when the body ends dropped).
//!
//! Written here rather than taken from `eventsource-stream`, which this used before: a reply
//! streams one event per token, and that crate spent several allocations and a parser
//! combinator run per line on it (about a tenth of the server's whole work per token), while
//! only `data` is needed here. Lines are found with a scan of the bytes received, and each
//! event costs one allocation, its data.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use futures_util::{Stream, StreamExt};

/// A line longer than this is refused: a provider never sends one, and the buffer would grow
/// with it.
const MAX_LINE: usize = 1024 * 1024;

/// Why the events could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum SseError<E> {
    /// The body failed.
    Body(E),
    /// A line that is not UTF-8, or longer than [`MAX_LINE`].
    Malformed(&'static str),
}

/// See the module documentation. Ends after the body ends or fails.
pub struct SseData<B> {
    body: B,
    /// Bytes received and not yet taken as lines.
    pending: Vec<u8>,
    /// The data of the event being read, each line followed by a line feed.
    data: String,
    /// The last line taken ended with CR: a LF first in what follows belongs to it.
    after_cr: bool,
    /// Whether a line was taken yet (only the first may begin with a byte order mark).
    started: bool,
    ended: bool,
}

impl<B> SseData<B> {
    pub fn new(body: B) -> Self {
        Self {
            body,
            pending: Vec::new(),
            data: String::new(),
            after_cr: false,
            started: false,
            ended: false,
        }
    }

    /// The next complete event of the bytes pending, taking the lines it consumes.
    fn next_event<E>(&mut self) -> Result<Option<String>, SseError<E>> {
        let mut start = 0;
        let mut event = None;
        loop {
            if self.after_cr {
                match self.pending.get(start) {
                    None => break,
                    Some(b'\n') => start += 1,
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let rest = &self.pending[start..];
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                break;
            };
            self.after_cr = rest[end] == b'\r';
            let line = std::str::from_utf8(&rest[..end])
                .map_err(|_| SseError::Malformed("an event stream line is not UTF-8"))?;
            start += end + 1;
            let line = if self.started {
                line
            } else {
                self.started = true;
                line.strip_prefix('\u{feff}').unwrap_or(line)
            };
            if line.is_empty() {
                if self.data.is_empty() {
                    continue;
                }
                let mut data = std::mem::take(&mut self.data);
                data.pop();
                event = Some(data);
                break;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            if field == "data" {
                self.data.push_str(value);
                self.data.push('\n');
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE || self.data.len() > MAX_LINE {
            return Err(SseError::Malformed("an event stream line is too long"));
        }
        Ok(event)
    }
}

impl<B, T, E> Stream for SseData<B>
where
    B: Stream<Item = Result<T, E>> + Unpin,
    T: AsRef<[u8]>,
{
    type Item = Result<String, SseError<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match this.next_event() {
                Ok(Some(event)) => return Poll::Ready(Some(Ok(event))),
                Ok(None) => {}
                Err(error) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
            }
            match ready!(this.body.poll_next_unpin(cx)) {
                Some(Ok(bytes)) => this.pending.extend_from_slice(bytes.as_ref()),
                Some(Err(error)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(SseError::Body(error))));
                }
                None => this.ended = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of `body` received in pieces of `size` bytes.
    async fn events(body: &[u8], size: usize) -> Vec<Result<String, SseError<()>>> {
        let pieces: Vec<Result<Vec<u8>, ()>> = body.chunks(size).map(|c| Ok(c.to_vec())).collect();
        SseData::new(futures_util::stream::iter(pieces))
            .collect()
            .await
    }

    #[tokio::test]
    async fn events_are_read_whatever_the_line_ends_and_pieces() {
        let body = "\u{feff}data: one\n\n: a comment\r\nevent: x\r\nid: 7\r\ndata:two\r\ndata:  lines\r\n\r\n\
                    data\rdata: cr\r\rretry: 5\n\ndata: [DONE]\n\ndata: cut short";
        let want: Vec<Result<String, SseError<()>>> = vec![
            Ok("one".into()),
            Ok("two\n lines".into()),
            Ok("\ncr".into()),
            Ok("[DONE]".into()),
        ];
        for size in [1, 2, 3, 7, 64, body.len()] {
            assert_eq!(
                events(body.as_bytes(), size).await,
                want,
                "pieces of {size}"
            );
        }
    }

    #[tokio::test]
    async fn a_line_that_is_not_utf8_ends_the_events() {
        let got = events(b"data: ok\n\ndata: \xff\n\ndata: later\n\n", 4).await;
        assert_eq!(
            got,
            vec![
                Ok("ok".into()),
                Err(SseError::Malformed("an event stream line is not UTF-8"))
            ]
        );
    }

    #[tokio::test]
    async fn a_body_error_ends_the_events() {
        let pieces: Vec<Result<&[u8], &str>> = vec![Ok(b"data: a\n\n"), Err("reset"), Ok(b"x")];
        let got: Vec<_> = SseData::new(futures_util::stream::iter(pieces))
            .collect()
            .await;
        assert_eq!(got, vec![Ok("a".into()), Err(SseError::Body("reset"))]);
    }
}
