//! Routes registered together with their OpenAPI description: a route cannot be added to the
//! admin or self-service router without an entry in the document, and the list of what was
//! registered is kept for the test that checks the served document against it.

use crate::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Ref, RefOr, Required, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Named schemas a description refers to.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// What one operation takes and answers.
pub struct Doc {
    summary: &'static str,
    body: Option<RefOr<Schema>>,
    status: u16,
    answer: Option<RefOr<Schema>>,
    query: &'static [&'static str],
    schemas: Schemas,
}

/// The description of an operation named `summary` that answers `204 No Content` until told
/// otherwise.
pub fn doc(summary: &'static str) -> Doc {
    Doc { summary, body: None, status: 204, answer: None, query: &[], schemas: vec![] }
}

fn named<T: ToSchema>(schemas: &mut Schemas) -> RefOr<Schema> {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    Ref::from_schema_name(T::name()).into()
}

impl Doc {
    /// A JSON request body of type `T`.
    pub fn body<T: ToSchema>(mut self) -> Self {
        self.body = Some(named::<T>(&mut self.schemas));
        self
    }

    /// A JSON answer of type `T` with this status.
    pub fn answers<T: ToSchema>(mut self, status: u16) -> Self {
        self.status = status;
        self.answer = Some(named::<T>(&mut self.schemas));
        self
    }

    /// A JSON answer of a type described inline (a list or a page), whose items are `T`.
    pub fn answers_inline<L: PartialSchema, T: ToSchema>(mut self) -> Self {
        named::<T>(&mut self.schemas);
        self.status = 200;
        self.answer = Some(L::schema());
        self
    }

    /// Query parameters (`limit` is an integer, `disabled` a boolean, the rest strings).
    pub fn query(mut self, names: &'static [&'static str]) -> Self {
        self.query = names;
        self
    }
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

    verbs!(get => Get, post => Post, patch => Patch, delete => Delete);

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// A path as the document names it under `prefix` (the self-service root `/` is `/me`).
pub fn full_path(prefix: &str, path: &str) -> String {
    if path == "/" { prefix.to_owned() } else { format!("{prefix}{path}") }
}

fn param_names(path: &str) -> Vec<String> {
    path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

fn typed(name: &str) -> Type {
    match name {
        "limit" | "since" | "until" => Type::Integer,
        "disabled" => Type::Boolean,
        _ => Type::String,
    }
}

/// Add `ops` to `paths` under `prefix`; returns the schemas they name.
pub fn describe(paths: &mut utoipa::openapi::Paths, prefix: &str, tag: &str, ops: &[Op], problem: &RefOr<Schema>) {
    for op in ops {
        let path = full_path(prefix, op.path);
        let mut b = OperationBuilder::new().summary(Some(op.doc.summary)).tag(tag).securities(Some([
            SecurityRequirement::new("bearer", [] as [&str; 0]),
            SecurityRequirement::new("apiKey", [] as [&str; 0]),
        ]));
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
        if let Some(body) = &op.doc.body {
            let content = Content::new(Some(body.clone()));
            b = b.request_body(Some(
                RequestBodyBuilder::new().content("application/json", content).required(Some(Required::True)).build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description(if op.doc.status == 204 { "done" } else { "success" });
        if let Some(answer) = &op.doc.answer {
            ok = ok.content("application/json", Content::new(Some(answer.clone())));
        }
        let failed = ResponseBuilder::new()
            .description("an RFC 9457 problem: its `type` names the error kind; `errors` the fields at fault")
            .content("application/problem+json", Content::new(Some(problem.clone())));
        b = b.response(op.doc.status.to_string(), ok).response("default", failed);
        paths.add_path_operation(&path, vec![op.method.clone()], b.build());
    }
}

/// Every schema `ops` name.
pub fn schemas_of(ops: &[Op]) -> Schemas {
    ops.iter().flat_map(|o| o.doc.schemas.iter().cloned()).collect()
}
