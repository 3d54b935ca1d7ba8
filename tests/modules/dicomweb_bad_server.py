#!/usr/bin/python3
"""A misbehaving DICOMweb server for dicomweb_test: every first path segment picks a failure.

Usage: dicomweb_bad_server.py --port-file F [--dicom FILE] [--cert PEM --key PEM] [--plain-port N]
Listens on 127.0.0.1 on a free port (written to F once listening), over TLS with --cert/--key.
Only the standard library.

  /e404/...       404 Not Found              /e500/...    500 Internal Server Error
  /junk/...       200 application/dicom+json whose body is not JSON
  /oddjson/...    200 JSON of the wrong shape (Value not an array, a person name that is a number)
  /html/...       200 text/html (a login page where DICOM JSON was expected)
  /empty/...      200 DICOM JSON: []          (an empty search; also fine for a TLS check)
  /truncated/...  multipart: one whole DICOM part, then a part cut off without the closing boundary
  /notdicom/...   a well-formed multipart whose part is not a DICOM file
  /badlength/...  a part 100 bytes shorter than its Content-Length header
  /loop/...       302 to itself, forever
  /tohttp/...     302 to http://127.0.0.1:PLAIN_PORT/empty/... (https -> http downgrade)
  /whoami/...     400 when the request carries an Authorization header, else 200 DICOM JSON []
  /elsewhere/...  302 to http://localhost:<this port>/whoami/studies (another host name)
  /stowfail/...   POST: 409 with a FailedSOPSequence naming every instance sent (reason 0xA700)
  /slow/...       sends nothing for 60 s (each such request first appends a line to <port-file>.slow,
                  so a test knows the client is waiting before it interrupts it)
"""
import argparse
import http.server
import json
import os
import re
import ssl
import sys
import time

DICOM_PART = None  # a small valid DICOM file's bytes, set from argv when given


def multipart(parts, boundary="bad-boundary-1234", close=True, lengths=None):
    body = b""
    for i, p in enumerate(parts):
        length = b"Content-Length: %d\r\n" % lengths[i] if lengths else b""
        body += b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n" + length + b"\r\n" + p + b"\r\n"
    if close:
        body += b"--" + boundary.encode() + b"--\r\n"
    return body, 'multipart/related; type="application/dicom"; boundary=' + boundary


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plain_port = 0

    def log_message(self, *args):
        pass

    def reply(self, status, ctype, body, extra=()):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        kind = self.path.strip("/").split("/")[0]
        if kind == "e404":
            return self.reply(404, "application/json", b'{"Message": "Unknown resource"}')
        if kind == "e500":
            return self.reply(500, "text/plain", b"boom")
        if kind == "junk":
            return self.reply(200, "application/dicom+json", b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, \xff\xfe garbage')
        if kind == "oddjson":
            return self.reply(200, "application/dicom+json",
                              b'[{"00100010": {"vr": "PN", "Value": [{"Alphabetic": 5}]}, "0020000D": {"vr": 7, "Value": "x"}}]')
        if kind == "html":
            return self.reply(200, "text/html", b"<html><body>Please log in</body></html>")
        if kind == "empty":
            return self.reply(200, "application/dicom+json", b"[]")
        if kind == "truncated":
            body, ctype = multipart([DICOM_PART, DICOM_PART], close=False)
            return self.reply(200, ctype, body[: len(body) - len(DICOM_PART) // 2])
        if kind == "badlength":  # a part shorter than its Content-Length says (a proxy cut it?)
            body, ctype = multipart([DICOM_PART], lengths=[len(DICOM_PART) + 100])
            return self.reply(200, ctype, body)
        if kind == "notdicom":
            body, ctype = multipart([b"this is not a DICOM file" * 10])
            return self.reply(200, ctype, body)
        if kind == "loop":
            return self.reply(302, "text/plain", b"", [("Location", self.path)])
        if kind == "tohttp":
            target = "http://127.0.0.1:%d/empty/studies" % self.plain_port
            return self.reply(302, "text/plain", b"", [("Location", target)])
        if kind == "whoami":
            if self.headers.get("Authorization"):
                return self.reply(400, "text/plain", b"credentials reached another host")
            return self.reply(200, "application/dicom+json", b"[]")
        if kind == "elsewhere":
            target = "http://localhost:%d/whoami/studies" % self.server.server_address[1]
            return self.reply(302, "text/plain", b"", [("Location", target)])
        if kind == "slow":
            with open(self.server.slow_log, "a") as f:
                f.write("waiting\n")
            time.sleep(60)
            return self.reply(200, "application/dicom+json", b"[]")
        return self.reply(404, "text/plain", b"no such route")

    def do_GET(self):
        self.route()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        if self.path.strip("/").split("/")[0] != "stowfail":
            return self.route()
        # Name every SOP Instance UID sent (0008,0018 in the datasets, explicit VR little endian).
        uids = [m.group(1).rstrip(b"\0 ").decode() for m in re.finditer(rb"\x08\x00\x18\x00UI..([0-9.]+)", data, re.S)]
        failed = [{"00081155": {"vr": "UI", "Value": [u]}, "00081197": {"vr": "US", "Value": [0xA700]}} for u in uids]
        answer = {"00081198": {"vr": "SQ", "Value": failed}}
        return self.reply(409, "application/dicom+json", json.dumps(answer).encode())


def main():
    global DICOM_PART
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--dicom", help="a DICOM file used as multipart content")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--plain-port", type=int, default=0)
    args = parser.parse_args()
    Handler.plain_port = args.plain_port
    DICOM_PART = open(args.dicom, "rb").read() if args.dicom else b"DICM" * 64
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.slow_log = args.port_file + ".slow"
    server.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
