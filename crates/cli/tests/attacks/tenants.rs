//! A token of tenant A at tenant B, at every route of every front, both ways: the tenants
//! share a server, a user name, a password and an algorithm, so only the tenant differs.

use crate::fronts::*;
use crate::harness::*;

#[tokio::test]
async fn a_token_of_one_tenant_is_refused_at_another_on_every_front() {
    let s = TestServer::start().await;
    let home = world(&s, "default");
    let acme = world(&s, "acme");
    for (from, to) in [(&home, &acme), (&acme, &home)] {
        for kind in KINDS {
            let token = genuine(&s, from, kind).await;
            let what = format!("a {kind:?} token of {} at {}", from.tenant, to.tenant);
            refused_everywhere(&s, to, &token, &what).await;
        }
    }
    // The controls: each tenant's own routes take its own tokens.
    for at in [&home, &acme] {
        for kind in KINDS {
            control(&s, at, kind).await;
        }
    }
}
