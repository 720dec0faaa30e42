//! Single flight: concurrent callers with the same key share one evaluation. The
//! evaluation runs as its own task, so a caller that goes away (the kubelet cancels a
//! pull) neither cancels it for the others nor loses its result.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

type Inflight<K, V> = Arc<Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>>;

pub struct Group<K, V: Clone> {
    inflight: Inflight<K, V>,
}

impl<K, V> Default for Group<K, V>
where
    V: Clone,
{
    fn default() -> Self {
        Group {
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// Whether this caller started the evaluation or joined one in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Joined,
}

impl<K, V> Group<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `make()` unless an evaluation for `key` is in flight, in which case its
    /// result is awaited instead. `on_panic` turns a panicked (or cancelled) evaluation
    /// into a value.
    pub async fn run<F>(
        &self,
        key: K,
        make: impl FnOnce() -> F,
        on_panic: fn(tokio::task::JoinError) -> V,
    ) -> (V, Role)
    where
        F: std::future::Future<Output = V> + Send + 'static,
    {
        let (shared, role) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(f) => (f.clone(), Role::Joined),
                None => {
                    let fut = make();
                    let inflight = self.inflight.clone();
                    let k = key.clone();
                    let task = tokio::spawn(async move {
                        let v = fut.await;
                        // Done: later callers start afresh (and find the stored verdict).
                        inflight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&k);
                        v
                    });
                    let inflight = self.inflight.clone();
                    let k = key.clone();
                    let shared = async move {
                        match task.await {
                            Ok(v) => v,
                            Err(e) => {
                                inflight
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&k);
                                on_panic(e)
                            }
                        }
                    }
                    .boxed()
                    .shared();
                    map.insert(key, shared.clone());
                    (shared, Role::Leader)
                }
            }
        };
        (shared.await, role)
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let group: Arc<Group<String, usize>> = Arc::new(Group::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..20 {
            let (g, runs) = (group.clone(), runs.clone());
            handles.push(tokio::spawn(async move {
                g.run(
                    "k".to_string(),
                    || async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 100
                    },
                    |_| 0,
                )
                .await
            }));
        }
        let mut leaders = 0;
        for h in handles {
            let (v, role) = h.await.unwrap();
            assert_eq!(v, 100);
            leaders += (role == Role::Leader) as usize;
        }
        assert_eq!((runs.load(Ordering::SeqCst), leaders), (1, 1));
        assert_eq!(group.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_caller_does_not_cancel_the_run_and_panics_become_values() {
        let group: Arc<Group<u8, u32>> = Arc::new(Group::default());
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let g = group.clone();
        let first = tokio::spawn(async move {
            g.run(
                1,
                || async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    d.fetch_add(1, Ordering::SeqCst);
                    7
                },
                |_| 0,
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        first.abort();
        let (v, role) = group.run(1, || async { 99 }, |_| 0).await;
        assert_eq!((v, role), (7, Role::Joined));
        assert_eq!(done.load(Ordering::SeqCst), 1);

        let (v, _) = group.run(2, || async { panic!("boom") }, |_| 42).await;
        assert_eq!(v, 42);
        assert_eq!(group.in_flight(), 0);
    }
}
