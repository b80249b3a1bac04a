"""Knowledge collections (SPEC section 3): collections, their documents, and search.

Admin keys of the collection's account only; another account's ids answer 404. A new document
answers 202 (queued for indexing); the same content again answers 200 with the document that
already holds it, so a client can tell "accepted" from "already there".
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from alicerce.api.auth import require_admin, services_of
from alicerce.api.http import json_payload, read_body
from alicerce.api.json import json_response, listing
from alicerce.api.openapi import json_body
from alicerce.errors import InvalidRequest, RequestTooLarge
from alicerce.json_input import load_json
from alicerce.keys import Principal
from alicerce.knowledge.search import Hit
from alicerce.knowledge.service import MAX_NAME_CHARS, KnowledgeService, filename_base
from alicerce.knowledge.specs import (
    CollectionCreate,
    CollectionUpdate,
    ReembedRequest,
    SearchRequest,
    TextDocument,
    parse,
)
from alicerce.knowledge.store import Document
from alicerce.knowledge.views import chunk_view, collection_view, document_view, reembed_job_view

router = APIRouter(tags=["knowledge"])
SCHEMAS: list[type[BaseModel]] = [
    CollectionCreate,
    CollectionUpdate,
    TextDocument,
    SearchRequest,
    ReembedRequest,
]
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small fields beside the file
_PART_HEADER_BYTES = 4096 + 128  # python-multipart's bound on one header line of a part


def _knowledge(request: Request) -> KnowledgeService:
    return services_of(request).knowledge


def _account(principal: Principal) -> str:
    assert principal.account_id is not None
    return principal.account_id


def hit_view(hit: Hit) -> dict[str, Any]:
    return hit.citation() | {
        "text": hit.text,
        "score": round(hit.score, 6),
        "metadata": hit.metadata,
        "heading_path": hit.heading_path,
        "position": hit.position,
        "source_url": hit.source_url,
    }


# -- collections -------------------------------------------------------------------------


@router.post(
    "/collections",
    status_code=201,
    openapi_extra=json_body("CollectionCreate"),
)
async def create_collection(
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
    payload: Any = Depends(json_payload),  # after the key: a 401 before any 400
) -> Response:
    """`{name, description?, embedding?}`; without `embedding` the collection uses the local
    multilingual-e5-small, else `{base_url, api_key, model, dimensions}` of an
    OpenAI-compatible embeddings server (its key is stored encrypted and never returned)."""
    collection = await knowledge.create_collection(_account(principal), payload)
    return json_response(collection_view(collection), status=201)


@router.get("/collections")
async def list_collections(
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    return listing(
        [collection_view(c) for c in await knowledge.list_collections(_account(principal))]
    )


@router.get("/collections/{collection_id}")
async def get_collection(
    collection_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    return json_response(
        collection_view(await knowledge.get_collection(_account(principal), collection_id))
    )


@router.patch(
    "/collections/{collection_id}",
    openapi_extra=json_body("CollectionUpdate"),
)
async def update_collection(
    collection_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
    payload: Any = Depends(json_payload),  # after the key: a 401 before any 400
) -> Response:
    """`{name?, description?}`."""
    updated = await knowledge.update_collection(_account(principal), collection_id, payload)
    return json_response(collection_view(updated))


@router.delete("/collections/{collection_id}", status_code=204)
async def delete_collection(
    collection_id: str,
    force: bool = Query(
        False, description="Also when gateways use it: it is taken out of them first."
    ),
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    """Deletes the collection with all its documents and chunks. While gateways use it: 409
    `collection_in_use`, naming them (`error.gateways`), unless `force=true`, which takes it
    out of their `knowledge.collections` first."""
    await knowledge.delete_collection(_account(principal), collection_id, force=force)
    return Response(status_code=204)


@router.post(
    "/collections/{collection_id}/reembed",
    status_code=202,
    openapi_extra=json_body("ReembedRequest", required=False),
)
async def reembed_collection(
    collection_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
    payload: Any = Depends(json_payload),  # after the key: a 401 before any 400
) -> Response:
    """`{embedding?}`: embeds every chunk again, with the OpenAI-compatible endpoint given (or
    the local model without one), after the documents already queued. Searches use the old
    vectors until the new ones replace them all at once; the collection's `embedding` shows
    the new model then. Billed as `knowledge.indexing`."""
    state = await knowledge.reembed(_account(principal), collection_id, payload)
    return json_response(reembed_job_view(collection_id, state), status=202)


@router.post("/collections/{collection_id}/reembed/retry", status_code=202)
async def retry_reembed(
    collection_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    """Queues the collection's failed re-embedding again, to the same embedder (its key
    need not be sent again). 409 `reembed_not_failed` when none has failed."""
    state = await knowledge.retry_reembed(_account(principal), collection_id)
    return json_response(reembed_job_view(collection_id, state), status=202)


# -- documents ---------------------------------------------------------------------------


@router.post(
    "/collections/{collection_id}/documents",
    status_code=202,
    responses={200: {"description": "The collection holds this content already: its document."}},
    openapi_extra=json_body(
        "TextDocument",
        more={
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string"},
                        "metadata": {"type": "string", "description": "a JSON object"},
                        "source_url": {"type": "string"},
                    },
                }
            }
        },
    ),
)
async def add_document(
    collection_id: str,
    request: Request,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    """JSON `{name, content, metadata?, source_url?}` or a multipart `file` (.txt, .md, .html,
    .pdf, .docx, .json, .csv). 202 and the queued document; 200 and the existing document when
    the collection holds the same content already."""
    account_id = _account(principal)
    limit = knowledge.max_document_bytes
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
            raise RequestTooLarge(f"The document is larger than {limit} bytes.", param="file")
        document, created = await _add_upload(knowledge, account_id, collection_id, request)
    else:
        body = await read_body(request, limit + _FORM_OVERHEAD)
        payload = load_json(body, content_type=content_type) if body.strip() else None
        document, created = await knowledge.add_text(account_id, collection_id, payload)
    return json_response(document_view(document), status=202 if created else 200)


async def _add_upload(
    knowledge: KnowledgeService, account_id: str, collection_id: str, request: Request
) -> tuple[Document, bool]:
    try:
        return await _read_upload(knowledge, account_id, collection_id, request)
    except HTTPException as exc:  # Starlette's "Invalid multipart data.": say what was wrong
        cause = exc.__context__.__cause__ if exc.__context__ is not None else None
        if exc.status_code == 400 and "header size" in str(cause):
            raise InvalidRequest(
                f"A part's header of the multipart body is longer than "
                f"{_PART_HEADER_BYTES:,} bytes; a file name may have at most "
                f"{MAX_NAME_CHARS} characters.",
                param="file",
                code="name_too_long",
            ) from None
        raise


async def _read_upload(
    knowledge: KnowledgeService, account_id: str, collection_id: str, request: Request
) -> tuple[Document, bool]:
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("The multipart body needs a `file` part.", param="file")
        if upload.size is not None and upload.size > knowledge.max_document_bytes:
            raise RequestTooLarge(
                f"The document is larger than {knowledge.max_document_bytes} bytes.", param="file"
            )
        data = await upload.read()
        name = str(form.get("name") or "").strip() or filename_base(upload.filename or "")
        metadata = _form_metadata(form.get("metadata"))
        source_url = form.get("source_url")
    if not name:
        raise InvalidRequest(
            "The file needs a name (its filename or a `name` field).", param="name"
        )
    return await knowledge.add_file(
        account_id,
        collection_id,
        name=name,
        data=data,
        media_type=upload.content_type,
        source_url=source_url if isinstance(source_url, str) and source_url else None,
        metadata=metadata,
    )


def _form_metadata(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    try:
        metadata = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata: must be a JSON object.", param="metadata")
    return metadata


@router.get("/collections/{collection_id}/documents")
async def list_documents(
    collection_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    documents = await knowledge.list_documents(_account(principal), collection_id)
    return listing([document_view(d) for d in documents])


@router.get("/collections/{collection_id}/documents/{document_id}")
async def get_document(
    collection_id: str,
    document_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    document = await knowledge.get_document(_account(principal), collection_id, document_id)
    return json_response(document_view(document))


@router.post("/collections/{collection_id}/documents/{document_id}/retry", status_code=202)
async def retry_document(
    collection_id: str,
    document_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    """Queues a `failed` document again (202), its error cleared, with the bytes it was sent
    with. 409 `document_not_failed` for a document that has not failed."""
    document = await knowledge.retry_document(_account(principal), collection_id, document_id)
    return json_response(document_view(document), status=202)


@router.get("/collections/{collection_id}/documents/{document_id}/chunks/{chunk_id}")
async def get_chunk(
    collection_id: str,
    document_id: str,
    chunk_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    """One chunk, whole: the one a citation (`generation_context.knowledge`) or a search
    result names, with its text, heading path, position and document."""
    chunk = await knowledge.get_chunk(_account(principal), collection_id, document_id, chunk_id)
    return json_response(chunk_view(chunk))


@router.delete("/collections/{collection_id}/documents/{document_id}", status_code=204)
async def delete_document(
    collection_id: str,
    document_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
) -> Response:
    """Deletes the document and all its chunks at once."""
    await knowledge.delete_document(_account(principal), collection_id, document_id)
    return Response(status_code=204)


# -- search ------------------------------------------------------------------------------


@router.post(
    "/collections/{collection_id}/search",
    openapi_extra=json_body("SearchRequest"),
)
async def search(
    collection_id: str,
    knowledge: KnowledgeService = Depends(_knowledge),
    principal: Principal = Depends(require_admin),
    payload: Any = Depends(json_payload),  # after the key: a 401 before any 400
) -> Response:
    """`{query, top_k?: 5, mode?: "hybrid"|"vector"|"keyword", min_score?: 0}`: the best
    chunks, best first. `score` is in [0, 1], higher is more relevant. Billed as one
    `knowledge.search`."""
    account_id = _account(principal)
    spec: SearchRequest = parse(SearchRequest, payload)
    await knowledge.get_collection(account_id, collection_id)
    started = time.perf_counter()
    result = await knowledge.search(
        account_id,
        [collection_id],
        spec.query,
        top_k=spec.top_k,
        mode=spec.mode,
        min_score=spec.min_score,
    )
    knowledge.record_search(account_id, principal.key_id, time.perf_counter() - started)
    return json_response(
        {
            "object": "list",
            "data": [hit_view(h) for h in result.hits],
            "usage": {"query_tokens": result.query_tokens},
        }
    )
