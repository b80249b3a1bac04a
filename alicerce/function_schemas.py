"""The JSON Schemas of a gateway's server-side functions: checked once, applied safely.

Recursive schemas are legal JSON Schema and stay accepted: a tree of `$defs` that recurses
through the arguments validates. What cannot work is refused when the gateway is saved, where a
person can fix it, rather than found when the model calls the function, after the upstream has
answered and been paid:

- a `$ref` loop that reads no part of the arguments (`{"$ref": "#"}`, two `$defs` naming each
  other) recurses forever; JSON Schema 2020-12 (9.4.1) asks implementations to fail it. The
  schema is probed with `{}`; a loop only some arguments reach is caught at use instead
  (`inference/functions.py`), failing that tool call, never the request;
- a `$ref` resolves only inside the schema: the library's default would fetch a `$ref` URL
  (`http://169.254.169.254/...`), from the server, of anyone's choosing.

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
