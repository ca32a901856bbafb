//! Fair shares of the request pool: each company's requests (and all anonymous requests,
//! together) may hold at most a share of the pool's connections at once, so that no company
//! can starve the pool for the others. A request over its company's share waits for one of
//! the company's own connections to come back, at most the pool's acquire timeout.
//!
//! The shares are per server process: with several instances, each bounds its own pool.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Whose share a connection counts against: a company, or `None` for anonymous requests.
pub type Tenant = Option<Uuid>;

/// The shares of one pool. Cheap to clone.
#[derive(Clone)]
pub struct Shares {
    inner: Arc<Inner>,
}

struct Inner {
    per_tenant: usize,
    wait: Duration,
    tenants: Mutex<HashMap<Tenant, Arc<Share>>>,
}

/// One tenant's connections.
struct Share {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl std::fmt::Debug for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shares")
            .field("per_tenant", &self.inner.per_tenant)
            .finish_non_exhaustive()
    }
}

impl Shares {
    /// Shares of `per_tenant` connections (at least 1) each; a request waits at most `wait`.
    pub fn new(per_tenant: usize, wait: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                per_tenant: per_tenant.max(1),
                wait,
                tenants: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many connections one tenant may hold.
    pub fn per_tenant(&self) -> usize {
        self.inner.per_tenant
    }

    /// Takes one of `tenant`'s connections, waiting while all are in use; `UNAVAILABLE` when
    /// none came back in time.
    pub async fn acquire(&self, tenant: Tenant) -> AppResult<SharePermit> {
        let share = self.share(tenant);
        let permit = match Arc::clone(&share.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                share.waiting.fetch_add(1, Ordering::SeqCst);
                let waited =
                    tokio::time::timeout(self.inner.wait, Arc::clone(&share.slots).acquire_owned())
                        .await;
                share.waiting.fetch_sub(1, Ordering::SeqCst);
                match waited {
                    Ok(Ok(permit)) => permit,
                    // The semaphore is never closed; a timeout is the only way here.
                    Ok(Err(_)) | Err(_) => {
                        tracing::warn!(
                            company = ?tenant,
                            share = self.inner.per_tenant,
                            "a company's share of the database pool stayed in use"
                        );
                        return Err(AppError::Unavailable(
                            "your company's requests are using all the database connections \
                             they may hold at once; retry shortly"
                                .into(),
                        ));
                    }
                }
            }
        };
        Ok(SharePermit {
            permit: Some(permit),
            tenant,
            share,
            shares: Arc::clone(&self.inner),
        })
    }

    /// Connections `tenant` holds now.
    pub fn in_use(&self, tenant: Tenant) -> usize {
        self.existing(tenant).map_or(0, |share| {
            self.inner.per_tenant - share.slots.available_permits()
        })
    }

    /// Requests of `tenant` waiting for one of its connections now.
    pub fn waiting(&self, tenant: Tenant) -> usize {
        self.existing(tenant)
            .map_or(0, |share| share.waiting.load(Ordering::SeqCst))
    }

    fn existing(&self, tenant: Tenant) -> Option<Arc<Share>> {
        lock(&self.inner.tenants).get(&tenant).cloned()
    }

    fn share(&self, tenant: Tenant) -> Arc<Share> {
        let mut tenants = lock(&self.inner.tenants);
        Arc::clone(tenants.entry(tenant).or_insert_with(|| {
            Arc::new(Share {
                slots: Arc::new(Semaphore::new(self.inner.per_tenant)),
                waiting: AtomicUsize::new(0),
            })
        }))
    }
}

/// One connection of a tenant's share; given back when dropped.
pub struct SharePermit {
    permit: Option<OwnedSemaphorePermit>,
    tenant: Tenant,
    share: Arc<Share>,
    shares: Arc<Inner>,
}

impl std::fmt::Debug for SharePermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharePermit")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl Drop for SharePermit {
    fn drop(&mut self) {
        drop(self.permit.take());
        // Forget tenants nobody holds or waits for, so the map stays as small as the set of
        // companies active right now. Others clone a share only under this lock, so the count
        // is exact: the map's reference and this one.
        let mut tenants = lock(&self.shares.tenants);
        if Arc::strong_count(&self.share) == 2
            && self.share.slots.available_permits() == self.shares.per_tenant
        {
            tenants.remove(&self.tenant);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_holds_at_most_its_share() -> AppResult<()> {
        let shares = Shares::new(2, Duration::from_millis(10));
        let a = Some(Uuid::new_v4());
        let b = Some(Uuid::new_v4());
        let first = shares.acquire(a).await?;
        let _second = shares.acquire(a).await?;
        assert_eq!(shares.in_use(a), 2);
        assert!(matches!(
            shares.acquire(a).await,
            Err(AppError::Unavailable(_))
        ));
        // Others are not affected, anonymous requests neither.
        let _other = shares.acquire(b).await?;
        let _anonymous = shares.acquire(None).await?;
        drop(first);
        let _again = shares.acquire(a).await?;
        Ok(())
    }

    #[tokio::test]
    async fn idle_tenants_are_forgotten() -> AppResult<()> {
        let shares = Shares::new(1, Duration::from_millis(10));
        let a = Some(Uuid::new_v4());
        drop(shares.acquire(a).await?);
        assert!(lock(&shares.inner.tenants).is_empty());
        Ok(())
    }
}
