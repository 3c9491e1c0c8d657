//! A store that does not answer is a 503 in each front's own format on the path from a
//! bearer token to its user, never an "invalid token" 401 (issue 14, point 2). The users
//! table is locked by another session, so the user lookup hits the statement timeout.

use crate::audience::{bearer, docspace, ica, ica_refresh, setup, tapis_password, tapis_userinfo};
use crate::harness::*;
use crate::pg::{PG, Schema};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Holds `LOCK TABLE users` in its own session until dropped (then that session is ended,
/// so the server is not left waiting on it).
struct Lock(Child, String);

impl Lock {
    fn users(schema: &Schema) -> Lock {
        let app = format!("tessera_lock_{}", schema.name);
        let sql = format!(
            "SET application_name = '{app}'; BEGIN; LOCK TABLE \"{}\".users IN ACCESS EXCLUSIVE MODE; \
             SELECT pg_sleep(60);",
            schema.name
        );
        let child = Command::new("psql")
            .args([PG, "-q", "-c", &sql])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run psql");
        std::thread::sleep(Duration::from_millis(500));
        Lock(child, app)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let end =
            format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'", self.1);
        let _ = Command::new("psql").args([PG, "-q", "-c", &end]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_store_outage_on_the_bearer_path_is_503_at_every_front() {
    let schema = Schema::new("outage");
    let env = [("TESSERA_DATABASE_URL", schema.url.as_str()), ("TESSERA_DB_STATEMENT_TIMEOUT_MS", "400")];
    let s = TestServer::start_with_env(&env).await;
    let (id, secret) = setup(&s);
    let standard = s.password_token("default", &id, &secret, "alice", "alice-password-1", None).await;
    let standard = standard["access_token"].as_str().unwrap().to_owned();
    let tapis = tapis_password(&s).await;
    let pw = crate::audience::basic("alice", "alice-password-1");
    let ica_token = ica(&s, &[("authorization", &pw)]).await.assert_ok("ICA")["token"].as_str().unwrap().to_owned();

    let _lock = Lock::users(&schema);
    let r = tapis_userinfo(&s, &tapis).await;
    assert_eq!((r.status, r.json["status"].as_str()), (503, Some("error")), "Tapis userinfo: {}", r.text);
    let r = ica(&s, &[("authorization", &bearer(&standard))]).await;
    assert_eq!((r.status, r.json["status"].as_u64()), (503, Some(503)), "ICA PsToken: {}", r.text);
    let r = ica_refresh(&s, &ica_token).await;
    assert_eq!((r.status, r.json["status"].as_u64()), (503, Some(503)), "ICA refresh: {}", r.text);
    let r = docspace(&s, &[("authorization", &bearer(&standard))]).await;
    assert_eq!((r.status, r.json["statusCode"].as_u64()), (503, Some(503)), "DocSpace: {}", r.text);
    for r in [tapis_userinfo(&s, &tapis).await, docspace(&s, &[("authorization", &bearer(&standard))]).await] {
        assert!(r.header("retry-after").is_some(), "a 503 says when to retry: {r:?}");
    }
}
