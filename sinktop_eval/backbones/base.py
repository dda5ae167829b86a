"""The adapter contract and the one generation pipeline both architectures share.

    prepare  -> decode T frames (real timing), chat-format the prompt, run the HF processor
    encode   -> run the vision tower ONCE; features X (T, n, D), importance A (T, n), keys K (T, n, d_k)
    prune    -> any `sinktop_eval.pruning` pruner on (X, A, K, grid)
    splice   -> a shorter LLM input: kept placeholders, mask, position ids, kept features
    generate -> greedy (or sampled) decoding through HF ``generate``, timed per phase; ``until`` text stops it

Subclasses know one HF architecture's internals (``encode`` and ``splice``); nothing here knows
lmms-eval. Tests call the steps one by one (e.g. ``model(**splice(...))`` for logits).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..files import first_line
from ..pruning import PruneOutput, Pruner, build_pruner, sink_statistics
from .errors import CheckpointUnavailableError
from .flops import FORMULA, prefill_flops
from .stats import PeakMemory, Stopwatch, synchronize
from .video import DecodedVideo, decode_video

log = logging.getLogger(__name__)

CORE_SETTINGS = ("pruner", "ratio", "mu_s", "mu_t", "gamma")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass
class Prepared:
    """One (video, prompt) request after decoding and the HF processor (the dense model input)."""

    video: DecodedVideo
    prompt: str  # the user's question
    text: str  # the chat-formatted prompt with the video placeholder
    inputs: Any  # transformers BatchFeature on the model device: what a plain HF forward takes


@dataclass
class VisionTokens:
    """The encoder's output on the LLM token grid, plus what the pruners rank by."""

    features: Tensor  # (T, n, D) visual tokens as the LLM sees them, model dtype
    attn: Tensor  # (T, n) float32 attention received (column mean over heads and queries)
    keys: Tensor  # (T, n, d_k) float32 keys of the same layer, averaged over heads
    grid: tuple[int, int]  # (h, w) with h * w == n
    frame_features: Tensor | None = None  # (T, D_g) pooled per-frame globals when the tower has a head
    extra: dict[str, Any] = field(default_factory=dict)  # architecture-specific (e.g. LLaVA's newline)

    @property
    def num_tokens(self) -> int:
        return int(self.features.shape[0] * self.features.shape[1])


@dataclass
class Generation:
    """What ``Backbone.generate`` returns: the answer and its cost accounting."""

    text: str
    token_ids: list[int]
    stats: dict[str, Any]


@dataclass(frozen=True)
class Sampling:
    """Temperature / nucleus sampling for one generation; ``seed`` makes it reproducible (and independent of
    what ran before in the process, e.g. on another rank's shard)."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature!r} is invalid for sampling; allowed: a number > 0 "
                             "(temperature 0 means greedy: do not sample)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p!r} is invalid; allowed: a number in (0, 1]")

    def describe(self) -> str:
        return f"sample(temperature={self.temperature:g}, top_p={self.top_p:g}, seed={self.seed})"


class _UntilText:
    """A ``generate`` stopping criterion: stop once the decoded answer contains one of ``stops``.

    It decodes the answer exactly as the returned text is decoded, so the text cut at its first stop string
    is what running to the token limit and cutting afterwards would give, without the wasted tokens.
    (transformers' own ``stop_strings`` also fire on a stop string that straddles the prompt's end.)
    """

    def __init__(self, tokenizer, prompt_len: int, stops: list[str]) -> None:
        self.tokenizer, self.prompt_len = tokenizer, prompt_len
        self.stops = [s for s in stops if s]

    def __call__(self, input_ids: Tensor, scores, **kwargs) -> Tensor:
        done = [any(stop in self.tokenizer.decode(row[self.prompt_len:].tolist(), skip_special_tokens=True)
                    for stop in self.stops) for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@contextmanager
def _seeded(sampling: Sampling | None, device: torch.device) -> Iterator[None]:
    """Sampling draws from the RNG seeded per request; the process's global RNG state is restored after."""
    if sampling is None:
        yield
        return
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(sampling.seed)
        yield


class _PrefillClock:
    """A ``generate`` streamer that only timestamps: the 1st put is the prompt, the 2nd the first new
    token (so prefill = generate start -> 2nd put; decode = 2nd put -> end)."""

    def __init__(self) -> None:
        self.puts: list[float] = []
        self.ended: float | None = None

    def put(self, value) -> None:  # tokens arrive already on CPU (a device sync)
        self.puts.append(time.perf_counter())

    def end(self) -> None:
        self.ended = time.perf_counter()


class Backbone:
    """A loaded HF video LLM that can prune its visual tokens. See the module docstring."""

    family: ClassVar[str] = "base"  # short id used in results (qwen25vl, llava_ov, llava_video)
    model_type: ClassVar[str] = ""  # config.json "model_type" this adapter handles
    hf_class: ClassVar[str] = ""  # transformers class name
    # Whose published SToP mu values apply (the table in sinktop_eval.pruning.defaults is keyed by family);
    # None = this adapter's own family. ``mu_note`` says why when it differs.
    mu_family: ClassVar[str | None] = None
    mu_note: ClassVar[str] = ""
    # Adapter settings a user may pass to load_backbone: name -> default (recorded in describe())
    SETTINGS: ClassVar[dict[str, Any]] = {}
    # The paper's cap on new tokens for this backbone (the SToP release's generators: 4096 for the LLaVA
    # models, 1024 for Qwen2.5-VL); a task's own smaller max_new_tokens still wins. None = the task's.
    generation_cap: ClassVar[int | None] = None

    def __init__(self, model, processor, name: str | None = None, checkpoint: str | Path | None = None,
                 **settings: Any) -> None:
        unknown = sorted(set(settings) - set(self.SETTINGS))
        if unknown:
            allowed = ", ".join(self.SETTINGS) or "none"
            raise ValueError(f"backbone setting(s) {unknown} unknown for {self.family}; allowed: {allowed}")
        self.model = model.eval()
        self.processor = processor
        self.name = name or self.family
        self.checkpoint = str(checkpoint) if checkpoint is not None else ""
        self.video_kwargs: dict[str, Any] = {}  # extra processor kwargs for videos (sizes, caps)
        self.settings: dict[str, Any] = {k: settings.get(k, default) for k, default in self.SETTINGS.items()}

    # -- loading -----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, dtype: Any = None, device: Any = None,
                        attn_implementation: str | None = "sdpa", name: str | None = None,
                        **settings: Any) -> Backbone:
        """Load model + processor with transformers' ``from_pretrained`` (local dir or hub id).

        ``settings`` are this adapter's ``SETTINGS`` (e.g. Qwen's ``rope_text_after_video``).

        ``device`` None picks cuda when available; ``dtype`` None picks bfloat16 on cuda, float32 on cpu.
        A hub id is first looked up in the local HF cache only; if it is not there and the hub is offline
        or unreachable (one quick probe), it fails at once with one line naming the fix, instead of
        transformers' minutes of retries per file.
        """
        import transformers
        from transformers import AutoProcessor

        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        model_class = getattr(transformers, cls.hf_class)
        source = str(path_or_id)

        def load(local_only: bool):
            processor = AutoProcessor.from_pretrained(source, local_files_only=local_only)
            model = model_class.from_pretrained(source, dtype=torch_dtype, device_map=str(device),
                                                attn_implementation=attn_implementation or "sdpa",
                                                local_files_only=local_only)
            return cls(model, processor, name=name, checkpoint=source, **settings)

        if Path(source).is_dir():
            try:
                return load(local_only=True)
            except OSError as err:
                raise CheckpointUnavailableError(f"checkpoint directory {source} is incomplete ({first_line(err)}); "
                                                 "point path= at a full HF checkpoint (config.json, weights, "
                                                 "processor and tokenizer files)") from None
        try:
            return load(local_only=True)  # the HF cache, no network
        except OSError:
            pass
        unreachable = "the hub is offline (HF_HUB_OFFLINE)" if hub_offline() else hub_unreachable(source)
        if unreachable is None:
            try:
                return load(local_only=False)
            except OSError as err:
                unreachable = first_line(err)
        short = source.split("/")[-1]
        raise CheckpointUnavailableError(
            f"cannot load {source!r}: it is not in the local Hugging Face cache and cannot be downloaded "
            f"({unreachable}); download it where there is network and pass the local checkpoint directory, "
            f"e.g. load_backbone('{cls.family}', path='/ckpt/{short}') or model.path=/ckpt/{short}")

    # -- properties --------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def video_token_id(self) -> int:
        return int(self.model.config.video_token_id)

    @property
    def stop_family(self) -> str:
        """The family whose SToP mu values this backbone uses (``mu_family`` or its own)."""
        return self.mu_family or self.family

    def resolved_settings(self) -> dict[str, Any]:
        """The adapter settings in effect (subclasses fill in values read from the checkpoint)."""
        return dict(self.settings)

    def describe(self) -> dict[str, Any]:
        return {"backbone": self.name, "family": self.family, "checkpoint": self.checkpoint,
                "dtype": str(self.dtype).removeprefix("torch."), "device": str(self.device),
                "mu_family": self.stop_family, **self.resolved_settings()}

    # -- pipeline steps ----------------------------------------------------------------------------------
    def prepare(self, video: str | Path, prompt: str, frames: int = 32, start: float | None = None,
                end: float | None = None) -> Prepared:
        """Decode the video, chat-format the prompt and run the processor (dense inputs on device)."""
        decoded = decode_video(video, frames, start, end)
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": str(prompt)}]}]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self.processor(text=[text], videos=[decoded.frames], video_metadata=[decoded.processor_metadata()],
                                do_sample_frames=False, return_tensors="pt", **self.video_kwargs)
        return Prepared(decoded, str(prompt), text, inputs.to(self.device))

    def encode(self, prepared: Prepared) -> VisionTokens:
        """Run the vision tower once; return X, A, K on the LLM token grid."""
        raise NotImplementedError

    def splice(self, prepared: Prepared, vision: VisionTokens, pruned: PruneOutput) -> dict[str, Any]:
        """LLM inputs (input_ids, attention_mask, position_ids, mm_encoder_outputs, ...) for the kept tokens;
        pass them to ``model(**...)`` or ``model.generate(**...)``."""
        raise NotImplementedError

    def video_span(self, input_ids: Tensor) -> tuple[int, int]:
        """[start, end) of the one contiguous run of video placeholders in a (1, L) input_ids."""
        where = torch.nonzero(input_ids[0] == self.video_token_id).flatten()
        if where.numel() == 0:
            raise ValueError("the prompt has no video placeholder; the chat template must render the video")
        start, end = int(where[0]), int(where[-1]) + 1
        if end - start != where.numel():
            raise ValueError("video placeholders are not contiguous; one video per prompt is supported")
        return start, end

    # -- the whole thing ---------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, video: str | Path, prompt: str, pruner: Pruner | None = None, frames: int = 32,
                 max_new_tokens: int = 16, start: float | None = None, end: float | None = None,
                 stop_strings: list[str] | None = None, sampling: Sampling | None = None,
                 feature_cache: Any = None) -> Generation:
        """Answer ``prompt`` about ``video`` (greedily unless ``sampling``), with ``pruner`` applied to the visual tokens.

        ``pruner=None`` is dense (every visual token kept). ``stop_strings`` end generation as soon as the
        decoded answer contains one (the text still holds it; cutting is the caller's rule). ``feature_cache``
        (a `feature_cache.FeatureCache`) serves the encoder's output when this video was encoded before.
        Returns the generated text (prompt excluded) and ``stats``: visual token counts, analytic prefill
        FLOPs, phase timings, peak memory, settings, and ``vision_cache`` (hit / miss / off).
        """
        pruner = pruner if pruner is not None else build_pruner("dense", 1.0)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens!r} is invalid; allowed: an integer >= 1")
        device = self.device
        watch, memory = Stopwatch(device), PeakMemory(device)
        memory.start()
        with watch("video_io_s"):
            prepared = self.prepare(video, prompt, frames, start, end)
        with watch("vision_s"):
            vision, cache_state = (feature_cache.fetch(self, prepared) if feature_cache is not None
                                   else (self.encode(prepared), "off"))
        with watch("pruning_s"):  # the pruner plus building the shorter LLM input
            pruned = pruner(vision.features, vision.attn, keys=vision.keys, grid=vision.grid,
                            frame_features=vision.frame_features)
            llm_inputs = self.splice(prepared, vision, pruned)
        clock = _PrefillClock()
        synchronize(device)
        began = time.perf_counter()
        prompt_len = int(llm_inputs["input_ids"].shape[1])
        stopping = [_UntilText(self.processor.tokenizer, prompt_len, stop_strings)] if stop_strings else None
        with _seeded(sampling, device):
            output = self.model.generate(**llm_inputs, generation_config=self._decoding(max_new_tokens, sampling),
                                         streamer=clock, stopping_criteria=stopping)
        synchronize(device)
        finished = time.perf_counter()
        first_token = clock.puts[1] if len(clock.puts) > 1 else finished
        watch.add("prefill_s", first_token - began)
        watch.add("decode_s", finished - first_token)
        new_ids = output[0, prompt_len:].tolist()
        text = self.processor.tokenizer.decode(new_ids, skip_special_tokens=True)
        peak, peak_kind = memory.read()
        stats = self._stats(prepared, vision, pruned, pruner, llm_inputs, watch.phases, peak, peak_kind, len(new_ids))
        stats["vision_cache"] = cache_state
        stats["decoding"] = sampling.describe() if sampling is not None else "greedy"
        return Generation(text=text, token_ids=new_ids, stats=stats)

    # -- helpers -----------------------------------------------------------------------------------------
    def _greedy(self, max_new_tokens: int):
        return self._decoding(max_new_tokens)

    def _decoding(self, max_new_tokens: int, sampling: Sampling | None = None):
        """Greedy decoding (or plain temperature / nucleus sampling) with the checkpoint's stop tokens.

        transformers fills every field left unset from the checkpoint's generation_config, which for
        Qwen2.5-VL-7B-Instruct includes sampling settings and repetition_penalty=1.05; the logits-changing
        fields are therefore pinned to their neutral values, so "greedy" means argmax, for every backbone,
        and sampling means exactly the temperature and top_p asked for (no top-k).
        """
        from transformers import GenerationConfig

        base = self.model.generation_config
        pad = base.pad_token_id if base.pad_token_id is not None else self.processor.tokenizer.pad_token_id
        decoding = (dict(do_sample=True, temperature=sampling.temperature, top_k=0, top_p=sampling.top_p)
                    if sampling is not None else dict(do_sample=False, temperature=1.0, top_k=50, top_p=1.0))
        return GenerationConfig(num_beams=1, max_new_tokens=max_new_tokens, **decoding,
                                eos_token_id=base.eos_token_id, pad_token_id=pad, bos_token_id=base.bos_token_id,
                                repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0, length_penalty=1.0)

    def dense_prompt_length(self, prepared: Prepared) -> int:
        return int(prepared.inputs["input_ids"].shape[1])

    def _stats(self, prepared: Prepared, vision: VisionTokens, pruned: PruneOutput, pruner: Pruner,
               llm_inputs: dict, phases: dict, peak: float, peak_kind: str, new_tokens: int) -> dict[str, Any]:
        dense_len = self.dense_prompt_length(prepared)
        pruned_len = int(llm_inputs["input_ids"].shape[1])
        video = prepared.video
        T, n = int(vision.features.shape[0]), int(vision.features.shape[1])
        settings = pruner.describe()
        return {
            "backbone": self.name,
            **{k: settings[k] for k in CORE_SETTINGS},  # pruner, ratio, mu_s, mu_t, gamma
            **{f"pruner_{k}": v for k, v in settings.items() if k not in CORE_SETTINGS},  # e.g. pruner_tau
            "pruner_seed": pruner.seed,
            "dense_visual_tokens": T * n,
            "kept_visual_tokens": len(pruned),
            "visual_placeholders_dense": dense_len - (pruned_len - self._placeholders(llm_inputs)),
            "visual_placeholders": self._placeholders(llm_inputs),
            # placeholders that carry no visual token (LLaVA's image_newline), dense and pruned
            "newline_tokens_dense": dense_len - (pruned_len - self._placeholders(llm_inputs)) - T * n,
            "newline_tokens": self._placeholders(llm_inputs) - len(pruned),
            "prompt_tokens_dense": dense_len,
            "prompt_tokens": pruned_len,
            "new_tokens": new_tokens,
            "prefill_flops_dense": prefill_flops(self.text_config, dense_len),
            "prefill_flops": prefill_flops(self.text_config, pruned_len),
            "flops_formula": FORMULA,
            "vision_s": phases.get("vision_s", 0.0),
            "pruning_s": phases.get("pruning_s", 0.0),
            "prefill_s": phases.get("prefill_s", 0.0),
            "decode_s": phases.get("decode_s", 0.0),
            "video_io_s": phases.get("video_io_s", 0.0),
            "peak_mem_gb": peak,
            "peak_mem_kind": peak_kind,
            "temporal_slices": T,
            "tokens_per_slice": n,
            "grid": list(vision.grid),
            "frames_sampled": video.num_frames,
            "video_fps": video.fps,
            "sampled_fps": video.sampled_fps,
            "window_s": [video.window[0] / video.fps, video.window[1] / video.fps],
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            **{f"backbone_{k}": v for k, v in self.resolved_settings().items()},
            # which kept tokens sit at the video's sink positions (Figs. 2b and 4): the one definition of
            # the sink set and the per-position selection frequency live in pruning.sink_stats
            "sink": sink_statistics(vision.attn, pruned.index, T, n, gamma=pruner.gamma),
        }

    def _placeholders(self, llm_inputs: dict) -> int:
        return int((llm_inputs["input_ids"] == self.video_token_id).sum())


def resolve_device(device: Any) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    if dtype is None or str(dtype) == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).removeprefix("torch.").lower()
    if key not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is unknown; allowed: float32, float16, bfloat16 (or auto)")
    return DTYPES[key]


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as set now (huggingface_hub reads them only at import)."""
    import os

    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(f.strip().lower() in ("1", "true", "yes", "on") for f in flags)


def hub_unreachable(repo_id: str, timeout: float = 10.0) -> str | None:
    """None when the hub answers for ``repo_id`` within ``timeout`` seconds, else why not (one line)."""
    try:
        from huggingface_hub import model_info

        model_info(repo_id, timeout=timeout)
        return None
    except Exception as err:  # noqa: BLE001 - any failure (network, 401/404) means "not downloadable"
        return f"{type(err).__name__}: {first_line(err)}"
