//! The URLs this deployment tells clients about, built in one place for the standard
//! endpoints, the pages and the fronts: a tenant's endpoint base, its pages, and the query of
//! a redirect back to a client.

use crate::AppState;

/// The URL prefix under which a tenant's endpoints are served: the public URL for the
/// default tenant, `/t/{tenant}` below it for the others.
pub fn endpoint_base(public_url: &str, tenant: &str) -> String {
    let base = public_url.trim_end_matches('/');
    if tenant == tessera_core::DEFAULT_TENANT { base.to_owned() } else { format!("{base}/t/{tenant}") }
}

/// A standard endpoint of `tenant`: `path` (starting with `/`) below its base.
pub fn endpoint(state: &AppState, tenant: &str, path: &str) -> String {
    format!("{}{path}", endpoint_base(&state.auth.settings().public_url, tenant))
}

/// Where a person approves a device for `tenant`.
pub fn verification_uri(state: &AppState, tenant: &str) -> String {
    endpoint(state, tenant, "/device")
}

/// `uri` with `params` added to its query (form-encoded; after any query it has).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(uri.len() + 64);
    out.push_str(uri);
    out.push(if uri.contains('?') { '&' } else { '?' });
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    out.push_str(&ser.finish());
    out
}

/// Whether the deployment is reached over https (cookies are then `Secure` and `__Host-`).
pub fn is_https(state: &AppState) -> bool {
    state.auth.settings().public_url.starts_with("https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_added_and_encoded() {
        assert_eq!(
            with_query("https://a/cb", &[("code", "x y"), ("state", "&=")]),
            "https://a/cb?code=x+y&state=%26%3D"
        );
        assert_eq!(with_query("https://a/cb?k=1", &[("code", "c")]), "https://a/cb?k=1&code=c");
        assert_eq!(endpoint_base("https://a/", "default"), "https://a");
        assert_eq!(endpoint_base("https://a", "acme"), "https://a/t/acme");
    }
}
