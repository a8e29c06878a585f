"""The study file: its schema, loading and validation.

A study file is YAML read with ``yaml.safe_load`` and validated by pydantic
models that forbid unknown keys. Every problem becomes one ``ConfigError``
line naming the file, the field path and what is allowed.

(Over 400 lines: one pydantic model per study-file section, read together.)
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from hpo import backbones, hyperparameters
from hpo.errors import ConfigError

# Re-exported for callers that read the tables through the study file's module.
BACKBONES = backbones.NAMES
BACKBONE_MIN_SIZE = {name: spec.min_size for name, spec in backbones.BACKBONES.items()}
HYPERPARAMETER_DEFAULTS = hyperparameters.DEFAULTS
OPTIMIZERS = tuple(hyperparameters.OPTIMIZERS)
SAMPLERS = ("tpe", "gp", "gpyopt", "random")
PRUNERS = ("none", "median", "hyperband", "successive_halving")
METRICS = ("macro_f1", "weighted_f1", "accuracy", "balanced_accuracy")

_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")

Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr, None]  # noqa: UP007


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudySection(_Model):
    name: StrictStr
    description: StrictStr = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip() or not _NAME_RE.match(v):
            raise ValueError("must be 1 to 128 printable characters")
        return v


class DatasetSection(_Model):
    source: Literal["digits", "directory", "npz"]
    path: StrictStr | None = None
    image_size: StrictInt | tuple[StrictInt, StrictInt] = 32
    channels: Literal[1, 3] = 3
    groups: StrictStr | None = None
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    split_seed: StrictInt = Field(42, ge=0, lt=2**32 - 1)  # NumPy/sklearn range; +1 is used
    on_corrupt: Literal["error", "skip"] = "error"
    max_per_class: StrictInt | None = Field(None, ge=2)
    # Exact and near duplicates (hpo.audit): ignore them, keep each group inside
    # one split (like a subject's images), or refuse a split that they cross.
    duplicates: Literal["ignore", "group", "error"] = "ignore"

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: int | tuple[int, int]) -> int | tuple[int, int]:
        sides = (v, v) if isinstance(v, int) else v
        if any(s < 8 or s > 1024 for s in sides):
            raise ValueError("each side must be between 8 and 1024 pixels")
        return v

    @model_validator(mode="after")
    def _path_needed(self) -> DatasetSection:
        if self.source in ("directory", "npz") and not self.path:
            raise ValueError(f"source '{self.source}' needs 'path'")
        if self.source == "digits" and self.path:
            raise ValueError("source 'digits' takes no 'path'")
        if self.groups and self.source != "directory":
            raise ValueError("'groups' applies only to source 'directory'")
        return self

    @property
    def size(self) -> tuple[int, int]:
        s = self.image_size
        return (s, s) if isinstance(s, int) else (s[0], s[1])


class ModelSection(_Model):
    backbone: StrictStr
    weights: StrictStr | None = None
    pooling: Literal["avg", "max"] = "avg"

    @field_validator("backbone")
    @classmethod
    def _backbone(cls, v: str) -> str:
        if v not in BACKBONES:
            raise ValueError(f"unknown backbone '{v}'; allowed: {', '.join(BACKBONES)}")
        return v

    @property
    def resolved_weights(self) -> str | None:
        """``"imagenet"``, a local file path, or None for random initialisation."""
        if self.weights is None:
            return "imagenet" if backbones.BACKBONES[self.backbone].imagenet else None
        if self.weights.lower() in ("none", "null", ""):
            return None
        return self.weights

    @model_validator(mode="after")
    def _weights(self) -> ModelSection:
        w = self.resolved_weights
        if w == "imagenet" and not backbones.BACKBONES[self.backbone].imagenet:
            raise ValueError(
                f"{self.backbone} has no ImageNet weights; use 'none' or a weights file"
            )
        return self


class DataPipelineSection(_Model):
    """tf.data settings; "auto" lets tf.data tune the value (AUTOTUNE)."""

    cache: StrictBool = True
    prefetch: Literal["auto"] | Annotated[StrictInt, Field(ge=0)] = "auto"
    parallel_calls: Literal["auto"] | Annotated[StrictInt, Field(ge=1)] = "auto"


class TrainingSection(_Model):
    head_epochs: StrictInt = Field(5, ge=1, le=1000)
    finetune_epochs: StrictInt = Field(0, ge=0, le=1000)
    class_weights: Literal["balanced", "none"] = "balanced"
    seed: StrictInt = Field(0, ge=0, lt=2**32)  # what Keras and NumPy accept
    trial_timeout: float | None = Field(None, gt=0)
    augment: StrictBool = False
    mixed_precision: Literal["off", "float16", "bfloat16"] = "off"
    # Backbone activations computed once and reused by every trial (hpo.cache);
    # auto: on when the backbone has pretrained weights and augment is off.
    feature_cache: Literal["auto", "on", "off"] = "auto"
    cache_dir: StrictStr | None = None  # default storage/cache; $HPO_CACHE_DIR wins
    cache_max_gb: float = Field(2.0, gt=0)  # activations above this train the normal way
    xla: Literal["auto", "on", "off"] = "auto"  # jit_compile; auto: on with a GPU
    # Keras 3 backend; None: $KERAS_BACKEND, else tensorflow. Fixed per process
    # (hpo.training.select_backend); JAX always compiles with XLA, torch never.
    backend: Literal["tensorflow", "jax", "torch"] | None = None
    # Validation F1 after every epoch (pruners need it); auto: only with a pruner,
    # else once at the end, as a hand-written fit + evaluate would.
    validate_every_epoch: Literal["auto"] | StrictBool = "auto"
    data: DataPipelineSection = Field(default_factory=lambda: DataPipelineSection())

    @model_validator(mode="after")
    def _cache_needs_fixed_images(self) -> TrainingSection:
        if self.feature_cache == "on" and self.augment:
            raise ValueError(
                "feature_cache: on cannot be combined with augment: true; augmented "
                "images change the backbone's output every epoch"
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_unset_backend(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Unset, the backend comes from KERAS_BACKEND; leaving it out keeps the
        # stored config of studies made before training.backend existed equal.
        data: dict[str, Any] = handler(self)
        if data.get("backend") is None:
            data.pop("backend", None)
        return data


class ParamSpec(_Model):
    type: Literal["float", "int", "categorical"]
    low: StrictInt | StrictFloat | None = None
    high: StrictInt | StrictFloat | None = None
    log: StrictBool = False
    step: StrictInt | StrictFloat | None = None
    choices: list[Scalar] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("categorical takes only 'choices'")
            if not self.choices:
                raise ValueError("categorical needs a non-empty list of 'choices'")
            if len({repr(c) for c in self.choices}) != len(self.choices):
                raise ValueError("categorical 'choices' must be unique")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.type} takes 'low' and 'high', not 'choices'")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs both 'low' and 'high'")
        for v in (self.low, self.high):
            if abs(v) > 1e300 or not math.isfinite(v):  # huge ints overflow float()
                raise ValueError("'low' and 'high' must be finite numbers")
        if self.type == "int":
            for key in ("low", "high", "step"):
                val = getattr(self, key)
                if val is not None and not isinstance(val, int):
                    raise ValueError(f"int '{key}' must be an integer, got {val!r}")
        if not self.low < self.high:
            raise ValueError(f"'low' ({self.low}) must be less than 'high' ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs 'low' > 0, got {self.low}")
        if self.step is not None:
            if not self.step > 0:  # NaN too
                raise ValueError(f"'step' must be positive, got {self.step}")
            if self.log:
                raise ValueError("'step' and 'log: true' cannot be combined")
            if self.step > self.high - self.low:
                raise ValueError(f"'step' ({self.step}) is larger than the range")
        return self


ParamEntry = Annotated[ParamSpec | Scalar, Field(union_mode="left_to_right")]


class SamplerSection(_Model):
    name: StrictStr = "tpe"
    seed: StrictInt | None = Field(None, ge=0, lt=2**32)  # what Optuna samplers accept
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v not in SAMPLERS:
            raise ValueError(f"unknown sampler '{v}'; allowed: {', '.join(SAMPLERS)}")
        return v


class PrunerSection(_Model):
    name: StrictStr = "none"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v not in PRUNERS:
            raise ValueError(f"unknown pruner '{v}'; allowed: {', '.join(PRUNERS)}")
        return v


class ConstraintsSection(_Model):
    """What a clinic requires of any model it would accept; an infeasible trial is never best."""

    # Class name -> the lowest validation recall allowed (names checked once data loads).
    min_recall: dict[StrictStr, float] = Field(default_factory=dict)
    max_params: StrictInt | None = Field(None, ge=1)  # trainable + non-trainable

    @field_validator("min_recall", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        # Class names from an npz file are "0", "1", ...; YAML reads a bare 0 as an int.
        return {str(k): f for k, f in v.items()} if isinstance(v, dict) else v

    @field_validator("min_recall")
    @classmethod
    def _floors(cls, v: dict[str, float]) -> dict[str, float]:
        for name, floor in v.items():
            if not 0.0 < floor <= 1.0:
                raise ValueError(f"min_recall.{name}: {floor} is not in (0, 1]")
        return v


class ObjectiveSection(_Model):
    metric: Literal["macro_f1", "weighted_f1", "accuracy", "balanced_accuracy"] = "macro_f1"
    constraints: ConstraintsSection = Field(default_factory=ConstraintsSection)
    # A problem with a known optimum (hpo.benchmarks) searched instead of training
    # an image model; ``seconds`` is how long each of its trials lasts.
    benchmark: StrictStr | None = None
    seconds: float = Field(0.0, ge=0, le=86400)

    @field_validator("benchmark")
    @classmethod
    def _benchmark(cls, v: str | None) -> str | None:
        if v is not None:
            from hpo import benchmarks

            try:
                benchmarks.check_name(v)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _benchmark_only(self) -> ObjectiveSection:
        if self.benchmark is None and self.seconds:
            raise ValueError("'seconds' applies only with 'benchmark'")
        if self.benchmark is not None and (
            self.constraints.min_recall or self.constraints.max_params is not None
        ):
            raise ValueError("'constraints' applies only to image studies")
        if self.benchmark is not None and self.metric != "macro_f1":
            raise ValueError(
                "'metric' applies only to image studies; a benchmark is scored by its own value"
            )
        return self


class BudgetSection(_Model):
    trials: StrictInt = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0)


class StudyConfig(_Model):
    """A validated study file."""

    study: StudySection
    # Required unless objective.benchmark is set, and then refused (``_image_or_benchmark``).
    # Typed as present: only image studies reach the code that reads them (data,
    # training, export), and a benchmark study never does.
    if TYPE_CHECKING:
        dataset: DatasetSection
        model: ModelSection
    else:
        dataset: DatasetSection | None = None
        model: ModelSection | None = None
    training: TrainingSection = Field(default_factory=lambda: TrainingSection())
    search_space: dict[StrictStr, ParamEntry] = Field(default_factory=dict)
    objective: ObjectiveSection = Field(default_factory=lambda: ObjectiveSection())
    sampler: SamplerSection = Field(default_factory=lambda: SamplerSection())
    pruner: PrunerSection = Field(default_factory=lambda: PrunerSection())
    budget: BudgetSection = Field(default_factory=lambda: BudgetSection())
    storage: StrictStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _benchmark_space(cls, data: Any) -> Any:
        # Before the fields: a benchmark's parameters (x1, x2...) are no hyperparameters.
        objective = data.get("objective") if isinstance(data, dict) else None
        if isinstance(objective, dict) and objective.get("benchmark") and data.get("search_space"):
            raise ValueError(
                "search_space: a benchmark study searches its problem's own space, whose "
                "optimum is known; remove search_space"
            )
        return data

    @model_validator(mode="after")
    def _image_or_benchmark(self) -> StudyConfig:
        if self.objective.benchmark is None:
            for name in ("dataset", "model"):
                if getattr(self, name) is None:
                    raise ValueError(
                        f"{name}: required field is missing (only a study with "
                        "objective.benchmark goes without it)"
                    )
            return self
        for name in ("dataset", "model"):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"{name}: a benchmark study ({self.objective.benchmark}) trains no image "
                    f"model; remove {name}"
                )
        defaults = TrainingSection()
        for name in TrainingSection.model_fields:
            if name != "trial_timeout" and getattr(self.training, name) != getattr(defaults, name):
                raise ValueError(
                    f"training.{name}: a benchmark study trains no model; of training, "
                    "only trial_timeout applies"
                )
        return self

    @field_validator("search_space")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if name not in HYPERPARAMETER_DEFAULTS:
                raise ValueError(
                    f"unknown hyperparameter '{name}'; allowed: "
                    + ", ".join(HYPERPARAMETER_DEFAULTS)
                )
        return v

    @model_validator(mode="after")
    def _input_fits_backbone(self) -> StudyConfig:
        if self.objective.benchmark is not None:
            return self
        backbone = self.model.backbone
        h, w = self.dataset.size
        least = BACKBONE_MIN_SIZE[backbone]
        if min(h, w) < least:
            raise ValueError(
                f"dataset.image_size {h}x{w} is too small for {backbone}; "
                f"it needs at least {least}x{least}"
            )
        spec = backbones.BACKBONES[backbone]
        if spec.pretrained_needs_rgb and self.model.resolved_weights and self.dataset.channels != 3:
            raise ValueError(
                f"dataset.channels: {backbone} with pretrained weights needs 3 channels, "
                f"got {self.dataset.channels}"
            )
        return self

    @model_validator(mode="after")
    def _cache_needs_weights(self) -> StudyConfig:
        # Checked here, not at the first trial, so no study is created for it.
        if self.objective.benchmark is not None:
            return self
        if self.training.feature_cache == "on" and self.model.resolved_weights is None:
            raise ValueError(
                "training.feature_cache: on needs pretrained weights (model.weights); "
                "a randomly initialised backbone trains whole, so nothing is frozen to cache"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that ``StudyConfig.model_validate`` reads back."""
        return self.model_dump(mode="json")

    def with_overrides(self, **changes: Any) -> StudyConfig:
        """Apply command-line overrides (``trials``, ``sampler``, ``seed``, ...)."""
        data = self.to_dict()
        if changes.get("study_name") is not None:
            data["study"]["name"] = changes["study_name"]
        if changes.get("trials") is not None:
            data["budget"]["trials"] = changes["trials"]
        if changes.get("timeout") is not None:
            data["budget"]["timeout"] = changes["timeout"]
        if changes.get("sampler") is not None:
            data["sampler"] = {
                "name": changes["sampler"],
                "seed": data["sampler"]["seed"],
                "options": {},
            }
            if changes["sampler"] == self.sampler.name:
                data["sampler"]["options"] = self.sampler.options
        if changes.get("seed") is not None:
            data["sampler"]["seed"] = changes["seed"]
        if changes.get("storage") is not None:
            data["storage"] = changes["storage"]
        return validate_config(data, source="command line")


def _format_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if not _is_union_tag(p))
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    inp = err.get("input")
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        msg = "unknown key" + _key_hint(err.get("loc", ()))
    elif kind == "missing":
        msg = "required field is missing"
    elif kind.startswith("literal_error") or kind.endswith("_type") or kind.endswith("_parsing"):
        msg = f"{msg}, got {inp!r}"
    return f"{loc}: {msg}" if loc else msg


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (None when it is not a model)."""
    model: type[BaseModel] = StudyConfig
    parts = [p for p in loc[:-1] if not _is_union_tag(p)]
    for i, part in enumerate(parts):
        if model is StudyConfig and part == "search_space":
            return ParamSpec if i == 0 and len(parts) == 2 else None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _key_hint(loc: tuple[Any, ...]) -> str:
    """'; did you mean ...' and the keys that section allows."""
    if not loc:
        return ""
    model = _section_model(tuple(loc))
    if model is None:
        return ""
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'? allowed: " if close else "; allowed: "
    return hint + ", ".join(allowed)


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        part in ("ParamSpec", "function-after[_check(), ParamSpec]")
        or part.startswith(("function-", "json-or-python", "nullable["))
        or part in ("bool", "int", "float", "str", "none")
        or "Strict" in part
    )


def validate_config(data: Any, *, source: str = "study file") -> StudyConfig:
    """Validate a parsed study file; raise ``ConfigError`` with the first problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        config = StudyConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        best = _pick_error(errors)
        raise ConfigError(f"{source}: {_format_error(best)}") from None
    try:
        for name, entry in config.search_space.items():
            _check_entry(name, entry)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def _check_entry(name: str, entry: Any) -> None:
    """Values against the trainer's ranges (``hpo.hyperparameters``)."""
    if not isinstance(entry, ParamSpec):
        hyperparameters.check_value(name, entry)
    elif entry.type == "categorical":
        assert entry.choices is not None
        hyperparameters.check_searched(name, entry.type, tuple(entry.choices))
    else:
        as_type = int if entry.type == "int" else float  # as the Optuna distribution holds them
        assert entry.low is not None and entry.high is not None
        hyperparameters.check_searched(name, entry.type, (as_type(entry.low), as_type(entry.high)))


def _pick_error(errors: list[Any]) -> dict[str, Any]:
    # A search-space entry is a union (spec or constant); when the spec branch
    # failed with a real message, report that instead of "not a string".
    for e in errors:
        if "search_space" in e.get("loc", ()) and e.get("type") == "value_error":
            return dict(e)
    for e in errors:
        if "search_space" in e.get("loc", ()) and "ParamSpec" in [str(p) for p in e["loc"]]:
            return dict(e)
    return dict(errors[0])


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: study file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory, expected a YAML study file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read study file ({exc.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{p}: malformed YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{p}: study file is empty")
    return validate_config(data, source=str(p))
