"""The settings of an evaluation run: what an eval ``--config`` file may set, and the whole run's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from personalign.config import MethodConfig, Settings
from personalign.store import default_cache_dir

Control = Literal["own", "other-user", "none"]
CONTROLS: tuple[str, ...] = get_args(Control)


class EvalSettings(Settings):
    """What an eval ``--config`` file (and the matching flags) may set; command-line flags win."""

    renamed = {"method": "method_config", "profile_control": "profile_controls"}

    retriever: str = "bm25"
    llm: str = "llamacpp"
    llm_options: dict[str, Any] = {}
    limit: int | None = Field(None, ge=1)
    seed: int = 0
    method_config: MethodConfig = Field(default_factory=MethodConfig)
    method_options: dict[str, dict[str, Any]] = {}   # by method name (``rpo@sft``), checked by the method's model
    profile_controls: list[Control] = Field(["own"], min_length=1)
    concurrency: int = Field(8, ge=1)
    workers: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_seed(self) -> EvalSettings:
        """The run's seed is the methods' seed: ``method_config.seed`` counts when ``seed`` is not set."""
        if "seed" not in self.model_fields_set and "seed" in self.method_config.model_fields_set:
            self.__dict__["seed"] = self.method_config.seed
        elif self.method_config.seed != self.seed:
            self.__dict__["method_config"] = self.method_config.model_copy(update={"seed": self.seed})
        return self


class EvalConfig(EvalSettings):
    """Every setting of an evaluation run (written to the run's manifest)."""

    data: str
    task: str
    methods: list[str] = Field(min_length=1)
    split: Literal["user", "time"] = "user"
    part: str = "dev"
    out: str = "runs"
    cache_dir: str = Field(default_factory=default_cache_dir)

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.task / f"{self.split}-{self.part}"
