"""An MCP tool result as the model reads it: text, images, and a line for what is neither.

The model gets one text and, for models that take them, the images
(:class:`~turnkit_hookspecs.ToolOutputBlock`). Text content is joined by
newlines; structured content stands in as JSON when the server sent no
text (a server sending both repeats the structure as text, per the
protocol); an embedded resource or a link is one short line, with an
embedded text resource's text after it; audio, which the contract has no
block for, is named with its size.
"""

from __future__ import annotations

import base64
import binascii
import json

import mcp_types
from turnkit_hookspecs import Base64Source, ImageBlock, ToolOutputBlock


def tool_output(tool_call_id: str, result: mcp_types.CallToolResult) -> ToolOutputBlock:
    """The output of the tool call ``tool_call_id`` that gave ``result`` (see the module docstring)."""
    lines: list[str] = []
    images: list[ImageBlock] = []
    has_text = False
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            lines.append(block.text)
            has_text = True
        elif isinstance(block, mcp_types.ImageContent):
            images.append(ImageBlock(Base64Source(block.mime_type, block.data)))
        elif isinstance(block, mcp_types.AudioContent):
            lines.append(f"[audio: {block.mime_type}, {_size(block.data)} not shown]")
        elif isinstance(block, mcp_types.EmbeddedResource):
            lines.append(_resource_line(block.resource))
        else:
            description = f": {block.description}" if block.description else ""
            lines.append(f"[link: {block.name} <{block.uri}>{description}]")
    if not has_text and result.structured_content is not None:
        lines.insert(0, json.dumps(result.structured_content, ensure_ascii=False, sort_keys=True))
    return ToolOutputBlock(tool_call_id, "\n".join(lines), result.is_error, tuple(images))


def _resource_line(resource: mcp_types.TextResourceContents | mcp_types.BlobResourceContents) -> str:
    kind = f", {resource.mime_type}" if resource.mime_type else ""
    if isinstance(resource, mcp_types.TextResourceContents):
        return f"[resource: {resource.uri}{kind}]\n{resource.text}"
    return f"[resource: {resource.uri}{kind}, {_size(resource.blob)} not shown]"


def _size(data: str) -> str:
    """The size of base64 ``data`` once decoded, in words."""
    try:
        return f"{len(base64.b64decode(data, validate=False))} bytes"
    except (binascii.Error, ValueError):
        return "undecodable data"
