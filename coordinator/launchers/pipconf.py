"""The user's pip settings, carried over to uv, which does not read pip's configuration: indexes,
find-links, trusted hosts, constraints, the certificate bundle and proxies. Mirrors and
air-gapped setups configured for pip then keep working when uv makes an environment."""
import ast
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

# pip's precedence, lowest first: its config files' [global], then [install], then PIP_* variables
_SCOPES = ("global", "install", ":env:")


@dataclass
class PipSettings:
    index_url: Optional[str] = None
    extra_index_urls: List[str] = field(default_factory=list)
    find_links: List[str] = field(default_factory=list)
    trusted_hosts: List[str] = field(default_factory=list)
    constraints: List[str] = field(default_factory=list)
    cert: Optional[str] = None
    proxy: Optional[str] = None
    timeout: Optional[str] = None  # seconds
    no_index: bool = False

    @classmethod
    def parse(cls, listing: str) -> "PipSettings":
        """From the lines of `pip config list` (`scope.key='value'`; `:env:` holds PIP_* variables)."""
        found: Dict[str, Dict[str, str]] = {}
        for line in listing.splitlines():
            name, sep, value = line.partition("=")
            scope, _, key = name.strip().rpartition(".")
            if not sep or scope not in _SCOPES:
                continue
            try:
                text = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                text = value.strip().strip("'\"")
            found.setdefault(key.replace("_", "-"), {})[scope] = str(text)

        def get(key: str) -> Optional[str]:
            values = found.get(key, {})
            return next((values[s] for s in reversed(_SCOPES) if s in values), None)

        def many(key: str) -> List[str]:
            return (get(key) or "").split()

        return cls(index_url=get("index-url"), extra_index_urls=many("extra-index-url"),
                   find_links=many("find-links"), trusted_hosts=many("trusted-host"),
                   constraints=many("constraint"), cert=get("cert"), proxy=get("proxy"),
                   timeout=get("default-timeout") or get("timeout"),
                   no_index=(get("no-index") or "").lower() in ("1", "true", "yes", "on"))

    def uv_arguments(self) -> List[str]:
        """`uv pip install` options that say what these settings say to pip."""
        args: List[str] = []
        if self.no_index:
            args.append("--no-index")
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for place in self.find_links:
            args += ["--find-links", place]
        for host in self.trusted_hosts:
            args += ["--allow-insecure-host", host]
        for path in self.constraints:
            args += ["--constraint", path]
        if self.extra_index_urls or self.find_links:  # pip takes the best version of every index; uv the first index's
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def uv_environment(self) -> Dict[str, str]:
        """Variables for uv: the certificate bundle (uv trusts its own roots otherwise), the proxy, the timeout."""
        env: Dict[str, str] = {}
        if self.cert:
            env["SSL_CERT_FILE"] = self.cert
        if self.proxy:
            env["HTTPS_PROXY"] = env["HTTP_PROXY"] = self.proxy
        if self.timeout:
            env["UV_HTTP_TIMEOUT"] = self.timeout
        return env


def read(environ: Optional[Mapping[str, str]] = None) -> PipSettings:
    """The settings pip would use now: `pip config list`, which includes the PIP_* variables; the
    variables alone when pip cannot be run."""
    environ = os.environ if environ is None else environ
    listing = ""
    # this Python's pip, else the one on PATH (a virtualenv made by uv has none)
    for pip in ([sys.executable, "-m", "pip"], [shutil.which("pip") or "pip"]):
        try:
            listing = subprocess.run([*pip, "config", "list"], capture_output=True, text=True, env=dict(environ),
                                     timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if listing.strip():
            break
    if not listing.strip():
        listing = "\n".join(f":env:.{k[4:].lower().replace('_', '-')}={v!r}"
                            for k, v in environ.items() if k.startswith("PIP_"))
    return PipSettings.parse(listing)
