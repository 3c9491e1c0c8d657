//! Argon2id on a bounded blocking pool, so that password checks never stall the async runtime
//! nor run more at once than there are cores.

use std::sync::Arc;
use tessera_core::Error;
use tessera_core::clock::Rng;
use tessera_core::secret::{Argon2id, PasswordHasher, Secret};
use tokio::sync::Semaphore;

pub struct PooledHasher {
    argon: Argon2id,
    rng: Arc<dyn Rng>,
    permits: Arc<Semaphore>,
}

impl PooledHasher {
    pub fn new(argon: Argon2id, rng: Arc<dyn Rng>, concurrency: usize) -> Self {
        PooledHasher { argon, rng, permits: Arc::new(Semaphore::new(concurrency.max(1))) }
    }
}

#[async_trait::async_trait]
impl PasswordHasher for PooledHasher {
    async fn hash(&self, password: Secret) -> Result<String, Error> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::unavailable("shutting down"))?;
        let (argon, rng) = (self.argon.clone(), self.rng.clone());
        tokio::task::spawn_blocking(move || argon.hash(rng.as_ref(), password.expose()))
            .await
            .map_err(|_| Error::internal("password hashing task failed"))?
    }

    async fn verify(&self, phc: String, password: Secret) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || argon.verify(&phc, password.expose())).await.unwrap_or(false)
    }
}
