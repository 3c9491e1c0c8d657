//! The committed fuzz corpus (`fuzz/corpus/<target>/`, minimised with `cargo fuzz cmin`),
//! replayed as ordinary tests: every file through the same function its cargo-fuzz target
//! runs (`tessera_server::fuzzing`), so that a crash once found, and the paths the fuzzer
//! reached, stay covered in CI without cargo-fuzz or a nightly compiler (`scripts/fuzz` runs
//! the fuzzer itself).

use std::path::PathBuf;
use std::sync::Arc;
use tessera_server::fuzzing::{self, Front, Fronts};

/// Every input of one target's corpus, by file name (there must be some).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| {
            let path = f.expect("a corpus entry").path();
            (path.display().to_string(), std::fs::read(&path).expect("a corpus file"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    files
}

/// Replays a corpus, naming the input that fails.
fn replay(target: &str, run: impl Fn(&[u8])) {
    for (name, data) in corpus(target) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data))).is_err() {
            panic!("fuzz input {name} fails (replay it with `cargo fuzz run {target} {name}` in fuzz/)");
        }
    }
}

#[test]
fn jwt() {
    replay("jwt", fuzzing::jwt);
}

#[test]
fn form() {
    replay("form", fuzzing::form);
}

#[test]
fn credentials() {
    replay("credentials", fuzzing::credentials);
}

#[test]
fn totp() {
    replay("totp", fuzzing::totp);
}

/// The fronts' corpora, one after the other on one server (a SQLite file removed at the end).
#[test]
fn fronts() {
    let dir = std::env::temp_dir().join(format!("tessera-fuzz-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let db = dir.join("fuzz.db");
    let fronts = Fronts::open(|| async move {
        let backend =
            tessera_store::open(&db.to_string_lossy(), &Default::default()).await.map_err(|e| e.to_string())?;
        Ok::<Arc<dyn tessera_core::store::Store>, String>(backend.store())
    })
    .expect("the fuzzing server starts");
    for (target, front) in [
        ("front_oauth", Front::OAuth),
        ("front_tapis", Front::Tapis),
        ("front_sftpgo", Front::Sftpgo),
        ("front_ica", Front::Ica),
        ("front_docspace", Front::DocSpace),
    ] {
        replay(target, |data| fronts.request(front, data));
    }
    drop(fronts);
    let _ = std::fs::remove_dir_all(&dir);
}
