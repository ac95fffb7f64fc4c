"""OpenAIBackend: a ChatBackend whose ``chat`` returns a chat-completions answer (str), with a replayable disk cache.

The GPT-4o examiner of VLM-HV (arXiv:2407.21788) over plain HTTP (``httpx``, no ``openai`` package): POST
``{base_url}/chat/completions`` with the system text, the first user message as content parts (its text, then
"Known sample:" + image, "Questioned sample:" + image as base64 PNG data URLs) and later turns as plain text.
Responses are cached on disk keyed by the request, so a notebook replays a finished run offline, without a key.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from kit.hv_vlm.examiner import ChatBackend, _check_messages, check_image, image_label, image_to_png_bytes

__all__ = ["OpenAIBackend", "CacheMissError", "OpenAIError"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_log = logging.getLogger(__name__)


class CacheMissError(RuntimeError):
    """Raised by an ``offline=True`` backend for a request its cache does not hold."""


class OpenAIError(RuntimeError):
    """Raised for a failed request: a 4xx answer, or a 429 / 5xx / timeout that outlived the retries."""


class OpenAIBackend(ChatBackend):
    """GPT-4o (or any chat-completions model) as the examiner of arXiv:2407.21788: ``chat(...) -> str``.

    ``api_key``: else ``OPENAI_API_KEY``, read only when a request must be sent (a cache hit needs none); the
    key is kept out of repr, errors, logs, cache files and meta. ``base_url``: else ``OPENAI_BASE_URL``, else
    the OpenAI API. ``cache_dir``: one JSON file per request (None: no cache); ``offline=True`` raises
    ``CacheMissError`` on a miss instead of sending. ``detail``: the image detail ("high", "low", "auto");
    ``max_side``: images are shrunk so their long side is <= this. 429, 5xx and timeouts are retried
    ``max_retries`` times with exponential back-off from ``retry_base_delay`` s (or the server's Retry-After),
    at most ``max_retry_delay`` s per wait; other 4xx answers raise at once with the server's message.
    """

    name = "openai"

    def __init__(self, model: str = "gpt-4o", *, api_key: str | None = None, base_url: str | None = None,
                 cache_dir: str | os.PathLike | None = None, offline: bool = False, detail: str = "high",
                 max_side: int = 800, timeout: float = 120.0, max_retries: int = 5,
                 retry_base_delay: float = 1.0, max_retry_delay: float = 60.0) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if detail not in ("high", "low", "auto"):
            raise ValueError(f"detail must be 'high', 'low' or 'auto', got {detail!r}")
        if offline and cache_dir is None:
            raise ValueError("offline=True needs a cache_dir to replay answers from")
        if int(max_retries) < 0 or retry_base_delay < 0 or max_retry_delay < 0:
            raise ValueError("max_retries, retry_base_delay and max_retry_delay must be >= 0")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.offline = bool(offline)
        self.detail = detail
        self.max_side = int(max_side)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.retry_base_delay = float(retry_base_delay)
        self.max_retry_delay = float(max_retry_delay)
        self.__key = api_key  # name-mangled and never printed
        self.last_meta = {}
        self.n_requests = 0  # HTTP requests sent (retries included)
        self._sleep = time.sleep

    def __repr__(self) -> str:
        cache = "off" if self.cache_dir is None else str(self.cache_dir)
        return (f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, cache_dir={cache!r}, "
                f"offline={self.offline})")

    __str__ = __repr__

    def describe(self) -> dict:
        """``{"backend": "openai", "model", "base_url", "detail", "max_side"}`` (no key)."""
        return {"backend": self.name, "model": self.model, "base_url": self.base_url, "detail": self.detail,
                "max_side": self.max_side}

    def _key(self) -> str:
        key = self.__key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise OpenAIError("no OpenAI API key: pass OpenAIBackend(api_key=...) or set OPENAI_API_KEY "
                              "(or replay a cached run with cache_dir=..., offline=True)")
        return key

    def _scrub(self, text: str) -> str:
        for key in (self.__key, os.environ.get("OPENAI_API_KEY")):
            if key:
                text = text.replace(key, "***")
        return text

    def request_body(self, messages: list[dict], pngs: list[bytes], temperature: float | None,
                     max_tokens: int | None) -> dict:
        """The chat-completions JSON body: the first user message as text + labelled ``image_url`` parts."""
        # The authors' released scripts pasted the base64 string into the prompt's *text*; the model then never
        # sees an image. Here each image is a proper image_url part holding a data URL.
        out, placed = [], False
        for m in messages:
            if m["role"] == "user" and not placed:
                parts = [{"type": "text", "text": m["content"]}]
                for i, png in enumerate(pngs):
                    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                    parts += [{"type": "text", "text": image_label(i)},
                              {"type": "image_url", "image_url": {"url": url, "detail": self.detail}}]
                out.append({"role": "user", "content": parts})
                placed = True
            else:
                out.append({"role": m["role"], "content": m["content"]})
        body = {"model": self.model, "messages": out}
        if temperature is not None:
            body["temperature"] = float(temperature)
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        return body

    def cache_key(self, messages: list[dict], pngs: list[bytes], temperature: float | None,
                  max_tokens: int | None) -> str:
        """sha256 hex of (model, messages, temperature, max_tokens, detail, image PNG bytes)."""
        h = hashlib.sha256()
        head = {"model": self.model, "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                "temperature": temperature, "max_tokens": max_tokens, "detail": self.detail}
        h.update(json.dumps(head, sort_keys=True, ensure_ascii=True).encode())
        for png in pngs:
            h.update(len(png).to_bytes(8, "little"))
            h.update(png)
        return h.hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{key}.json"

    def _read_cache(self, path: Path) -> str | None:
        if not path.exists():
            return None
        try:
            reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"corrupt cache file {path}: {exc}; delete it to re-request") from None
        if not isinstance(reply, str):
            raise ValueError(f"corrupt cache file {path}: 'reply' is not a string; delete it to re-request")
        return reply

    def _write_cache(self, path: Path, record: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def chat(self, messages: list[dict], images: list[np.ndarray], *, temperature: float | None = None,
             max_tokens: int | None = None) -> str:
        """The model's answer to the last user message; from the cache when it holds this exact request."""
        _check_messages(messages)
        pngs = [image_to_png_bytes(check_image(img, f"images[{i}]"), self.max_side) for i, img in enumerate(images)]
        key = self.cache_key(messages, pngs, temperature, max_tokens)
        path = self._cache_path(key)
        t0 = time.perf_counter()
        if path is not None:
            reply = self._read_cache(path)
            if reply is not None:
                self.last_meta = {"cached": True, "cache_key": key, "seconds": time.perf_counter() - t0}
                return reply
        if self.offline:
            raise CacheMissError(f"offline=True and the cache {self.cache_dir} has no answer for this request "
                                 f"(key {key[:12]}...); run once online with this cache_dir to fill it")
        body = self.request_body(messages, pngs, temperature, max_tokens)
        data = self._post(body)
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise OpenAIError(f"unexpected chat-completions answer: {self._scrub(str(data))[:500]}") from None
        reply = message.get("content") or message.get("refusal") or ""
        seconds = time.perf_counter() - t0
        if path is not None:
            self._write_cache(path, {"model": self.model, "temperature": temperature, "max_tokens": max_tokens,
                                     "detail": self.detail, "messages": messages, "n_images": len(pngs),
                                     "reply": reply, "usage": data.get("usage"),
                                     "response_model": data.get("model")})
        self.last_meta = {"cached": False, "cache_key": key, "seconds": seconds, "usage": data.get("usage")}
        return reply

    def _retry_delay(self, attempt: int, response: httpx.Response | None) -> float:
        delay = self.retry_base_delay * 2 ** attempt
        if response is not None:
            ms = response.headers.get("retry-after-ms")
            after = response.headers.get("retry-after")
            try:
                if ms is not None:
                    delay = float(ms) / 1000.0
                elif after is not None:
                    delay = float(after)
            except ValueError:  # Retry-After may also be an HTTP date
                try:
                    delay = email.utils.parsedate_to_datetime(after).timestamp() - time.time()
                except (TypeError, ValueError):
                    pass  # unreadable: keep the exponential back-off
        return float(min(max(delay, 0.0), self.max_retry_delay))

    def _post(self, body: dict) -> dict:
        headers = {"Authorization": f"Bearer {self._key()}", "Content-Type": "application/json"}
        url = f"{self.base_url}/chat/completions"
        problem = ""
        with httpx.Client(timeout=self.timeout) as client:
            for attempt in range(self.max_retries + 1):
                response = None
                self.n_requests += 1
                try:
                    response = client.post(url, json=body, headers=headers)
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    problem = f"{type(exc).__name__}: {self._scrub(str(exc))}"
                else:
                    if response.status_code == 200:
                        try:
                            return response.json()
                        except ValueError:
                            raise OpenAIError(f"{url} answered 200 with a body that is not JSON") from None
                    problem = f"HTTP {response.status_code}: {self._error_message(response)}"
                    if response.status_code != 429 and response.status_code < 500:
                        raise OpenAIError(f"{url} refused the request ({problem})")
                if attempt == self.max_retries:
                    break
                delay = self._retry_delay(attempt, response)
                _log.warning("chat completions: %s; retry %d/%d in %.2f s", problem, attempt + 1,
                             self.max_retries, delay)
                self._sleep(delay)
        raise OpenAIError(f"{url} failed after {self.max_retries + 1} attempts (last: {problem})")

    def _error_message(self, response: httpx.Response) -> str:
        try:
            err = response.json().get("error")
            text = err.get("message") if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            text = response.text
        return self._scrub(str(text or response.reason_phrase))[:500]
