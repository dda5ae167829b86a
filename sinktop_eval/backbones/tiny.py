"""Tiny random-weight twins of the 7B checkpoints, built offline and saved like real checkpoints.

A twin is the same transformers class with a miniature config that keeps the real structure (Qwen:
window attention + full-attention blocks, 2x2 spatial merge, temporal patches of 2 frames, M-RoPE;
LLaVA-OV: a SigLIP tower read at ``vision_feature_layer``, projector, bilinear 2x2 pooling, one
image_newline per video; LLaVA-Video: the same class with LLaVA-NeXT's video layout keys in its
config). It is written to a directory with ``save_pretrained`` and loaded back through the very same
``from_pretrained`` path as the 7B models, so tests exercise the real loading code. Deterministic from
a seed; built in about a second; no network.

Cache: ``$SINKTOP_CACHE/tiny/<name>-v<BUILDER_VERSION>-seed<seed>/`` (default ``~/.cache/sinktop_eval``).
Bump ``BUILDER_VERSION`` whenever a builder changes, so stale twins are never reused. The real-shape
twins (``real_shape.py``, gigabytes each) are registered here too and cached under their own root.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from .. import files

BUILDER_VERSION = 1
REAL_SHAPE_VERSION = 1  # bump when a real-shape builder or its facts change

# The chat layouts of the real checkpoints (system prompt, role markers, where the video goes).
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'video' -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
LLAVA_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}{%- else -%}"
    "{%- for item in message['content'] if item['type'] == 'image' -%}{{ '<image>\\n' }}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'video' -%}{{ '<video>\\n' }}{%- endfor -%}"
    "{%- for item in message['content'] if item['type'] == 'text' -%}{{ item['text'] }}{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>")
LLAVA_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>")
VOCAB_SIZE = 320  # 256 byte symbols + special tokens, padded like real vocabularies


def cache_root() -> Path:
    """Where twins live: ``$SINKTOP_CACHE/tiny`` or ``~/.cache/sinktop_eval/tiny``."""
    return files.cache_root() / "tiny"


def tiny_checkpoint(name: str, seed: int = 0, **options) -> Path:
    """Directory of the twin ``name`` (built on first use; later calls reuse it).

    ``options`` go to the builder (the real-shape twins take ``layers`` / ``vision_layers``) and are part
    of the cache key.
    """
    if name not in BUILDERS:
        raise KeyError(name)
    if name.startswith("real_shape_"):
        from .real_shape import cache_root as real_shape_root
        from .real_shape import resolve_depths

        options = resolve_depths(name, **options)
        suffix = "".join(f"-{key[0].upper()}{value}" for key, value in options.items())  # e.g. -L2-V2
        root, version = real_shape_root(), REAL_SHAPE_VERSION
    else:
        if options:
            raise ValueError(f"{name} takes no build options (got {sorted(options)}); layers= and vision_layers= "
                             "apply to the real_shape_* twins")
        suffix, root, version = "", cache_root(), BUILDER_VERSION
    target = root / f"{name}{suffix}-v{version}-seed{seed}"

    def complete(path: Path) -> bool:
        return (path / "config.json").is_file() and (path / ".complete").is_file()

    def build(staging: Path) -> None:
        BUILDERS[name](staging, seed, **options)
        (staging / ".complete").write_text(f"builder v{version} seed {seed} {options}\n")

    if complete(target):
        return target
    # built aside and renamed into place: a concurrent builder either wins or finds ours; an incomplete
    # leftover is replaced
    return files.build_directory(target, build, complete=complete)


# -- tokenizer ---------------------------------------------------------------------------------------
def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes 0..255, in byte order."""
    printable = set(range(ord("!"), ord("~") + 1)) | set(range(ord("¡"), ord("¬") + 1)) | set(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def byte_level_tokenizer(specials: tuple[str, ...], chat_template: str):
    """A Qwen2 byte-level tokenizer with no merges: every byte is a token, plus the special tokens."""
    from transformers import Qwen2Tokenizer

    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", additional_special_tokens=list(specials[1:]))
    tokenizer.chat_template = chat_template
    assert len(tokenizer) <= VOCAB_SIZE
    return tokenizer


def _ids(tokenizer, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


# -- Qwen2.5-VL twin ---------------------------------------------------------------------------------
def build_tiny_qwen25vl(directory: Path, seed: int = 0) -> None:
    """Qwen2_5_VLForConditionalGeneration in miniature.

    Vision: 4 blocks of width 64 (4 heads), window attention in blocks 0 and 2, full attention in
    blocks 1 and 3 (the last block is full, as in the 7B's 7/15/23/31), 14 px patches, 2x2 merge,
    temporal patch 2, 56 px windows (2x2 merge units). Frames are resized to 224x224 -> an 8x8 token
    grid per temporal slice. Text: 2 decoder layers of width 64, GQA 4/2 heads, M-RoPE sections [2, 3, 3].
    """
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = byte_level_tokenizer(QWEN_SPECIALS, QWEN_CHAT_TEMPLATE)
    eos, _, im_end, vstart, vend, image, video = _ids(tokenizer, *QWEN_SPECIALS)
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 4, "hidden_size": 64, "intermediate_size": 96, "num_heads": 4, "out_hidden_size": 64,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
            "fullatt_block_indexes": [1, 3], "tokens_per_second": 2, "hidden_act": "silu",
        },
        text_config={
            "vocab_size": VOCAB_SIZE, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": eos, "eos_token_id": im_end, "pad_token_id": eos,
        },
        image_token_id=image, video_token_id=video, vision_start_token_id=vstart, vision_end_token_id=vend,
    )
    _save_model(directory, seed, Qwen2_5_VLForConditionalGeneration, config,
                GenerationConfig(bos_token_id=eos, eos_token_id=[im_end, eos], pad_token_id=eos, do_sample=False))
    pixels = 224 * 224
    common = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size={"shortest_edge": pixels, "longest_edge": pixels}, **common),
        video_processor=Qwen2VLVideoProcessor(size={"shortest_edge": pixels, "longest_edge": pixels}, **common),
        tokenizer=tokenizer, chat_template=QWEN_CHAT_TEMPLATE,
    )
    processor.save_pretrained(directory)


# -- LLaVA-OneVision twin ----------------------------------------------------------------------------
def build_tiny_llava_ov(directory: Path, seed: int = 0) -> None:
    """LlavaOnevisionForConditionalGeneration in miniature.

    SigLIP: 4 layers of width 64 (4 heads), 104 px input, 8 px patches -> 13x13 patches (odd, like the
    7B's 27x27), read at vision_feature_layer -2; projector to width 64; bilinear pooling 13x13 -> 7x7 =
    49 tokens per frame; one image_newline per video. Normalisation 0.5/0.5 like the checkpoint.
    Text: Qwen2 with 2 layers of width 64, GQA 4/2 heads.
    """
    from transformers import (
        GenerationConfig,
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tokenizer = byte_level_tokenizer(LLAVA_SPECIALS, LLAVA_CHAT_TEMPLATE)
    eos, _, im_end, image, video = _ids(tokenizer, *LLAVA_SPECIALS)
    side, patch = 104, 8
    config = LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 4, "num_attention_heads": 4, "image_size": side, "patch_size": patch,
            "vision_use_head": False,
        },
        text_config={
            "model_type": "qwen2", "vocab_size": VOCAB_SIZE, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
            "bos_token_id": eos, "eos_token_id": im_end, "pad_token_id": eos,
        },
        image_token_index=image, video_token_index=video, vision_feature_layer=-2,
        vision_feature_select_strategy="full", image_grid_pinpoints=[[side, side], [side, 2 * side], [2 * side, side]],
    )
    _save_model(directory, seed, LlavaOnevisionForConditionalGeneration, config,
                GenerationConfig(bos_token_id=eos, eos_token_id=[im_end, eos], pad_token_id=eos, do_sample=False))
    norm = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": side, "width": side},
                                                     image_grid_pinpoints=config.image_grid_pinpoints, **norm),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": side, "width": side}, **norm),
        tokenizer=tokenizer, num_image_tokens=(side // patch) ** 2, vision_feature_select_strategy="full",
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    processor.save_pretrained(directory)


# -- LLaVA-Video twin ---------------------------------------------------------------------------------
def build_tiny_llava_video(directory: Path, seed: int = 0) -> None:
    """The LLaVA-OV twin's architecture (LLaVA-Video-7B is LLaVA-OV-7B's) with LLaVA-NeXT's video layout
    keys in its config: ``average`` pooling with stride 2 and a newline after every grid row.

    On the 13x13 patch grid average pooling keeps floor(13/2)^2 = 6x6 = 36 tokens per frame where the HF
    class's bilinear pooling gives ceil(13/2)^2 = 49: the 169-vs-196 difference of the 7B (27x27) in
    miniature. Each frame then carries 6 grid newlines.
    """
    build_tiny_llava_ov(directory, seed)
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config.update(mm_spatial_pool_mode="average", mm_spatial_pool_stride=2, mm_newline_position="grid")
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _save_model(directory: Path, seed: int, model_class, config, generation_config) -> None:
    """Random weights from ``seed``, saved as safetensors.

    Matrices get N(0, 1/fan_in) (embeddings N(0, 1)) instead of HF's N(0, 0.02): unit-scale activations
    make the twin's attention maps and logits non-flat, so rankings, sink scores and greedy decoding
    are not decided by ties.
    """
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = model_class(config).eval()
        with torch.no_grad():
            for module in model.modules():
                weight = getattr(module, "weight", None)
                if isinstance(module, torch.nn.Embedding):
                    weight.normal_(0.0, 1.0)
                elif isinstance(weight, torch.nn.Parameter) and weight.dim() >= 2:
                    weight.normal_(0.0, weight[0].numel() ** -0.5)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = generation_config
    model.save_pretrained(directory)


def _real_shape(name: str) -> Callable[..., None]:
    def build(directory: Path, seed: int = 0, **options) -> None:
        from . import real_shape

        real_shape.BUILDERS[name](directory, seed, **options)
    return build


BUILDERS: dict[str, Callable[..., None]] = {
    "tiny_qwen25vl": build_tiny_qwen25vl,
    "tiny_llava_ov": build_tiny_llava_ov,
    "tiny_llava_video": build_tiny_llava_video,
    **{name: _real_shape(name) for name in ("real_shape_qwen25vl", "real_shape_llava_ov", "real_shape_llava_video")},
}
