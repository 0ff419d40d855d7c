"""JSON-schema outputs: ask, parse the first balanced ``{...}``, validate, re-ask, or fail loudly.

Mode ladder (the backend lists the modes it supports, best first):
``json_schema`` (strict) -> on HTTP 400 ``json_object`` -> on HTTP 400 a prompt instruction.
A parse or validation failure is re-asked with ``sample_index + 1`` twice, then
:class:`JSONOutputError` is raised. Nothing is ever filled in with defaults.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lm_kit.llm.errors import JSONOutputError, LLMHTTPError
from lm_kit.llm.types import Completion, GenParams, Message

if TYPE_CHECKING:
    from lm_kit.llm.client import BaseLLMClient

log = logging.getLogger(__name__)

REASKS = 2

INSTRUCTION = (
    "Respond with a single JSON object and nothing else (no prose, no code fences). "
    "It must conform to this JSON schema:\n{schema}"
)


def extract_json_object(text: str) -> str | None:
    """The first balanced ``{...}`` in ``text`` (braces inside JSON strings are ignored)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        in_str = False
        escape = False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if escape:
                    escape = False
                elif ch == "\\":
                    escape = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    candidate = text[start : i + 1]
                    try:
                        json.loads(candidate)
                        return candidate
                    except json.JSONDecodeError:
                        break
        start = text.find("{", start + 1)
    return None


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _check(value: Any, schema: Mapping[str, Any], path: str, defs: Mapping[str, Any]) -> None:
    """A small JSON-schema validator (type, enum, required, properties, items, $ref)."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        if ref not in defs:
            raise ValueError(f"{path}: unresolvable $ref {schema['$ref']!r}")
        _check(value, defs[ref], path, defs)
        return
    for key in ("anyOf", "oneOf"):
        if key in schema:
            errors = []
            for sub in schema[key]:
                try:
                    _check(value, sub, path, defs)
                    break
                except ValueError as e:
                    errors.append(str(e))
            else:
                raise ValueError(f"{path}: matches none of {key}: {'; '.join(errors)}")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        ok = False
        for n in names:
            py = _JSON_TYPES.get(n)
            if py is None:
                continue
            if isinstance(value, bool) and n in ("integer", "number"):
                continue
            if isinstance(value, py):
                ok = True
        if not ok:
            raise ValueError(f"{path}: expected {' or '.join(names)}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for req in schema.get("required", []):
            if req not in value:
                raise ValueError(f"{path}: missing required key {req!r}")
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                _check(v, props[k], f"{path}.{k}", defs)
            elif schema.get("additionalProperties") is False:
                raise ValueError(f"{path}: unexpected key {k!r}")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, v in enumerate(value):
            _check(v, schema["items"], f"{path}[{i}]", defs)


def parse_and_validate(text: str, response_format: Any) -> Any:
    """Parse the first balanced object in ``text`` and validate it.

    Returns a pydantic instance for a pydantic ``response_format``, else the plain dict.
    Raises ``ValueError`` naming what is wrong.
    """
    blob = extract_json_object(text)
    if blob is None:
        raise ValueError("no JSON object found in the output")
    obj = json.loads(blob)
    validate = getattr(response_format, "model_validate", None)
    if callable(validate):
        try:
            return validate(obj)
        except Exception as e:  # pydantic.ValidationError
            raise ValueError(f"schema validation failed: {e}") from None
    schema = dict(response_format)
    _check(obj, schema, "$", {**schema.get("$defs", {}), **schema.get("definitions", {})})
    return obj


def strict_schema_payload(params: GenParams) -> dict[str, Any]:
    """The OpenAI ``response_format`` body for strict ``json_schema`` mode."""
    schema = params.json_schema or {}
    name = str(schema.get("title") or "output")
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _instruction(params: GenParams) -> str:
    return INSTRUCTION.format(schema=json.dumps(params.json_schema, sort_keys=True))


def with_instruction(messages: list[Message], params: GenParams) -> list[Message]:
    """Append the JSON instruction to the system message (or add one)."""
    text = _instruction(params)
    if messages and messages[0].role == "system":
        return [Message.system(messages[0].content + "\n\n" + text), *messages[1:]]
    return [Message.system(text), *messages]


async def _chat_once(
    client: BaseLLMClient, messages: list[Message], params: GenParams
) -> Completion:
    modes = client.json_modes
    while True:
        pos = min(getattr(client, "_json_mode_pos", 0), len(modes) - 1)
        mode = modes[pos]
        msgs = messages if mode == "json_schema" else with_instruction(messages, params)
        try:
            return await client._chat(msgs, params, mode)
        except LLMHTTPError as e:
            if e.status == 400 and pos < len(modes) - 1:
                log.warning(
                    "server rejected response_format mode %r (HTTP 400); falling back to %r",
                    mode,
                    modes[pos + 1],
                )
                client._json_mode_pos = pos + 1  # type: ignore[attr-defined]
                continue
            raise


async def _ask_until_valid(call: Any, params: GenParams) -> Completion:
    last_text, last_reason = "", ""
    for k in range(REASKS + 1):
        p = params.replace(sample_index=params.sample_index + k)
        comp: Completion = await call(p)
        if comp.finish_reason == "length":
            raise JSONOutputError(
                comp.text,
                f"output cut off at max_tokens={p.max_tokens} (finish_reason='length')",
                attempts=k + 1,
            )
        try:
            comp.parsed = parse_and_validate(comp.text, params.response_format)
            return comp
        except ValueError as e:
            last_text, last_reason = comp.text, str(e)
            log.info(
                "JSON output invalid (%s); re-asking with sample_index=%d", e, p.sample_index + 1
            )
    raise JSONOutputError(last_text, last_reason, attempts=REASKS + 1)


async def chat_json(
    client: BaseLLMClient, messages: list[Message], params: GenParams
) -> Completion:
    return await _ask_until_valid(lambda p: _chat_once(client, messages, p), params)


async def complete_json(client: BaseLLMClient, prompt: str, params: GenParams) -> Completion:
    text = prompt.rstrip() + "\n\n" + _instruction(params) + "\n"
    plain = params.replace(response_format=None)

    async def call(p: GenParams) -> Completion:
        return await client._complete(text, plain.replace(sample_index=p.sample_index))

    return await _ask_until_valid(call, params)
