//! How many GraphQL WebSockets each user holds open on this instance, against
//! `WS_MAX_SOCKETS_PER_USER`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use uuid::Uuid;

/// The open sockets of this instance, per user. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SocketRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// 0: unlimited.
    max_per_user: usize,
    open: Mutex<HashMap<Uuid, usize>>,
}

/// One socket's place among its user's; given back when dropped.
#[derive(Debug)]
pub struct SocketSlot {
    inner: Arc<Inner>,
    user: Uuid,
}

impl SocketRegistry {
    pub fn new(max_per_user: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_per_user,
                open: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configured limit (0: unlimited).
    pub fn max_per_user(&self) -> usize {
        self.inner.max_per_user
    }

    /// A slot for one more socket of `user`, or `None` when they hold the maximum already.
    pub fn acquire(&self, user: Uuid) -> Option<SocketSlot> {
        let mut open = self
            .inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user).or_insert(0);
        if self.inner.max_per_user != 0 && *count >= self.inner.max_per_user {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            inner: self.inner.clone(),
            user,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self
            .inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_user_and_given_back() {
        let registry = SocketRegistry::new(2);
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let first = registry.acquire(ann);
        let second = registry.acquire(ann);
        assert!(first.is_some() && second.is_some());
        assert!(registry.acquire(ann).is_none());
        assert!(registry.acquire(bob).is_some());
        drop(first);
        assert!(registry.acquire(ann).is_some());
    }

    #[test]
    fn zero_means_unlimited() {
        let registry = SocketRegistry::new(0);
        let user = Uuid::new_v4();
        let slots: Vec<_> = (0..100).filter_map(|_| registry.acquire(user)).collect();
        assert_eq!(slots.len(), 100);
    }
}
