"""What ``wordgpt serve`` may do: its limits and addresses, in one dataclass that the command
line's flags take their defaults from (a plain module: the command line reads it without the
server's packages)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServeConfig:
    """The server's limits."""

    runs_dir: Path
    max_new_tokens: int = 1000
    """The most tokens one request may ask for."""
    max_prompt_chars: int = 2000
    """The longest prompt accepted."""
    time_limit_s: float = 60.0
    """A generation stops after this many seconds."""
    max_active: int = 2
    """Generations running at once; one more gets a 503 "busy"."""
    max_models: int = 4
    """Runs kept loaded at once; the one used longest ago is let go for another."""
    body_timeout_s: float = 30.0
    """A request's body must arrive within this many seconds of its headers (a 408 then)."""
    token_delay_s: float = 0.0
    """A pause after each token (for demonstrations and the browser test)."""
    host: str = "127.0.0.1"
    """The address the server listens on: requests must name it (or localhost) as Host."""
    allowed_hosts: tuple[str, ...] = ()
    """More names this server may be reached by (its machine's name, for --host 0.0.0.0)."""

    def hosts(self) -> set[str]:
        """Every Host a request may name: localhost's names, the address listened on, and
        the allowed ones."""
        return {"localhost", "127.0.0.1", "::1", self.host.strip("[]"), *self.allowed_hosts}
