//! The hand-written OpenAPI 3 document served at `GET /openapi.json`.

use serde_json::{json, Value};

use crate::engine::ModelInfo;

/// Every (method, path) the server routes, in OpenAPI path syntax (tested against the router).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/predict"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{id}"),
    ("get", "/v1/tenants/{id}/culprits"),
    ("get", "/v1/tenants/{id}/profile"),
    ("post", "/v1/placement"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("get", "/v2/models/{name}/versions/{version}"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
    ("post", "/v2/models/{name}/versions/{version}/infer"),
];

fn err_responses() -> Value {
    const ERRORS: [(&str, &str); 8] = [
        ("400", "Bad input (an unparsable HTTP request, malformed JSON, wrong shapes, unknown metric names, non-finite values, empty windows)."),
        ("401", "Missing or wrong bearer token."),
        ("404", "Unknown model, version or tenant."),
        ("408", "The request body did not arrive within --body-timeout."),
        ("413", "Body, batch or window larger than the limits."),
        ("414", "Request target longer than 8 KiB."),
        ("431", "Request head larger than 64 KiB or more than 100 header lines."),
        ("503", "Inference queue full, or every connection busy at --max-connections (Retry-After: 1)."),
    ];
    let schema = json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}});
    Value::Object(
        ERRORS
            .iter()
            .map(|(code, desc)| {
                (
                    code.to_string(),
                    json!({"description": desc, "content": schema.clone()}),
                )
            })
            .collect(),
    )
}

fn ok_json(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn get_op(summary: &str, resp: Value, params: Value) -> Value {
    let mut responses = err_responses();
    responses["200"] = resp;
    json!({"get": {"summary": summary, "parameters": params, "responses": responses}})
}

fn post_op(summary: &str, body: Value, resp: Value, params: Value) -> Value {
    let mut responses = err_responses();
    responses["200"] = resp;
    responses["422"] = json!({"description": "A window's coverage is below the model's floor and the request did not ask for partial answers; names the missing features.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ThinWindow"}}}});
    json!({"post": {
        "summary": summary,
        "parameters": params,
        "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
        "responses": responses
    }})
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": {"type": "string"}})
}

/// The document, with the loaded model's feature count and names filled in.
pub fn document(info: &ModelInfo) -> Value {
    let f = info.n_features();
    let obj =
        |props: Value| json!({"type": "object", "additionalProperties": true, "properties": props});
    let name = path_param("name", "\"cloudformer\" or the model id");
    let version = path_param("version", "the model id");
    let mut paths = serde_json::Map::new();
    paths.insert(
        "/healthz".into(),
        get_op(
            "Liveness (the process serves HTTP).",
            ok_json("ok", obj(json!({"status": {"type": "string"}}))),
            json!([]),
        ),
    );
    paths.insert("/readyz".into(), get_op("Readiness: model loaded (and, in live mode, agent running). Reports the last model-reload error.", ok_json("ready", json!({"$ref": "#/components/schemas/Ready"})), json!([])));
    paths.insert("/metrics".into(), json!({"get": {"summary": "Prometheus text: request counts, latency histograms, batch sizes, queue depth, reloads, per-tenant P̂ gauges, agent self-metrics.", "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}));
    paths.insert(
        "/openapi.json".into(),
        get_op(
            "This document.",
            ok_json("OpenAPI 3.0 document", json!({"type": "object"})),
            json!([]),
        ),
    );
    paths.insert(
        "/v1/predict".into(),
        post_op(
            "Predict P̂ for one or many windows of per-second metrics.",
            json!({"$ref": "#/components/schemas/PredictRequest"}),
            ok_json(
                "one prediction per window, in order",
                json!({"$ref": "#/components/schemas/PredictResponse"}),
            ),
            json!([]),
        ),
    );
    paths.insert(
        "/v1/tenants".into(),
        get_op(
            "Live mode: tenants with their latest P̂.",
            ok_json("tenants", json!({"$ref": "#/components/schemas/Tenants"})),
            json!([]),
        ),
    );
    paths.insert("/v1/tenants/{id}".into(), get_op("Live mode: one tenant's P̂ history and the window the latest P̂ was computed on. The id is the tenant's cgroup path (slashes allowed).", ok_json("tenant", json!({"$ref": "#/components/schemas/TenantDetail"})), json!([path_param("id", "tenant id, e.g. machine.slice/machine-qemu-1-vm1.scope")])));
    paths.insert(
        "/v1/tenants/{id}/culprits".into(),
        get_op(
            "Live mode: which neighbour and which resource of the neighbours hurt the tenant. P̂ with every neighbour, alone, without each neighbour (neighbour columns recomputed from every tenant's own rows), and with each resource of the neighbour columns missing; ranked by how much their absence raises P̂. One batched forward pass. 409 while the tenant has fewer seconds than its first live prediction needs.",
            ok_json("culprits", json!({"$ref": "#/components/schemas/Culprits"})),
            json!([path_param("id", "tenant id, e.g. machine.slice/machine-qemu-1-vm1.scope")]),
        ),
    );
    paths.insert(
        "/v1/tenants/{id}/profile".into(),
        get_op(
            "Live mode: the tenant's own columns of its last seconds, to carry to another host's POST /v1/placement.",
            ok_json("profile", json!({"$ref": "#/components/schemas/Profile"})),
            json!([
                path_param("id", "tenant id, e.g. machine.slice/machine-qemu-1-vm1.scope"),
                {"name": "seconds", "in": "query", "required": false, "description": "last N seconds (default: all held, --window-s)", "schema": {"type": "integer", "minimum": 1}}
            ]),
        ),
    );
    paths.insert(
        "/v1/placement".into(),
        post_op(
            "Live mode: what placing a profiled tenant on this host would do — P̂ of the candidate beside the current tenants, P̂ before → after for each of them, and the host score (the worst P̂ after placement). 422: the profile's catalogue differs, it has too few seconds, or too little coverage.",
            json!({"$ref": "#/components/schemas/PlacementRequest"}),
            ok_json("placement", json!({"$ref": "#/components/schemas/Placement"})),
            json!([]),
        ),
    );
    paths.insert("/v2".into(), get_op("OIP server metadata.", ok_json("server", obj(json!({"name": {"type": "string"}, "version": {"type": "string"}, "extensions": {"type": "array", "items": {"type": "string"}}}))), json!([])));
    paths.insert(
        "/v2/health/live".into(),
        get_op(
            "OIP liveness.",
            ok_json("live", obj(json!({"live": {"type": "boolean"}}))),
            json!([]),
        ),
    );
    paths.insert(
        "/v2/health/ready".into(),
        get_op(
            "OIP readiness.",
            ok_json("ready", obj(json!({"ready": {"type": "boolean"}}))),
            json!([]),
        ),
    );
    let meta = ok_json(
        "model metadata",
        json!({"$ref": "#/components/schemas/ModelMetadata"}),
    );
    let ready = ok_json(
        "model ready",
        obj(json!({"name": {"type": "string"}, "ready": {"type": "boolean"}})),
    );
    let infer_body = json!({"$ref": "#/components/schemas/InferRequest"});
    let infer_resp = ok_json(
        "inference response",
        json!({"$ref": "#/components/schemas/InferResponse"}),
    );
    paths.insert(
        "/v2/models/{name}".into(),
        get_op("OIP model metadata.", meta.clone(), json!([name.clone()])),
    );
    paths.insert(
        "/v2/models/{name}/ready".into(),
        get_op("OIP model readiness.", ready.clone(), json!([name.clone()])),
    );
    paths.insert(
        "/v2/models/{name}/infer".into(),
        post_op(
            "OIP inference.",
            infer_body.clone(),
            infer_resp.clone(),
            json!([name.clone()]),
        ),
    );
    paths.insert(
        "/v2/models/{name}/versions/{version}".into(),
        get_op(
            "OIP model metadata (versioned).",
            meta,
            json!([name.clone(), version.clone()]),
        ),
    );
    paths.insert(
        "/v2/models/{name}/versions/{version}/ready".into(),
        get_op(
            "OIP model readiness (versioned).",
            ready,
            json!([name.clone(), version.clone()]),
        ),
    );
    paths.insert(
        "/v2/models/{name}/versions/{version}/infer".into(),
        post_op(
            "OIP inference (versioned).",
            infer_body,
            infer_resp,
            json!([name, version]),
        ),
    );

    let values = json!({"type": "array", "items": {"type": "number", "nullable": true}, "description": "per-second values; null = missing"});
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "cloudformer prediction server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Predicts P̂ ∈ (0, 1], how much a VM's performance is degraded by its noisy neighbours (1 = not degraded), from per-second host metrics. Model {} (catalogue {}), {f} features. Authenticate with `Authorization: Bearer <token>` when the server was started with --token-file (probes /healthz, /readyz, /v2/health/* are open).", info.model_id, info.catalogue_hash),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string", "description": "what is wrong with the request"}}},
                "ThinWindow": {"type": "object", "required": ["error", "window", "coverage", "coverage_floor", "missing_features"], "properties": {
                    "error": {"type": "string"},
                    "window": {"type": "integer", "description": "index of the first window below the floor"},
                    "coverage": {"type": "number"},
                    "coverage_floor": {"type": "number"},
                    "missing_features": {"type": "array", "items": {"type": "string"}, "description": "features the model reads with no value in any second of the window"}
                }},
                "Window": {
                    "type": "object",
                    "description": format!("One window: either `metrics` (feature name → per-second values; missing features are treated as missing data) or `matrix` (T rows × {f} columns in the model's feature order)."),
                    "properties": {
                        "id": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                        "metrics": {"type": "object", "additionalProperties": values},
                        "matrix": {"type": "array", "items": {"type": "array", "minItems": f, "maxItems": f, "items": {"type": "number", "nullable": true}}}
                    }
                },
                "PredictRequest": {
                    "oneOf": [
                        {"type": "object", "required": ["windows"], "properties": {"windows": {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Window"}}, "partial": {"type": "boolean", "default": false, "description": "answer windows below the model's coverage floor (flagged) instead of a 422"}}},
                        {"$ref": "#/components/schemas/Window"}
                    ]
                },
                "Prediction": {"type": "object", "properties": {
                    "id": {"type": "string", "nullable": true},
                    "p": {"type": "number", "description": "predicted P̂ in (0, 1]"},
                    "std": {"type": "number", "description": "uncertainty of P̂"},
                    "coverage": {"type": "number", "description": "share of the (feature, second) cells the model uses that the window observed"},
                    "out_of_distribution": {"type": "boolean", "description": "coverage below the model's floor, or values far outside the training data's feature ranges"},
                    "partial": {"type": "boolean", "description": "coverage below the model's floor; answered because the request asked for partial answers"},
                    "t": {"type": "integer", "description": "seconds in the window"}
                }},
                "PredictResponse": {"type": "object", "properties": {
                    "model_id": {"type": "string"},
                    "catalogue_hash": {"type": "string"},
                    "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}
                }},
                "HistPoint": {"type": "object", "properties": {
                    "ts_ns": {"type": "integer"}, "p": {"type": "number"}, "std": {"type": "number"},
                    "coverage": {"type": "number"}, "out_of_distribution": {"type": "boolean"}, "t": {"type": "integer"}
                }},
                "Tenants": {"type": "object", "properties": {
                    "model_id": {"type": "string"}, "catalogue_hash": {"type": "string"}, "window_s": {"type": "integer"},
                    "tenants": {"type": "array", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "seconds": {"type": "integer"},
                        "latest": {"allOf": [{"$ref": "#/components/schemas/HistPoint"}], "nullable": true}
                    }}}
                }},
                "TenantDetail": {"type": "object", "properties": {
                    "id": {"type": "string"}, "model_id": {"type": "string"}, "catalogue_hash": {"type": "string"},
                    "history": {"type": "array", "items": {"$ref": "#/components/schemas/HistPoint"}},
                    "window": {"type": "object", "properties": {
                        "t": {"type": "integer"},
                        "ts_ns": {"type": "array", "items": {"type": "integer"}},
                        "metrics": {"type": "object", "additionalProperties": values}
                    }}
                }},
                "Ready": {"type": "object", "properties": {
                    "ready": {"type": "boolean"}, "model_id": {"type": "string"}, "catalogue_hash": {"type": "string"},
                    "model_dir": {"type": "string"}, "n_features": {"type": "integer"},
                    "model_members": {"type": "array", "items": {"type": "string"}, "description": "ids of the checkpoints that answer (an ensemble's members)"},
                    "model_derived_inputs": {"type": "array", "items": {"type": "string"}, "description": "ratios the model computes from each window beside its features, e.g. cpu-share"},
                    "reload_error": {"type": "string", "nullable": true, "description": "why the last reload was rejected (the previous model keeps serving)"},
                    "reload_error_unix_s": {"type": "integer", "nullable": true},
                    "reloads_ok": {"type": "integer"}, "reloads_failed": {"type": "integer"},
                    "live": {"type": "object", "nullable": true}
                }},
                "ModelMetadata": {"type": "object", "properties": {
                    "name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                    "platform": {"type": "string"},
                    "inputs": {"type": "array", "items": {"$ref": "#/components/schemas/TensorMetadata"}},
                    "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/TensorMetadata"}}
                }},
                "TensorMetadata": {"type": "object", "properties": {
                    "name": {"type": "string"}, "datatype": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer"}}
                }},
                "InferRequest": {"type": "object", "required": ["inputs"], "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "description": format!("`metrics` FP32 [B, T, {f}] (or [T, {f}]) row-major, windows padded to T; optional `lengths` INT32 [B] (each window's real length)."), "items": {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
                        "name": {"type": "string", "enum": ["metrics", "lengths"]},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string"},
                        "parameters": {"type": "object"},
                        "data": {"type": "array", "items": {}}
                    }}},
                    "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string", "enum": crate::parse::V2_OUTPUTS}}}}
                }},
                "InferResponse": {"type": "object", "properties": {
                    "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "outputs": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "datatype": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}}, "data": {"type": "array", "items": {}}
                    }}}
                }}
            }
        },
        "security": [{"bearer": []}, {}],
        "paths": Value::Object(paths),
    });
    if let (Some(schemas), Value::Object(more)) = (
        doc["components"]["schemas"].as_object_mut(),
        scheduler_schemas(&values),
    ) {
        schemas.extend(more);
    }
    doc
}

/// The schemas of the scheduler endpoints (culprits, profile, placement): a second `json!`
/// (one document in one macro call exceeds the macro recursion limit).
fn scheduler_schemas(values: &Value) -> Value {
    json!({
                "Estimate": {"type": "object", "properties": {
                    "p": {"type": "number"}, "std": {"type": "number"},
                    "coverage": {"type": "number"}, "out_of_distribution": {"type": "boolean"}
                }},
                "Culprits": {"type": "object", "properties": {
                    "id": {"type": "string"}, "model_id": {"type": "string"}, "catalogue_hash": {"type": "string"},
                    "t": {"type": "integer", "description": "seconds in the window"},
                    "from_ts_ns": {"type": "integer"}, "to_ts_ns": {"type": "integer"},
                    "with_all": {"$ref": "#/components/schemas/Estimate"},
                    "alone": {"$ref": "#/components/schemas/Estimate"},
                    "neighbours": {"type": "array", "description": "largest delta_p first", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "seconds_present": {"type": "integer"},
                        "p_without": {"type": "number"}, "std_without": {"type": "number"},
                        "delta_p": {"type": "number", "description": "p_without - with_all.p; > 0: the neighbour hurts"}
                    }}},
                    "resources": {"type": "array", "description": "largest delta_p first", "items": {"type": "object", "properties": {
                        "resource": {"type": "string", "description": "metric-name prefix: cpu, mem, io, pids, proc, perf, net, placement"},
                        "columns": {"type": "integer"},
                        "p_occluded": {"type": "number"}, "std_occluded": {"type": "number"},
                        "delta_p": {"type": "number"}
                    }}}
                }},
                "Profile": {"type": "object", "properties": {
                    "id": {"type": "string"}, "model_id": {"type": "string"},
                    "catalogue_hash": {"type": "string", "description": "the agent's catalogue; a placement host must have the same"},
                    "t": {"type": "integer"}, "ts_ns": {"type": "array", "items": {"type": "integer"}},
                    "cpus": {"type": "array", "items": {"type": "integer"}},
                    "metrics": {"type": "object", "description": "own metric name → per-second values", "additionalProperties": values}
                }},
                "PlacementRequest": {"type": "object", "required": ["profile"], "properties": {
                    "profile": {"$ref": "#/components/schemas/Profile"},
                    "cpus": {"type": "array", "items": {"type": "integer"}, "description": "CPUs the candidate would run on here (default: every online CPU)"},
                    "cpu_quota_cpus": {"type": "number", "description": "its CPU quota in CPUs (default: none)"}
                }},
                "Placement": {"type": "object", "properties": {
                    "model_id": {"type": "string"}, "catalogue_hash": {"type": "string"},
                    "t": {"type": "integer", "description": "seconds replayed"},
                    "cpus": {"type": "array", "items": {"type": "integer"}},
                    "candidate": {"$ref": "#/components/schemas/Estimate"},
                    "tenants": {"type": "array", "description": "most hurt first", "items": {"type": "object", "properties": {
                        "id": {"type": "string"}, "seconds": {"type": "integer"},
                        "before": {"$ref": "#/components/schemas/Estimate"}, "after": {"$ref": "#/components/schemas/Estimate"},
                        "delta_p": {"type": "number", "description": "after.p - before.p; < 0: the candidate would hurt it"}
                    }}},
                    "score": {"type": "object", "properties": {
                        "worst_p": {"type": "number"}, "worst_std": {"type": "number"},
                        "worst_tenant": {"type": "string", "nullable": true, "description": "null = the candidate"},
                        "rule": {"type": "string"}
                    }}
                }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route() {
        let info = ModelInfo {
            model_id: "m".into(),
            catalogue_hash: "h".into(),
            feature_names: vec!["a".into()],
            dir: ".".into(),
            coverage: Default::default(),
            members: vec!["m".into()],
            derived_inputs: Vec::new(),
        };
        let doc = document(&info);
        let paths = doc["paths"].as_object().unwrap();
        for (method, path) in ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path}"
            );
        }
        assert_eq!(paths.len(), ROUTES.len());
    }
}
