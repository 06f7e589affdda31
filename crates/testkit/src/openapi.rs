//! The published contract, checked: a service's OpenAPI document (the one it serves at
//! `/openapi.json`) loaded as a [`Contract`] that says whether an answer is one the document
//! allows, and whether every example in the document is valid.
//!
//! OpenAPI 3.1 schemas are JSON Schema 2020-12, so each one is validated by the `jsonschema`
//! crate, offline: the schema is embedded in a root that carries the document's `components`, so
//! `#/components/schemas/…` references resolve inside it. [`crate::TestApp`] checks every answer
//! its service gives, whoever sent the request, against its own document.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// What a service's OpenAPI document allows.
pub struct Contract {
    document: Value,
    operations: Vec<Operation>,
    /// The schema of the problem documents the router answers unknown routes and methods with.
    problem: jsonschema::Validator,
}

struct Operation {
    method: String,
    template: String,
    segments: Vec<Segment>,
    /// Documented status (`"200"`, `"4XX"`, `"default"`) → content type → body validator.
    responses: BTreeMap<String, BTreeMap<String, Option<jsonschema::Validator>>>,
}

enum Segment {
    Literal(String),
    Parameter,
}

impl Contract {
    /// Loads `document` (a service's `openapi()`, or what its `/openapi.json` served). Panics
    /// when the document is not OpenAPI 3.1 or one of its schemas does not compile.
    pub fn new(document: Value) -> Contract {
        let version = document["openapi"].as_str().unwrap_or_default();
        assert!(
            version.starts_with("3.1."),
            "expected an OpenAPI 3.1.x document, got {version:?}"
        );
        let mut operations = Vec::new();
        let paths = document["paths"].as_object().cloned().unwrap_or_default();
        for (template, item) in &paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, operation) in item {
                let Some(responses) = operation["responses"].as_object() else {
                    continue;
                };
                let mut documented = BTreeMap::new();
                for (status, response) in responses {
                    let response = resolve(&document, response);
                    let mut contents = BTreeMap::new();
                    for (content_type, media) in
                        response["content"].as_object().into_iter().flatten()
                    {
                        let validator =
                            media
                                .get("schema")
                                .filter(|_| is_json(content_type))
                                .map(|schema| {
                                    validator(&document, schema).unwrap_or_else(|e| {
                                        panic!("{method} {template} {status} {content_type}: {e}")
                                    })
                                });
                        contents.insert(content_type.clone(), validator);
                    }
                    documented.insert(status.clone(), contents);
                }
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    segments: segments(template),
                    responses: documented,
                });
            }
        }
        let problem = validator(
            &document,
            &json!({ "$ref": "#/components/schemas/Problem" }),
        )
        .unwrap_or_else(|e| panic!("the Problem schema: {e}"));
        Contract {
            document,
            operations,
            problem,
        }
    }

    /// Loads the document an application serves (`platform::startup::Application::openapi_json`).
    pub fn from_json(bytes: &[u8]) -> Contract {
        Contract::new(serde_json::from_slice(bytes).expect("the OpenAPI document is JSON"))
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Whether the answer `status`, `content_type`, `body` to `method path` (an actual path,
    /// query string allowed) is one the document allows: a status documented for the operation,
    /// a documented content type, and a body valid against its schema. A problem document's
    /// `status` must be the answer's. A path that matches no documented route may only be answered
    /// 404 with a problem, a documented path with another method only 405.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let path = path.split('?').next().unwrap_or_default();
        let what = format!("{method} {path} → {status}");
        let media_type = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        let json_body = || -> Result<Value, String> {
            serde_json::from_slice(body).map_err(|e| {
                format!(
                    "{what}: the body is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(body)
                )
            })
        };
        let routes: Vec<&Operation> = self.matching(path);
        let Some(operation) = routes
            .iter()
            .find(|o| o.method.eq_ignore_ascii_case(method))
        else {
            // The router's own answers for what no operation documents.
            let expected = if routes.is_empty() { 404 } else { 405 };
            if status != expected {
                return Err(format!(
                    "{what}: no documented operation (only {expected} is allowed here)"
                ));
            }
            if media_type.as_deref() != Some("application/problem+json") {
                return Err(format!("{what}: expected application/problem+json"));
            }
            return validate(&self.problem, &json_body()?, status, &what);
        };
        let what = format!("{method} {} → {status}", operation.template);
        let contents = [
            status.to_string(),
            format!("{}XX", status / 100),
            "default".to_owned(),
        ]
        .iter()
        .find_map(|key| operation.responses.get(key))
        .ok_or_else(|| {
            format!(
                "{what}: status {status} is not documented (documented: {:?})",
                operation.responses.keys().collect::<Vec<_>>()
            )
        })?;
        if contents.is_empty() {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!("{what}: a body where the document has none"))
            };
        }
        let media_type =
            media_type.ok_or_else(|| format!("{what}: a body without a content type"))?;
        let validator = contents.get(&media_type).ok_or_else(|| {
            format!(
                "{what}: content type {media_type} is not documented (documented: {:?})",
                contents.keys().collect::<Vec<_>>()
            )
        })?;
        match validator {
            Some(validator) => validate(validator, &json_body()?, status, &what),
            None => Ok(()),
        }
    }

    /// Every example in the document (schemas' `examples`/`example`, media types' and
    /// parameters' `example`/`examples`) with where it is, validated against its schema.
    /// Returns how many there are; panics listing every invalid one.
    pub fn assert_examples_valid(&self) -> usize {
        let mut found = Vec::new();
        collect_examples(&self.document, &mut found);
        let mut failures = Vec::new();
        for (location, schema, example) in &found {
            match validator(&self.document, schema) {
                Ok(validator) => {
                    for error in validator.iter_errors(example) {
                        failures.push(format!("{location}: {error} at {}", error.instance_path()));
                    }
                }
                Err(e) => failures.push(format!("{location}: the schema does not compile: {e}")),
            }
        }
        assert!(
            failures.is_empty(),
            "invalid examples in the OpenAPI document:\n{}",
            failures.join("\n")
        );
        found.len()
    }

    /// The documented operations whose path template matches `path`, the most literal first
    /// (as the router prefers `/a/b` to `/a/{x}`).
    fn matching(&self, path: &str) -> Vec<&Operation> {
        let actual: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut found: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|o| {
                o.segments.len() == actual.len()
                    && o.segments.iter().zip(&actual).all(|(s, a)| match s {
                        Segment::Literal(l) => l == a,
                        Segment::Parameter => !a.is_empty(),
                    })
            })
            .collect();
        let literals = |o: &Operation| {
            o.segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count()
        };
        found.sort_by_key(|o| std::cmp::Reverse(literals(o)));
        if let Some(best) = found.first().map(|o| o.template.clone()) {
            found.retain(|o| o.template == best);
        }
        found
    }

    /// Why `value` is invalid under the schema at `pointer` (a JSON pointer into the document,
    /// e.g. `/components/schemas/LineItem`); empty when it is valid. Panics when there is no
    /// schema there.
    pub fn schema_errors(&self, pointer: &str, value: &Value) -> Vec<String> {
        let schema = self
            .document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no schema at {pointer}"));
        errors_under(&self.document, schema, value)
    }

    /// Why `body` is invalid as the JSON request body of `method template` (e.g. `POST
    /// /api/v1/orders`); empty when the document allows it.
    pub fn request_body_errors(&self, method: &str, template: &str, body: &Value) -> Vec<String> {
        let operation = self.operation(method, template);
        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        assert!(
            !schema.is_null(),
            "{method} {template} documents no JSON request body"
        );
        errors_under(&self.document, schema, body)
    }

    /// Why `value` is invalid for the parameter `name` (a header's name in any case) of
    /// `method template`; empty when the document allows it.
    pub fn parameter_errors(
        &self,
        method: &str,
        template: &str,
        name: &str,
        value: &Value,
    ) -> Vec<String> {
        let operation = self.operation(method, template);
        let parameter = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(&self.document, p))
            .find(|p| {
                p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .unwrap_or_else(|| panic!("{method} {template} has no parameter {name}"));
        errors_under(&self.document, &parameter["schema"], value)
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        let operation = &self.document["paths"][template][method.to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "the document has no {method} {template}"
        );
        operation
    }

    /// The operations the document has, as `METHOD /template`.
    pub fn operations(&self) -> Vec<String> {
        self.operations
            .iter()
            .map(|o| format!("{} {}", o.method, o.template))
            .collect()
    }
}

fn segments(template: &str) -> Vec<Segment> {
    template
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                Segment::Parameter
            } else {
                Segment::Literal(s.to_owned())
            }
        })
        .collect()
}

fn is_json(content_type: &str) -> bool {
    content_type == "application/json" || content_type.ends_with("+json")
}

/// `value`, or what its `$ref` (into this document) points at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    value["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| document.pointer(pointer))
        .unwrap_or(value)
}

/// A validator for `schema`, a schema of `document`: the schema with the document's
/// `components` beside it, so its references resolve; formats (`uuid`, `date-time`, …) checked.
fn validator(document: &Value, schema: &Value) -> Result<jsonschema::Validator, String> {
    let mut root = match schema {
        Value::Object(_) => schema.clone(),
        other => json!({ "allOf": [other] }),
    };
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = document["components"].clone();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| e.to_string())
}

/// The validation errors of `value` under `schema`, a schema of `document`.
fn errors_under(document: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let validator = validator(document, schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
    validator
        .iter_errors(value)
        .map(|e| format!("{e} at `{}`", e.instance_path()))
        .collect()
}

fn validate(
    validator: &jsonschema::Validator,
    body: &Value,
    status: u16,
    what: &str,
) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at `{}`", e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "{what}: the body does not match the documented schema:\n  {}\nbody: {body}",
            errors.join("\n  ")
        ));
    }
    if let Some(problem_status) = body.get("type").and(body.get("status"))
        && problem_status != status
    {
        return Err(format!(
            "{what}: the problem's status {problem_status} is not the answer's"
        ));
    }
    Ok(())
}

type Example = (String, Value, Value);

/// Every (location, schema, example) of the document.
fn collect_examples(document: &Value, found: &mut Vec<Example>) {
    for (name, schema) in document["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        schema_examples(&format!("components.schemas.{name}"), schema, found);
    }
    for (name, parameter) in document["components"]["parameters"]
        .as_object()
        .into_iter()
        .flatten()
    {
        holder_examples(&format!("components.parameters.{name}"), parameter, found);
    }
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let at = format!("{} {path}", method.to_uppercase());
            for (i, parameter) in operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                holder_examples(&format!("{at} parameters[{i}]"), parameter, found);
            }
            for (content_type, media) in operation["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                holder_examples(&format!("{at} request {content_type}"), media, found);
            }
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                for (content_type, media) in response["content"].as_object().into_iter().flatten() {
                    holder_examples(&format!("{at} {status} {content_type}"), media, found);
                }
            }
        }
    }
}

/// The examples of a media type or parameter object (`example`, `examples.*.value`) against its
/// `schema`, and those inside the schema.
fn holder_examples(at: &str, holder: &Value, found: &mut Vec<Example>) {
    let Some(schema) = holder.get("schema") else {
        return;
    };
    if let Some(example) = holder.get("example") {
        found.push((format!("{at} example"), schema.clone(), example.clone()));
    }
    for (name, example) in holder["examples"].as_object().into_iter().flatten() {
        if let Some(value) = example.get("value") {
            found.push((
                format!("{at} examples.{name}"),
                schema.clone(),
                value.clone(),
            ));
        }
    }
    schema_examples(&format!("{at} schema"), schema, found);
}

/// The `examples` (and OpenAPI's older `example`) of a schema and of its subschemas.
fn schema_examples(at: &str, schema: &Value, found: &mut Vec<Example>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    for (i, example) in object
        .get("examples")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        found.push((
            format!("{at} examples[{i}]"),
            schema.clone(),
            example.clone(),
        ));
    }
    if let Some(example) = object.get("example") {
        found.push((format!("{at} example"), schema.clone(), example.clone()));
    }
    for (name, property) in object
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        schema_examples(&format!("{at}.{name}"), property, found);
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(sub) = object.get(key) {
            schema_examples(&format!("{at}.{key}"), sub, found);
        }
    }
    for key in ["allOf", "anyOf", "oneOf", "prefixItems"] {
        for (i, sub) in object
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            schema_examples(&format!("{at}.{key}[{i}]"), sub, found);
        }
    }
}

/// Where the document's links go wrong: a link must name an operation of the document
/// (`operationId`), give only parameters that operation has (`path.id`, `query.order_id`), and
/// take each from a property of the answer it hangs on (`$response.body#/<property>`). Returns
/// one line per broken link; the number of links is the second value.
pub fn link_errors(document: &Value) -> (Vec<String>, usize) {
    let mut operations = BTreeMap::new();
    for item in document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, i)| i)
    {
        for operation in item.as_object().into_iter().flatten().map(|(_, o)| o) {
            if let Some(id) = operation["operationId"].as_str() {
                operations.insert(id.to_owned(), operation);
            }
        }
    }
    let (mut errors, mut links) = (Vec::new(), 0);
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                let body = response["content"]["application/json"]["schema"].clone();
                let body = resolve(document, &body);
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    links += 1;
                    let at = format!("{method} {path} {status} link {name}");
                    let target = link["operationId"].as_str().unwrap_or_default();
                    let Some(target_operation) = operations.get(target) else {
                        errors.push(format!("{at}: no operation `{target}`"));
                        continue;
                    };
                    for (parameter, value) in link["parameters"].as_object().into_iter().flatten() {
                        let (location, parameter_name) =
                            parameter.split_once('.').unwrap_or(("", parameter));
                        let exists = target_operation["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| resolve(document, p))
                            .any(|p| {
                                p["name"] == parameter_name
                                    && (location.is_empty() || p["in"] == location)
                            });
                        if !exists {
                            errors.push(format!("{at}: `{target}` has no parameter {parameter}"));
                        }
                        let property = value
                            .as_str()
                            .and_then(|v| v.strip_prefix("$response.body#/"))
                            .unwrap_or_default();
                        if body["properties"].get(property).is_none() {
                            errors.push(format!(
                                "{at}: {value} is not a property of the answer's body"
                            ));
                        }
                    }
                }
            }
        }
    }
    (errors, links)
}

/// What every service's OpenAPI test asserts: `document` (the service's `openapi()`) is
/// OpenAPI 3.1 with every example valid and every link sound ([`link_errors`]), the tenant
/// header on every `/api` operation, every error answer `application/problem+json` listing its
/// problem types, and `app` serves exactly it at `GET /openapi.json` (200, `application/json`).
pub async fn assert_published(app: &crate::TestApp, document: Value) {
    let contract = Contract::new(document.clone());
    let examples = contract.assert_examples_valid();
    assert!(examples > 0, "the document has no example");
    let (broken, links) = link_errors(&document);
    assert!(links > 0, "the document has no link for the stateful tests");
    assert_eq!(broken, Vec::<String>::new(), "broken links");
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let tenant_header = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["$ref"] == "#/components/parameters/TenantId");
            assert_eq!(
                tenant_header,
                path.starts_with("/api/"),
                "{method} {path}: the x-tenant-id header is documented exactly on /api routes"
            );
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                if let Some(problem) = response["content"].get("application/problem+json") {
                    let types = problem["schema"]["properties"]["type"]["enum"]
                        .as_array()
                        .map_or(0, Vec::len);
                    assert!(
                        types > 0,
                        "{method} {path} {status}: a problem answer without a problem type"
                    );
                }
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]
                            .get("application/problem+json")
                            .is_some(),
                        "{method} {path} {status}: an error that is not application/problem+json"
                    );
                }
            }
        }
    }
    let response = app
        .client
        .get(app.url(platform::openapi::OPENAPI_PATH))
        .send()
        .await
        .expect("GET /openapi.json is sent");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "application/json"
    );
    let served: Value = response.json().await.expect("the document is JSON");
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "OpenAPI version {}",
        served["openapi"]
    );
    assert_eq!(
        served, document,
        "the served document is the service's openapi()"
    );
    app.assert_contract_kept();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(link: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {
                "/things": { "post": {
                    "operationId": "create_thing",
                    "responses": { "201": {
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Thing" } } },
                        "links": { "GetThing": link }
                    } }
                } },
                "/things/{id}": { "get": {
                    "operationId": "get_thing",
                    "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                    "responses": { "200": { "description": "the thing" } }
                } }
            },
            "components": { "schemas": { "Thing": {
                "type": "object", "properties": { "id": { "type": "string" } }
            } } }
        })
    }

    #[test]
    fn a_sound_link_passes_and_each_broken_part_is_named() {
        let sound =
            json!({"operationId": "get_thing", "parameters": {"path.id": "$response.body#/id"}});
        assert_eq!(link_errors(&document(sound)), (vec![], 1));
        for (link, broken) in [
            (
                json!({"operationId": "get_things", "parameters": {"path.id": "$response.body#/id"}}),
                "no operation `get_things`",
            ),
            (
                json!({"operationId": "get_thing", "parameters": {"query.id": "$response.body#/id"}}),
                "has no parameter query.id",
            ),
            (
                json!({"operationId": "get_thing", "parameters": {"path.id": "$response.body#/uuid"}}),
                "is not a property of the answer's body",
            ),
        ] {
            let (errors, links) = link_errors(&document(link));
            assert_eq!(links, 1);
            assert!(
                errors.len() == 1 && errors[0].contains(broken),
                "{errors:?}"
            );
        }
    }
}
