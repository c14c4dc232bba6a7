"""An intake request's body, read with a size limit (also after gzip, against decompression bombs)."""

from __future__ import annotations

import zlib

from fastapi import HTTPException, Request, status


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the request body is over {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, decompressed when `Content-Encoding: gzip`; 413 past `limit` bytes, 415 for another
    encoding, 400 for a broken gzip stream."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"unsupported Content-Encoding {encoding!r}")
    return _gunzip(body, limit)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # gzip header and trailer
    try:
        data = inflater.decompress(body, limit + 1)
        if len(data) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
        data += inflater.flush()
    except zlib.error as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the gzip body does not decompress: {exc}") from exc
    if not inflater.eof:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the gzip body is truncated")
    if len(data) > limit:
        raise _too_large(limit)
    return data
