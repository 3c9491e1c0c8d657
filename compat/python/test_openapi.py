"""The OpenAPI document at /openapi.json, checked by openapi-spec-validator (a validator no one
here wrote) against the OpenAPI 3.1 specification and its JSON Schema dialect."""

from __future__ import annotations

import requests
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tessera_harness import HTTP_TIMEOUT, TesseraServer


def test_openapi_document_is_valid_openapi_3_1(server: TesseraServer):
    resp = requests.get(f"{server.base_url}/openapi.json", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    # The admin and self-service APIs are in it, with their problem format.
    assert "post" in doc["paths"]["/admin/v1/users"]
    assert "get" in doc["paths"]["/me"]
    assert "Problem" in doc["components"]["schemas"]
