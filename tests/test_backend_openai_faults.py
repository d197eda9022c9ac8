"""backend="openai" against addresses that are not a working model server: each is a clear
ServerError within seconds, never an internal exception or a 10-minute silence. The "servers"
are real sockets on 127.0.0.1 that behave as such addresses do: a port that accepts the
connection and never answers, another service's banner (not HTTP), an HTTP server that is not
OpenAI-compatible (404), one that lists models but refuses completions for the one asked for.
The tokenizer is a tiny model's folder: no model is loaded or served."""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

import workbench as wb
from workbench.errors import ServerError
from workbench.testing import tiny_model


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    m = tiny_model("llama")
    m.hf.config.save_pretrained(folder)
    m.tokenizer.save_pretrained(folder)
    return folder


def _socket_server(on_connect):
    """A TCP server on 127.0.0.1 calling ``on_connect(conn)`` for each connection; returns (url, stop)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held, stop = [], threading.Event()

    def loop():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)  # keep it open: a silent server never closes either
            on_connect(conn)

    threading.Thread(target=loop, daemon=True).start()

    def close():
        stop.set()
        for c in held:
            c.close()
        sock.close()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/v1", close


@pytest.fixture
def silent_server():
    url, close = _socket_server(lambda conn: None)  # accepts, reads nothing, answers nothing
    yield url
    close()


@pytest.fixture
def banner_server():
    url, close = _socket_server(lambda conn: conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
    yield url
    close()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}  # path -> (status, JSON body)

    def _answer(self):
        if self.command == "POST":
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.routes.get(self.path, (404, {"detail": "Not Found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def _http_server(routes: dict):
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", server


def _load_within(seconds: float, **kwargs):
    """load_model in a thread: the exception it raised, and how long it took (fails the test
    if it is still waiting after ``seconds``)."""
    out = {}

    def target():
        t = time.monotonic()
        try:
            wb.load_model(**kwargs)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out["error"] = e
        out["seconds"] = time.monotonic() - t

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"load_model still waiting after {seconds} s"
    return out.get("error"), out["seconds"]


def test_a_server_that_never_answers_fails_within_seconds(silent_server, tokenizer_folder):
    """It accepts the connection and sends nothing: the first contact gives up after
    connect_timeout (10 s by default, all attempts together) and says what it waited for. It took
    608 s (timeout 120 s x 5 attempts) before."""
    err, seconds = _load_within(40, spec=silent_server, backend="openai", model_name="m", tokenizer=tokenizer_folder)
    assert isinstance(err, ServerError), err
    assert 9 < seconds < 15
    msg = str(err)
    assert f"GET {silent_server}/models" in msg and "connected, but no answer" in msg and "connect_timeout=" in msg


def test_connect_timeout_is_an_option_and_checked(silent_server, tokenizer_folder):
    err, seconds = _load_within(20, spec=silent_server, backend="openai", model_name="m", tokenizer=tokenizer_folder,
                                connect_timeout=1.5)
    assert isinstance(err, ServerError) and seconds < 4 and "connect_timeout=1.5 s for the first contact" in str(err)
    with pytest.raises(wb.errors.InvalidInputError, match="connect_timeout must be greater than 0"):
        wb.load_model(silent_server, backend="openai", tokenizer=tokenizer_folder, connect_timeout=0)


def test_a_port_that_is_not_http_says_so(banner_server, tokenizer_folder):
    err, seconds = _load_within(20, spec=banner_server, backend="openai", tokenizer=tokenizer_folder)
    assert isinstance(err, ServerError), err  # was http.client.BadStatusLine
    assert "is not an HTTP server" in str(err) and "SSH-2.0" in str(err) and seconds < 5


@pytest.mark.parametrize("model_name", [None, "m"])
def test_an_http_server_that_is_not_openai_compatible(model_name, tokenizer_folder):
    url, server = _http_server({"/": (200, {"hello": "world"})})  # 404 for /v1/models and /v1/completions
    try:
        with pytest.raises(ServerError, match="HTTP 404.*no OpenAI-compatible API"):  # was the internal _Rejected
            wb.load_model(url, backend="openai", model_name=model_name, tokenizer=tokenizer_folder)
        url2, server2 = _http_server({"/v1/models": (200, ["not", "a", "model", "list"])})
        try:
            with pytest.raises(ServerError, match="not an OpenAI model list"):
                wb.load_model(url2, backend="openai", model_name=model_name, tokenizer=tokenizer_folder)
        finally:
            server2.shutdown()
    finally:
        server.shutdown()


def test_a_server_that_refuses_the_model_name(tokenizer_folder):
    """It lists its models but answers 404 to completions for another name (as vLLM does)."""
    url, server = _http_server({"/v1/models": (200, {"object": "list", "data": [{"id": "served-model"}]})})
    try:
        with pytest.raises(ServerError, match="refused completion requests for model 'other'.*model_name="):
            wb.load_model(url, backend="openai", model_name="other", tokenizer=tokenizer_folder)
    finally:
        server.shutdown()


def test_a_server_that_needs_a_key(tokenizer_folder):
    url, server = _http_server({"/v1/models": (401, {"error": "invalid api key"})})
    try:
        with pytest.raises(ServerError, match="HTTP 401.*api_key="):
            wb.load_model(url, backend="openai", tokenizer=tokenizer_folder)
    finally:
        server.shutdown()
