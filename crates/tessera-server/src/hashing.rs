//! The password hashing pool (B8).
//!
//! argon2id is deliberately expensive (about 19 MiB and tens of milliseconds per hash). Running
//! it on the async runtime would stall every other request; running it on an unbounded blocking
//! pool lets a login flood allocate hundreds of 19 MiB blocks at once. So hashing runs on a
//! fixed number of dedicated threads fed by a bounded queue: when the queue is full the caller
//! gets [`HashError::Busy`] at once and answers 503 with Retry-After, and token-verified
//! requests, which never hash, keep their CPU.
//!
//! Each worker keeps its argon2 working memory from one hash to the next ([`HashMemory`]):
//! that bounds the memory to one block per worker (allocating per hash left freed 19 MiB
//! blocks in glibc's per-thread arenas: 130 MiB RSS after a few logins) and saves the page
//! faults of a fresh block per hash. Measurements in docs/PERFORMANCE.md, which also says why
//! the workers do not run at a lower OS priority (priority inversion).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::password::{HashMemory, PasswordHasher, Verification};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Why a hashing job did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The queue is full: shed load.
    #[error("password hashing queue is full")]
    Busy,
    /// The pool is shut down or the job failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

type Job = Box<dyn FnOnce(&PasswordHasher, &mut HashMemory) + Send>;

/// A fixed pool of hashing threads with a bounded queue.
#[derive(Clone)]
pub struct HashPool {
    sender: mpsc::SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    hasher: Arc<PasswordHasher>,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("queued", &self.queue_depth())
            .finish_non_exhaustive()
    }
}

impl HashPool {
    /// Starts `workers` threads sharing a queue of `queue` waiting jobs.
    pub fn start(hasher: PasswordHasher, workers: usize, queue: usize) -> std::io::Result<HashPool> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        let hasher = Arc::new(hasher);
        for index in 0..workers.max(1) {
            let receiver = Arc::clone(&receiver);
            let queued = Arc::clone(&queued);
            let hasher = Arc::clone(&hasher);
            std::thread::Builder::new()
                .name(format!("tessera-hash-{index}"))
                .spawn(move || {
                    let mut memory = HashMemory::default();
                    loop {
                        // The lock is held only while waiting for the next job, never while
                        // hashing, so workers hash in parallel.
                        let job = {
                            let receiver = receiver.lock().unwrap_or_else(|e| e.into_inner());
                            receiver.recv()
                        };
                        let Ok(job) = job else { break };
                        queued.fetch_sub(1, Ordering::Relaxed);
                        job(&hasher, &mut memory);
                    }
                })?;
        }
        Ok(HashPool { sender, queued, hasher })
    }

    /// Jobs accepted and not yet started (the hashing queue depth metric).
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PasswordHasher, &mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |hasher, memory| {
            let _ = done.send(work(hasher, memory));
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.sender.try_send(job) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match error {
                mpsc::TrySendError::Full(_) => HashError::Busy,
                mpsc::TrySendError::Disconnected(_) => HashError::Failed("pool stopped".into()),
            });
        }
        result
            .await
            .map_err(|_| HashError::Failed("worker dropped the job".into()))
    }

    /// Checks a password against a stored hash, or, for an unknown user (`stored` is `None`),
    /// does the same work against the dummy hash and reports invalid.
    pub async fn verify(&self, password: Zeroizing<String>, stored: Option<String>) -> Result<Verification, HashError> {
        self.run(move |hasher, memory| match stored {
            Some(stored) => hasher
                .verify_in(&password, &stored, memory)
                .map_err(|e| HashError::Failed(e.to_string())),
            None => {
                hasher.dummy_verify_in(&password, memory);
                Ok(Verification::Invalid)
            }
        })
        .await?
    }

    /// Hashes a password with a fresh random salt.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, HashError> {
        self.run(move |hasher, memory| {
            let mut salt = [0u8; 16];
            OsRng.fill_bytes(&mut salt);
            hasher
                .hash_in(&password, &salt, memory)
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Whether a stored hash uses outdated parameters (cheap: parses the PHC string only).
    pub fn needs_rehash(&self, stored: &str) -> bool {
        self.hasher.needs_rehash(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::password::PasswordParams;

    fn pool(workers: usize, queue: usize) -> HashPool {
        let params = PasswordParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        HashPool::start(PasswordHasher::new(params, &[0; 16]).unwrap(), workers, queue).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify_round_trips() {
        let pool = pool(1, 4);
        let hash = pool.hash(Zeroizing::new("correct horse".into())).await.unwrap();
        let ok = pool
            .verify(Zeroizing::new("correct horse".into()), Some(hash.clone()))
            .await
            .unwrap();
        assert_eq!(ok, Verification::Valid { needs_rehash: false });
        let bad = pool.verify(Zeroizing::new("wrong".into()), Some(hash)).await.unwrap();
        assert_eq!(bad, Verification::Invalid);
        let unknown = pool.verify(Zeroizing::new("x".into()), None).await.unwrap();
        assert_eq!(unknown, Verification::Invalid);
    }

    #[tokio::test]
    async fn full_queue_sheds_load_instead_of_waiting() {
        // One worker, blocked; a queue of one. The third job must be refused at once.
        let pool = pool(1, 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move |_, _| {
                    let _ = wait.recv();
                })
                .await
            }
        });
        // Let the worker take the blocking job.
        while pool.queue_depth() != 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.hash(Zeroizing::new("queued".into())).await }
        });
        while pool.queue_depth() != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.hash(Zeroizing::new("refused".into())).await, Err(HashError::Busy));
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert!(queued.await.unwrap().is_ok());
    }
}
