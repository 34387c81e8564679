"""What counting needs to know about a tokenizer.json, derived once and cached on disk.

Deriving it costs more than a small `kbpipe seqlen` run does (loading the
`tokenizers` Tokenizer ~0.4 s, re-serialising it ~0.2 s, building tiktoken ranks
and checking 151k merges in Python ~0.5 s). Everything derived depends only on
the file's bytes, so it is stored under `cache_dir/tokenizers/` keyed by the
file's SHA-256 and FACTS_VERSION, and a later run reads it back in a few
hundredths of a second. The `tokenizers` Tokenizer itself is then loaded only
when counting needs it (a vocabulary tiktoken cannot count, `--counter
tokenizers`, `--check`).

The cache holds a pickle that kbpipe wrote itself, in the user's own cache
folder (the same trust as the virtual environment); a file that cannot be read
back is rebuilt, never trusted partly.
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, normalizers

from kbpipe.errors import ConfigError
from kbpipe.io.tables import atomic_output, file_sha256
from kbpipe.tokens.bpe_fast import TiktokenSpec, tiktoken_spec

# Bump when what is derived, or how, changes: old cache files are then ignored.
FACTS_VERSION = 1


@dataclass
class TokenizerFacts:
    path: Path
    sha256: str
    vocab_size: int  # with added tokens, as Tokenizer.get_vocab_size(True)
    nfc: bool  # the normalizer is exactly NFC
    # Added tokens at which raw text can be cut into independently encoded pieces.
    boundaries: tuple[str, ...]
    tiktoken: TiktokenSpec | None
    tiktoken_reason: str  # why not, when tiktoken is None
    cache_dir: Path | None = None
    _tokenizer: Tokenizer | None = field(default=None, repr=False)
    _without_nfc: Tokenizer | None = field(default=None, repr=False)

    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = _load(self.path)
        return self._tokenizer

    def without_nfc(self) -> Tokenizer | None:
        """A copy without the normalizer when that normalizer is exactly NFC (cached as JSON)."""
        if not self.nfc:
            return None
        if self._without_nfc is None:
            cached = self._cache_file("nonfc.json")
            if cached is not None and cached.is_file():
                self._without_nfc = _load(cached)
            else:
                clone = Tokenizer.from_str(self.tokenizer().to_str())
                clone.normalizer = None
                if cached is not None:
                    with atomic_output(cached) as tmp:
                        clone.save(str(tmp))
                self._without_nfc = clone
        return self._without_nfc

    def _cache_file(self, suffix: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / "tokenizers" / f"{self.sha256}-v{FACTS_VERSION}-{suffix}"


def tokenizer_facts(path: Path, cache_dir: Path | None = None) -> TokenizerFacts:
    """The facts of one tokenizer.json: read from the cache, else derived (and cached)."""
    sha = file_sha256(path)
    facts = TokenizerFacts(path, sha, 0, False, (), None, "", cache_dir=cache_dir)
    cached = facts._cache_file(f"py{sys.version_info[0]}{sys.version_info[1]}.pickle")
    if cached is not None and cached.is_file():
        stored = _read_pickle(cached)
        if stored is not None:
            for name, value in stored.items():
                setattr(facts, name, value)
            return facts
    _derive(facts)
    if cached is not None:
        _write_pickle(facts, cached)
    return facts


def _derive(facts: TokenizerFacts) -> None:
    import json

    tokenizer = facts.tokenizer()
    spec = json.loads(tokenizer.to_str())
    facts.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    facts.nfc = isinstance(tokenizer.normalizer, normalizers.NFC)
    facts.boundaries = _boundaries(tokenizer)
    found = tiktoken_spec(spec)
    if isinstance(found, str):
        facts.tiktoken_reason = found
    else:
        facts.tiktoken = found


def _boundaries(tokenizer: Tokenizer) -> tuple[str, ...]:
    """Added tokens matched in the raw text as they are (not normalized, no stripping of
    neighbouring spaces, not whole-word only). If any added tokens overlap, where the
    tokenizer cuts depends on its matching order, so none are used."""
    added = list(tokenizer.get_added_tokens_decoder().values())
    contents = [t.content for t in added if t.content]
    for a in contents:
        for b in contents:
            if a != b and (a in b or any(a.endswith(b[:k]) for k in range(1, len(b)))):
                return ()
    clean = (t for t in added if not (t.lstrip or t.rstrip or t.single_word or t.normalized))
    return tuple(t.content for t in clean if t.content)


_STORED = ("vocab_size", "nfc", "boundaries", "tiktoken", "tiktoken_reason")


def _write_pickle(facts: TokenizerFacts, dest: Path) -> None:
    data = {name: getattr(facts, name) for name in _STORED}
    with atomic_output(dest) as tmp:
        tmp.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


def _read_pickle(path: Path) -> dict[str, Any] | None:
    try:
        data = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None
    if not isinstance(data, dict) or set(data) != set(_STORED):
        return None
    return data


def _load(path: Path) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception for malformed files
        raise ConfigError(f"{path}: not a tokenizers JSON file ({exc})") from exc
    # A tokenizer.json may carry truncation or padding settings; either would
    # make the counts lie about how long a sample really is.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
