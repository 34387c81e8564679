"""Chat-template rendering and tokenizer loading (kbpipe.tokens.chat).

A tiny byte-level BPE is trained here on five words, so every count is exact
and checkable by hand: each of `tile kernel user assistant system` is one
token (with or without a leading space), each newline is one token, and each
special token (`<|im_start|>`, `<|im_end|>`, `<think>`, `</think>`) is one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from kbpipe.errors import ConfigError, InputError
from kbpipe.tokens.chat import ChatTokenizer, prepare_messages, render_chat
from kbpipe.tokens.loading import load_chat_tokenizer

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("tile", "kernel", "user", "assistant", "system")

# The parts of Qwen3's template that matter for counting: reasoning from
# `reasoning_content` or inline <think> tags, a think block only on assistant
# turns after the last user turn, special tokens from the config (eos_token).
QWEN3_STYLE = """\
{%- if messages[0].role not in ['system', 'user'] %}
    {{- raise_exception('Conversation must start with a system or user message') }}
{%- endif %}
{%- set ns = namespace(last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- if message.role == 'user' %}
        {%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}
        {%- break %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role in ['system', 'user'] %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + eos_token + '\\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- elif '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {{- '<|im_start|>assistant\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
        {%- else %}
            {{- '<|im_start|>assistant\\n' + content }}
        {%- endif %}
        {{- eos_token + '\\n' }}
    {%- endif %}
{%- endfor %}
"""  # noqa: E501


def train_tiny_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([f"{w} {w} {w}" for w in WORDS] * 20, trainer)
    # As in Qwen3: matched in the raw text, not special.
    tok.add_tokens(
        [AddedToken(t, normalized=False, special=False) for t in ("<think>", "</think>")]
    )
    return tok


def write_tiny_tokenizer(
    folder: Path, *, template: str | None = QWEN3_STYLE, **config: Any
) -> Path:
    """A tokenizer folder as the Hub has it: tokenizer.json + tokenizer_config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    train_tiny_tokenizer().save(str(folder / "tokenizer.json"))
    cfg: dict[str, Any] = {
        # Old-style AddedToken dict: the template must still get the plain string.
        "eos_token": {"__type": "AddedToken", "content": "<|im_end|>", "special": True},
        "pad_token": "<|endoftext|>",
        "bos_token": None,
        **config,
    }
    if template is not None:
        cfg["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_tokenizer(tmp_path_factory.mktemp("tiny") / "tok")


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> ChatTokenizer:
    return load_chat_tokenizer(tiny_dir)


def conversation(reasoning: str | None = "tile kernel tile", **assistant: Any) -> list[dict]:
    # Arrow structs give every message every field, so nulls appear on both sides.
    return [
        {"role": "user", "content": "tile tile", "reasoning": None},
        {"role": "assistant", "content": "kernel", "reasoning": reasoning, **assistant},
    ]


# -- rendering -----------------------------------------------------------------------


def test_reasoning_key_is_rendered_inside_think_tags(tiny: ChatTokenizer) -> None:
    assert tiny.render(conversation()) == (
        "<|im_start|>user\ntile tile<|im_end|>\n"
        "<|im_start|>assistant\n<think>\ntile kernel tile\n</think>\n\nkernel<|im_end|>\n"
    )


def test_plain_rendering_would_drop_the_reasoning(tiny: ChatTokenizer) -> None:
    # The seed's bug: the template reads only reasoning_content, so `reasoning` vanishes.
    plain = render_chat(tiny.chat_template, conversation(), tiny.special_tokens)
    assert "tile kernel tile" not in plain
    assert "tile kernel tile" in tiny.render(conversation())


def test_thinking_key_is_read_too(tiny: ChatTokenizer) -> None:
    messages = conversation(reasoning=None, thinking="kernel kernel")
    assert "<think>\nkernel kernel\n</think>" in tiny.render(messages)


def test_reasoning_drop_renders_an_empty_think_block(tiny: ChatTokenizer) -> None:
    assert tiny.render(conversation(), reasoning="drop") == (
        "<|im_start|>user\ntile tile<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nkernel<|im_end|>\n"
    )


def test_inline_think_content_is_counted_and_can_be_dropped(tiny: ChatTokenizer) -> None:
    inline = conversation(reasoning=None, content="<think>\ntile tile\n</think>\n\nkernel")
    assert "<think>\ntile tile\n</think>\n\nkernel" in tiny.render(inline)
    assert tiny.render(inline, reasoning="drop") == tiny.render(conversation(), reasoning="drop")


def test_null_keys_are_dropped_before_rendering() -> None:
    template = (
        "{% for m in messages %}{% if m.name is defined %}[{{ m.name }}]{% endif %}{% endfor %}"
    )
    messages = [{"role": "user", "content": "a", "name": None}, {"role": "user", "name": "bo"}]
    assert render_chat(template, prepare_messages(messages)) == "[bo]"
    # Without the drop the first message would render as "[None]".
    assert render_chat(template, messages) == "[None][bo]"


def test_explicit_reasoning_content_wins_over_reasoning() -> None:
    [msg] = prepare_messages([{"role": "assistant", "reasoning_content": "a", "reasoning": "b"}])
    assert msg["reasoning_content"] == "a"


def test_tojson_keeps_non_ascii_and_html_characters() -> None:
    out = render_chat("{{ messages[0].args | tojson }}", [{"args": {"q": "é <b> & ü"}}])
    assert out == '{"q": "é <b> & ü"}'
    assert render_chat("{{ messages[0] | tojson(indent=2) }}", [{"a": 1}]) == '{\n  "a": 1\n}'


def test_strftime_now_loop_controls_and_trim_blocks() -> None:
    template = (
        "{{ strftime_now('%Y') }}\n"
        "{% for m in messages %}\n  {% if loop.index > 2 %}{% break %}{% endif %}\n"
        "{% if m == 'skip' %}{% continue %}{% endif %}{{ m }};\n{% endfor %}"
    )
    out = render_chat(template, ["a", "skip", "c"])
    year, rest = out.split("\n", 1)
    assert year.isdigit() and len(year) == 4
    assert rest == "a;\n"


def test_raise_exception_surfaces_as_template_error(tiny: ChatTokenizer) -> None:
    with pytest.raises(jinja2.TemplateError, match="must start with a system or user"):
        tiny.render([{"role": "assistant", "content": "kernel"}])


def test_generation_blocks_render_their_body() -> None:
    template = "{% for m in messages %}{% generation %}<{{ m }}>{% endgeneration %}{% endfor %}"
    assert render_chat(template, ["a", "b"]) == "<a><b>"


def test_sandbox_refuses_unsafe_attribute_access() -> None:
    with pytest.raises(jinja2.exceptions.SecurityError):
        render_chat("{{ messages.__class__.__subclasses__() }}", [])


# -- counting ------------------------------------------------------------------------


def test_counts_are_exact(tiny: ChatTokenizer) -> None:
    # 6 special tokens + user\n tile tile (4) + \n (1) + assistant\n (2)
    # + \n tile kernel tile \n (5) + \n \n kernel (3) + \n (1) = 22; dropped: 19.
    text = tiny.render(conversation())
    assert tiny.count([text]) == [22]
    assert tiny.count([tiny.render(conversation(), reasoning="drop")]) == [19]


def test_count_conversations_splits_out_reasoning(tiny: ChatTokenizer) -> None:
    rows = [
        conversation(),
        conversation(reasoning=None),
        conversation(reasoning=" ".join(["tile"] * 40)),
        conversation(reasoning=None, content="<think>\ntile tile\n</think>\n\nkernel"),
    ]
    assert tiny.count_conversations(rows) == ([22, 19, 59, 21], [3, 0, 40, 2])
    assert tiny.count_conversations(rows, reasoning="drop") == ([19, 19, 19, 19], [0, 0, 0, 0])


PIECES = ["tile", " kernel", "\n", "\n\n", " ", "é", "<think>", "</think>", "<|im_end|>", "<t"]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
            st.one_of(st.none(), st.lists(st.sampled_from(PIECES), max_size=12).map("".join)),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_count_conversations_equals_encoding_each_rendering(
    tiny: ChatTokenizer, rows: list[tuple[str, str | None]]
) -> None:
    # Whatever the contents (added tokens, stray newlines), counting the shared
    # parts once must give what encoding both renderings in full gives.
    convs = [conversation(reasoning=r, content=c) for c, r in rows]
    full = tiny.count([tiny.render(m) for m in convs])
    bare = tiny.count([tiny.render(m, reasoning="drop") for m in convs])
    expected = (full, [f - b for f, b in zip(full, bare, strict=True)])
    assert tiny.count_conversations(convs) == expected


def test_count_conversations_names_the_row_the_template_refused(tiny: ChatTokenizer) -> None:
    rows = [conversation(), [{"role": "assistant", "content": "kernel"}]]
    with pytest.raises(InputError, match="example_id 7: chat template failed: Conversation must"):
        tiny.count_conversations(rows, labels=["example_id 6", "example_id 7"])


def test_special_tokens_are_single_tokens_and_not_added_again(tiny: ChatTokenizer) -> None:
    assert tiny.count(["<|im_start|><|im_end|><think></think>"]) == [4]
    assert tiny.count([]) == []


def test_nfc_normalizer_still_applies_to_text_that_needs_it(tmp_path: Path) -> None:
    folder = write_tiny_tokenizer(tmp_path / "tok")
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    raw.normalizer = normalizers.NFC()
    raw.save(str(folder / "tokenizer.json"))
    tok = load_chat_tokenizer(folder)
    composed, decomposed = "tile caf\u00e9", "tile cafe\u0301"
    texts = [composed, decomposed, "<|im_start|>tile", decomposed + " kernel"]
    expected = [len(raw.encode(t, add_special_tokens=False)) for t in texts]
    assert tok.count(texts) == expected
    assert expected[0] == expected[1]  # decomposed text was normalized before counting


# -- loading ---------------------------------------------------------------------------


def test_special_tokens_come_from_the_config(tiny: ChatTokenizer) -> None:
    assert tiny.special_tokens == {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}


def test_tokenizer_json_with_separate_template_file(tmp_path: Path, tiny_dir: Path) -> None:
    tok_file = tmp_path / "only" / "tokenizer.json"
    tok_file.parent.mkdir()
    tok_file.write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m.role }}:{{ m.content }}|{% endfor %}")
    tok = load_chat_tokenizer(tok_file, chat_template=template)
    assert tok.render([{"role": "user", "content": "tile"}]) == "user:tile|"
    assert tok.special_tokens == {}


def test_chat_template_file_overrides_the_config(tmp_path: Path, tiny_dir: Path) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{{ eos_token }}")
    assert load_chat_tokenizer(tiny_dir, chat_template=template).render([]) == "<|im_end|>"


def test_folder_with_chat_template_jinja(tmp_path: Path) -> None:
    folder = write_tiny_tokenizer(tmp_path / "tok", template=None)
    (folder / "chat_template.jinja").write_text("{{ messages | length }}")
    assert load_chat_tokenizer(folder).render([{"role": "user"}] * 3) == "3"


def test_named_templates_use_default(tmp_path: Path) -> None:
    named = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    folder = write_tiny_tokenizer(tmp_path / "tok", template=None, chat_template=named)
    assert load_chat_tokenizer(folder).render([]) == "D"


def test_config_without_template_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_tiny_tokenizer(tmp_path / "tok", template=None)
    with pytest.raises(ConfigError, match=r"no chat template .*--chat-template"):
        load_chat_tokenizer(folder)


def test_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_chat_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"tokenizer.json not found"):
        load_chat_tokenizer(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"chat template .*missing.jinja: no such file"):
        load_chat_tokenizer(
            write_tiny_tokenizer(tmp_path / "tok"), chat_template=tmp_path / "missing.jinja"
        )


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    folder = write_tiny_tokenizer(tmp_path / "tok", template="{% for m in messages %}")
    with pytest.raises(ConfigError, match="chat template line 1"):
        load_chat_tokenizer(folder)
    (folder / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="tokenizer_config.json: not a readable JSON"):
        load_chat_tokenizer(folder)
    bad = write_tiny_tokenizer(tmp_path / "bad")
    (bad / "tokenizer.json").write_text('{"version": "1.0"}')
    with pytest.raises(ConfigError, match="not a tokenizers JSON file"):
        load_chat_tokenizer(bad)


def test_truncation_in_tokenizer_json_is_ignored(tmp_path: Path) -> None:
    folder = write_tiny_tokenizer(tmp_path / "tok")
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length=5)
    tok.save(str(folder / "tokenizer.json"))
    assert load_chat_tokenizer(folder).count(["tile" + " tile" * 19]) == [20]


def _hub_cache(cache: Path, repo: str, source: Path) -> None:
    """Lay out files the way huggingface_hub caches a model repo snapshot."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(sha)
    snapshot = repo_dir / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (snapshot / name).write_bytes((source / name).read_bytes())


def _load_in_subprocess(spec: str, cache: Path) -> subprocess.CompletedProcess[str]:
    # huggingface_hub reads HF_HUB_OFFLINE and the cache path at import, so use a fresh process.
    code = (
        "import sys\nfrom kbpipe.tokens.loading import load_chat_tokenizer\n"
        "t = load_chat_tokenizer(sys.argv[1])\n"
        "print(t.count([t.render([{'role': 'user', 'content': 'tile tile'}])])[0])"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", code, spec], capture_output=True, text=True, env=env, timeout=60
    )


def test_hub_id_loads_from_the_cache_offline(tmp_path: Path, tiny_dir: Path) -> None:
    _hub_cache(tmp_path / "hub", "acme/tiny-qwen", tiny_dir)
    done = _load_in_subprocess("acme/tiny-qwen", tmp_path / "hub")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"  # <|im_start|> user \n tile Ġtile <|im_end|> \n
    missing = _load_in_subprocess("acme/not-cached", tmp_path / "hub")
    assert missing.returncode != 0
    assert "not in the Hub cache" in missing.stderr


# -- the real Qwen3 tokenizer (fetched by `make tokenizer`) ------------------------------------

QWEN3_DIR = Path(os.environ.get("KBPIPE_QWEN3_TOKENIZER_DIR", ROOT / ".cache/tokenizers/qwen3"))
needs_qwen3 = pytest.mark.skipif(
    not (QWEN3_DIR / "tokenizer.json").is_file(),
    reason=f"Qwen3 tokenizer not in {QWEN3_DIR}; `make tokenizer` fetches it",
)


@needs_qwen3
def test_real_qwen3_template_and_tokens() -> None:
    tok = load_chat_tokenizer(QWEN3_DIR)
    messages = [
        {"role": "user", "content": "Write a Triton kernel.", "reasoning": None},
        {"role": "assistant", "content": "<answer>ok</answer>", "reasoning": "Think about tiles."},
    ]
    text = tok.render(messages)
    assert text == (
        "<|im_start|>user\nWrite a Triton kernel.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nThink about tiles.\n</think>\n\n"
        "<answer>ok</answer><|im_end|>\n"
    )
    ids = tok.tokenizer.encode(text, add_special_tokens=False).ids
    # <|im_start|>, <|im_end|>, <think>, </think> are single tokens with Qwen3's ids.
    assert [ids.count(i) for i in (151644, 151645, 151667, 151668)] == [2, 2, 1, 1]
    assert len(ids) == 31
    # With reasoning the think block is "Ċ Think Ġabout Ġtiles .Ċ" (5 tokens), without
    # it "ĊĊ" (1): the reasoning adds 4.
    assert tok.count_conversations([messages]) == ([31], [4])
