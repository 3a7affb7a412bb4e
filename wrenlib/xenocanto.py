"""Recordings from xeno-canto into the manifest the loader reads (``wrenlib fetch-xc``).

Optional: the book never calls this module, and neither does CI against the network; its tests
run against a fake server on 127.0.0.1. It asks the xeno-canto API (v3) for the recordings that
match a query, downloads them into ``DIR/audio/<id>.<ext>`` and writes ``DIR/manifest.csv`` with
the columns :func:`wrenlib.recordings.load_recordings` reads (path, label, recording_id, latitude,
longitude, licence) plus recordist, country, locality, date, quality, species, url and bytes.

- The API key comes from the environment (:data:`API_KEY_VARIABLE`); it is sent to the API only
  (never to the download URLs) and is never written to a file, a message or the manifest.
- At most one request per ``delay_s`` seconds, API pages and files together (xeno-canto asks for
  no more than one a second); HTTP 429 and 5xx and dropped connections are retried a bounded
  number of times with exponential backoff (``Retry-After`` is honoured, up to a minute).
- Resumable: a file is downloaded under a temporary name and renamed when complete, so a file
  under its final name is complete; a re-run downloads only what is missing and rewrites the
  manifest with everything present.
- Local names are the recording id (digits only) and an extension from a whitelist; nothing of
  the remote name but its extension is used, so a remote name cannot write outside ``DIR``.
- ``max_mb`` is enforced while streaming (a missing or lying Content-Length changes nothing).
- Bad input never stops the run: a broken recording entry, an oversized file or a failed
  download is reported with the recording's id and skipped; the rest is fetched.
"""

from __future__ import annotations

import csv
import http.client
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Mapping, TypeVar

DEFAULT_BASE_URL = "https://xeno-canto.org/api/3/recordings"
API_KEY_VARIABLE = "XENO_CANTO_API_KEY"
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg")
DEFAULT_EXTENSION = ".mp3"
MANIFEST_NAME = "manifest.csv"
AUDIO_FOLDER = "audio"
MANIFEST_FIELDS = ("path", "label", "recording_id", "latitude", "longitude", "licence", "recordist",
                   "country", "locality", "date", "quality", "species", "url", "bytes")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
MAX_PAGE_BYTES = 32 * 1024 * 1024  # one page of JSON metadata; far above a real one
CHUNK_BYTES = 64 * 1024
USER_AGENT = "wrenlib-fetch-xc/0.1 (wrenbook; optional downloader)"
HIDDEN_KEY = "<hidden>"

_ID_PATTERN = re.compile(r"(?:XC)?([0-9]{1,12})", re.IGNORECASE)  # [0-9], not \d: no other digits
_LOCAL_PATH_PATTERN = re.compile(r"audio/[0-9]{1,12}\.(?:mp3|wav|flac|ogg)")

T = TypeVar("T")


class FetchError(Exception):
    """A problem that stops the run (no key, bad settings, the API failing): one line, no key."""


class _DownloadProblem(Exception):
    """One request failed for good (after any retries); the message names no key."""


class _TooLarge(Exception):
    """A file over the size limit (``announced`` is its Content-Length when the server gave one)."""

    def __init__(self, announced: int | None) -> None:
        super().__init__(announced)
        self.announced = announced


class _Transient(Exception):
    """A network failure worth another try: a dropped connection or a short body."""


# --- small pure helpers -------------------------------------------------------------------------

def api_key_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The xeno-canto API key from :data:`API_KEY_VARIABLE`; a :class:`FetchError` when unset."""
    key = (os.environ if environ is None else environ).get(API_KEY_VARIABLE, "").strip()
    if not key:
        raise FetchError(f"no API key: set the environment variable {API_KEY_VARIABLE} to your xeno-canto "
                         f"API key (https://xeno-canto.org/account); it is read from there only, never stored")
    return key


def sanitise_label(text: str) -> str:
    """A label made of letters, digits, ``-`` and ``_`` (the default label: the query's words)."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-")[:64]
    return label or "xeno-canto"


def recording_id(value: Any) -> str:
    """The recording's id as digits (``"XC123"`` and ``123`` give ``"123"``); ValueError otherwise."""
    text = "" if value is None else str(value).strip()
    match = _ID_PATTERN.fullmatch(text)
    if not match:
        raise ValueError(f"recording id {text[:40]!r} is not a number")
    return str(int(match.group(1)))


def local_file_name(identifier: str, remote_name: str | None) -> str:
    """``<id><extension>``: the extension of ``remote_name`` when it is one of
    :data:`AUDIO_EXTENSIONS`, else ``.mp3``. Nothing else of the remote name is used."""
    if not (identifier.isascii() and identifier.isdigit()):
        raise ValueError(f"recording id {identifier[:40]!r} is not a number")
    suffix = PurePosixPath(str(remote_name or "").replace("\\", "/")).suffix.lower()
    return identifier + (suffix if suffix in AUDIO_EXTENSIONS else DEFAULT_EXTENSION)


def absolute_url(text: str, base: str = "https://xeno-canto.org/") -> str:
    """A URL from the API made absolute: protocol-relative ``//host/...`` and ``/path`` are
    resolved against ``base``; an empty string stays empty."""
    text = (text or "").strip()
    return urllib.parse.urljoin(base, text) if text else ""


def _text(value: Any, limit: int = 300) -> str:
    """A metadata value as one line of text ("" when missing)."""
    if value is None or isinstance(value, (dict, list)):
        return ""
    return " ".join(str(value).split())[:limit]


def _coordinate(value: Any, limit: float) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and abs(number) <= limit else None


@dataclass(frozen=True)
class XenoCantoRecording:
    """One recording's metadata, as far as the API gave it (missing text fields are "")."""

    id: str
    file_url: str
    file_name: str
    latitude: float | None = None
    longitude: float | None = None
    licence: str = ""
    recordist: str = ""
    country: str = ""
    locality: str = ""
    date: str = ""
    quality: str = ""
    species: str = ""
    url: str = ""

    @property
    def local_name(self) -> str:
        return local_file_name(self.id, self.file_name)


def parse_recording(raw: Any, base_url: str = DEFAULT_BASE_URL) -> XenoCantoRecording:
    """A :class:`XenoCantoRecording` from one entry of the API's ``recordings`` list.

    Tolerates missing fields and both ``lon`` (API v3) and ``lng`` (v2); raises ValueError when
    the entry has no numeric ``id`` or no http(s) download URL (``file``).
    """
    if not isinstance(raw, dict):
        raise ValueError("not a recording object")
    identifier = recording_id(raw.get("id"))
    file_url = absolute_url(_text(raw.get("file"), 2000), base_url)
    if not file_url:
        raise ValueError("no download URL (field 'file' is empty: restricted or withdrawn?)")
    if urllib.parse.urlsplit(file_url).scheme not in ("http", "https"):
        raise ValueError(f"download URL is not http(s) ({file_url[:60]!r})")
    longitude = raw.get("lon") if raw.get("lon") not in (None, "") else raw.get("lng")
    species = " ".join(part for part in (_text(raw.get("gen")), _text(raw.get("sp"))) if part)
    return XenoCantoRecording(
        id=identifier, file_url=file_url, file_name=_text(raw.get("file-name"), 300),
        latitude=_coordinate(raw.get("lat"), 90.0), longitude=_coordinate(longitude, 180.0),
        licence=absolute_url(_text(raw.get("lic"), 300)), recordist=_text(raw.get("rec")),
        country=_text(raw.get("cnt")), locality=_text(raw.get("loc")), date=_text(raw.get("date"), 40),
        quality=_text(raw.get("q"), 20), species=species,
        url=absolute_url(_text(raw.get("url"), 300)),
    )


def page_url(base_url: str, query: str, api_key: str, page: int) -> str:
    """The URL of one result page (with the key: never print it, print :func:`shown_page_url`)."""
    separator = "&" if urllib.parse.urlsplit(base_url).query else "?"
    return base_url + separator + urllib.parse.urlencode({"query": query, "key": api_key, "page": page})


def shown_page_url(base_url: str, query: str, page: int) -> str:
    """:func:`page_url` as messages show it: the key replaced by ``<hidden>``."""
    separator = "&" if urllib.parse.urlsplit(base_url).query else "?"
    return f"{base_url}{separator}{urllib.parse.urlencode({'query': query})}&key={HIDDEN_KEY}&page={page}"


# --- rate limit, retries, streaming -------------------------------------------------------------

class RateLimiter:
    """At most one request per ``interval_s`` seconds; ``clock`` and ``sleep`` are injectable so
    that tests run on a fake clock without waiting."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval_s = float(interval_s)
        self.clock, self.sleep = clock, sleep
        self._last: float | None = None

    def wait(self) -> None:
        """Sleep until the next request may go, and count it as gone."""
        now = self.clock()
        if self._last is not None and self._last + self.interval_s > now:
            self.sleep(self._last + self.interval_s - now)
            now = self.clock()
        self._last = now


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (never to ftp: or file:)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _retry_after(headers: Any) -> float | None:
    try:
        value = float(headers.get("Retry-After"))
    except (TypeError, ValueError, AttributeError):
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER_S) if math.isfinite(value) else None


def _content_length(response: Any) -> int | None:
    try:
        value = int(response.headers.get("Content-Length"))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


class _Client:
    """urllib with the rate limit, bounded retries, and the key scrubbed from every message."""

    def __init__(self, api_key: str, limiter: RateLimiter, retries: int, backoff_s: float,
                 timeout_s: float, log: Callable[[str], None]) -> None:
        self.api_key, self.limiter, self.retries = api_key, limiter, retries
        self.backoff_s, self.timeout_s, self.log = backoff_s, timeout_s, log
        self.opener = urllib.request.build_opener(_HttpOnlyRedirects())

    def redact(self, text: str) -> str:
        """``text`` with the key (plain and URL-quoted) replaced by ``<hidden>``."""
        for form in {self.api_key, urllib.parse.quote(self.api_key, safe=""),
                     urllib.parse.quote_plus(self.api_key)}:
            if form:
                text = text.replace(form, HIDDEN_KEY)
        return text

    def _open(self, url: str):
        self.limiter.wait()
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        return self.opener.open(request, timeout=self.timeout_s)

    def _retrying(self, what: str, action: Callable[[], T]) -> T:
        """``action()``, tried again after HTTP 429/5xx and dropped connections (at most
        ``retries`` times, waiting ``backoff_s * 2**attempt`` or the server's Retry-After)."""
        for attempt in range(self.retries + 1):
            try:
                return action()
            except urllib.error.HTTPError as error:
                status, wait = error.code, _retry_after(error.headers)
                detail = self._error_detail(error)
                problem = f"HTTP {status}{f' ({detail})' if detail else ''}"
                if status not in RETRY_STATUSES or attempt == self.retries:
                    raise _DownloadProblem(self.redact(problem)) from None
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                    _Transient) as error:
                reason = getattr(error, "reason", None) or error
                problem, wait = f"network error ({_text(reason, 200) or type(error).__name__})", None
                if attempt == self.retries:
                    raise _DownloadProblem(self.redact(problem)) from None
            wait = self.backoff_s * 2 ** attempt if wait is None else wait
            self.log(self.redact(f"{what}: {problem}; trying again in {wait:g} s "
                                 f"({attempt + 1} of {self.retries})"))
            self.limiter.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error_detail(error: urllib.error.HTTPError) -> str:
        """The API's message from an error body ({"error": ..., "message": ...}), or the reason."""
        try:
            body = error.read(4096)
        except Exception:  # a body we cannot read adds nothing
            body = b""
        finally:
            error.close()
        try:
            payload = json.loads(body.decode("utf-8"))
            message = payload.get("message") or payload.get("error") if isinstance(payload, dict) else None
        except (ValueError, UnicodeDecodeError):
            message = None
        return _text(message or error.reason, 200)

    def get_json(self, url: str, shown: str) -> dict:
        """The JSON object at ``url``; :class:`_DownloadProblem` naming ``shown`` otherwise."""
        def action() -> bytes:
            chunks, total = [], 0
            with self._open(url) as response:
                for chunk in _chunks(response):
                    total += len(chunk)
                    if total > MAX_PAGE_BYTES:
                        raise _DownloadProblem(f"{shown}: the page is larger than {MAX_PAGE_BYTES // 2**20} MB")
                    chunks.append(chunk)
            return b"".join(chunks)

        try:
            body = self._retrying(shown, action)
        except _DownloadProblem as problem:
            message = str(problem)
            raise _DownloadProblem(message if message.startswith(shown) else f"{shown}: {message}") from None
        try:
            payload = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise _DownloadProblem(self.redact(f"{shown}: the API returned invalid JSON "
                                               f"({_text(error, 120)})")) from None
        if not isinstance(payload, dict):
            raise _DownloadProblem(f"{shown}: the API returned JSON that is not an object")
        if "recordings" not in payload:
            said = _text(payload.get("message") or payload.get("error"), 200)
            raise _DownloadProblem(self.redact(f"{shown}: the API returned no recordings list"
                                               + (f" ({said})" if said else "")))
        return payload

    def download(self, url: str, part: Path, max_bytes: int, what: str) -> int:
        """Stream ``url`` into ``part`` (created afresh), at most ``max_bytes``; its size."""
        def action() -> int:
            part.unlink(missing_ok=True)
            with self._open(url) as response:
                announced = _content_length(response)
                if announced is not None and announced > max_bytes:
                    raise _TooLarge(announced)
                written = 0
                with open(part, "xb") as stream:  # "x": never through a planted file or link
                    for chunk in _chunks(response):
                        written += len(chunk)
                        if written > max_bytes:
                            raise _TooLarge(None)
                        stream.write(chunk)
            if announced is not None and written != announced:
                raise _Transient(f"incomplete download: {written} of {announced} bytes")
            if written == 0:
                raise _DownloadProblem("the server sent an empty file")
            return written

        return self._retrying(what, action)


def _chunks(response):
    """A response body in pieces of ``CHUNK_BYTES``; a read that breaks off is transient (retried)."""
    while True:
        try:
            chunk = response.read(CHUNK_BYTES)
        except (OSError, http.client.HTTPException) as error:
            raise _Transient(error) from None
        if not chunk:
            return
        yield chunk


# --- the fetch ----------------------------------------------------------------------------------

@dataclass
class FetchReport:
    """What a fetch did: recordings fetched, already present, skipped and failed (id, reason)."""

    manifest: Path
    query_matches: int | None = None
    listed: int = 0
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    api_errors: list[str] = field(default_factory=list)
    in_manifest: int = 0

    @property
    def exit_status(self) -> int:
        """1 when an API page failed or none of the query's recordings is on disk, else 0."""
        return 1 if self.api_errors or not (self.fetched or self.present) else 0

    def summary(self) -> str:
        matched = "" if self.query_matches is None else f" (the query matches {self.query_matches})"
        return (f"{len(self.fetched)} fetched, {len(self.present)} already present, {len(self.skipped)} "
                f"skipped, {len(self.failed)} failed of {self.listed} recording(s) listed{matched}"
                + (f", {len(self.api_errors)} API page(s) failed" if self.api_errors else "")
                + f"; {self.manifest} lists {self.in_manifest} recording(s)")


def _log_to_stderr(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def _previous_rows(manifest: Path) -> dict[str, dict[str, str]]:
    """Rows of an earlier fetch's manifest (with a well-formed path), by recording id."""
    if not manifest.exists():
        return {}
    try:
        with open(manifest, newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            columns, rows = set(reader.fieldnames or ()), list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise FetchError(f"{manifest}: cannot read the existing manifest ({_text(error, 120)}); "
                         f"move it away or choose another folder") from None
    if not {"path", "label", "recording_id"} <= columns:
        raise FetchError(f"{manifest} exists but was not written by fetch-xc (it lacks path, label or "
                         f"recording_id); choose another folder")
    kept = {}
    for row in rows:
        path = row.get("path") or ""
        try:
            identifier = recording_id(row.get("recording_id"))
        except ValueError:
            continue
        if _LOCAL_PATH_PATTERN.fullmatch(path):
            kept[identifier] = {name: row.get(name) or "" for name in MANIFEST_FIELDS}
    return kept


def _is_complete(path: Path, row: Mapping[str, str] | None) -> bool:
    """A file under its final name is complete (renamed only when whole); when a manifest row
    records its size, the size must agree too."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    recorded = (row or {}).get("bytes") or ""
    return not recorded.isdigit() or int(recorded) == path.stat().st_size


def _manifest_row(recording: XenoCantoRecording, label: str, size: int,
                  redact: Callable[[str], str] = str) -> dict[str, str]:
    """The manifest's row of a recording on disk (``redact`` scrubs the key from every value)."""
    def number(value: float | None) -> str:
        return "" if value is None else repr(value)

    row = {"path": f"{AUDIO_FOLDER}/{recording.local_name}", "label": label, "recording_id": recording.id,
           "latitude": number(recording.latitude), "longitude": number(recording.longitude),
           "licence": recording.licence, "recordist": recording.recordist, "country": recording.country,
           "locality": recording.locality, "date": recording.date, "quality": recording.quality,
           "species": recording.species, "url": recording.url, "bytes": str(size)}
    return {name: redact(value) for name, value in row.items()}


def write_manifest(out: Path, rows: Iterable[Mapping[str, str]]) -> Path:
    """``out/manifest.csv`` with :data:`MANIFEST_FIELDS`, written under a temporary name first."""
    manifest, temporary = out / MANIFEST_NAME, out / (MANIFEST_NAME + ".part")
    with open(temporary, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(MANIFEST_FIELDS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, manifest)
    return manifest


def _check_settings(query: str, api_key: str, label: str, base_url: str, delay_s: float, max_mb: float,
                    max_recordings: int | None, retries: int) -> None:
    if not query.strip():
        raise FetchError("the query is empty; give xeno-canto search terms such as 'sp:\"thryomanes bewickii\"'")
    if not api_key.strip():
        raise FetchError(f"no API key (set {API_KEY_VARIABLE})")
    if not label.strip():
        raise FetchError("the label is empty")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"--base-url must be an http(s) URL, got {base_url[:80]!r}")
    if not (math.isfinite(delay_s) and delay_s >= 0):
        raise FetchError(f"--delay must be 0 or more seconds, got {delay_s}")
    if parts.hostname.endswith("xeno-canto.org") and delay_s < 1.0:
        raise FetchError(f"xeno-canto asks for at most one request a second; --delay {delay_s:g} is too short")
    if not (math.isfinite(max_mb) and max_mb > 0):
        raise FetchError(f"--max-mb must be more than 0, got {max_mb}")
    if max_recordings is not None and max_recordings < 1:
        raise FetchError(f"--max-recordings must be at least 1, got {max_recordings}")
    if retries < 0:
        raise FetchError(f"--retries must be 0 or more, got {retries}")


def _prepare_folder(out: Path) -> Path:
    """``out/audio``, created; ``out`` may hold an earlier fetch (that is how it resumes)."""
    audio = out / AUDIO_FOLDER
    for folder in (out, audio):
        if folder.exists() and not folder.is_dir():
            raise FetchError(f"{folder} exists and is not a folder")
    try:
        audio.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"cannot create {audio}: {error.strerror}") from None
    if not os.access(audio, os.W_OK):
        raise FetchError(f"{audio} is not writable")
    return audio


def _list_recordings(client: _Client, query: str, base_url: str, max_recordings: int | None,
                    report: FetchReport) -> list[XenoCantoRecording]:
    """The query's recordings, page by page, up to ``max_recordings``. A failing first page is a
    :class:`FetchError`; a failing later page is reported in ``report.api_errors`` and skipped."""
    recordings: list[XenoCantoRecording] = []
    seen: set[str] = set()
    page, pages = 1, 1
    while page <= pages and (max_recordings is None or len(recordings) < max_recordings):
        shown = shown_page_url(base_url, query, page)
        try:
            payload = client.get_json(page_url(base_url, query, client.api_key, page), shown)
        except _DownloadProblem as problem:
            if page == 1:
                raise FetchError(client.redact(str(problem))) from None
            report.api_errors.append(client.redact(str(problem)))
            client.log(f"API page {page} failed, its recordings are skipped: {client.redact(str(problem))}")
            page += 1
            continue
        if page == 1:
            try:
                report.query_matches = int(payload.get("numRecordings"))
            except (TypeError, ValueError):
                report.query_matches = None
            try:
                pages = max(1, int(payload.get("numPages", 1)))
            except (TypeError, ValueError):
                pages = 1
        entries = payload.get("recordings")
        if not isinstance(entries, list) or not entries:
            break
        for raw in entries:
            if max_recordings is not None and len(recordings) >= max_recordings:
                break
            try:
                recording = parse_recording(raw, base_url)
            except ValueError as error:
                shown_id = _text(raw.get("id"), 20) if isinstance(raw, dict) else ""
                report.skipped.append((shown_id or "?", client.redact(str(error))))
                client.log(client.redact(f"skipped XC{shown_id or '?'} (page {page}): {error}"))
                continue
            if recording.id not in seen:
                seen.add(recording.id)
                recordings.append(recording)
        page += 1
    report.listed = len(recordings)
    return recordings


def fetch_recordings(
    query: str,
    out: Path | str,
    api_key: str,
    *,
    label: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    delay_s: float = 1.0,
    max_mb: float = 50.0,
    max_recordings: int | None = None,
    retries: int = 3,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    progress: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> FetchReport:
    """Download the recordings that match ``query`` into ``out`` and write ``out/manifest.csv``.

    Optional and never used by CI against the network. ``label`` is every recording's label in the
    manifest (default: the query, sanitised); ``base_url`` is the API's recordings endpoint (tests
    point it at a local fake server). Files over ``max_mb`` MB (MiB) are reported and skipped;
    ``max_recordings`` caps how many of the query's recordings this run takes. ``clock`` and
    ``sleep`` drive the rate limit and the backoff; ``log`` receives one line per problem (default:
    stderr). Raises :class:`FetchError` for bad settings, no key, or an API that fails on its
    first page; everything else is reported in the returned :class:`FetchReport`.
    """
    from tqdm.auto import tqdm

    from .runtime import show_progress

    out = Path(out)
    label = sanitise_label(query) if label is None else label.strip()
    _check_settings(query, api_key, label, base_url, delay_s, max_mb, max_recordings, retries)
    log = log or _log_to_stderr
    client = _Client(api_key, RateLimiter(delay_s, clock, sleep), retries, backoff_s, timeout_s, log)
    audio = _prepare_folder(out)
    manifest = out / MANIFEST_NAME
    previous = _previous_rows(manifest)
    report = FetchReport(manifest=manifest)
    recordings = _list_recordings(client, query.strip(), base_url, max_recordings, report)
    max_bytes = int(max_mb * 1024 * 1024)
    rows: dict[str, dict[str, str]] = {}
    try:
        for recording in tqdm(recordings, desc="xeno-canto", unit="file", disable=not show_progress(progress)):
            target = audio / recording.local_name
            if _is_complete(target, previous.get(recording.id)):
                report.present.append(recording.id)
                rows[recording.id] = _manifest_row(recording, label, target.stat().st_size, client.redact)
                continue
            part = target.with_name(target.name + ".part")
            what = f"XC{recording.id}"
            try:
                size = client.download(recording.file_url, part, max_bytes, what)
                os.replace(part, target)
            except _TooLarge as error:
                size_note = "" if error.announced is None else f" ({error.announced / 2**20:.1f} MB announced)"
                report.skipped.append((recording.id, f"larger than {max_mb:g} MB{size_note}"))
                log(f"skipped {what}: larger than --max-mb {max_mb:g} MB{size_note}")
                continue
            except _DownloadProblem as problem:
                report.failed.append((recording.id, client.redact(str(problem))))
                log(client.redact(f"failed {what}: {problem}"))
                continue
            except OSError as error:
                report.failed.append((recording.id, f"cannot write {target.name}: {error.strerror or error}"))
                log(f"failed {what}: cannot write {target.name}: {error.strerror or error}")
                continue
            finally:
                part.unlink(missing_ok=True)
            report.fetched.append(recording.id)
            rows[recording.id] = _manifest_row(recording, label, size, client.redact)
    finally:  # also when interrupted: the manifest lists everything on disk
        for identifier, row in previous.items():  # an earlier run's recordings that this one did not list
            if identifier not in rows and _is_complete(out / row["path"], row):
                rows[identifier] = row
        ordered = [rows[identifier] for identifier in sorted(rows, key=int)]
        write_manifest(out, ordered)
        report.in_manifest = len(ordered)
    return report
