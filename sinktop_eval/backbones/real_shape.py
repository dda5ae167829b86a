"""Real-shape twins: the published 7B architectures and processor settings, random weights, fewer layers.

A real-shape twin is what the 7B checkpoint would be with random weights: the same transformers class,
every width, head count, patch / merge size, pooling, image size, pixel bound and vocabulary of the
published checkpoint (written below as facts, with where they come from), except that the number of
transformer layers is a setting: ``layers`` decoder layers and ``vision_layers`` vision blocks (default
2 each; ``None`` = full depth: 28 and 32 for Qwen2.5-VL, 28 and 26 for the LLaVA models). Like the tiny
twins it is saved with ``save_pretrained`` (bfloat16, as the real checkpoints) and loaded back through
``from_pretrained``. Reducing depth leaves every per-token cost and every token count unchanged; the
analytic FLOPs scale with it (``flops.py`` reads the layer count from the loaded config).

What is not the real thing: the tokenizer is the twins' byte-level one (one token per byte, the real
chat layout and special tokens; their ids differ from the real ones and the config points at them), so
a prompt is a few dozen tokens longer than with the real BPE vocabulary; the weights are random.

Facts (config.json / preprocessor_config.json of the public checkpoints):
- Qwen/Qwen2.5-VL-7B-Instruct. Text: hidden 3584, MLP 18944, 28 layers, 28 heads, 4 KV heads, vocab
  152064, rope_theta 1e6, mrope_section [16, 24, 24], max_position_embeddings 128000, rms_norm_eps 1e-6,
  untied embeddings. Vision (config lists hidden_size 1280, in_chans 3, spatial_patch_size 14,
  tokens_per_second 2; the rest are the class defaults of the release): 32 blocks of width 1280, 16
  heads, MLP 3420, SiLU, patch 14, temporal patch 2, 2x2 merge to out_hidden_size 3584, window 112 px,
  full-attention blocks 7/15/23/31. Processor: min_pixels 3136, max_pixels 12845056, CLIP mean/std;
  the repo has no video_preprocessor_config.json, so transformers' video processor reads the same
  file (same pixel bounds).
- llava-hf/llava-onevision-qwen2-7b-ov-hf. Text Qwen2-7B-Instruct (as above, vocab 152128 after the
  converter's resize, max_position_embeddings 32768, plain RoPE). Vision SigLIP-so400m-patch14-384 with
  the last of its 27 layers dropped: 26 layers of width 1152, 16 heads, MLP 4304, gelu_pytorch_tanh,
  LayerNorm eps 1e-6, no pooling head, 384 px, 14 px patches (27x27). vision_feature_layer -1 (the
  last kept layer), strategy "full", 2-layer GELU projector with bias, image_newline parameter,
  anyres_max_9 with the 36 pinpoints 384*(i, j), i, j in 1..6. Processor: 384x384, mean = std = 0.5,
  bicubic.
- LLaVA-Video-7B-Qwen2 in HF format (Isotr0py/LLaVA-Video-7B-Qwen2-hf): converted by transformers'
  LLaVA-OneVision converter with the same text / vision configs, so the same numbers as LLaVA-OV. Its
  video layout is not in the converted config (see ``llava_video.py``); this twin carries average
  pooling with stride 2 and grid newlines, lmms-eval ``llava_vid``'s defaults (the setting the
  FastVID / HoliTom evaluations of LLaVA-Video use): 13x13 = 169 tokens + 13 newlines per frame. The
  original lmms-lab config's own values were not readable from here (its training script sets
  ``--mm_newline_position grid --mm_spatial_pool_stride 2`` and no pool mode, whose LLaVA-NeXT default
  is bilinear, i.e. 196); a real run reads them from the checkpoint (or settings) and records them.

Cache: ``$SINKTOP_REAL_SHAPE_CACHE`` if set, else ``$SINKTOP_CACHE/real_shape``, else
``~/.cache/sinktop_eval/real_shape``; a twin is several GB (about 3.3 GB at the default depth), built
once (about half a minute on 2 CPU cores) and reused, keyed by name, depths, builder version and seed.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import files
from .tiny import (
    LLAVA_CHAT_TEMPLATE,
    LLAVA_SPECIALS,
    QWEN_CHAT_TEMPLATE,
    QWEN_SPECIALS,
    _ids,
    byte_level_tokenizer,
)

DEFAULT_LAYERS = 2
DEFAULT_VISION_LAYERS = 2

QWEN25VL_7B_TEXT: dict[str, Any] = {
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "hidden_act": "silu", "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": 32768,
    "max_window_layers": 28,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
}
QWEN25VL_7B_VISION: dict[str, Any] = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "hidden_act": "silu", "in_channels": 3,
}
QWEN25VL_7B_PIXELS = {"min_pixels": 3136, "max_pixels": 12845056}  # preprocessor_config.json

QWEN2_7B_TEXT_LLAVA: dict[str, Any] = {
    "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
    "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152128, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": False,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
}
SIGLIP_SO400M_26: dict[str, Any] = {
    "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 26,
    "num_attention_heads": 16, "image_size": 384, "patch_size": 14, "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6, "vision_use_head": False,
}
LLAVA_OV_7B: dict[str, Any] = {
    "vision_feature_layer": -1, "vision_feature_select_strategy": "full", "projector_hidden_act": "gelu",
    "multimodal_projector_bias": True, "use_image_newline_parameter": True, "vision_aspect_ratio": "anyres_max_9",
    "image_grid_pinpoints": [[384 * i, 384 * j] for i in range(1, 7) for j in range(1, 7)],
    "tie_word_embeddings": False,
}
LLAVA_NORMALISATION = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
LLAVA_VIDEO_LAYOUT = {"mm_spatial_pool_mode": "average", "mm_spatial_pool_stride": 2, "mm_newline_position": "grid"}

FULL_DEPTH = {  # (decoder layers, vision layers) of the 7B checkpoints
    "real_shape_qwen25vl": (28, 32),
    "real_shape_llava_ov": (28, 26),
    "real_shape_llava_video": (28, 26),
}


def cache_root() -> Path:
    explicit = os.environ.get("SINKTOP_REAL_SHAPE_CACHE")
    if explicit:
        return Path(explicit)
    return files.cache_root() / "real_shape"


def resolve_depths(name: str, layers: Any = DEFAULT_LAYERS, vision_layers: Any = DEFAULT_VISION_LAYERS) -> dict[str, int]:
    """{"layers": L, "vision_layers": V} as integers; None / "full" = the 7B's depth."""
    full_text, full_vision = FULL_DEPTH[name]
    out = {}
    for key, value, full in (("layers", layers, full_text), ("vision_layers", vision_layers, full_vision)):
        if value is None or str(value).lower() == "full":
            value = full
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= full:
            raise ValueError(f"{key}={value!r} is invalid for {name}; allowed: 1..{full} or null (full depth)")
        out[key] = value
    return out


def kept_full_attention(vision_layers: int) -> list[int]:
    """Full-attention block indexes when only the last ``vision_layers`` of the 7B's 32 ViT blocks are kept."""
    dropped = QWEN25VL_7B_VISION["depth"] - vision_layers
    return [i - dropped for i in QWEN25VL_7B_VISION["fullatt_block_indexes"] if i >= dropped]


def _random_model(model_class, config, seed: int):
    """The model with random bfloat16 weights, initialised once (transformers' own init is skipped).

    As the tiny twins: matrices N(0, 1/fan_in), embeddings N(0, 1), norms 1, biases 0, other vectors
    (LLaVA's image_newline) N(0, 1/size).
    """
    from transformers.initialization import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with no_init_weights():
            model = model_class(config).eval()
    finally:
        torch.set_default_dtype(previous)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            is_norm = "Norm" in type(module).__name__
            for pname, param in module.named_parameters(recurse=False):
                if isinstance(module, torch.nn.Embedding):
                    param.normal_(0.0, 1.0, generator=generator)
                elif is_norm:
                    param.fill_(1.0 if pname == "weight" else 0.0)
                elif pname == "bias":
                    param.zero_()
                elif param.dim() >= 2:
                    param.normal_(0.0, param[0].numel() ** -0.5, generator=generator)
                else:
                    param.normal_(0.0, param.numel() ** -0.5, generator=generator)
    return model


def _save(directory: Path, model, eos: int, im_end: int) -> None:
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=[im_end, eos], pad_token_id=eos,
                                               do_sample=False)
    model.save_pretrained(directory)


def build_real_shape_qwen25vl(directory: Path, seed: int = 0, layers: int = DEFAULT_LAYERS,
                              vision_layers: int = DEFAULT_VISION_LAYERS) -> None:
    """Qwen2.5-VL-7B-Instruct's shapes. The ``vision_layers`` kept blocks are the LAST ones of the 7B's
    32, with their window / full pattern (2 blocks: window, full; 8: seven window then full)."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = byte_level_tokenizer(QWEN_SPECIALS, QWEN_CHAT_TEMPLATE)
    eos, _, im_end, vstart, vend, image, video = _ids(tokenizer, *QWEN_SPECIALS)
    vision = {**QWEN25VL_7B_VISION, "depth": vision_layers, "fullatt_block_indexes": kept_full_attention(vision_layers)}
    text = {**QWEN25VL_7B_TEXT, "num_hidden_layers": layers, "max_window_layers": layers,
            "bos_token_id": eos, "eos_token_id": im_end, "pad_token_id": eos}
    config = Qwen2_5_VLConfig(vision_config=vision, text_config=text, image_token_id=image, video_token_id=video,
                              vision_start_token_id=vstart, vision_end_token_id=vend, tie_word_embeddings=False)
    _save(directory, _random_model(Qwen2_5_VLForConditionalGeneration, config, seed), eos, im_end)
    common = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    size = {"shortest_edge": QWEN25VL_7B_PIXELS["min_pixels"], "longest_edge": QWEN25VL_7B_PIXELS["max_pixels"]}
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size, **common),
                                    video_processor=Qwen2VLVideoProcessor(size=size, **common),
                                    tokenizer=tokenizer, chat_template=QWEN_CHAT_TEMPLATE)
    processor.save_pretrained(directory)


def _build_llava(directory: Path, seed: int, layers: int, vision_layers: int, extra: dict[str, Any]) -> None:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tokenizer = byte_level_tokenizer(LLAVA_SPECIALS, LLAVA_CHAT_TEMPLATE)
    eos, _, im_end, image, video = _ids(tokenizer, *LLAVA_SPECIALS)
    text = {**QWEN2_7B_TEXT_LLAVA, "num_hidden_layers": layers, "bos_token_id": eos, "eos_token_id": im_end,
            "pad_token_id": eos}
    vision = {**SIGLIP_SO400M_26, "num_hidden_layers": vision_layers}
    config = LlavaOnevisionConfig(text_config=text, vision_config=vision, image_token_index=image,
                                  video_token_index=video, **LLAVA_OV_7B, **extra)
    _save(directory, _random_model(LlavaOnevisionForConditionalGeneration, config, seed), eos, im_end)
    side = SIGLIP_SO400M_26["image_size"]
    patches = (side // SIGLIP_SO400M_26["patch_size"]) ** 2
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": side, "width": side},
                                                     image_grid_pinpoints=LLAVA_OV_7B["image_grid_pinpoints"],
                                                     **LLAVA_NORMALISATION),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": side, "width": side}, **LLAVA_NORMALISATION),
        tokenizer=tokenizer, num_image_tokens=patches, vision_feature_select_strategy="full",
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    processor.save_pretrained(directory)


def build_real_shape_llava_ov(directory: Path, seed: int = 0, layers: int = DEFAULT_LAYERS,
                              vision_layers: int = DEFAULT_VISION_LAYERS) -> None:
    """LLaVA-OneVision-7B's shapes (the first ``vision_layers`` SigLIP layers; the projector reads the last)."""
    _build_llava(directory, seed, layers, vision_layers, {})


def build_real_shape_llava_video(directory: Path, seed: int = 0, layers: int = DEFAULT_LAYERS,
                                 vision_layers: int = DEFAULT_VISION_LAYERS) -> None:
    """LLaVA-Video-7B-Qwen2's shapes (= LLaVA-OV-7B's) with the video layout keys (see the module docstring)."""
    _build_llava(directory, seed, layers, vision_layers, dict(LLAVA_VIDEO_LAYOUT))


BUILDERS: dict[str, Callable[..., None]] = {
    "real_shape_qwen25vl": build_real_shape_qwen25vl,
    "real_shape_llava_ov": build_real_shape_llava_ov,
    "real_shape_llava_video": build_real_shape_llava_video,
}
