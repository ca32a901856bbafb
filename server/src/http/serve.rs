//! The HTTP listener: poem's endpoint served by hyper with the timeouts poem's own server does
//! not offer. A client gets `HTTP_HEADER_TIMEOUT_SECS` to send a request's headers (slowloris),
//! `HTTP_REQUEST_TIMEOUT_SECS` for the whole request (`408` beyond), and a kept-alive
//! connection that stays silent for `HTTP_IDLE_TIMEOUT_SECS` between requests is closed.
//! Upgraded connections (WebSockets) leave this loop and are bounded by their credentials.
//! On shutdown, connections finish their requests for up to the grace period.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use poem::{
    Endpoint, IntoResponse, Response,
    http::{StatusCode, uri::Scheme},
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The timeouts of the HTTP edge.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub request: Duration,
    pub idle: Duration,
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then lets connections finish
/// their requests for up to `grace`.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint);
    let local = listener.local_addr()?;
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: the next accept may work.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(connection(
            stream,
            local,
            remote,
            endpoint.clone(),
            timeouts,
            stop.child_token(),
        ));
    }
    drop(listener);
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// What the idle watch of one connection needs to know.
#[derive(Default)]
struct Activity {
    /// Milliseconds since the connection began, at its last read or write.
    last_io_ms: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicUsize,
}

async fn connection<E>(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    endpoint: Arc<E>,
    timeouts: Timeouts,
    stop: CancellationToken,
) where
    E: Endpoint + 'static,
{
    let began = Instant::now();
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Watched {
        inner: stream,
        began,
        activity: activity.clone(),
    });
    let service = service_fn({
        let activity = activity.clone();
        move |req: hyper::Request<Incoming>| {
            let endpoint = endpoint.clone();
            let activity = activity.clone();
            async move {
                activity.in_flight.fetch_add(1, Ordering::SeqCst);
                let request = poem::Request::from((
                    req,
                    LocalAddr(local.into()),
                    RemoteAddr(remote.into()),
                    Scheme::HTTP,
                ));
                let response =
                    match tokio::time::timeout(timeouts.request, endpoint.get_response(request))
                        .await
                    {
                        Ok(response) => response,
                        Err(_) => timed_out(),
                    };
                activity.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Infallible>(hyper::Response::from(response))
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%remote, %error, "connection ended with an error");
            }
            return;
        }
        () = idle(&activity, began, timeouts.idle) => {
            tracing::debug!(%remote, "closing an idle connection");
        }
        () = stop.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Resolves once the connection has answered every request and been silent for `limit`.
async fn idle(activity: &Activity, began: Instant, limit: Duration) {
    loop {
        let last = began + Duration::from_millis(activity.last_io_ms.load(Ordering::SeqCst));
        tokio::time::sleep_until(last + limit).await;
        let last = began + Duration::from_millis(activity.last_io_ms.load(Ordering::SeqCst));
        if activity.in_flight.load(Ordering::SeqCst) == 0 && last.elapsed() >= limit {
            return;
        }
        if activity.in_flight.load(Ordering::SeqCst) > 0 {
            // A request is being answered: look again a whole period from now.
            tokio::time::sleep(limit).await;
        }
    }
}

fn timed_out() -> Response {
    let body = serde_json::json!({ "errors": [{
        "message": "the request took too long",
        "extensions": { "code": "UNAVAILABLE" },
    }] });
    Response::builder()
        .status(StatusCode::REQUEST_TIMEOUT)
        .content_type("application/json")
        .header("connection", "close")
        .body(body.to_string())
        .into_response()
}

/// A socket that notes when it last read or wrote anything.
struct Watched {
    inner: TcpStream,
    began: Instant,
    activity: Arc<Activity>,
}

impl Watched {
    fn touch(&self) {
        let ms = u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.last_io_ms.store(ms, Ordering::SeqCst);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
