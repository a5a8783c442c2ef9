//! The OpenAPI 3 document of the JSON API, served at `GET /api/v1/openapi.json`.

use actix_web::HttpResponse;
use serde_json::{Value, json};

/// Every documented (method, path); a test calls each against the real server.
pub const DOCUMENTED: [(&str, &str); 6] = [
    ("post", "/api/v1/consume"),
    ("post", "/api/v1/usage"),
    ("get", "/api/v1/credits"),
    ("get", "/api/v1/usage/daily"),
    ("get", "/api/v1/ping"),
    ("get", "/api/v1/openapi.json"),
];

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

pub fn document() -> Value {
    let usage_event = json!({
        "type": "object",
        "required": ["id", "timestamp", "credits"],
        "properties": {
            "id": { "type": "string", "minLength": 1, "maxLength": 200, "description": "Counted once per org however often it is sent (R9)" },
            "timestamp": { "type": "string", "format": "date-time" },
            "credits": { "type": "integer", "minimum": 1, "maximum": 1_000_000_000_i64 },
            "operation": { "type": "string", "maxLength": 200 },
            "client": { "type": "string", "maxLength": 200 },
            "user": { "type": "string", "maxLength": 200 }
        }
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "creditmeter gateway API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Spend API credits before each call (admission), report usage after the fact (metering), read remaining credits and daily usage. Every call needs an org's API token as a bearer token."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/consume": { "post": {
                "summary": "Spend credits now, atomically: free credits first, then additional credits up to the limit",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["credits"],
                    "properties": {
                        "credits": { "type": "integer", "minimum": 1, "maximum": 1_000_000_000_i64 },
                        "id": { "type": "string", "maxLength": 200, "description": "Idempotency key" },
                        "operation": { "type": "string" }, "client": { "type": "string" }, "user": { "type": "string" }
                    } } } } },
                "responses": {
                    "200": { "description": "Admitted", "headers": { "X-API-Credits-Remaining": { "schema": { "type": "integer" } } },
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Admitted" } } } },
                    "429": { "description": "Refused whole: the day's free credits plus the additional limit would be passed",
                        "headers": { "Retry-After": { "schema": { "type": "integer" }, "description": "Seconds until the org's next local day" },
                                     "X-API-Credits-Remaining": { "schema": { "type": "integer" } } },
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Refused" } } } },
                    "400": error_response("Malformed body or credits out of range; nothing recorded"),
                    "401": error_response("Missing or unknown token"),
                    "503": error_response("Not recorded; retry")
                }
            } },
            "/api/v1/usage": { "post": {
                "summary": "Record usage that already happened (R12): admitted in timestamp order with the limit in force at each event's time",
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "type": "array", "maxItems": 100000, "items": usage_event.clone() } },
                    "application/x-ndjson": { "schema": usage_event }
                } },
                "responses": {
                    "200": { "description": "One result per event, in the request's order",
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/UsageResults" } } } },
                    "400": error_response("Malformed body; nothing recorded"),
                    "401": error_response("Missing or unknown token"),
                    "503": error_response("Not recorded; retry")
                }
            } },
            "/api/v1/credits": { "get": {
                "summary": "The org's credits for its current local day",
                "responses": {
                    "200": { "description": "Today", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Today" } } } },
                    "401": error_response("Missing or unknown token")
                }
            } },
            "/api/v1/usage/daily": { "get": {
                "summary": "Per-day usage and amounts; no parameters = the last 30 days, today included",
                "parameters": [
                    { "name": "from", "in": "query", "schema": { "type": "string", "format": "date" } },
                    { "name": "to", "in": "query", "schema": { "type": "string", "format": "date" } }
                ],
                "responses": {
                    "200": { "description": "Days", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Daily" } } } },
                    "400": error_response("Malformed dates, from after to, or more than 366 days"),
                    "401": error_response("Missing or unknown token")
                }
            } },
            "/api/v1/ping": { "get": {
                "summary": "Checks the token and does nothing else",
                "responses": { "200": { "description": "Token accepted" }, "401": error_response("Missing or unknown token") }
            } },
            "/api/v1/openapi.json": { "get": {
                "summary": "This document", "security": [],
                "responses": { "200": { "description": "OpenAPI 3 document" } }
            } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "message"],
                    "properties": { "error": { "type": "string" }, "message": { "type": "string" } } },
                "Admitted": { "type": "object", "required": ["allowed", "free_remaining", "additional_remaining"],
                    "properties": { "allowed": { "type": "boolean", "enum": [true] },
                        "free_remaining": { "type": "integer" }, "additional_remaining": { "type": "integer" } } },
                "Refused": { "type": "object", "required": ["allowed", "error", "limit"],
                    "properties": { "allowed": { "type": "boolean", "enum": [false] },
                        "error": { "type": "string", "enum": ["CREDITS_EXHAUSTED"] },
                        "limit": { "type": "string", "enum": ["free", "additional"] }, "message": { "type": "string" } } },
                "UsageResults": { "type": "object", "required": ["accepted", "duplicates", "refused", "results"],
                    "properties": { "accepted": { "type": "integer" }, "duplicates": { "type": "integer" }, "refused": { "type": "integer" },
                        "results": { "type": "array", "items": { "type": "object", "required": ["id", "status"],
                            "properties": { "id": { "type": "string" },
                                "status": { "type": "string", "enum": ["accepted", "duplicate", "refused"] },
                                "reason": { "type": "string", "enum": ["LIMIT_EXCEEDED", "PERIOD_CLOSED", "FUTURE_TIMESTAMP"] } } } } } },
                "Today": { "type": "object",
                    "required": ["day", "free_allowance", "used", "free_remaining", "additional_limit", "additional_used", "additional_remaining"],
                    "properties": { "day": { "type": "string", "format": "date" }, "free_allowance": { "type": "integer" },
                        "used": { "type": "integer" }, "free_remaining": { "type": "integer" }, "additional_limit": { "type": "integer" },
                        "additional_used": { "type": "integer" }, "additional_remaining": { "type": "integer" } } },
                "Daily": { "type": "object", "required": ["from", "to", "currency", "days", "total_amount"],
                    "properties": { "from": { "type": "string", "format": "date" }, "to": { "type": "string", "format": "date" },
                        "currency": { "type": "string" }, "total_amount": { "type": "string", "example": "6.80" },
                        "days": { "type": "array", "items": { "type": "object", "required": ["day", "credits", "additional", "amount"],
                            "properties": { "day": { "type": "string", "format": "date" }, "credits": { "type": "integer" },
                                "additional": { "type": "integer" }, "amount": { "type": "string", "example": "6.80" } } } } } }
            }
        }
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
