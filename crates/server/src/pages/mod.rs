//! Server-rendered HTML pages for people: device verification, and browser sign-in. The
//! pages are minijinja templates (`crates/server/templates`), compiled into the binary and
//! parsed once; every value is HTML-escaped by the template engine.

pub mod authorize;
pub mod device;
mod visit;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use std::sync::OnceLock;

/// The templates, parsed once.
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` templates escape every value (minijinja's default for the extension).
        for (name, source) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("style.css", include_str!("../../templates/style.css")),
            ("message.html", include_str!("../../templates/message.html")),
            ("device_code.html", include_str!("../../templates/device_code.html")),
            ("device_sign_in.html", include_str!("../../templates/device_sign_in.html")),
            ("device_decide.html", include_str!("../../templates/device_decide.html")),
            ("login.html", include_str!("../../templates/login.html")),
            ("login_code.html", include_str!("../../templates/login_code.html")),
            ("login_enrol.html", include_str!("../../templates/login_enrol.html")),
            ("recovery_codes.html", include_str!("../../templates/recovery_codes.html")),
            ("consent.html", include_str!("../../templates/consent.html")),
            ("logout.html", include_str!("../../templates/logout.html")),
            ("docs.html", include_str!("../../templates/docs.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                // A template that does not parse is a bug caught by the tests, not a runtime
                // condition; the page that needs it answers 500.
                tracing::error!(template = name, error = %e, "template does not parse");
            }
        }
        env
    })
}

/// Render `template` with `context` as a complete page, with the headers every page gets:
/// no caching, no framing, no scripts.
pub fn page(status: StatusCode, template: &str, context: minijinja::Value) -> Response {
    page_with_form_targets(status, template, context, &[])
}

/// [`page`], whose forms may also lead to `form_targets` (CSP source expressions): browsers
/// apply `form-action` to the redirects that answer a form too, so a form whose answer sends
/// the person back to a client must name the client's origin.
pub fn page_with_form_targets(
    status: StatusCode,
    template: &str,
    context: minijinja::Value,
    form_targets: &[String],
) -> Response {
    let rendered = templates().get_template(template).and_then(|t| t.render(context));
    let (status, html) = match rendered {
        Ok(html) => (status, html),
        Err(e) => {
            tracing::error!(template, error = %e, "page rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "<!doctype html><title>Error</title><p>Internal error.</p>".to_owned())
        }
    };
    let mut res = (status, Html(html)).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut csp = String::from("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    for t in form_targets {
        csp.push(' ');
        csp.push_str(t);
    }
    csp.push_str("; frame-ancestors 'none'");
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

/// The context of the reference page (`docs.html`) of an OpenAPI document: its operations
/// grouped by tag, in the document's order.
// serde_json's `Value` indexing never panics: a missing key or index is `Null`.
#[allow(clippy::indexing_slicing)]
pub fn docs_context(doc: &serde_json::Value) -> minijinja::Value {
    use serde_json::{Value, json};
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let tag = text(&op["tags"][0]);
            let params: Vec<Value> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| json!({"name": p["name"], "in": p["in"], "type": p["schema"]["type"]}))
                .collect();
            let body = op["requestBody"]["content"].as_object().and_then(|c| c.iter().next());
            let fields: Vec<String> = body
                .and_then(|(_, c)| c["schema"]["properties"].as_object())
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            let responses: Vec<Value> = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, r)| {
                    let media = r["content"].as_object().and_then(|c| c.keys().next().cloned()).unwrap_or_default();
                    json!({"status": status, "description": r["description"], "media": media})
                })
                .collect();
            let security: Vec<String> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_object().and_then(|o| o.keys().next().cloned()))
                .collect();
            let entry = json!({
                "method": method, "path": path, "summary": op["summary"], "params": params,
                "body": body.map(|(media, _)| media.clone()), "fields": fields, "responses": responses,
                "security": security.join(" or "),
            });
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, ops)) => ops.push(entry),
                None => groups.push((tag, vec![entry])),
            }
        }
    }
    let groups: Vec<Value> = groups.into_iter().map(|(tag, ops)| json!({"tag": tag, "ops": ops})).collect();
    minijinja::Value::from_serialize(json!({
        "title": text(&doc["info"]["title"]) + " API reference",
        "description": doc["info"]["description"],
        "version": doc["info"]["version"],
        "groups": groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn every_template_renders_and_escapes() -> TestResult {
        let hostile = "<script>alert('x')</script>&\"";
        let names = [
            "message.html",
            "device_code.html",
            "device_sign_in.html",
            "device_decide.html",
            "login.html",
            "login_code.html",
            "login_enrol.html",
            "consent.html",
            "logout.html",
            "recovery_codes.html",
        ];
        for name in names {
            let ctx = minijinja::context! {
                title => hostile, error => hostile, message => hostile, code => hostile,
                code_shown => hostile, client => hostile, scope => hostile, ticket => hostile,
                tenant => hostile, csrf => hostile, username => hostile, scopes => vec![hostile],
                secret => hostile, key_shown => hostile, uri => hostile, codes => vec![hostile],
            };
            let html = templates().get_template(name)?.render(ctx)?;
            assert!(!html.contains("<script>"), "{name} let markup through: {html}");
            assert!(html.contains("&lt;script&gt;"), "{name} did not show the text escaped");
            assert!(html.contains("font-family:system-ui"), "{name} lost the stylesheet");
        }
        Ok(())
    }
}
