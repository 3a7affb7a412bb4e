"""``wrenlib fetch-xc`` offline: a fake xeno-canto on 127.0.0.1, a fake clock, tiny real WAV files.

Nothing here reaches the network: every request goes to a ThreadingHTTPServer on a free loopback
port that serves JSON pages and files, counts the requests and can fail them on purpose.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from wrenlib.recordings import load_recordings
from wrenlib.xenocanto import (
    FetchReport,
    RateLimiter,
    fetch_recordings,
    local_file_name,
    parse_recording,
    recording_id,
    sanitise_label,
)

KEY = "s3cr3t+KEY/=wren42"  # with characters that URL-quoting changes: every form must stay hidden
KEY_FORMS = (KEY, urllib.parse.quote(KEY, safe=""), urllib.parse.quote_plus(KEY))
QUERY = 'sp:"thryomanes bewickii" cnt:"united states"'
LICENCE = "//creativecommons.org/licenses/by-nc-sa/4.0/"


def song_wav(seconds: float = 2.5, rate: int = 22_050, seed: int = 0) -> bytes:
    """A small WAV file with energy in the wren band (the loader drops silent files)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (4_000 + 1_000 * np.sin(2 * np.pi * 3 * t)) * t)
    buffer = io.BytesIO()
    soundfile.write(buffer, wave + 0.01 * rng.standard_normal(len(t)), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeXenoCanto:
    """What the handler serves: ``pages`` (page number -> dict, or bytes sent as they are),
    ``files`` (name -> bytes), and ``plans`` (request path -> behaviours used up one a request:
    an HTTP status such as 503, "truncate", "no-length"). ``requests`` logs (path, params, time)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.pages, self.files, self.plans, self.requests = clock, {}, {}, {}, []
        self.lock = threading.Lock()
        self.base = ""

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/3/recordings"

    def file_url(self, name: str, protocol_relative: bool = False) -> str:
        url = f"{self.base}/files/{name}"
        return url[len("http:"):] if protocol_relative else url

    def count(self, path: str) -> int:
        return sum(1 for seen, _, _ in self.requests if seen == path)

    def next_behaviour(self, path: str):
        with self.lock:
            plan = self.plans.get(path) or []
            return plan.pop(0) if plan else None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        fake: FakeXenoCanto = self.server.fake
        parts = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(parts.query)
        with fake.lock:
            fake.requests.append((parts.path, params, fake.clock()))
        behaviour = fake.next_behaviour(parts.path)
        if isinstance(behaviour, int):
            body = json.dumps({"error": "server_error", "message": f"planned {behaviour}"}).encode()
            self.send_response(behaviour)
            if behaviour == 429:
                self.send_header("Retry-After", "5")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if parts.path == "/api/3/recordings":
            page = int(params.get("page", ["1"])[0])
            payload = fake.pages.get(page, {"numRecordings": "0", "numPages": 1, "page": page, "recordings": []})
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        elif parts.path.startswith("/files/") and parts.path[len("/files/"):] in fake.files:
            body = fake.files[parts.path[len("/files/"):]]
        else:
            self.send_error(404)
            return
        self.send_response(200)
        if behaviour != "no-length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 3] if behaviour == "truncate" else body)


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def server(clock, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")  # a proxy in the environment must not see these
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    fake = FakeXenoCanto(clock)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.fake = fake
    fake.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def entry(server: FakeXenoCanto, rid: int | str, file_name: str | None = None, **fields) -> dict:
    """One recording as the API lists it (v3 field names unless overridden)."""
    name = file_name if file_name is not None else f"XC{rid}-Bewick's Wren-song.wav"
    return {"id": str(rid), "gen": "Thryomanes", "sp": "bewickii", "ssp": "", "en": "Bewick's Wren",
            "rec": "Ann Recordist", "cnt": "United States", "loc": "Hocking Hills, Ohio",
            "lat": "39.43", "lon": "-82.54", "q": "A", "length": "0:02", "date": "2019-05-04",
            "file": server.file_url(str(rid), protocol_relative=int(rid) % 2 == 0), "file-name": name,
            "lic": LICENCE, "url": f"//xeno-canto.org/{rid}", **fields}


def serve(server: FakeXenoCanto, pages: list[list[dict]], audio: dict[str, bytes] | None = None) -> None:
    """Pages of entries, and a WAV file for every entry (unless ``audio`` says otherwise)."""
    total = sum(len(page) for page in pages)
    for number, recordings in enumerate(pages, start=1):
        server.pages[number] = {"numRecordings": str(total), "numSpecies": "1", "page": number,
                                "numPages": str(len(pages)), "recordings": recordings}
        for item in recordings:
            if isinstance(item, dict) and str(item.get("id", "")).isdigit():
                server.files.setdefault(item["id"], song_wav(seed=int(item["id"]) % 1000))
    server.files.update(audio or {})


def fetch(server: FakeXenoCanto, out: Path, clock: FakeClock, **options) -> tuple[FetchReport, list[str]]:
    messages: list[str] = []
    options.setdefault("label", "Eastern")
    report = fetch_recordings(QUERY, out, KEY, base_url=server.api_url, clock=clock, sleep=clock.sleep,
                              progress=False, log=messages.append, **options)
    return report, messages


def all_files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def assert_key_nowhere(folder: Path, *texts: str) -> None:
    """The key, plain or URL-quoted, is in no file under ``folder`` and in none of ``texts``."""
    for path in folder.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(form.encode() in content for form in KEY_FORMS), path
    for text in texts:
        assert not any(form in text for form in KEY_FORMS)


def run_cli(*args: str) -> tuple[int, str, str]:
    """``wrenlib ARGS`` in this process: exit status, stdout, stderr."""
    from wrenlib.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, stdout.getvalue(), stderr.getvalue()


# --- pure parts -------------------------------------------------------------------------------

def test_parse_recording_tolerates_missing_fields_and_both_longitude_names():
    v3 = parse_recording({"id": "123", "file": "//xeno-canto.org/123/download", "file-name": "x.mp3",
                          "lat": "44.5", "lon": "-123.25", "lic": LICENCE, "rec": "  Ann\nRecordist ",
                          "url": "//xeno-canto.org/123", "q": "B", "gen": "Thryomanes", "sp": "bewickii"})
    assert (v3.id, v3.latitude, v3.longitude) == ("123", 44.5, -123.25)
    assert v3.file_url == "https://xeno-canto.org/123/download"
    assert v3.licence == "https://creativecommons.org/licenses/by-nc-sa/4.0/"
    assert v3.url == "https://xeno-canto.org/123" and v3.recordist == "Ann Recordist"
    assert v3.species == "Thryomanes bewickii" and v3.quality == "B"
    v2 = parse_recording({"id": 7, "file": "https://xeno-canto.org/7/download", "lat": "1", "lng": "2"})
    assert (v2.id, v2.latitude, v2.longitude, v2.licence, v2.recordist) == ("7", 1.0, 2.0, "", "")
    odd = parse_recording({"id": "XC8", "file": "https://h/8", "lat": "", "lon": None})
    assert odd.id == "8" and odd.latitude is None and odd.longitude is None
    assert parse_recording({"id": "9", "file": "https://h/9", "lat": "91", "lon": "nan"}).latitude is None
    for broken, reason in [({"file": "https://h/1"}, "not a number"), ({"id": "1/../2", "file": "https://h"},
                           "not a number"), ({"id": "3", "file": ""}, "no download URL"),
                           ({"id": "4", "file": "file:///etc/passwd"}, "not http"), ("a string", "not a recording")]:
        with pytest.raises(ValueError, match=reason):
            parse_recording(broken)


def test_local_names_are_digits_and_a_whitelisted_extension_only():
    assert local_file_name("123", "../../etc/passwd") == "123.mp3"
    assert local_file_name("123", "a/b\\c.wav") == "123.wav"
    assert local_file_name("123", "C:\\x\\..\\song.FLAC") == "123.flac"
    assert local_file_name("123", "evil.exe") == "123.mp3"
    assert local_file_name("123", "song.ogg/..") == "123.mp3"
    assert local_file_name("123", None) == "123.mp3"
    for bad in ("../1", "12a", "１２", ""):  # full-width digits are digits to str.isdigit, not to us
        with pytest.raises(ValueError):
            local_file_name(bad, "x.wav")
    with pytest.raises(ValueError):
        recording_id("１２")
    assert recording_id(" XC0042 ") == "42" and sanitise_label(QUERY) == "sp_thryomanes_bewickii_cnt_united_states"
    assert sanitise_label("../..") == "xeno-canto"


def test_rate_limiter_waits_only_the_rest_of_the_interval(clock):
    limiter = RateLimiter(1.5, clock, clock.sleep)
    limiter.wait()
    clock.now += 0.5  # work between two requests counts towards the interval
    limiter.wait()
    limiter.wait()
    clock.now += 3.0
    limiter.wait()
    assert clock.sleeps == [1.0, 1.5]


# --- against the fake server -------------------------------------------------------------------

def test_fetch_writes_a_manifest_that_load_recordings_reads(server, clock, tmp_path):
    """Two pages (v3 ``lon`` and v2 ``lng``), absolute and protocol-relative file URLs: every file
    is fetched once, the manifest has the loader's columns plus the extra ones, the loader reads
    it with the real WAV files, requests are a second apart on the fake clock, the key went to the
    API only, and it is in no file and no message."""
    serve(server, [[entry(server, 101), entry(server, 102)],
                   [entry(server, 103, lon="", lng="-100.5", lat="31.2", cnt="Mexico")]])
    out = tmp_path / "xc"
    report, messages = fetch(server, out, clock)
    assert report.exit_status == 0 and messages == []
    assert sorted(report.fetched) == ["101", "102", "103"] and report.query_matches == 3
    assert all_files(out) == {"manifest.csv", "audio/101.wav", "audio/102.wav", "audio/103.wav"}
    manifest = pd.read_csv(out / "manifest.csv")
    assert list(manifest.columns) == ["path", "label", "recording_id", "latitude", "longitude", "licence",
                                      "recordist", "country", "locality", "date", "quality", "species",
                                      "url", "bytes"]
    row = manifest.set_index("recording_id").loc[103]
    assert (row["path"], row["label"], row["latitude"], row["longitude"]) == ("audio/103.wav", "Eastern", 31.2, -100.5)
    assert row["licence"] == "https://creativecommons.org/licenses/by-nc-sa/4.0/"
    assert (row["recordist"], row["country"], row["quality"], row["url"]) == (
        "Ann Recordist", "Mexico", "A", "https://xeno-canto.org/103")
    assert row["bytes"] == len(server.files["103"]) == (out / "audio/103.wav").stat().st_size
    recordings, load_report = load_recordings(out / "manifest.csv", progress=False)
    assert load_report.skipped == [] and load_report.files_loaded == 3
    assert recordings.label_names == ("Eastern",)
    clips = recordings.clips
    assert set(clips["recording_id"]) == {"101", "102", "103"}
    assert clips.set_index("recording_id").loc["101", "licence"] == "https://creativecommons.org/licenses/by-nc-sa/4.0/"
    assert clips.set_index("recording_id").loc["101", "latitude"] == pytest.approx(39.43)
    times = [moment for _, _, moment in server.requests]
    assert len(times) == 5 and np.all(np.diff(times) >= 1.0 - 1e-9)  # 2 pages + 3 files, >= 1 s apart
    for path, params, _ in server.requests:
        if path == "/api/3/recordings":
            assert params["key"] == [KEY] and params["query"] == [QUERY]
        else:
            assert "key" not in params
    assert_key_nowhere(out, *messages, report.summary(), repr(report))


def test_remote_file_names_cannot_write_outside_the_folder(server, clock, tmp_path):
    serve(server, [[entry(server, 201, "../../etc/passwd"), entry(server, 202, "a/b\\c.wav"),
                    entry(server, 203, "/abs/olute.flac"), entry(server, 204, "..\\..\\x.exe")]])
    out = tmp_path / "deep" / "xc"
    report, _ = fetch(server, out, clock)
    assert sorted(report.fetched) == ["201", "202", "203", "204"]
    assert all_files(tmp_path) == {"deep/xc/manifest.csv", "deep/xc/audio/201.mp3", "deep/xc/audio/202.wav",
                                   "deep/xc/audio/203.flac", "deep/xc/audio/204.mp3"}
    assert list(pd.read_csv(out / "manifest.csv")["path"]) == ["audio/201.mp3", "audio/202.wav",
                                                                "audio/203.flac", "audio/204.mp3"]


def test_an_interrupted_fetch_resumes_and_fetches_only_what_is_missing(server, clock, tmp_path):
    """Run 1: file 302 arrives truncated every time (retried, then failed); the others are kept.
    Run 2 (after a crash left a stale temporary file): only 302 is requested again."""
    serve(server, [[entry(server, 301), entry(server, 302)], [entry(server, 303)]])
    server.plans["/files/302"] = ["truncate", "truncate"]
    out = tmp_path / "xc"
    first, messages = fetch(server, out, clock, retries=1)
    assert sorted(first.fetched) == ["301", "303"] and [i for i, _ in first.failed] == ["302"]
    assert "incomplete download" in first.failed[0][1] and any("XC302" in m for m in messages)
    assert first.exit_status == 0  # some recordings arrived
    assert all_files(out) == {"manifest.csv", "audio/301.wav", "audio/303.wav"}  # no temporary file left
    assert list(pd.read_csv(out / "manifest.csv")["recording_id"]) == [301, 303]
    (out / "audio" / "302.wav.part").write_bytes(b"half a file from a killed run")
    before = {path: server.count(path) for path in ("/files/301", "/files/302", "/files/303")}
    assert before == {"/files/301": 1, "/files/302": 2, "/files/303": 1}
    second, _ = fetch(server, out, clock)
    assert second.fetched == ["302"] and sorted(second.present) == ["301", "303"] and second.failed == []
    assert {path: server.count(path) for path in before} == {"/files/301": 1, "/files/302": 3, "/files/303": 1}
    assert all_files(out) == {"manifest.csv", "audio/301.wav", "audio/302.wav", "audio/303.wav"}
    assert (out / "audio" / "302.wav").read_bytes() == server.files["302"]
    assert list(pd.read_csv(out / "manifest.csv")["recording_id"]) == [301, 302, 303]
    third, _ = fetch(server, out, clock, max_recordings=1)  # a narrower re-run keeps earlier rows
    assert third.present == ["301"] and third.in_manifest == 3
    assert sum(server.count(path) for path in before) == 5


def test_a_file_changed_on_disk_is_fetched_again(server, clock, tmp_path):
    serve(server, [[entry(server, 351)]])
    out = tmp_path / "xc"
    fetch(server, out, clock)
    (out / "audio" / "351.wav").write_bytes(b"short")  # not the size the manifest records
    report, _ = fetch(server, out, clock)
    assert report.fetched == ["351"] and (out / "audio" / "351.wav").read_bytes() == server.files["351"]


def test_two_queries_into_one_folder_make_one_manifest_with_both_labels(server, clock, tmp_path):
    serve(server, [[entry(server, 361), entry(server, 362)]])
    out = tmp_path / "xc"
    fetch(server, out, clock, label="Eastern")
    server.pages.clear()
    serve(server, [[entry(server, 363, cnt="Mexico")]])
    report, _ = fetch(server, out, clock, label="Mexican")
    assert report.fetched == ["363"] and report.in_manifest == 3
    recordings, load_report = load_recordings(out / "manifest.csv", progress=False)
    assert recordings.label_names == ("Eastern", "Mexican") and load_report.skipped == []
    assert dict(zip(recordings.clips["recording_id"], recordings.clips["dialect"])) == {
        "361": "Eastern", "362": "Eastern", "363": "Mexican"}


def test_429_and_5xx_are_retried_with_backoff_on_the_fake_clock(server, clock, tmp_path):
    serve(server, [[entry(server, 401)]])
    server.plans["/api/3/recordings"] = [429, 503]
    server.plans["/files/401"] = [500]
    report, messages = fetch(server, out := tmp_path / "xc", clock, backoff_s=2.0)
    assert report.fetched == ["401"] and report.exit_status == 0
    assert 5.0 in clock.sleeps and 4.0 in clock.sleeps and 2.0 in clock.sleeps  # Retry-After, 2 * 2**1, 2 * 2**0
    assert len(messages) == 3 and all("trying again" in m for m in messages)
    assert "<hidden>" in messages[0] and "HTTP 429" in messages[0]
    times = [moment for _, _, moment in server.requests]
    assert len(times) == 5 and np.all(np.diff(times) >= 1.0 - 1e-9)
    assert_key_nowhere(out, *messages)


def test_size_limit_is_enforced_while_streaming(server, clock, tmp_path):
    """Over the limit with an honest Content-Length, and with none at all: both skipped, the small
    one fetched, no temporary file left."""
    big = song_wav(seconds=5.0)  # ~220 kB, over 0.15 MB (the others ~110 kB)
    serve(server, [[entry(server, 501), entry(server, 502), entry(server, 503)]], audio={"501": big, "502": big})
    server.plans["/files/502"] = ["no-length"]
    report, messages = fetch(server, out := tmp_path / "xc", clock, max_mb=0.15)
    assert report.fetched == ["503"] and sorted(i for i, _ in report.skipped) == ["501", "502"]
    assert "announced" in dict(report.skipped)["501"] and "announced" not in dict(report.skipped)["502"]
    assert all("larger than" in m for m in messages) and len(messages) == 2
    assert all_files(out) == {"manifest.csv", "audio/503.wav"}
    assert server.count("/files/502") == 1  # not retried


def test_max_recordings_caps_the_count_and_stops_paging(server, clock, tmp_path):
    serve(server, [[entry(server, 601), entry(server, 602), entry(server, 603)], [entry(server, 604)]])
    report, _ = fetch(server, tmp_path / "xc", clock, max_recordings=2)
    assert report.fetched == ["601", "602"] and report.listed == 2
    assert [params["page"] for path, params, _ in server.requests if path == "/api/3/recordings"] == [["1"]]


def test_bad_entries_and_failing_downloads_are_reported_not_fatal(server, clock, tmp_path):
    serve(server, [[entry(server, 701), "not an object", {"id": "../7", "file": "https://x/y"},
                    entry(server, 702, file=""), entry(server, 703), entry(server, 704)]])
    server.plans["/files/703"] = [404]
    report, messages = fetch(server, tmp_path / "xc", clock)
    assert sorted(report.fetched) == ["701", "704"] and report.exit_status == 0
    assert [i for i, _ in report.failed] == ["703"] and "HTTP 404" in report.failed[0][1]
    assert len(report.skipped) == 3 and "702" in dict(report.skipped)
    assert server.count("/files/703") == 1  # a 404 is not retried
    assert any(m.startswith("failed XC703") for m in messages)
    assert all_files(tmp_path / "xc") == {"manifest.csv", "audio/701.wav", "audio/704.wav"}


# --- the command ------------------------------------------------------------------------------

def test_command_fetches_and_keeps_the_key_out_of_everything(server, tmp_path, monkeypatch):
    serve(server, [[entry(server, 801), entry(server, 802)]])
    monkeypatch.setenv("XENO_CANTO_API_KEY", KEY)
    out = tmp_path / "xc"
    code, stdout, stderr = run_cli("fetch-xc", QUERY, "--out", str(out), "--base-url", server.api_url,
                                   "--label", "Mexican", "--delay", "0", "--no-progress")
    assert code == 0, stderr
    assert "2 fetched, 0 already present, 0 skipped, 0 failed" in stdout
    assert set(pd.read_csv(out / "manifest.csv")["label"]) == {"Mexican"}
    code, stdout, _ = run_cli("fetch-xc", QUERY, "--out", str(out), "--base-url", server.api_url,
                              "--delay", "0", "--no-progress")
    assert code == 0 and "0 fetched, 2 already present" in stdout
    assert set(pd.read_csv(out / "manifest.csv")["label"]) == {"sp_thryomanes_bewickii_cnt_united_states"}
    assert_key_nowhere(out, stdout, stderr)


def test_command_errors_are_one_line_and_name_no_key(server, tmp_path, monkeypatch):
    out = tmp_path / "xc"
    common = ("--out", str(out), "--base-url", server.api_url, "--delay", "0", "--retries", "0", "--no-progress")
    monkeypatch.delenv("XENO_CANTO_API_KEY", raising=False)
    code, _, stderr = run_cli("fetch-xc", QUERY, *common)
    assert code == 2 and "XENO_CANTO_API_KEY" in stderr and len(stderr.strip().splitlines()) == 1
    assert server.requests == [] and not out.exists()

    monkeypatch.setenv("XENO_CANTO_API_KEY", KEY)
    code, _, stderr = run_cli("fetch-xc", QUERY, "--out", str(out), "--delay", "0.2")  # the real host
    assert code == 2 and "one request a second" in stderr and server.requests == []

    server.plans["/api/3/recordings"] = [500]
    code, stdout, stderr = run_cli("fetch-xc", QUERY, *common)
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "HTTP 500" in stderr and f"{server.api_url}?query=" in stderr and "key=<hidden>" in stderr
    assert_key_nowhere(tmp_path, stdout, stderr)

    server.pages[1] = b'{"numRecordings": "1", "recordings": [ {"id": '  # cut short
    code, stdout, stderr = run_cli("fetch-xc", QUERY, *common)
    assert code == 2 and "invalid JSON" in stderr and "key=<hidden>" in stderr
    assert_key_nowhere(tmp_path, stdout, stderr)

    server.pages.clear()
    serve(server, [[entry(server, 901)], [entry(server, 902)]])
    server.pages[2] = b"<html>maintenance</html>"
    code, stdout, stderr = run_cli("fetch-xc", QUERY, *common)
    assert code == 1 and "1 fetched" in stdout and "page=2" in stderr and "invalid JSON" in stderr
    assert list(pd.read_csv(out / "manifest.csv")["recording_id"]) == [901]
    assert_key_nowhere(tmp_path, stdout, stderr)


def test_command_exit_status_is_1_when_nothing_could_be_fetched(server, tmp_path, monkeypatch):
    monkeypatch.setenv("XENO_CANTO_API_KEY", KEY)
    serve(server, [[entry(server, 951)]])
    server.plans["/files/951"] = [403]
    code, stdout, stderr = run_cli("fetch-xc", QUERY, "--out", str(tmp_path / "xc"), "--base-url",
                                   server.api_url, "--delay", "0", "--no-progress")
    assert code == 1 and "0 fetched" in stdout and "1 failed" in stdout
    assert "wrenlib fetch-xc: failed XC951: HTTP 403" in stderr
    server.pages.clear()  # the query matches nothing
    code, stdout, _ = run_cli("fetch-xc", "sp:nothing", "--out", str(tmp_path / "empty"), "--base-url",
                              server.api_url, "--delay", "0", "--no-progress")
    assert code == 1 and "0 recording(s) listed" in stdout
