#!/usr/bin/env python3
"""An OpenAI-compatible chat-completions server for the tests of the remote
backend (Python standard library only).

Every request is checked: the JSON shape ernie-doc promises (model,
messages with one PNG data URL and the prompt, max_tokens, temperature,
chat_template_kwargs.enable_thinking, stream) and the image itself (a PNG
that decodes, RGB8, both sides multiples of 28, within the smart_resize
bounds, or exactly --expect-size). A request that fails a check gets HTTP
400 and an INVALID line in the log, so a test can insist on none.

Replies follow --script:
  normal           Markdown with a heading, a table, a date, an amount
  think            reasoning in delta.reasoning_content when thinking
  think-inline     "<think>...</think>answer" in content (no parser)
  plain            a non-streamed JSON reply even when asked to stream
  429              429 with Retry-After: 1 the first time for each image
  500              always HTTP 500
  500-once         HTTP 500 the first time for each image, then normal
  slow             --delay seconds before anything (a client timeout)
  malformed        HTTP 200 with a body that is not JSON
  truncated        Content-Length promises more than is sent
  truncated-stream a stream that stops before finish_reason and [DONE]
  stream-error-once  the first time for each image, two pieces and then an
                   error object as the next event (as vLLM reports a
                   failure after the 200); normal after
  429-date         429 with Retry-After as an HTTP date (two seconds on)
                   the first time for each image
  reset-once       the first time for each image, the connection reset
                   (RST) halfway through the stream; normal after
  never-ends       a piece every 0.2 s, forever (until the client hangs up)
  gzip             the plain JSON reply, gzip-encoded (Content-Encoding)
  gzip-chunked     the same, sent chunked in 16-byte pieces
  loop             the same sentence until the client hangs up
  loop-once        loop at temperature 0, normal when warmer
  long             ignores max_tokens: four times as many tokens
  zoom1, zoom2     thinking requests with the zoom tool get one (two)
                   tool calls streamed as delta.tool_calls, on boxes
                   [0, 0, 500, 500] then [500, 500, 1000, 1000], then the
                   answer; other requests are answered as normal
  zoom-inline      the same call written into the content as
                   <tool_call>...</tool_call> (a server without a parser)
  zoom-bad         malformed calls (wrong arity, inverted box, unknown
                   tool, not JSON), then the answer
  zoom-loop        a tool call every time
--delay adds a fixed wait to every reply (the benchmark's server).

Structured-output requests (response_format json_schema: a text-only
user turn is then allowed) are checked (type, a valid name, an object
schema, strict, the schema in the prompt) and answered per --extract:
  valid            an instance of the schema (values from the page's
                   Markdown where they fit: its date, e-mail, amount)
  fenced           the same inside a ```json code fence
  invalid-once     a value of the wrong type when sampling (temperature
                   above 0), a valid one to the retry at temperature 0
  invalid          always the value of the wrong type
  truncated        half of the JSON, finish_reason "length"
and logged as XREQ (temperature, schema name).

The log (--log) gets one line per event: CONN (a new connection), REQ
(with the image size, thinking, max_tokens, temperature, stream, tools),
TOOL (each tool result sent back: its call id, the image's size and mean
colour, its text) and INVALID; the port is written to --port-file once
listening.
"""

import argparse
import base64
import gzip
import hashlib
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "baidu/ERNIE-4.5-VL-28B-A3B-PT"

ARGS = None
LOG_LOCK = threading.Lock()
SEEN_LOCK = threading.Lock()
SEEN = {}


def log(line):
    if not ARGS.log:
        return
    with LOG_LOCK:
        with open(ARGS.log, "a") as f:
            f.write(line + "\n")


def png_size(data):
    """Decode a PNG far enough to know it is whole: (width, height)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated chunk header")
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc = data[pos + 8 + n:pos + 12 + n]
        if len(body) != n or len(crc) != 4:
            raise ValueError("truncated chunk")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ValueError("bad CRC in %r" % kind)
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    if ihdr is None:
        raise ValueError("no IHDR")
    w, h, depth, color, _, _, interlace = ihdr
    if depth != 8 or color != 2 or interlace != 0:
        raise ValueError("not RGB8 (depth %d, color %d)" % (depth, color))
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != h * (1 + 3 * w):
        raise ValueError("pixel data is %d bytes, not %d" %
                         (len(raw), h * (1 + 3 * w)))
    for y in range(h):
        if raw[y * (1 + 3 * w)] > 4:
            raise ValueError("bad filter type on row %d" % y)
    return w, h


def png_pixels(data):
    """(width, height, mean (r, g, b)) of an RGB8 PNG (filters undone)."""
    w, h = png_size(data)
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + n])
        pos += 12 + n
    raw = zlib.decompress(b"".join(idat))
    stride = 3 * w
    prev = bytearray(stride)
    sums = [0, 0, 0]
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pr) & 255
        for x in range(stride):
            sums[x % 3] += line[x]
        prev = line
    return w, h, tuple(round(v / (w * h)) for v in sums)


def image_of(part):
    """The PNG bytes of an image_url content part."""
    url = part.get("image_url", {}).get("url", "")
    prefix = "data:image/png;base64,"
    if not url.startswith(prefix):
        raise ValueError("image is not a PNG data URL")
    return base64.b64decode(url[len(prefix):], validate=True)


def check_conversation(msgs):
    """Tool results must answer the assistant's calls, in order: returns
    the number of tool results, logging each."""
    calls, results = [], 0
    for m in msgs:
        if m.get("role") == "assistant":
            for tc in m.get("tool_calls") or []:
                calls.append(tc.get("id"))
            if "<tool_call>" in (m.get("content") or ""):
                calls.append(None)
        if m.get("role") == "tool":
            cid = m.get("tool_call_id")
            if results >= len(calls):
                raise ValueError("a tool result without a call")
            if calls[results] is not None and cid != calls[results]:
                raise ValueError("tool result for %r answers %r" %
                                 (cid, calls[results]))
            content = m.get("content")
            if not isinstance(content, list):
                raise ValueError("tool content is not a list of parts")
            img = "none"
            text = ""
            for part in content:
                if part.get("type") == "image_url":
                    w, h, mean = png_pixels(image_of(part))
                    img = "%dx%d mean=%d,%d,%d" % ((w, h) + mean)
                elif part.get("type") == "text":
                    text = part.get("text", "")
            results += 1
            m["_log"] = "TOOL n=%d id=%s image=%s text=%s" % (
                results, cid, img, text.replace("\n", " "))
    return results


def check_schema_request(req):
    """A structured-output request: response_format as vLLM and
    FastDeploy take it, the schema also in the prompt."""
    rf = req.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") != "json_schema":
        raise ValueError("response_format is not json_schema")
    js = rf.get("json_schema")
    if not isinstance(js, dict):
        raise ValueError("no response_format.json_schema")
    name = js.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}",
                                                     name):
        raise ValueError("json_schema.name %r" % (name,))
    if not isinstance(js.get("schema"), dict) or js.get("strict") is not True:
        raise ValueError("json_schema needs an object schema, strict")
    user = [m for m in req["messages"] if m.get("role") == "user"][0]
    texts = [p.get("text", "") for p in user["content"]
             if p.get("type") == "text"]
    if len(texts) != 1 or "Schema:" not in texts[0]:
        raise ValueError("the schema is not in the prompt")
    return js["schema"], name


def check_request(body):
    """The request, or raise ValueError saying what is wrong."""
    req = json.loads(body)
    if not isinstance(req, dict):
        raise ValueError("not a JSON object")
    if "response_format" in req:
        if not isinstance(req.get("messages"), list) or not any(
                m.get("role") == "user" and
                isinstance(m.get("content"), list)
                for m in req["messages"]):
            raise ValueError("no user turn")
        req["_schema"], req["_schema_name"] = check_schema_request(req)
        t = req.get("temperature")
        if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0:
            raise ValueError("temperature is %r" % t)
        mt = req.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            raise ValueError("max_tokens is %r" % mt)
        return req
    if req.get("model") != ARGS.model:
        raise ValueError("model is %r" % req.get("model"))
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ValueError("no messages")
    users = [m for m in msgs if m.get("role") == "user"]
    if len(users) != 1:
        raise ValueError("want one user turn")
    user = users[0]
    if not isinstance(user.get("content"), list):
        raise ValueError("the user turn has no parts")
    req["_results"] = check_conversation(msgs)
    if req["_results"] and msgs[-1].get("role") != "tool":
        raise ValueError("a conversation must end with the tool result")
    tools = req.get("tools")
    if tools is not None:
        if (not isinstance(tools, list) or len(tools) != 1 or
                tools[0].get("function", {}).get("name") !=
                "image_zoom_in_tool"):
            raise ValueError("tools is not [image_zoom_in_tool]")
        params = tools[0]["function"].get("parameters", {})
        if "bbox_2d" not in params.get("properties", {}):
            raise ValueError("the zoom tool has no bbox_2d")
    images = [p for p in user["content"] if p.get("type") == "image_url"]
    texts = [p for p in user["content"] if p.get("type") == "text"]
    if len(images) != 1 or len(texts) != 1:
        raise ValueError("want one image and one text part")
    if not isinstance(texts[0].get("text"), str) or not texts[0]["text"]:
        raise ValueError("empty prompt")
    url = images[0].get("image_url", {}).get("url", "")
    prefix = "data:image/png;base64,"
    if not url.startswith(prefix):
        raise ValueError("image is not a PNG data URL")
    png = base64.b64decode(url[len(prefix):], validate=True)
    w, h = png_size(png)
    if w % 28 or h % 28:
        raise ValueError("image %dx%d: sides not multiples of 28" % (w, h))
    if not ARGS.min_pixels <= w * h <= ARGS.max_pixels:
        raise ValueError("image %dx%d outside [%d, %d] pixels" %
                         (w, h, ARGS.min_pixels, ARGS.max_pixels))
    if ARGS.expect_size and "%dx%d" % (w, h) != ARGS.expect_size:
        raise ValueError("image %dx%d, expected %s" %
                         (w, h, ARGS.expect_size))
    kw = req.get("chat_template_kwargs")
    if not isinstance(kw, dict) or not isinstance(
            kw.get("enable_thinking"), bool):
        raise ValueError("no chat_template_kwargs.enable_thinking")
    mode = (kw.get("options") or {}).get("thinking_mode")
    if mode != ("open" if kw["enable_thinking"] else "close"):
        raise ValueError("chat_template_kwargs.options.thinking_mode %r "
                         "does not match enable_thinking" % (mode,))
    mt = req.get("max_tokens")
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        raise ValueError("max_tokens is %r" % mt)
    t = req.get("temperature")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0:
        raise ValueError("temperature is %r" % t)
    if not isinstance(req.get("stream", False), bool):
        raise ValueError("stream is not a boolean")
    req["_image"] = (w, h)
    req["_key"] = hashlib.sha256(png).hexdigest()
    return req


def first_time(key):
    with SEEN_LOCK:
        n = SEEN.get(key, 0)
        SEEN[key] = n + 1
    return n == 0


def page_markdown(w, h):
    return ("# Page %dx%d\n\n"
            "Paid EUR 1,234.50 on 2026-11-23; write to ocr@example.com.\n\n"
            "<table><tr><th>Item</th><th>Price</th></tr>"
            "<tr><td>Paper</td><td>12.00</td></tr></table>\n" % (w, h))


def tokens(text):
    """Split text into token-sized pieces: words with their spaces."""
    out, cur = [], ""
    for ch in text:
        cur += ch
        if ch in " \n":
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def instance(schema, root, depth=0):
    """A value of the schema (the subset ernie-doc sends), with the page
    Markdown's values where they fit."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return instance(root.get("$defs", root.get("definitions", {}))[name],
                        root, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type", "object")
    if isinstance(t, list):
        t = t[0]
    if t == "object":
        return {k: instance(v, root, depth + 1)
                for k, v in schema.get("properties", {}).items()}
    if t == "array":
        n = max(schema.get("minItems", 0), min(1, schema.get("maxItems", 1)))
        return [instance(schema.get("items", {}), root, depth + 1)
                for _ in range(n)]
    if t == "string":
        fmt = schema.get("format")
        s = {"date": "2026-11-23", "email": "ocr@example.com",
             "date-time": "2026-11-23T10:00:00Z",
             "uri": "https://example.com/"}.get(fmt, "Paper")
        s = s[:schema.get("maxLength", len(s))]
        return s + "x" * max(0, schema.get("minLength", 0) - len(s))
    if t == "number":
        return 12.5
    if t == "integer":
        return 12
    if t == "boolean":
        return True
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # as production servers do: no Nagle delay between streamed chunks
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        log("CONN")

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models" and not ARGS.no_models:
            self.send_json(200, {"object": "list", "data": [
                {"id": ARGS.model, "object": "model"}]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj):
        self.chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def delta(self, content=None, reasoning=None, finish=None):
        d = {}
        if content is not None:
            d["content"] = content
        if reasoning is not None:
            d["reasoning_content"] = reasoning
        self.event({"id": "x", "object": "chat.completion.chunk",
                    "model": ARGS.model,
                    "choices": [{"index": 0, "delta": d,
                                 "finish_reason": finish}]})

    def stream(self, pieces, reasoning=(), finish="stop", usage=None,
               done=True):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for r in reasoning:
            self.delta(reasoning=r)
        for p in pieces:
            self.delta(content=p)
        if not done:
            self.close_connection = True
            return
        self.delta(finish=finish)
        if usage:
            self.event({"id": "x", "object": "chat.completion.chunk",
                        "choices": [], "usage": usage})
        self.chunk(b"data: [DONE]\n\n")
        self.chunk(b"")

    def do_POST(self):
        try:
            self.post()
        except (BrokenPipeError, ConnectionResetError):
            # the client hung up (a guard stopped it, or it was killed)
            self.close_connection = True

    def post(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_json(404, {"error": {"message": "no such endpoint"}})
            return
        if ARGS.api_key and self.headers.get(
                "Authorization") != "Bearer " + ARGS.api_key:
            log("INVALID bad or missing API key")
            self.send_json(401, {"error": {"message": "bad API key"}})
            return
        try:
            req = check_request(body)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log("INVALID %s" % e)
            self.send_json(400, {"error": {"message": str(e)}})
            return
        if "_schema" in req:
            log("XREQ temperature=%g schema=%s max_tokens=%d" % (
                req["temperature"], req["_schema_name"], req["max_tokens"]))
            self.reply_schema(req)
            return
        w, h = req["_image"]
        thinking = req["chat_template_kwargs"]["enable_thinking"]
        log("REQ image=%dx%d thinking=%d max_tokens=%d temperature=%g "
            "stream=%d tools=%d results=%d" % (
                w, h, thinking, req["max_tokens"], req["temperature"],
                req.get("stream", False), req.get("tools") is not None,
                req["_results"]))
        for m in req["messages"]:
            if "_log" in m:
                log(m["_log"])
        if ARGS.delay and ARGS.script != "slow":
            time.sleep(ARGS.delay)
        self.reply(req, w, h, thinking)

    def reply_schema(self, req):
        mode = ARGS.extract
        value = instance(req["_schema"], req["_schema"])
        bad = mode == "invalid" or (mode == "invalid-once" and
                                    req["temperature"] > 0)
        if bad:
            value = [] if isinstance(value, dict) else {"unexpected": True}
        text = json.dumps(value)
        finish = "stop"
        if mode == "fenced":
            text = "```json\n" + text + "\n```"
        if mode == "truncated":
            text = text[:len(text) // 2]
            finish = "length"
        pieces = [text[i:i + 4] for i in range(0, len(text), 4)]
        self.stream(pieces, finish=finish,
                    usage={"prompt_tokens": 50,
                           "completion_tokens": len(pieces),
                           "total_tokens": 50 + len(pieces)})

    def reply(self, req, w, h, thinking):
        s = ARGS.script
        text = page_markdown(w, h)
        pieces = tokens(text)
        # two tokens a word: the client must take usage, not count chunks
        usage = {"prompt_tokens": 100 + w * h // 784,
                 "completion_tokens": 2 * len(pieces),
                 "total_tokens": 100 + w * h // 784 + 2 * len(pieces)}
        if s == "slow":
            time.sleep(ARGS.delay)
        if s == "500" or (s == "500-once" and first_time(req["_key"])):
            self.send_json(500, {"error": {"message": "internal error"}})
            return
        if s == "429" and first_time(req["_key"]):
            self.send_json(429, {"error": {"message": "slow down"}},
                           {"Retry-After": "1"})
            return
        if s == "malformed":
            data = b'{"choices": [{"message": {"content": "no end'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if s == "truncated":
            data = json.dumps({"choices": [{"message": {
                "content": text}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) + 100))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if s == "stream-error-once" and first_time(req["_key"]):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for p in pieces[:2]:
                self.delta(content=p)
            self.event({"error": {"message": "CUDA out of memory",
                                  "type": "InternalServerError",
                                  "code": 500}})
            self.chunk(b"data: [DONE]\n\n")
            self.chunk(b"")
            return
        if s == "429-date" and first_time(req["_key"]):
            when = time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                 time.gmtime(time.time() + 2))
            self.send_json(429, {"error": {"message": "slow down"}},
                           {"Retry-After": when})
            return
        if s == "reset-once" and first_time(req["_key"]):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for p in pieces[:len(pieces) // 2]:
                self.delta(content=p)
            # SO_LINGER 0: close sends a reset, not a FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if s == "never-ends":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(3000):
                self.delta(content="word ")
                time.sleep(0.2)
            return
        if s in ("gzip", "gzip-chunked"):
            data = gzip.compress(json.dumps({
                "id": "x", "object": "chat.completion", "model": ARGS.model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant",
                                         "content": text}}],
                "usage": usage}).encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            if s == "gzip":
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            # chunked in 16-byte pieces, each sent on its own
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 16):
                self.chunk(data[i:i + 16])
            self.chunk(b"")
            return
        if s == "truncated-stream":
            self.stream(pieces[:3], done=False)
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if s in ("loop", "loop-once") and (s == "loop" or
                                           req["temperature"] == 0):
            # until the client hangs up (or a generous cap)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            try:
                for sent in range(1, 100001):
                    self.delta(content="The same line again. ")
                self.delta(finish="length")
                self.chunk(b"data: [DONE]\n\n")
                self.chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            log("LOOP sent=%d" % sent)
            return
        if s == "long":
            n = 4 * req["max_tokens"]
            filler = tokens("More words that go on and on, " * (n // 6 + 1))
            try:
                self.stream(filler[:n], finish="stop")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            return
        if s.startswith("zoom") and thinking and req.get("tools"):
            self.zoom_reply(req, s, text)
            return
        reasoning = []
        if thinking and s == "think":
            reasoning = tokens("The page has a heading and a table. ")
        if thinking and s == "think-inline":
            pieces = tokens("<think>\nThe page has a heading. \n</think>\n\n"
                            + text)
        if s == "plain" or not req.get("stream", False):
            msg = {"role": "assistant", "content": "".join(pieces)}
            if reasoning:
                msg["reasoning_content"] = "".join(reasoning)
            self.send_json(200, {"id": "x", "object": "chat.completion",
                                 "model": ARGS.model,
                                 "choices": [{"index": 0, "message": msg,
                                              "finish_reason": "stop"}],
                                 "usage": usage})
            return
        self.stream(pieces, reasoning=reasoning, usage=usage)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # clients that hang up (guards, kill -9) are part of the tests
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


BAD_CALLS = [
    ("image_zoom_in_tool", '{"bbox_2d": [1, 2, 3]}'),
    ("image_zoom_in_tool", '{"bbox_2d": [900, 900, 100, 100]}'),
    ("image_search", '{"query": "cats"}'),
    ("image_zoom_in_tool", '{"bbox_2d": [0, 0, 10'),
]
GOOD_CALLS = [
    '{"bbox_2d": [0, 0, 500, 500], "label": "top left"}',
    '{"bbox_2d": [500, 500, 1000, 1000]}',
]


def zoom_reply(self, req, s, text):
    """One step of a zoom conversation: a tool call or the answer."""
    n = req["_results"]
    calls = {"zoom1": 1, "zoom2": 2, "zoom-inline": 1,
             "zoom-bad": len(BAD_CALLS), "zoom-loop": 10 ** 6}[s]
    if n >= calls:
        self.stream(tokens(text),
                    reasoning=tokens("Now I can read it all. "),
                    usage={"prompt_tokens": 500, "completion_tokens": 40,
                           "total_tokens": 540})
        return
    if s == "zoom-bad":
        name, args = BAD_CALLS[n]
    else:
        name, args = "image_zoom_in_tool", GOOD_CALLS[n % 2]
    reasoning = tokens("The corner is small; I will look closer. ")
    if s == "zoom-inline":
        call = "<tool_call>\n" + json.dumps(
            {"name": name, "arguments": json.loads(args)}) + "\n</tool_call>"
        self.stream(["\n\n"] + tokens(call), reasoning=reasoning,
                    usage={"prompt_tokens": 400, "completion_tokens": 30,
                           "total_tokens": 430})
        return
    self.send_response(200)
    self.send_header("Content-Type", "text/event-stream")
    self.send_header("Transfer-Encoding", "chunked")
    self.end_headers()
    for r in reasoning:
        self.delta(reasoning=r)
    # the arguments arrive in two fragments, as vLLM streams them
    half = len(args) // 2
    self.event({"id": "x", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"tool_calls": [{
                    "index": 0, "id": "call_%d" % n, "type": "function",
                    "function": {"name": name, "arguments": args[:half]}}]},
                    "finish_reason": None}]})
    self.event({"id": "x", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"tool_calls": [{
                    "index": 0, "function": {"arguments": args[half:]}}]},
                    "finish_reason": None}]})
    self.delta(finish="tool_calls")
    self.event({"id": "x", "object": "chat.completion.chunk", "choices": [],
                "usage": {"prompt_tokens": 400, "completion_tokens": 30,
                          "total_tokens": 430}})
    self.chunk(b"data: [DONE]\n\n")
    self.chunk(b"")


Handler.zoom_reply = zoom_reply


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--script", default="normal")
    ap.add_argument("--extract", default="valid",
                    choices=["valid", "fenced", "invalid-once", "invalid",
                             "truncated"])
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--log")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--api-key")
    ap.add_argument("--no-models", action="store_true")
    ap.add_argument("--min-pixels", type=int, default=3136)
    ap.add_argument("--max-pixels", type=int, default=4842768)
    ap.add_argument("--expect-size")
    ARGS = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])

    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
