//! The OpenAPI 3.1 document, generated from the routes as they are registered. Every router
//! of every front is built through [`Api`], which registers a route together with its
//! description, and every front is mounted from one table ([`fronts`]) that the router and
//! the document both read: a route cannot exist without its entry in the document.

use crate::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Named schemas a description refers to.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";
pub const HTML: &str = "text/html";
pub const TEXT: &str = "text/plain";

/// One answer of an operation: status, what it means, and its body if it has one.
struct Answer {
    status: u16,
    description: &'static str,
    body: Option<(&'static str, RefOr<Schema>)>,
}

/// What one operation takes and answers.
pub struct Doc {
    summary: &'static str,
    body: Option<(&'static str, RefOr<Schema>)>,
    answers: Vec<Answer>,
    query: &'static [&'static str],
    schemas: Schemas,
    /// Open to anyone (no security requirement), whatever its front's.
    public: bool,
    /// Errors as HTML pages, not in the front's error format (pages for people).
    html_errors: bool,
}

/// The description of an operation named `summary` that answers `204 No Content` until told
/// otherwise.
pub fn doc(summary: &'static str) -> Doc {
    Doc { summary, body: None, answers: vec![], query: &[], schemas: vec![], public: false, html_errors: false }
}

fn named<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    Ref::from_schema_name(T::name()).into()
}

impl Doc {
    /// A JSON request body of type `T`.
    pub fn body<T: ToSchema>(mut self) -> Self {
        self.body = Some((JSON, named::<T>(&mut self.schemas)));
        self
    }

    /// A request body of `media` described by `schema`.
    pub fn body_as(mut self, media: &'static str, schema: RefOr<Schema>) -> Self {
        self.body = Some((media, schema));
        self
    }

    /// A form body (`application/x-www-form-urlencoded`) of these text fields.
    pub fn form(self, fields: &[&str]) -> Self {
        self.body_as(FORM, strings(fields))
    }

    /// A JSON answer of type `T` with this status.
    pub fn answers<T: ToSchema>(mut self, status: u16) -> Self {
        let schema = named::<T>(&mut self.schemas);
        self.also(status, "success", JSON, schema)
    }

    /// A JSON answer of a type described inline (a list or a page), whose items are `T`.
    pub fn answers_inline<L: PartialSchema, T: ToSchema>(mut self) -> Self {
        named::<T>(&mut self.schemas);
        self.also(200, "success", JSON, L::schema())
    }

    /// An answer of `media` described by `schema`.
    pub fn also(mut self, status: u16, description: &'static str, media: &'static str, schema: RefOr<Schema>) -> Self {
        self.answers.push(Answer { status, description, body: Some((media, schema)) });
        self
    }

    /// An answer without a body (a redirect: see its `Location`).
    pub fn bare(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push(Answer { status, description, body: None });
        self
    }

    /// An HTML page.
    pub fn page(self, status: u16, description: &'static str) -> Self {
        self.also(status, description, HTML, text())
    }

    /// A page for people: it answers HTML pages, errors included, and may redirect.
    pub fn for_people(mut self) -> Self {
        self.html_errors = true;
        self.page(200, "the page").bare(302, "back to the client (see Location)").bare(303, "on to the next step")
    }

    /// Also add `T` (and what it names) to the document's schemas, for a schema built here
    /// that refers to it.
    pub fn with<T: ToSchema>(mut self) -> Self {
        named::<T>(&mut self.schemas);
        self
    }

    /// Query parameters (`limit`, `offset`, `since` and `until` are integers, `disabled` a
    /// boolean, the rest strings).
    pub fn query(mut self, names: &'static [&'static str]) -> Self {
        self.query = names;
        self
    }

    /// No credentials needed.
    pub fn public(mut self) -> Self {
        self.public = true;
        self
    }
}

/// A text body.
pub fn text() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// An object of text fields, none of them required (a form, or a JSON body whose fields the
/// handler checks itself).
pub fn strings(fields: &[&str]) -> RefOr<Schema> {
    fields
        .iter()
        .fold(ObjectBuilder::new(), |o, f| o.property(*f, ObjectBuilder::new().schema_type(Type::String)))
        .into()
}

/// The type of a field in [`object`].
#[derive(Clone, Copy)]
pub enum Field {
    Str,
    Int,
    Bool,
    /// A string or null.
    OptStr,
    /// A list of strings.
    Strs,
    /// Any JSON object.
    Obj,
    /// A list of JSON objects.
    Objs,
}

/// Tapis' envelope around `result` (`status`, `message`, `version`, `metadata`).
pub fn tapis_envelope(result: RefOr<Schema>) -> RefOr<Schema> {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .property("result", result)
        .property("status", text())
        .property("message", text())
        .property("version", text())
        .property("metadata", ObjectBuilder::new().schema_type(Type::Object))
        .required("result")
        .required("status")
        .required("message")
        .required("version")
        .required("metadata")
        .into()
}

/// An object whose fields are described by these schemas, all present in every answer.
pub fn object_with(fields: &[(&str, RefOr<Schema>)]) -> RefOr<Schema> {
    fields
        .iter()
        .fold(ObjectBuilder::new(), |o, (name, schema)| o.property(*name, schema.clone()).required(*name))
        .into()
}

/// Either of two schemas.
pub fn one_of(a: RefOr<Schema>, b: RefOr<Schema>) -> RefOr<Schema> {
    utoipa::openapi::schema::OneOfBuilder::new().item(a).item(b).into()
}

/// A list of `items`.
pub fn list(items: RefOr<Schema>) -> RefOr<Schema> {
    ArrayBuilder::new().items(items).into()
}

/// A JSON null.
pub fn null() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Null).into()
}

/// An object with these fields; a name ending in `?` is a field that may be absent, the
/// others are in every answer.
pub fn object(fields: &[(&str, Field)]) -> RefOr<Schema> {
    let mut o = ObjectBuilder::new();
    for (field, f) in fields {
        let (name, optional) = match field.strip_suffix('?') {
            Some(n) => (n, true),
            None => (*field, false),
        };
        let schema: RefOr<Schema> = match f {
            Field::Str => ObjectBuilder::new().schema_type(Type::String).into(),
            Field::Int => ObjectBuilder::new().schema_type(Type::Integer).into(),
            Field::Bool => ObjectBuilder::new().schema_type(Type::Boolean).into(),
            Field::OptStr => ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
                .into(),
            Field::Strs => ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)).into(),
            Field::Obj => ObjectBuilder::new().schema_type(Type::Object).into(),
            Field::Objs => ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)).into(),
        };
        o = o.property(name, schema);
        if !optional {
            o = o.required(name);
        }
    }
    o.into()
}

/// One registered operation, documented.
pub struct Op {
    pub method: HttpMethod,
    /// The method's name in lower case, as OpenAPI keys it (`get`, `post`, ...).
    pub verb: &'static str,
    pub path: &'static str,
    pub doc: Doc,
}

/// A router being built, and what it registered.
pub struct Api {
    router: Router<AppState>,
    pub ops: Vec<Op>,
}

impl Default for Api {
    fn default() -> Self {
        Api { router: Router::new(), ops: vec![] }
    }
}

macro_rules! verbs {
    ($($name:ident => $method:ident),*) => {
        $(pub fn $name<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H, doc: Doc) -> Self {
            self.add((HttpMethod::$method, stringify!($name)), path, axum::routing::$name(h), doc)
        })*
    };
}

impl Api {
    fn add(
        mut self,
        (method, verb): (HttpMethod, &'static str),
        path: &'static str,
        route: MethodRouter<AppState>,
        doc: Doc,
    ) -> Self {
        // Routes of one path with different methods merge.
        self.router = self.router.route(path, route);
        self.ops.push(Op { method, verb, path, doc });
        self
    }

    verbs!(get => Get, post => Post, put => Put, patch => Patch, delete => Delete);

    /// What answers a known path with a method it does not take (not an operation).
    pub fn method_not_allowed_fallback<H: Handler<T, AppState>, T: 'static>(mut self, h: H) -> Self {
        self.router = self.router.method_not_allowed_fallback(h);
        self
    }

    /// What answers a path under this API's prefix that no route matches (not an operation).
    pub fn fallback<H: Handler<T, AppState>, T: 'static>(mut self, h: H) -> Self {
        self.router = self.router.fallback(h);
        self
    }
}

/// A path as the document names it under `prefix` (a root `/` is the prefix itself).
pub fn full_path(prefix: &str, path: &str) -> String {
    match (prefix, path) {
        ("", p) => p.to_owned(),
        (pre, "/") => pre.to_owned(),
        (pre, p) => format!("{pre}{p}"),
    }
}

fn param_names(path: &str) -> Vec<String> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

fn typed(name: &str) -> Type {
    match name {
        "limit" | "offset" | "since" | "until" | "max_age" => Type::Integer,
        "disabled" => Type::Boolean,
        _ => Type::String,
    }
}

/// One front: its routes, where they are mounted, how its callers authenticate, and the
/// body of its errors.
pub struct Front {
    pub tag: &'static str,
    pub prefixes: &'static [&'static str],
    pub api: Api,
    /// Security schemes (of [`security_schemes`]), any one of which authenticates.
    pub security: &'static [&'static str],
    /// The media type and schema of the front's error answers.
    pub errors: (&'static str, RefOr<Schema>),
    /// Named schemas the error schema refers to.
    pub error_schemas: Schemas,
}

/// Every front, as mounted.
pub fn fronts() -> Vec<Front> {
    vec![
        crate::service_front(),
        crate::oauth::front(),
        crate::oauth::metadata_front(),
        crate::fronts::tapis::front(),
        crate::fronts::sftpgo::front(),
        crate::fronts::ica::front(),
        crate::fronts::docspace::front(),
        crate::admin::front(),
        crate::admin::me_front(),
    ]
}

/// The router of every front, each mounted at each of its prefixes.
pub fn router() -> Router<AppState> {
    fronts().into_iter().fold(Router::new(), |app, f| {
        f.prefixes.iter().fold(app, |app, prefix| match *prefix {
            "" => app.merge(f.api.router.clone()),
            p => app.nest(p, f.api.router.clone()),
        })
    })
}

/// Every (method, path) registered, as mounted.
pub fn registered() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in fronts() {
        for prefix in f.prefixes {
            for op in &f.api.ops {
                out.push((op.verb.to_owned(), full_path(prefix, op.path)));
            }
        }
    }
    out
}

fn security_schemes() -> Vec<(&'static str, utoipa::openapi::security::SecurityScheme)> {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, HttpBuilder, SecurityScheme};
    let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
    vec![
        ("bearer", SecurityScheme::Http(bearer)),
        ("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic))),
        ("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key")))),
        ("tapisToken", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Tapis-Token")))),
    ]
}

/// The whole document.
pub fn document() -> OpenApi {
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder, Paths};
    let mut paths = Paths::new();
    let mut schemas: Schemas = Vec::new();
    for f in fronts() {
        for prefix in f.prefixes {
            describe(&mut paths, prefix, &f);
        }
        schemas.extend(f.api.ops.iter().flat_map(|o| o.doc.schemas.iter().cloned()));
        schemas.extend(f.error_schemas);
    }
    let components = security_schemes()
        .into_iter()
        .fold(ComponentsBuilder::new().schemas_from_iter(schemas), |c, (name, s)| c.security_scheme(name, s))
        .build();
    let info = InfoBuilder::new()
        .title("Tessera")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The Tessera token authority: the standard OAuth 2 / OpenID Connect endpoints (at the root for the \
             default tenant, under /t/{tenant} for any), the Tapis, SFTPGo, ICA and DocSpace fronts, the admin \
             API and self-service.",
        ))
        .build();
    OpenApiBuilder::new().info(info).paths(paths).components(Some(components)).build()
}

/// Add `front`'s operations to `paths` under `prefix`.
fn describe(paths: &mut utoipa::openapi::Paths, prefix: &str, front: &Front) {
    for op in &front.api.ops {
        let path = full_path(prefix, op.path);
        let mut b = OperationBuilder::new().summary(Some(op.doc.summary)).tag(front.tag);
        if !op.doc.public && !front.security.is_empty() {
            let any_of = front.security.iter().map(|s| SecurityRequirement::new(*s, [] as [&str; 0]));
            b = b.securities(Some(any_of));
        }
        for name in param_names(&path) {
            let schema = ObjectBuilder::new().schema_type(Type::String);
            b = b.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(schema)),
            );
        }
        for name in op.doc.query {
            let schema = ObjectBuilder::new().schema_type(typed(name));
            b = b.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .schema(Some(schema)),
            );
        }
        if let Some((media, body)) = &op.doc.body {
            let content = Content::new(Some(body.clone()));
            b = b.request_body(Some(
                RequestBodyBuilder::new().content(*media, content).required(Some(Required::True)).build(),
            ));
        }
        if op.doc.answers.is_empty() {
            b = b.response("204", ResponseBuilder::new().description("done"));
        }
        for a in &op.doc.answers {
            let mut r = ResponseBuilder::new().description(a.description);
            if let Some((media, schema)) = &a.body {
                r = r.content(*media, Content::new(Some(schema.clone())));
            }
            b = b.response(a.status.to_string(), r);
        }
        let (media, schema) = if op.doc.html_errors { (HTML, text()) } else { front.errors.clone() };
        let failed = ResponseBuilder::new()
            .description("an error, in this front's own format")
            .content(media, Content::new(Some(schema)));
        b = b.response("default", failed);
        paths.add_path_operation(&path, vec![op.method.clone()], b.build());
    }
}

/// The error format of a front whose errors are a type `T` answered as `media`.
pub fn errors_of<T: ToSchema>(media: &'static str) -> ((&'static str, RefOr<Schema>), Schemas) {
    let mut schemas = Vec::new();
    let schema = named::<T>(&mut schemas);
    ((media, schema), schemas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                sources(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.display().to_string(), std::fs::read_to_string(&path)?));
            }
        }
        Ok(())
    }

    /// Routes exist only through [`Api`]: no other module of the server makes a router or
    /// adds a route to one, so the document cannot miss a route.
    #[test]
    fn no_route_is_registered_outside_the_documented_api() -> std::io::Result<()> {
        let mut files = Vec::new();
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files)?;
        assert!(files.len() > 20, "read the sources");
        for (name, text) in files.iter().filter(|(n, _)| !n.ends_with("src/openapi.rs")) {
            for needle in ["Router::new(", ".route(", ".nest(", ".merge(", "routing::"] {
                assert!(!text.contains(needle), "{name} registers a route outside openapi::Api ({needle})");
            }
        }
        Ok(())
    }

    #[test]
    fn every_registered_operation_is_described_once() {
        let doc = serde_json::to_value(document()).unwrap_or_default();
        let registered = registered();
        let mut seen = std::collections::BTreeSet::new();
        for (method, path) in &registered {
            assert!(seen.insert((method, path)), "{method} {path} registered twice");
            assert!(doc["paths"][path][method].is_object(), "{method} {path} undocumented");
        }
    }
}
