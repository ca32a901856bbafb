//! The password hashing threads: exactly `size` threads of their own, fed by a channel, each
//! reusing one argon2 working area for every hash it computes.
//!
//! Hashing on tokio's blocking pool instead (up to 512 threads, started as bursts need them)
//! grew the process by one working area per thread that ever hashed: glibc gives each thread
//! its own malloc arena and, after the first big free, serves big blocks from the arenas
//! rather than `mmap`, so the freed areas stayed resident. Here the areas are allocated once per
//! thread and never freed: resident memory is at most `size` areas, whatever the bursts.
//!
//! Threads are started when work first arrives, and again if one ever died. A job that
//! panics is an error for its caller, and its thread lives on. The threads end when the
//! [`Pool`] is dropped.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
};

use argon2::Block;
use tokio::sync::oneshot;

use crate::error::{AppError, AppResult};

/// A thread's argon2 working area, kept between jobs.
#[derive(Default)]
pub(super) struct Scratch {
    blocks: Vec<Block>,
}

impl Scratch {
    /// At least `count` blocks of memory. The area grows to `count` the first time and is
    /// kept; `reused` is how many blocks a hash of the configured parameters needs, and a
    /// larger request (a hash stored with costlier parameters) gets an area of its own that
    /// is freed afterwards, so the kept area stays the configured size.
    pub(super) fn with_blocks<T>(
        &mut self,
        count: usize,
        reused: usize,
        work: impl FnOnce(&mut [Block]) -> T,
    ) -> T {
        if count > reused.max(self.blocks.len()) {
            let mut own = vec![Block::default(); count];
            return work(&mut own);
        }
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::default());
        }
        work(&mut self.blocks)
    }
}

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

struct Shared {
    receiver: Mutex<mpsc::Receiver<Job>>,
    size: usize,
    /// Threads running (or being started).
    live: AtomicUsize,
    /// Threads ever started, to name them.
    started: AtomicUsize,
}

/// `size` hashing threads.
pub(super) struct Pool {
    sender: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.shared.size)
            .field("live", &self.shared.live.load(Ordering::Relaxed))
            .finish()
    }
}

impl Pool {
    /// A pool of `size` (at least 1) threads, none started yet.
    pub(super) fn new(size: usize) -> Self {
        let (sender, receiver) = mpsc::channel();
        Self {
            sender,
            shared: Arc::new(Shared {
                receiver: Mutex::new(receiver),
                size: size.max(1),
                live: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
            }),
        }
    }

    /// Runs `work` on one of the threads, with that thread's working area. `work` runs to
    /// the end even if the caller stops waiting.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> AppResult<T> + Send + 'static,
    ) -> AppResult<T> {
        self.start_threads()?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            let _ = reply.send(work(scratch));
        });
        self.sender.send(job).map_err(|_| {
            AppError::internal(anyhow::anyhow!("the password hashing pool is gone"))
        })?;
        answer.await.map_err(|_| {
            AppError::internal(anyhow::anyhow!(
                "a password hashing job failed (it panicked)"
            ))
        })?
    }

    /// Starts threads until `size` run. An error only when none runs and none could start.
    fn start_threads(&self) -> AppResult<()> {
        loop {
            let live = self.shared.live.load(Ordering::Acquire);
            if live >= self.shared.size {
                return Ok(());
            }
            if self
                .shared
                .live
                .compare_exchange(live, live + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let n = self.shared.started.fetch_add(1, Ordering::Relaxed);
            let shared = Arc::clone(&self.shared);
            let spawned = thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || work_loop(&shared));
            if let Err(e) = spawned {
                self.shared.live.fetch_sub(1, Ordering::AcqRel);
                tracing::error!(error = %e, "a password hashing thread could not start");
                if live == 0 {
                    return Err(AppError::internal(anyhow::anyhow!(
                        "no password hashing thread could start: {e}"
                    )));
                }
                return Ok(());
            }
        }
    }

    /// Threads running now (for tests).
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }
}

/// Counts a thread out when it ends, however it ends, so that another one is started.
struct Live<'a>(&'a Shared);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        if thread::panicking() {
            tracing::error!("a password hashing thread died; another one will be started");
        }
    }
}

/// A thread's life: takes jobs until the pool is dropped.
fn work_loop(shared: &Shared) {
    let _live = Live(shared);
    let mut scratch = Scratch::default();
    loop {
        let job = {
            let receiver = shared
                .receiver
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            receiver.recv()
        };
        let Ok(job) = job else {
            return;
        };
        // The reply is dropped unsent if the job panics: its caller gets an error.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut scratch))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_threads_carry_on() -> AppResult<()> {
        let pool = Pool::new(1);
        let failed = pool
            .run(|_| -> AppResult<()> { panic!("a job that panics") })
            .await;
        assert!(matches!(failed, Err(AppError::Internal(_))), "{failed:?}");
        assert_eq!(pool.run(|_| Ok(7)).await?, 7);
        assert_eq!(pool.live(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn never_more_threads_than_the_size() -> AppResult<()> {
        let pool = Arc::new(Pool::new(2));
        let jobs: Vec<_> = (0..16)
            .map(|i| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    pool.run(move |_| {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        Ok(i)
                    })
                    .await
                })
            })
            .collect();
        for job in jobs {
            job.await.map_err(AppError::internal)??;
        }
        assert_eq!(pool.live(), 2);
        Ok(())
    }

    #[test]
    fn the_kept_area_stays_the_configured_size() {
        let mut scratch = Scratch::default();
        scratch.with_blocks(8, 8, |b| assert_eq!(b.len(), 8));
        scratch.with_blocks(4, 8, |b| assert!(b.len() >= 4));
        scratch.with_blocks(32, 8, |b| assert_eq!(b.len(), 32));
        assert_eq!(scratch.blocks.len(), 8);
    }
}
