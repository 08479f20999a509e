"""Validate API responses against xenoflow_ovs/openapi.yaml (shared by the unit and live tests)."""

import jsonschema
import yaml

from xenoflow_ovs.api import handlers as routes

DOC = yaml.safe_load(open(routes.OPENAPI))


def to_jsonschema(node):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable: true` becomes a null alternative."""
    if isinstance(node, list):
        return [to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


COMPONENTS = to_jsonschema(DOC["components"])


def validate(method, path_template, code, body):
    """The response must be documented for this route and status, and match its schema."""
    op = DOC["paths"][path_template][method.lower()]
    assert str(code) in op["responses"], "%s %s answered %s, undocumented" % (method, path_template, code)
    resp = op["responses"][str(code)]
    if "$ref" in resp:
        resp = DOC["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
    content = resp["content"]
    if "application/json" not in content:
        assert isinstance(body, str)
        return
    schema = dict(to_jsonschema(content["application/json"]["schema"]), components=COMPONENTS)
    jsonschema.validate(body, schema)
