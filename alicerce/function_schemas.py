"""The JSON Schemas of a gateway's server-side functions: checked once, applied safely.

Recursive schemas are legal JSON Schema and stay accepted: a tree of `$defs` that recurses
through the arguments validates. What cannot work is refused when the gateway is saved, where a
person can fix it, rather than found when the model calls the function, after the upstream has
answered and been paid:

- a `$ref` loop that reads no part of the arguments (`{"$ref": "#"}`, two `$defs` naming each
  other) recurses forever; JSON Schema 2020-12 (9.4.1) asks implementations to fail it. The
  schema is probed with `{}`; a loop only some arguments reach is caught at use instead
  (`inference/functions.py`), failing that tool call, never the request;
- a `$ref` resolves only inside the schema (`#...`; another is refused): the library's default
  fetched a `$ref` URL (`http://169.254.169.254/...`) from the server when the model's
  arguments reached it, of anyone's choosing, and fed what it found into the tool's error.

jsonschema is imported when first needed: the commands that only read gateways start without it.
"""

from __future__ import annotations

from typing import Any


def schema_validator(schema: dict[str, Any]) -> Any:
    """A checked JSON Schema's validator, whose `$ref`s resolve only inside the schema."""
    import jsonschema
    import referencing

    kind = jsonschema.validators.validator_for(schema)
    kind.check_schema(schema)
    return kind(schema, registry=referencing.Registry())


def check_function_schema(schema: dict[str, Any]) -> None:
    """Raises `ValueError` (a pydantic validator's error) with what is wrong with `schema`."""
    import jsonschema
    import referencing.exceptions

    _local_refs(schema, "")
    try:
        next(iter(schema_validator(schema).iter_errors({})), None)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ValueError(
            f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
        ) from None
    except RecursionError:
        raise ValueError(
            "the schema never ends: a '$ref' loop that reads no part of the arguments "
            "(such as {'$ref': '#'}), or nesting too deep to check"
        ) from None
    except referencing.exceptions.Unresolvable as exc:
        raise ValueError(
            f"a '$ref' cannot be resolved: {exc} (refs must point inside the schema)"
        ) from None


def _local_refs(node: Any, where: str) -> None:
    """Refuses a `$ref` anywhere that does not point inside the schema (`#...`): at use it
    could not resolve (nothing is fetched), so it is the author's to fix now."""
    if isinstance(node, dict):
        for key, value in node.items():
            # (a `$ref` that is no string is a property of that name, or check_schema's to refuse)
            if key in ("$ref", "$dynamicRef") and isinstance(value, str) and value[:1] != "#":
                shown = repr(value)[:80]
                raise ValueError(
                    f"'{key}' {shown}{f' at {where}' if where else ''} points outside the "
                    "schema; refs must point inside it ('#/$defs/...'), nothing is fetched"
                )
            _local_refs(value, f"{where}/{key}" if where else key)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _local_refs(item, f"{where}/{index}")
