//! Argon2id on a pool of its own: a fixed number of threads (by default one fewer than the
//! cores, so a core stays free for the token hot path), so that password checks never stall
//! the async runtime and never run more at once than the pool has threads.
//! (Running them at a lower priority was measured: it starved sign-ins, 18 vs 37 req/s, and
//! did not improve the token stream's p99 under password load; SCHED_BATCH did not help
//! either.) Each thread keeps its Argon2 memory between checks: allocating 19 MiB per check
//! (mapped, faulted in, unmapped) made the token stream's p99 under password load 2.3-2.7x
//! its p99 alone; reusing it, 1.6-1.9x (bench/run's password scenario, same machine).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use tessera_core::Error;
use tessera_core::clock::Rng;
use tessera_core::secret::{Argon2Memory, Argon2id, PasswordHasher, Secret};
use tokio::sync::oneshot;

/// A job gets the thread's Argon2 memory, kept between jobs (see [`Argon2id::verify_in`]).
type Job = Box<dyn FnOnce(&mut Argon2Memory) + Send>;

pub struct PooledHasher {
    argon: Argon2id,
    rng: Arc<dyn Rng>,
    jobs: SyncSender<Job>,
}

fn worker(rx: Arc<Mutex<Receiver<Job>>>) {
    // Allocated by the first check, then kept: 19 MiB per thread with the default parameters.
    let mut memory = Argon2Memory::new();
    loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return, // the hasher is gone
        }
    }
}

impl PooledHasher {
    pub fn new(argon: Argon2id, rng: Arc<dyn Rng>, threads: usize) -> Self {
        let threads = threads.max(1);
        // A short queue: past it, callers wait (asynchronously) for a slot.
        let (tx, rx) = sync_channel::<Job>(threads * 4);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let _ = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || worker(rx));
        }
        PooledHasher { argon, rng, jobs: tx }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Argon2Memory) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(f(memory));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                // Wait for a slot off the async threads.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|_| Error::internal("password hashing task failed"))?
                    .map_err(|_| Error::unavailable("password hashing is shutting down"))?;
            }
            Err(TrySendError::Disconnected(_)) => return Err(Error::unavailable("password hashing is shutting down")),
        }
        result.await.map_err(|_| Error::internal("password hashing task failed"))
    }
}

#[async_trait::async_trait]
impl PasswordHasher for PooledHasher {
    async fn hash(&self, password: Secret) -> Result<String, Error> {
        let (argon, rng) = (self.argon.clone(), self.rng.clone());
        self.run(move |_| argon.hash(rng.as_ref(), password.expose())).await?
    }

    async fn verify(&self, phc: String, password: Secret) -> bool {
        self.run(move |memory| Argon2id::verify_in(&phc, password.expose(), memory)).await.unwrap_or(false)
    }
}
