"""Cheap, generous token estimates for reservations, read from raw request bytes (no full parse)."""

from __future__ import annotations

_IMAGE_ALLOWANCE = 1600      # tokens held per image (a high-detail 1024x1024 image is ~765-1100)
_BASE64_MARK = b";base64,"


def estimate_prompt_tokens(body: bytes) -> int:
    """Bytes / 3 over the body, not counting inline base64 payloads, plus an allowance per image."""
    inline_bytes = 0
    inline_count = 0
    pos = body.find(_BASE64_MARK)
    while pos != -1:
        end = body.find(b'"', pos)
        if end == -1:
            end = len(body)
        inline_bytes += end - pos
        inline_count += 1
        pos = body.find(_BASE64_MARK, end)
    url_images = body.count(b'"image_url"') + body.count(b'"video_url"')
    images = max(inline_count, url_images)
    return (len(body) - inline_bytes) // 3 + images * _IMAGE_ALLOWANCE
