//! What one request to the pages brings: its tenant, the session and CSRF cookies, and the
//! CSRF token its forms carry. Shared by the sign-in pages and the device page.
//!
//! Forms carry a CSRF token that must equal the one in a cookie of their own (double submit;
//! the cookies are `SameSite=Lax`, so a cross-site POST carries neither).

use super::page_with_form_targets;
use crate::AppState;
use crate::extract::{Form, cookie_value};
use crate::urls::is_https;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use tessera_core::Error;
use tessera_core::secret::{Secret, ct_eq};
use tessera_core::store::BrowserSession;

/// The cookies of the pages: `__Host-` prefixed (host-only, path `/`, `Secure`) when the
/// deployment is reached over https.
struct Cookies {
    https: bool,
}

impl Cookies {
    fn of(state: &AppState) -> Self {
        Cookies { https: is_https(state) }
    }

    fn name(&self, base: &str) -> String {
        if self.https { format!("__Host-{base}") } else { base.to_owned() }
    }

    /// The session cookie of a tenant (a session belongs to one tenant).
    fn session(&self, tenant: &str) -> String {
        self.name(&format!("tessera-session-{tenant}"))
    }

    fn csrf(&self) -> String {
        self.name("tessera-csrf")
    }

    /// A `Set-Cookie` value; `None` clears the cookie.
    fn set(&self, name: &str, value: Option<&str>) -> Option<HeaderValue> {
        let secure = if self.https { "; Secure" } else { "" };
        let v = match value {
            Some(v) => format!("{name}={v}; Path=/; HttpOnly; SameSite=Lax{secure}"),
            None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
        };
        HeaderValue::from_str(&v).ok()
    }
}

/// One request to the pages, and the cookies its answer sets.
pub(super) struct Visit {
    pub tenant: String,
    cookies: Cookies,
    csrf: String,
    new_csrf: bool,
    session_cookie: Option<String>,
    /// `Set-Cookie` values for the answer.
    set: Vec<HeaderValue>,
    /// Where the answer to a form of the page may send the browser, besides this server.
    form_targets: Vec<String>,
}

impl Visit {
    pub fn new(state: &AppState, tenant: &str, headers: &HeaderMap) -> Self {
        let cookies = Cookies::of(state);
        let existing = cookie_value(headers, &cookies.csrf(), false).filter(|c| c.len() >= 32 && c.len() <= 64);
        let (csrf, new_csrf) = match existing {
            Some(c) => (c.to_owned(), false),
            None => (state.auth.random_token(), true),
        };
        let session_cookie = cookie_value(headers, &cookies.session(tenant), false).map(str::to_owned);
        Visit { tenant: tenant.to_owned(), cookies, csrf, new_csrf, session_cookie, set: vec![], form_targets: vec![] }
    }

    /// The form's CSRF token equals the cookie's (and the cookie was there).
    pub fn csrf_ok(&self, form: &mut Form<'_>) -> bool {
        let given = form.remove("csrf").unwrap_or_default();
        !self.new_csrf && ct_eq(given.as_bytes(), self.csrf.as_bytes())
    }

    /// The forms of the page may lead back to `uri` (a client's registered redirect or
    /// post-logout URI).
    pub fn allow_form_target(&mut self, uri: &str) {
        self.form_targets.extend(csp_source(uri));
    }

    /// The live session of the visit's cookie, if any.
    pub async fn session(&self, state: &AppState) -> Result<Option<BrowserSession>, Error> {
        state.auth.browser_session(&self.tenant, self.session_cookie.as_deref()).await
    }

    pub fn signed_in(&mut self, cookie: &Secret) {
        let name = self.cookies.session(&self.tenant);
        self.set.extend(self.cookies.set(&name, Some(cookie.expose())));
    }

    pub fn signed_out(&mut self) {
        let name = self.cookies.session(&self.tenant);
        self.set.extend(self.cookies.set(&name, None));
    }

    /// Add the cookies to an answer.
    pub fn finish(mut self, mut res: Response) -> Response {
        if self.new_csrf {
            let name = self.cookies.csrf();
            self.set.extend(self.cookies.set(&name, Some(&self.csrf)));
        }
        for v in self.set {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }

    /// A page of the tenant, its forms carrying the CSRF token.
    pub fn page(mut self, status: StatusCode, template: &str, ctx: minijinja::Value) -> Response {
        let tenant = self.tenant.clone();
        let ctx = context! { tenant, csrf => &self.csrf, ..ctx };
        let targets = std::mem::take(&mut self.form_targets);
        self.finish(page_with_form_targets(status, template, ctx, &targets))
    }

    pub fn message(self, status: StatusCode, title: &str, message: &str) -> Response {
        self.page(status, "message.html", context! { title, message })
    }
}

/// The CSP source expression of `uri`'s origin (`https://host:port`), or of its scheme for a
/// URI without an authority (a native app's `com.example.app:/cb`). `None` for anything with
/// a character a source expression cannot hold.
fn csp_source(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b));
    if !scheme_ok {
        return None;
    }
    let Some(after) = rest.strip_prefix("//") else { return Some(format!("{scheme}:")) };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = after.get(..end)?;
    let authority_ok =
        !authority.is_empty() && authority.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    authority_ok.then(|| format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::csp_source;

    #[test]
    fn form_targets_are_origins_or_schemes_and_nothing_else() {
        assert_eq!(csp_source("https://app.example/cb?x=1").as_deref(), Some("https://app.example"));
        assert_eq!(csp_source("http://127.0.0.1:53682/cb").as_deref(), Some("http://127.0.0.1:53682"));
        assert_eq!(csp_source("http://[::1]:8/cb").as_deref(), Some("http://[::1]:8"));
        assert_eq!(csp_source("com.example.app:/oauth").as_deref(), Some("com.example.app:"));
        for bad in [
            "https://evil@app.example/cb",
            "https://a b/",
            "https://a;script-src */",
            "no-scheme",
            "1x:/a",
            "https:///cb",
        ] {
            assert_eq!(csp_source(bad), None, "{bad}");
        }
    }
}
