//! The OpenAPI 3.1 document each service serves at `GET /openapi.json`, generated from the code.
//!
//! A service registers its API routes with `utoipa-axum` (`OpenApiRouter::routes(routes!(…))`),
//! so a route exists only together with its `#[utoipa::path]` operation, whose bodies are the
//! wire types' derived schemas (`commerce`, [`Problem`]). [`document`] completes that with what
//! the platform's router does to every route, written once here beside the code that does it:
//! the tenancy and tracing request headers of the `/api` routes, the problem+json answers of its
//! layers and extractors (missing or wrong tenant, a caller the route is not for, malformed path,
//! query or body, header limits, deadline, internal error), and the response headers every answer
//! carries.
//!
//! Every `application/problem+json` answer of an operation lists the problem types it can have as
//! named examples; the document turns them into the answer's schema (`type` one of those, `status`
//! the HTTP status), so a test checking answers against the document also checks that no error
//! kind goes undocumented.

use serde_json::{Map, Value, json};
use utoipa::{PartialSchema, ToSchema};

use crate::{
    problem::{PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, Problem},
    telemetry::ServiceIdentity,
};
use commerce::values::FieldError;

/// Where every service serves its document.
pub const OPENAPI_PATH: &str = "/openapi.json";

const PROBLEM_REF: &str = "#/components/schemas/Problem";

/// One required parameter with its description and schema, for an `IntoParams` that documents
/// what a handler reads by hand (a header map, a raw path segment): utoipa's derive with
/// `schema_with` would drop the requirement and the description.
pub fn required_parameter(
    name: &str,
    location: utoipa::openapi::path::ParameterIn,
    description: String,
    schema: utoipa::openapi::schema::Object,
) -> utoipa::openapi::path::Parameter {
    utoipa::openapi::path::ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .required(utoipa::openapi::Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The finished document of the service `identity`, whose routes (API and infrastructure) are
/// documented by `routes`.
pub fn document(identity: ServiceIdentity, routes: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(routes).unwrap_or_else(|_| json!({}));
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": identity.name,
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!(
            "The HTTP API of ordermesh's {name}. Every `/api` request names the tenant in \
             `x-tenant-id` (one value, this process's tenant); every error is an RFC 9457 \
             `application/problem+json` document whose `type` is \
             `{PROBLEM_TYPE_BASE}<slug>`. Generated from the service's code.",
            name = identity.name
        ),
        "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
    });
    add_components(&mut doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if HTTP_METHODS.contains(&method.as_str()) {
                    complete_operation(path, operation);
                }
            }
        }
    }
    doc
}

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// Shared schemas, parameters and headers, referenced from every operation.
fn add_components(doc: &mut Value) {
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    let Some(components) = components.and_then(Value::as_object_mut) else {
        return;
    };
    let schemas = components
        .entry("schemas")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(schemas) = schemas {
        let mut problem = serde_json::to_value(Problem::schema()).unwrap_or_default();
        // `errors` is the one extension member with a fixed shape: the invalid fields of a 422.
        problem["properties"]["errors"] = json!({
            "type": "array",
            "items": { "$ref": "#/components/schemas/FieldError" },
            "description": "The fields that failed validation (422 `validation-failed`).",
        });
        schemas.insert(Problem::name().into_owned(), problem);
        schemas.insert(
            FieldError::name().into_owned(),
            serde_json::to_value(FieldError::schema()).unwrap_or_default(),
        );
    }
    components.insert(
        "parameters".into(),
        json!({
            "TenantId": {
                "name": crate::tenancy::TENANT_HEADER, "in": "header", "required": true,
                "description": "The tenant the request is for: exactly one value, this process's \
                    own tenant (400 `missing-tenant` or `duplicate-header` otherwise, 403 \
                    `wrong-tenant` for another tenant's).",
                "schema": {
                    "type": "string",
                    "pattern": "^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$",
                    "examples": ["tenant-a"]
                }
            },
            "ForwardedClientCert": {
                "name": crate::tenancy::XFCC_HEADER, "in": "header", "required": false,
                "description": "Set by the mesh's sidecar, never by a client: at most one, in \
                    Envoy's exact form, naming callers of the same tenant (403 `wrong-tenant` \
                    otherwise). Its last element is the caller, which must be one the call graph \
                    names for the operation, in the mesh's trust domain (403 \
                    `caller-not-allowed` otherwise; also without the header where the service \
                    requires it, `REQUIRE_PEER_IDENTITY`).",
                "schema": { "type": "string" }
            },
            "RequestId": {
                "name": trace_context::REQUEST_ID_HEADER, "in": "header", "required": false,
                "description": "Forwarded unchanged and echoed in the answer; generated when \
                    absent.",
                "schema": { "type": "string" }
            },
            "Traceparent": {
                "name": "traceparent", "in": "header", "required": false,
                "description": "W3C trace context (with `tracestate`); B3 (`b3`, `x-b3-*`) is \
                    read too. An invalid or repeated one is ignored, never an error.",
                "schema": { "type": "string" },
                "example": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            },
            "Baggage": {
                "name": "baggage", "in": "header", "required": false,
                "description": "W3C baggage; carries `tenant` and `order_id` along the calls.",
                "schema": { "type": "string" }
            },
        }),
    );
    components.insert(
        "headers".into(),
        json!({
            "RequestId": {
                "description": "The request's id (the caller's `x-request-id`, or a new one).",
                "schema": { "type": "string" }
            },
            "ServiceVersion": {
                "description": "Which build answered (`SERVICE_VERSION`: stable or canary).",
                "schema": { "type": "string" }
            },
            "RetryAfter": {
                "description": "Seconds to wait before repeating the same request.",
                "schema": { "type": "integer", "minimum": 0 }
            },
        }),
    );
}

/// What the platform's router adds to the operation `operation` of `path`.
fn complete_operation(path: &str, operation: &mut Value) {
    let api = path.starts_with("/api/");
    let has_path_params = path.contains('{');
    let parameters = operation["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has_query = parameters.iter().any(|p| p["in"] == "query");
    let has_body = operation.get("requestBody").is_some();
    if api {
        let mut all = vec![json!({ "$ref": "#/components/parameters/TenantId" })];
        all.extend(parameters);
        for name in ["ForwardedClientCert", "RequestId", "Traceparent", "Baggage"] {
            all.push(json!({ "$ref": format!("#/components/parameters/{name}") }));
        }
        operation["parameters"] = Value::Array(all);
        problem(
            operation,
            400,
            "missing-tenant",
            "Missing tenant",
            "the `x-tenant-id` header is required",
        );
        problem(
            operation,
            400,
            crate::headers::DUPLICATE_HEADER,
            "Duplicate header",
            "the `x-tenant-id` header must appear at most once",
        );
        problem(
            operation,
            403,
            "wrong-tenant",
            "Wrong tenant",
            "this service serves tenant `tenant-a` only",
        );
        problem(
            operation,
            403,
            crate::callers::CALLER_NOT_ALLOWED,
            "Caller not allowed",
            "`spiffe://cluster.local/ns/tenant-a-orders/sa/notify-service` may not call POST /api/v1/payments",
        );
    }
    // A route documents when it answers 404 (the description says why); the answer is always
    // the not-found problem.
    if operation["responses"].get("404").is_some() {
        problem(operation, 404, "not-found", "Not found", "");
    }
    if has_path_params {
        problem(
            operation,
            400,
            "invalid-path-parameter",
            "Invalid path parameter",
            "Invalid URL: Cannot parse `not-a-uuid` to a `UUID`",
        );
    }
    if has_query {
        problem(
            operation,
            400,
            "invalid-query",
            "Invalid query string",
            "Failed to deserialize query string: missing field `order_id`",
        );
    }
    if has_body {
        problem(
            operation,
            400,
            "malformed-json",
            "Malformed JSON",
            "EOF while parsing an object at line 1 column 1",
        );
        problem(
            operation,
            400,
            "bad-request",
            "Bad request",
            "the body could not be read",
        );
        problem(
            operation,
            413,
            "payload-too-large",
            "Request body too large",
            "",
        );
        problem(
            operation,
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "expected `Content-Type: application/json`",
        );
        let invalid = json!({
            "type": format!("{PROBLEM_TYPE_BASE}validation-failed"),
            "title": "Request failed validation",
            "status": 422,
            "detail": "items[0].quantity: must be between 1 and 1000",
            "errors": [{ "field": "items[0].quantity", "message": "must be between 1 and 1000" }],
        });
        add_problem_example(operation, 422, "validation-failed", invalid);
    }
    problem(
        operation,
        431,
        "headers-too-large",
        "Request header fields too large",
        "the request's headers exceed the configured limit",
    );
    problem(operation, 500, "internal", "Internal error", "");
    problem(
        operation,
        503,
        "dependency-unavailable",
        "A dependency is unavailable",
        "the database is unavailable",
    );
    // Over the connection cap (server.rs), before any route: no x-request-id on this one.
    problem(
        operation,
        503,
        "overloaded",
        "Server overloaded",
        "every connection slot is serving a request; repeat the request shortly",
    );
    if let Some(response) = operation.pointer_mut("/responses/503") {
        response["headers"]["Retry-After"] = json!({ "$ref": "#/components/headers/RetryAfter" });
    }
    finish_responses(operation);
}

/// Adds the problem `slug` to the operation's `status` answer (created when missing).
fn problem(operation: &mut Value, status: u16, slug: &str, title: &str, detail: &str) {
    let mut example = json!({
        "type": format!("{PROBLEM_TYPE_BASE}{slug}"),
        "title": title,
        "status": status,
    });
    if !detail.is_empty() {
        example["detail"] = json!(detail);
    }
    add_problem_example(operation, status, slug, example);
}

fn add_problem_example(operation: &mut Value, status: u16, slug: &str, example: Value) {
    let response = &mut operation["responses"][status.to_string()];
    if response.get("description").is_none() {
        response["description"] = json!(status_text(status));
    }
    let content = &mut response["content"][PROBLEM_CONTENT_TYPE];
    if content.get("schema").is_none() {
        content["schema"] = json!({ "$ref": PROBLEM_REF });
    }
    let examples = &mut content["examples"];
    if examples.get(slug).is_none() {
        examples[slug] = json!({ "summary": example["title"].clone(), "value": example });
    }
}

/// The response headers every answer carries, and each problem answer's schema narrowed to the
/// problem types its examples list and to its status.
fn finish_responses(operation: &mut Value) {
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let headers = &mut response["headers"];
        headers["x-request-id"] = json!({ "$ref": "#/components/headers/RequestId" });
        headers["x-service-version"] = json!({ "$ref": "#/components/headers/ServiceVersion" });
        let Some(content) = response.pointer_mut(&format!(
            "/content/{}",
            PROBLEM_CONTENT_TYPE.replace('/', "~1")
        )) else {
            continue;
        };
        let types: Vec<Value> = content["examples"]
            .as_object()
            .map(Map::values)
            .into_iter()
            .flatten()
            .filter_map(|example| example.pointer("/value/type").cloned())
            .collect();
        let mut narrowed = json!({
            "allOf": [{ "$ref": PROBLEM_REF }],
            "properties": { "type": { "enum": types } },
        });
        if let Ok(status) = status.parse::<u16>() {
            narrowed["properties"]["status"] = json!({ "const": status });
        }
        content["schema"] = narrowed;
    }
}

fn status_text(status: u16) -> String {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .to_owned()
}
