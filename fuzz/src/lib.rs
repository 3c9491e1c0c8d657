//! What the front targets share: one server over a SQLite file of this process.

use std::sync::{Arc, LazyLock};
use tessera_server::fuzzing::Fronts;

static FRONTS: LazyLock<Fronts> = LazyLock::new(|| {
    Fronts::open(|| async {
        let dir = std::env::temp_dir().join(format!("tessera-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let db = dir.join("fuzz.db");
        let backend = tessera_store::open(&db.to_string_lossy(), &Default::default()).await.map_err(|e| e.to_string())?;
        Ok::<Arc<dyn tessera_core::store::Store>, String>(backend.store())
    })
    .expect("the fuzzing server starts")
});

pub fn fronts() -> &'static Fronts {
    &FRONTS
}
