#!/usr/bin/env python3
"""h2server.py - an OpenAI-compatible server that speaks only HTTP/2 over
TLS (ALPN "h2", no HTTP/1.1 fallback), for e2e.sh: ernie-doc's client
must negotiate HTTP/2, verify the certificate against the bundle it is
given, and may multiplex its requests on one connection.

    h2server.py --cert C --key K --port-file F --log L [--model NAME]

GET /v1/models lists NAME; POST /v1/chat/completions answers a page's
Markdown, as an SSE stream when the request asks for one. Every request
is logged as "REQ <protocol> conn=<n> stream=<id> <method> <path>", a
request without the fields every chat request has as "INVALID ...".
Uses python3-h2 (Debian) and the standard library.
"""
import argparse
import json
import os
import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.events

ap = argparse.ArgumentParser()
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--model", default="h2-test")
ARGS = ap.parse_args()

LOCK = threading.Lock()
CONNS = [0]


def log(line):
    with LOCK:
        with open(ARGS.log, "a") as f:
            f.write(line + "\n")


TEXT = "# Over HTTP/2\n\nThe reply came back on an h2 stream."


def answer(method, path, body):
    """(status, content type, body bytes) for one request"""
    if method == "GET" and path.rstrip("/") == "/v1/models":
        return 200, "application/json", json.dumps(
            {"object": "list",
             "data": [{"id": ARGS.model, "object": "model"}]}).encode()
    if method != "POST" or path != "/v1/chat/completions":
        return 404, "application/json", b'{"error":{"message":"not found"}}'
    try:
        req = json.loads(body)
        ok = (req.get("model") == ARGS.model and
              isinstance(req.get("messages"), list) and
              "image_url" in json.dumps(req["messages"]))
    except ValueError:
        ok = False
    if not ok:
        log("INVALID " + body[:200].decode("utf-8", "replace"))
        return 400, "application/json", b'{"error":{"message":"invalid"}}'
    usage = {"prompt_tokens": 100, "completion_tokens": 12,
             "total_tokens": 112}
    if not req.get("stream"):
        return 200, "application/json", json.dumps({
            "id": "h2", "object": "chat.completion", "model": ARGS.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant",
                                     "content": TEXT}}],
            "usage": usage}).encode()
    out = []
    for piece in (TEXT[:10], TEXT[10:30], TEXT[30:]):
        out.append({"id": "h2", "object": "chat.completion.chunk",
                    "model": ARGS.model,
                    "choices": [{"index": 0, "delta": {"content": piece},
                                 "finish_reason": None}]})
    out.append({"id": "h2", "object": "chat.completion.chunk",
                "model": ARGS.model,
                "choices": [{"index": 0, "delta": {},
                             "finish_reason": "stop"}]})
    out.append({"id": "h2", "object": "chat.completion.chunk",
                "model": ARGS.model, "choices": [], "usage": usage})
    data = b"".join(b"data: " + json.dumps(o).encode() + b"\n\n"
                    for o in out) + b"data: [DONE]\n\n"
    return 200, "text/event-stream", data


def serve(sock, n):
    proto = sock.selected_alpn_protocol()
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False,
                                         header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    while True:
        try:
            data = sock.recv(65536)
        except (OSError, ssl.SSLError):
            break
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                streams[ev.stream_id] = [dict(ev.headers), b""]
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id][1] += ev.data
                conn.acknowledge_received_data(
                    ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                hdrs, body = streams.pop(ev.stream_id)
                method, path = hdrs.get(":method"), hdrs.get(":path")
                log("REQ %s conn=%d stream=%d %s %s" %
                    (proto, n, ev.stream_id, method, path))
                status, ctype, out = answer(method, path, body)
                conn.send_headers(ev.stream_id, [
                    (":status", str(status)), ("content-type", ctype),
                    ("content-length", str(len(out)))])
                conn.send_data(ev.stream_id, out, end_stream=True)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                sock.close()
                return
        sock.sendall(conn.data_to_send())
    sock.close()


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    ctx.set_alpn_protocols(["h2"])
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(lsock.getsockname()[1]))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    while True:
        raw, _ = lsock.accept()
        try:
            sock = ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as e:
            log("TLS-FAILED %s" % e)
            raw.close()
            continue
        if sock.selected_alpn_protocol() != "h2":
            log("NOT-H2 %s" % sock.selected_alpn_protocol())
            sock.close()
            continue
        with LOCK:
            CONNS[0] += 1
            n = CONNS[0]
        threading.Thread(target=serve, args=(sock, n), daemon=True).start()


if __name__ == "__main__":
    main()
