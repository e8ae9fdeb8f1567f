"""What a newcomer reads is true: quoted URLs in every shell example, `gost -h` examples that parse,
the licence files, and docs pages that the README points to."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import tomllib

import pytest

from gostx.cli.main import run_cli
from gostx.cli.usage import COMMAND_EXAMPLES, usage_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md", "bench/README.md", *(f"docs/{n}" for n in sorted(os.listdir(os.path.join(ROOT, "docs"))))]
URL_WITH_AMP = re.compile(r"[a-z0-9+]+://[^\s\"'`]*&")
QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
COMMAND_HINT = re.compile(r"(^|\s)(gost|gostx)\s|(^|\s)-[LF][\s=]")


def _read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def shell_fragments(markdown: str) -> list[str]:
    """Fenced code lines and inline code spans that look like a gost command line."""
    fragments: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            fragments.append(line.split(" # ")[0])
        else:
            fragments += re.findall(r"`([^`]+)`", line)
    return [f for f in fragments if COMMAND_HINT.search(f)]


def unquoted_urls_with_amp(fragment: str) -> list[str]:
    return URL_WITH_AMP.findall(QUOTED.sub('""', fragment))


def test_checker_finds_an_unquoted_url() -> None:
    assert unquoted_urls_with_amp("gost -L tun://:8421?net=10.0.0.1/24&mtu=1400")
    assert not unquoted_urls_with_amp('gost -L "tun://:8421?net=10.0.0.1/24&mtu=1400"')
    assert shell_fragments("text `gost -L x` and `ip route`") == ["gost -L x"]


@pytest.mark.parametrize("rel", DOCS)
def test_every_url_with_an_ampersand_is_quoted(rel: str) -> None:
    bad = [f for f in shell_fragments(_read(rel)) if unquoted_urls_with_amp(f)]
    assert not bad, f"{rel}: quote these URLs (a shell cuts them at '&'): {bad}"


def test_help_lists_tun_tap_tungo_and_a_chain() -> None:
    text = usage_text()
    examples = text.split("Examples")[1]
    for needle in ('"tun://', '"tap://', '"tungo://', " -F "):
        assert needle in examples, needle
    assert not [line for line in examples.splitlines() if unquoted_urls_with_amp(line)]


@pytest.mark.parametrize("command", [c for _, cmds in COMMAND_EXAMPLES for c in cmds])
def test_help_example_parses_with_every_query_key(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(command)
    assert argv[0] == "gost"
    assert run_cli([*argv[1:], "-O", "json"]) == 0
    config = json.loads(capsys.readouterr().out)
    services = json.dumps(config["services"])
    for url in (a for a in argv if "?" in a and "://" in a):
        for pair in url.split("?", 1)[1].split("&"):
            key, value = pair.split("=", 1)
            assert f'"{key}": "{value}"' in services, f"{key}={value} lost from {command}"
    assert len(config.get("chains", [{}])[0].get("hops", [])) == argv.count("-F")


def test_license_is_mit_by_the_gostx_authors() -> None:
    text = _read("LICENSE")
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the gostx authors" in text
    project = tomllib.loads(_read("pyproject.toml"))["project"]
    assert project["license"] == "MIT"
    assert set(project["license-files"]) == {"LICENSE", "THIRD_PARTY"}


def test_third_party_quotes_lwips_licence() -> None:
    text = _read("THIRD_PARTY")
    assert "lwIP 2.1.3" in text
    assert "Copyright (c) 2001, 2002 Swedish Institute of Computer Science." in text
    assert "3. The name of the author may not be used to endorse or promote products" in text
    copying = os.path.join(ROOT, "third_party/lwip/src/COPYING")
    if os.path.exists(copying):  # fetched by the first build: the notice quotes it word for word
        with open(copying, encoding="utf-8") as f:
            clauses = [line.strip(" */\n") for line in f if line.strip(" */\n")]
        notice = " ".join(text.split())
        for clause in clauses:
            assert " ".join(clause.split()) in notice, clause


def test_readme_links_resolve() -> None:
    for rel in ("README.md", *(d for d in DOCS if d.startswith("docs/"))):
        base = os.path.dirname(os.path.join(ROOT, rel))
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _read(rel)):
            if "://" in target:
                continue
            assert os.path.exists(os.path.normpath(os.path.join(base, target))), f"{rel}: broken link {target}"


FILE_REF = re.compile(r"`((?:csrc|gostx|tests|bench|third_party)/[A-Za-z0-9_./*<>-]+)`")


def _exists(ref: str) -> bool:
    """A path the docs name exists (a folder, a glob such as gcm*.c, or, for csrc/ files that move
    between folders, the same file name anywhere under csrc/)."""
    ref = ref.rstrip("/")
    if ref.startswith("third_party/lwip/src"):  # fetched by the first build, never committed
        return True
    if "<" in ref:
        ref = ref.split("<")[0].rstrip("/")
    if glob.glob(os.path.join(ROOT, ref)):
        return True
    if ref.startswith("csrc/"):
        return bool(glob.glob(os.path.join(ROOT, "csrc", "**", os.path.basename(ref)), recursive=True))
    return False


@pytest.mark.parametrize("rel", ["README.md", *(d for d in DOCS if d.startswith("docs/"))])
def test_files_the_docs_name_exist(rel: str) -> None:
    text = _read(rel)
    missing = sorted({ref for ref in FILE_REF.findall(text) if not _exists(ref)})
    assert not missing, f"{rel} names files that are not there (moved? renamed?): {missing}"


def test_the_c_table_names_only_c_files_that_exist() -> None:
    text = _read("README.md")
    section = text.split("## What runs in C")[1].split("\n## ")[0]
    names = re.findall(r"`([a-z0-9_]+\*?\.c)`|`(csrc/[^`]+)`", section)
    refs = [a or b for a, b in names]
    assert len(refs) >= 8, refs
    for ref in refs:
        ref = ref if ref.startswith("csrc/") else f"csrc/{ref}"
        assert _exists(ref) or glob.glob(os.path.join(ROOT, "csrc", "**", os.path.basename(ref)), recursive=True), ref
