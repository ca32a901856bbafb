//! Knowing when a client went away.
//!
//! When a client closes its connection while its request runs, the HTTP server (hyper under
//! poem) sees the end of the stream but still runs the request to its end. So the acceptor
//! here watches the reads of every connection: the end of the stream, or an error, marks the
//! connection closed, and the GraphQL handler stops executing a request whose connection
//! closed. Dropping the execution drops its database work, whose running statement is then
//! cancelled (see `db::cancel`).

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use poem::{
    Addr,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::watch,
};

/// The open connections, by the client's address. Cheap to clone.
#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    open: Mutex<HashMap<SocketAddr, (u64, watch::Receiver<bool>)>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

impl Connections {
    /// Resolves once the connection `addr` came from has closed; never for an address that
    /// is not a watched connection.
    pub fn closed(&self, addr: &RemoteAddr) -> impl Future<Output = ()> + Send + use<> {
        let receiver = addr
            .as_socket_addr()
            .and_then(|addr| lock(&self.inner.open).get(addr).map(|(_, rx)| rx.clone()));
        async move {
            match receiver {
                // An error means the connection is gone altogether.
                Some(mut receiver) => {
                    let _ = receiver.wait_for(|closed| *closed).await;
                }
                None => std::future::pending().await,
            }
        }
    }

    fn watch(&self, addr: SocketAddr) -> Watch {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(false);
        lock(&self.inner.open).insert(addr, (id, receiver));
        Watch {
            addr,
            id,
            sender,
            connections: self.clone(),
        }
    }
}

/// One connection's "closed" flag; closed and forgotten when the connection is dropped.
struct Watch {
    addr: SocketAddr,
    id: u64,
    sender: watch::Sender<bool>,
    connections: Connections,
}

impl Watch {
    fn close(&self) {
        self.sender.send_replace(true);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.close();
        let mut open = lock(&self.connections.inner.open);
        if open.get(&self.addr).is_some_and(|(id, _)| *id == self.id) {
            open.remove(&self.addr);
        }
    }
}

/// An acceptor whose connections report when they close.
pub struct WatchedAcceptor<A> {
    inner: A,
    connections: Connections,
}

impl<A> WatchedAcceptor<A> {
    pub fn new(inner: A, connections: Connections) -> Self {
        Self { inner, connections }
    }
}

impl<A: Acceptor> Acceptor for WatchedAcceptor<A> {
    type Io = WatchedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        let watch = match &remote.0 {
            Addr::SocketAddr(addr) => Some(self.connections.watch(*addr)),
            _ => None,
        };
        Ok((WatchedIo { inner: io, watch }, local, remote, scheme))
    }
}

/// A connection that marks itself closed when a read finds the end of the stream or fails.
pub struct WatchedIo<T> {
    inner: T,
    watch: Option<Watch>,
}

impl<T> WatchedIo<T> {
    fn closed(&self) {
        if let Some(watch) = &self.watch {
            watch.close();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (before, room) = (buf.filled().len(), buf.remaining());
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &result {
            Poll::Ready(Ok(())) if room > 0 && buf.filled().len() == before => this.closed(),
            Poll::Ready(Err(_)) => this.closed(),
            _ => {}
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Err(_))) {
            this.closed();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Err(_))) {
            this.closed();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
