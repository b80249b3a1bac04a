"""The Responses API as a translation of chat completions, in both directions.

A `responses.create` request becomes a `ChatRequest` (`request`) and runs through the same
pipeline as a chat completion (gateway, plan, server-side functions, fallbacks, request log); its
answer is reshaped into a `response` object (`answer`), or its stream of chat chunk objects into
the Responses API's typed events (`events.ResponseEvents`; `api/http.py` sends them as
Server-Sent Events). Nothing is stored: `previous_response_id` and `conversation` are refused,
so a client sends the whole conversation in `input` (as it would to a stateless model).
"""

from alicerce.inference.responses.answer import response_from_chat, response_id
from alicerce.inference.responses.events import ResponseEvents
from alicerce.inference.responses.request import (
    ResponsesRequest,
    parse_responses_request,
    to_chat_request,
)

__all__ = [
    "ResponseEvents",
    "ResponsesRequest",
    "parse_responses_request",
    "response_from_chat",
    "response_id",
    "to_chat_request",
]
