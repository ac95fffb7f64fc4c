"""OpenAIBackend against a fake chat-completions server on 127.0.0.1: request shape, retries, cache, key hiding."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from kit.hv_vlm.examiner import EXPLAIN_PROMPT, verify
from kit.hv_vlm.openai_backend import CacheMissError, OpenAIBackend, OpenAIError

KEY = "sk-test-SECRET-0123456789abcdef"


class FakeServer:
    """Scripted chat completions: ``replies`` in turn, after ``failures`` [(status, headers, body)]."""

    def __init__(self):
        self.replies: list[str] = []
        self.failures: list[tuple[int, dict, dict]] = []
        self.requests: list[dict] = []
        self.problems: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                try:
                    fake.check(self.path, self.headers.get("Authorization"), body)
                except (KeyError, IndexError, TypeError) as exc:
                    fake.problems.append(f"malformed request: {exc!r}")
                if fake.failures:
                    status, headers, payload = fake.failures.pop(0)
                    if status == 0:  # a stalled server: answer too late for the client's timeout
                        time.sleep(headers["sleep"])
                        status, headers = 200, {}
                else:
                    status, headers = 200, {}
                    payload = {"model": body["model"], "usage": {"total_tokens": 7},
                               "choices": [{"message": {"role": "assistant", "content": fake.replies.pop(0)}}]}
                raw = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def check(self, path, auth, body):
        """Record every way the request differs from a well-formed vision chat completion."""
        p = self.problems
        if path != "/v1/chat/completions":
            p.append(f"path {path}")
        if auth != f"Bearer {KEY}":
            p.append("bad Authorization header")
        msgs = body["messages"]
        users = [m for m in msgs if m["role"] == "user"]
        if msgs[0]["role"] == "system" and not isinstance(msgs[0]["content"], str):
            p.append("the system message is not text")
        parts = users[0]["content"]
        if not isinstance(parts, list) or parts[0] != {"type": "text", "text": EXPLAIN_PROMPT}:
            p.append("first user message does not start with the prompt text")
            return
        kinds = [q["type"] for q in parts]
        if kinds != ["text", "text", "image_url", "text", "image_url"]:
            p.append(f"parts {kinds}")
            return
        if parts[1]["text"] != "Known sample:" or parts[3]["text"] != "Questioned sample:":
            p.append("image labels")
        for q in (parts[2], parts[4]):
            url = q["image_url"]["url"]
            if not url.startswith("data:image/png;base64,") or q["image_url"]["detail"] != "high":
                p.append("image part is not a PNG data URL")
                continue
            png = base64.b64decode(url.split(",", 1)[1])
            if png[:8] != b"\x89PNG\r\n\x1a\n" or Image.open(BytesIO(png)).size[0] < 1:
                p.append("data URL is not a PNG")
        if any(not isinstance(m["content"], str) for m in msgs if m is not users[0]):
            p.append("later messages are not plain text")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with FakeServer() as s:
        yield s


def _pair():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 64), dtype=np.uint8), rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)


def _backend(server, tmp_path=None, **kw):
    b = OpenAIBackend(api_key=KEY, base_url=server.url, cache_dir=tmp_path, retry_base_delay=0.001, **kw)
    b.delays = []
    b._sleep = b.delays.append  # record the back-off instead of sleeping
    return b


def test_verify_end_to_end_through_the_fake_server(server, tmp_path):
    server.replies = ["The n is joined to a and d in both; same slant.", "Yes."]
    b = _backend(server, tmp_path)
    v = verify(b, *_pair())
    assert not server.problems, server.problems
    assert v.decision == "same" and v.explanation.startswith("The n") and v.raw == "Yes."
    first, second = (r["body"] for r in server.requests)
    assert first["model"] == "gpt-4o" and first["temperature"] == 0.0 and first["max_tokens"] == 600
    assert "temperature" not in second  # the decision turn runs at the API's default, as in the paper
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == v.explanation
    assert v.meta["model"] == "gpt-4o" and v.meta["cached"] is False and v.meta["turns"][0]["usage"]


def test_the_cache_replays_without_sending_and_offline_mode(server, tmp_path):
    server.replies = ["explanation", "No"]
    known, questioned = _pair()
    v1 = verify(_backend(server, tmp_path), known, questioned)
    assert len(server.requests) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    assert not list(tmp_path.glob(".tmp-*"))
    again = _backend(server, tmp_path)
    v2 = verify(again, known, questioned)
    assert len(server.requests) == 2 and again.n_requests == 0  # nothing sent
    assert (v2.decision, v2.explanation, v2.raw) == (v1.decision, v1.explanation, v1.raw) == ("different",
                                                                                               "explanation", "No")
    assert v2.meta["cached"] is True
    # offline replay needs no key and no server
    offline = OpenAIBackend(cache_dir=tmp_path, offline=True, base_url="http://127.0.0.1:9/v1")
    assert verify(offline, known, questioned).raw == "No"
    with pytest.raises(CacheMissError, match=str(tmp_path)):
        verify(offline, known, questioned[::-1].copy())
    with pytest.raises(ValueError, match="cache_dir"):
        OpenAIBackend(offline=True)


def test_a_corrupt_cache_file_is_named(server, tmp_path):
    server.replies = ["e", "Yes"]
    b = _backend(server, tmp_path)
    verify(b, *_pair())
    victim = sorted(tmp_path.glob("*.json"))[0]
    victim.write_text("{not json")
    with pytest.raises(ValueError, match=victim.name):
        verify(b, *_pair())


def test_retries_on_429_and_5xx_with_backoff_and_retry_after(server):
    server.failures = [(429, {"Retry-After": "2"}, {"error": {"message": "slow down"}}),
                       (500, {}, {"error": {"message": "oops"}}), (503, {"Retry-After": "soon"}, {}),
                       (502, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, {})]
    server.replies = ["fine"]
    b = _backend(server, max_retries=4)
    assert b.chat([{"role": "user", "content": EXPLAIN_PROMPT}], list(_pair())) == "fine"
    assert len(server.requests) == 5 and b.n_requests == 5 and not server.problems
    # Retry-After in seconds, then the 2^k back-off (also for an unreadable Retry-After); a past date: no wait
    assert b.delays == [2.0, pytest.approx(0.002), pytest.approx(0.004), 0.0]


def test_a_timeout_is_retried(server):
    server.failures = [(0, {"sleep": 0.5}, {"choices": [{"message": {"content": "too late"}}]})]
    server.replies = ["in time"]
    b = _backend(server, timeout=0.1)
    assert b.chat([{"role": "user", "content": EXPLAIN_PROMPT}], list(_pair())) == "in time"
    assert b.n_requests == 2 and b.delays == [pytest.approx(0.001)]


def test_retries_give_up_with_the_last_error(server):
    server.failures = [(500, {}, {"error": {"message": "down"}})] * 3
    b = _backend(server, max_retries=2)
    with pytest.raises(OpenAIError, match="3 attempts.*500.*down"):
        b.chat([{"role": "user", "content": EXPLAIN_PROMPT}], list(_pair()))
    assert len(server.requests) == 3 and not server.problems


def test_other_4xx_raise_at_once_without_the_key(server, tmp_path, caplog):
    server.failures = [(401, {}, {"error": {"message": f"Incorrect API key provided: {KEY}"}})]
    b = _backend(server, tmp_path)
    with caplog.at_level(logging.DEBUG), pytest.raises(OpenAIError, match="401.*Incorrect API key") as info:
        b.chat([{"role": "user", "content": "x"}], [])
    assert len(server.requests) == 1 and b.delays == []
    assert KEY not in str(info.value) and KEY not in repr(info.value) and KEY not in caplog.text


def test_the_key_never_leaks(server, tmp_path, caplog):
    server.failures = [(500, {}, {"error": {"message": "boom"}})]
    server.replies = ["e", "no"]
    b = _backend(server, tmp_path)
    with caplog.at_level(logging.DEBUG):
        v = verify(b, *_pair())
    assert KEY not in repr(b) and KEY not in str(b) and KEY not in caplog.text
    assert KEY not in json.dumps(v.meta) and KEY not in repr(v)
    for f in tmp_path.iterdir():
        assert KEY not in f.read_text()


def test_missing_key_fails_only_when_a_request_is_needed(server, tmp_path):
    server.replies = ["e", "yes"]
    known, questioned = _pair()
    verify(_backend(server, tmp_path), known, questioned)  # fills the cache
    keyless = OpenAIBackend(base_url=server.url, cache_dir=tmp_path)
    assert verify(keyless, known, questioned).decision == "same"  # a cache hit needs no key
    with pytest.raises(OpenAIError, match="OPENAI_API_KEY"):
        verify(keyless, questioned[..., 0].copy(), known)
    assert len(server.requests) == 2


def test_key_and_base_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    server.replies = ["ok"]
    b = OpenAIBackend(retry_base_delay=0.001)
    assert b.base_url == server.url and KEY not in repr(b)
    assert b.chat([{"role": "user", "content": EXPLAIN_PROMPT}], list(_pair())) == "ok"
    assert not server.problems, server.problems


def test_constructor_checks():
    with pytest.raises(ValueError, match="detail"):
        OpenAIBackend(detail="ultra")
    with pytest.raises(ValueError, match="model"):
        OpenAIBackend(model="")
    assert OpenAIBackend(base_url="http://127.0.0.1:1/v1/").base_url == "http://127.0.0.1:1/v1"
