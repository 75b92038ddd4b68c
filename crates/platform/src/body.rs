//! Reading a request body under a limit without losing the answer: when a body is refused as too
//! large, the rest of it (up to [`DRAIN_BYTES`], for at most [`DRAIN_WAIT`]) is read and dropped
//! before the 413 is sent. Closing a connection with unread bytes makes the kernel reset it, and a
//! reset discards the answer the client (or a proxy in between) had not read yet: the caller saw a
//! broken connection instead of the 413.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use futures::StreamExt;
use tokio::sync::Mutex;

/// The most of an over-limit body read (and dropped) to deliver its 413; a larger one is cut off.
pub const DRAIN_BYTES: usize = 1024 * 1024;
/// The longest a refused body is waited for.
pub const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// A body handed to a limited reader, whose unread rest can still be drained afterwards.
pub struct Drainable {
    source: Arc<Mutex<BodyDataStream>>,
}

impl Drainable {
    /// Wraps `body`: read the returned body, and [`Drainable::drain`] what it left.
    pub fn wrap(body: Body) -> (Self, Body) {
        let source = Arc::new(Mutex::new(body.into_data_stream()));
        let feed = futures::stream::unfold(source.clone(), |s| async move {
            let next = s.lock().await.next().await;
            next.map(|chunk| (chunk, s))
        });
        (Self { source }, Body::from_stream(feed))
    }

    /// Reads and drops what is left of the body, bounded by [`DRAIN_BYTES`] and [`DRAIN_WAIT`].
    pub async fn drain(self) {
        let _ = tokio::time::timeout(DRAIN_WAIT, async {
            let mut source = self.source.lock().await;
            let mut read = 0;
            while let Some(Ok(chunk)) = source.next().await {
                read += chunk.len();
                if read > DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    }
}

/// The whole body if it is at most `limit` bytes; `None` (after draining it) if larger or broken.
pub async fn to_bytes_or_drain(body: Body, limit: usize) -> Option<axum::body::Bytes> {
    let (rest, body) = Drainable::wrap(body);
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            rest.drain().await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn an_over_limit_body_is_read_to_its_end_before_the_refusal() {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10).map(|_| Ok(vec![b'x'; 10_000])).collect();
        let (rest, body) = Drainable::wrap(Body::from_stream(futures::stream::iter(chunks)));
        assert!(axum::body::to_bytes(body, 25_000).await.is_err());
        let left = rest.source.clone();
        rest.drain().await;
        assert!(left.lock().await.next().await.is_none(), "the body was read to its end");
        let small = to_bytes_or_drain(Body::from("{}"), 10).await;
        assert_eq!(small.as_deref(), Some(&b"{}"[..]));
    }
}
