"""JSON Schema of the project format, generated from the declarations.

``docs/project.schema.json`` is this output (a test keeps them equal), so the
documented format cannot drift from the catalogue and the config fields.
"""

from __future__ import annotations

import json
from typing import Any

from .config import DATA_FIELDS, TRAINING_FIELDS
from .layers import REGISTRY
from .layers.spec import Param
from .project import FORMAT, VERSION

IDENT_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"


def param_schema(p: Param) -> dict[str, Any]:
    d = p.describe()
    out: dict[str, Any] = {"description": p.doc}
    if p.kind in ("int", "float"):
        out["type"] = "integer" if p.kind == "int" else "number"
        out.update({k: d[k] for k in ("minimum", "maximum") if d[k] is not None})
    elif p.kind == "bool":
        out["type"] = "boolean"
    elif p.kind == "choice":
        out["enum"] = d["choices"]
    elif p.kind == "str":
        out["type"] = "string"
    elif p.kind == "int_tuple":
        arr: dict[str, Any] = {"type": "array", "items": {"type": "integer"}}
        if d["length"] is not None:
            arr["minItems"] = arr["maxItems"] = d["length"]
            out["oneOf"] = [arr, {"type": "integer"}]
        else:
            out.update(arr)
    elif p.kind == "float_tuple":
        number: dict[str, Any] = {"type": "number"}
        if d["minimum"] is not None:
            number["exclusiveMinimum" if d["exclusive_minimum"] else "minimum"] = d["minimum"]
        if d["maximum"] is not None:
            number["maximum"] = d["maximum"]
        out["oneOf"] = [{"type": "array", "items": number, "minItems": d["min_length"], "maxItems": d["max_length"]},
                        number]
    elif p.kind == "shape":
        out.update({"type": "array", "minItems": 1, "items": {"oneOf": [
            {"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}]}})
    return out


def _section(fields: tuple[Param, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {p.name: param_schema(p) for p in fields},
    }


def project_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a project file."""
    node_rules = [
        {
            "if": {"properties": {"type": {"const": spec.id}}},
            "then": {
                "properties": {
                    "params": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {p.name: param_schema(p) for p in spec.params},
                    }
                }
            },
        }
        for spec in REGISTRY.values()
    ]
    port = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}], "minItems": 2, "maxItems": 2}
    graph_def = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "type", "name"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "minLength": 1},
                        "type": {"anyOf": [
                            {"enum": sorted(REGISTRY)},
                            {"type": "string", "pattern": IDENT_PATTERN,
                             "description": "the id of one of the project's blocks"},
                        ]},
                        "name": {"type": "string", "minLength": 1},
                        "params": {"type": "object"},
                        "position": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                        "train": {
                            "type": "object", "additionalProperties": False,
                            "description": "how training treats the node (transfer learning, contrastive heads)",
                            "properties": {
                                "frozen": {"type": "boolean"},
                                "lr_scale": {"type": "number", "minimum": 0, "maximum": 100},
                                "role": {"enum": ["", "projection_head"]},
                            },
                        },
                    },
                    "allOf": node_rules,
                },
            },
            "edges": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["from", "to"],
                    "additionalProperties": False,
                    "properties": {"from": port, "to": port},
                },
            },
        },
    }
    block_def = {
        "type": "object",
        "description": "a reusable block: its Input nodes are its input ports, its Output nodes its output ports",
        "additionalProperties": False,
        "required": ["graph"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "doc": {"type": "string"},
            "params": {
                "type": "array",
                "description": "parameters the block exposes; each sets [node id, parameter] targets inside",
                "items": {
                    "type": "object",
                    "required": ["name", "targets"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "pattern": IDENT_PATTERN},
                        "doc": {"type": "string"},
                        "targets": {"type": "array", "minItems": 1, "items": port},
                    },
                },
            },
            "graph": {"$ref": "#/$defs/graph"},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"graph": graph_def, "block": block_def},
        "title": "Neural Workbench project",
        "description": f"Format {FORMAT!r} version {VERSION}. Generated by workbench/schema.py.",
        "type": "object",
        "required": ["format", "version", "graph"],
        "additionalProperties": False,
        "properties": {
            "format": {"const": FORMAT},
            "version": {"type": "integer", "minimum": 1, "maximum": VERSION},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "weights": {"type": ["string", "null"], "description": "safetensors file beside the project"},
            "graph": {"$ref": "#/$defs/graph"},
            "graphs": {
                "type": "object",
                "description": "further graphs by role (the discriminator of a GAN)",
                "additionalProperties": False,
                "properties": {"discriminator": {"$ref": "#/$defs/graph"}},
            },
            "blocks": {
                "type": "object",
                "description": "reusable blocks by id; a node whose type is a block id is an instance",
                "propertyNames": {"pattern": IDENT_PATTERN, "not": {"enum": sorted(REGISTRY)}},
                "additionalProperties": {"$ref": "#/$defs/block"},
            },
            "data": _section(DATA_FIELDS),
            "training": _section(TRAINING_FIELDS),
            "sweep": _sweep_schema(),
        },
    }


def _sweep_schema() -> dict[str, Any]:
    """The ``sweep`` section (see workbench/sweep/spec.py, which gives the located errors)."""
    from .sweep.spec import COST_OBJECTIVES, PRUNERS, SAMPLERS

    number = {"type": "number"}
    scalar = {"type": ["string", "number", "boolean"]}
    rng = {"type": "object", "required": ["name", "type", "low", "high"], "additionalProperties": False,
           "properties": {"name": {"type": "string"}, "type": {"enum": ["int", "float"]}, "low": number,
                          "high": number, "log": {"type": "boolean"}, "step": {"type": "number", "exclusiveMinimum": 0}}}
    choice = {"type": "object", "required": ["name", "type", "choices"], "additionalProperties": False,
              "properties": {"name": {"type": "string"}, "type": {"const": "choice"},
                             "choices": {"type": "array", "minItems": 1, "items": scalar}}}
    return {
        "type": "object",
        "description": "the search space of 'workbench sweep': a setting (lr, batch_size) or node.parameter per "
                       "entry of params",
        "additionalProperties": False,
        "properties": {
            "params": {"type": "array", "items": {"oneOf": [rng, choice]}},
            "objectives": {"type": "array", "items": {"type": "string"},
                           "description": f"a validation metric (val_accuracy, val_loss; ':max' or ':min' may "
                                          f"follow), then any of {', '.join(COST_OBJECTIVES)}"},
            "sampler": {"enum": list(SAMPLERS)},
            "pruner": {"enum": list(PRUNERS)},
            "trials": {"type": "integer", "minimum": 1},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
        },
    }


def schema_json() -> str:
    return json.dumps(project_schema(), indent=2) + "\n"
