#!/usr/bin/env python3
"""Independent check of server response streams with h11 (python3-h11).

Reads records from stdin, each:

    <name> <methods> <length>\n<length bytes of server output>

where <methods> is a comma-separated list of the request methods the
responses answer, in order ("-" for none; requests past the list count as
GET). Every record's bytes are fed to a client-side h11.Connection, which
sends a matching request before each response (h11 needs the method to
frame a HEAD response), and then sees EOF.

Prints one JSON line per record (keys sorted, no spaces):

    {"error":null,"name":N,"responses":[{"body":B,"info":[100],"status":S}],"server_close":C}

server_close is true when h11 concluded, at the end of the last complete
response, that the server closes the connection after it (Connection: close). error is h11's
complaint (as a string) if the stream is not valid HTTP/1.1, or a note if
it ends inside a response.
"""
import json
import sys

try:
    import h11
except ImportError:
    sys.stderr.write("h11 is missing: apt-get install python3-h11\n")
    sys.exit(3)


def check(name, methods, data):
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    conn.receive_data(b"")
    responses = []
    error = None
    index = 0
    current = None
    server_close = False

    def send_request():
        method = methods[index] if index < len(methods) else "GET"
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())

    try:
        send_request()
        while True:
            event = conn.next_event()
            if isinstance(event, h11.InformationalResponse):
                if current is None:
                    current = {"info": [], "status": None, "body": 0}
                current["info"].append(event.status_code)
            elif isinstance(event, h11.Response):
                if current is None:
                    current = {"info": [], "status": None, "body": 0}
                current["status"] = event.status_code
            elif isinstance(event, h11.Data):
                current["body"] += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                responses.append(current)
                current = None
                # Whether h11 concluded the server closes after this response
                # (it answered with Connection: close). Read now: the EOF fed
                # above later moves every state to CLOSED.
                server_close = conn.their_state is h11.MUST_CLOSE
                leftover, _closed = conn.trailing_data
                if conn.their_state is h11.DONE and conn.our_state is h11.DONE and leftover:
                    conn.start_next_cycle()
                    index += 1
                    send_request()
            elif isinstance(event, h11.ConnectionClosed):
                break
            elif event is h11.NEED_DATA:
                error = "stream ends inside a response"
                break
            elif event is h11.PAUSED:
                # Their side is DONE with data left but ours cannot start a
                # new cycle (we are not DONE): cannot happen with our requests.
                error = "paused with trailing data"
                break
            else:
                error = "unexpected event %r" % (event,)
                break
    except h11.ProtocolError as e:
        error = "%s: %s" % (type(e).__name__, e)
    if current is not None and current["status"] is not None and error is None:
        error = "stream ends inside a response"
    return {
        "error": error,
        "name": name,
        "responses": responses,
        "server_close": server_close,
    }


def main():
    data = sys.stdin.buffer.read()
    pos = 0
    out = sys.stdout
    while pos < len(data):
        nl = data.index(b"\n", pos)
        name, methods, length = data[pos:nl].decode("ascii").split(" ")
        length = int(length)
        body = data[nl + 1 : nl + 1 + length]
        if len(body) != length:
            sys.stderr.write("truncated record %s\n" % name)
            sys.exit(2)
        pos = nl + 1 + length
        methods = [] if methods == "-" else methods.split(",")
        result = check(name, methods, body)
        out.write(json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
