"""Command-line options generated from the config dataclasses (litgpt's TrainArgs / EvalArgs
pattern): each setting is declared once, as a dataclass field with its docstring line, and
every command that uses the group gets the same flag, help text and parsing.

Precedence, lowest first: the dataclass default, the command's recipe (e.g. the fine-tuning
schedule), `--config run.json`, explicit flags, then `--set KEY=VALUE` (repeatable; KEY is a
field name, or `group.field` when two groups share a name: `optim.lr`, `model.dropout`).

Model flags are the union of every registered method's model config (MoExt's `ModelConfig`,
MIACNet's `MIACNetConfig`, and whatever a new `train/method_<name>.py` registers): a flag
that the chosen method's config does not have is an error naming the method. So a new
method's settings are reachable exactly as MoExt's are.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from train.config import AugmentConfig, LosoConfig, OptimConfig, RunConfig, TrainError

# Flags whose names are not the field's (kept as they were before the options were
# generated, so scripts and docs keep working): (group, field) -> flag.
RENAMES = {
    ("augment", "max_rotation_deg"): "--max-rotation",
    ("augment", "sensor_noise_std"): "--sensor-noise",
    ("model", "use_motion_extractor"): "--motion-extractor",
    ("model", "use_position_branch"): "--position-branch",
    ("loso", "subjects"): "--subject",
}
# Fields that are not options: set by the command (arguments, the protocol's classes) or
# structural.
SKIP = {
    ("run", "method"), ("run", "model"), ("run", "optim"), ("run", "augment"), ("run", "caches"),
    ("run", "protocol"), ("run", "init"), ("run", "include_macro"), ("run", "recipe"), ("loso", "run"),
    ("model", "num_classes"), ("model", "class_names"),
}
PANELS = {"optim": "Optimisation", "augment": "Augmentation", "run": "Run", "loso": "Evaluation"}


def _attribute_docs(cls: type) -> dict[str, str]:
    """`name: text` lines of a Google-style `Attributes:` section (continuations joined;
    `a, b: text` documents both); fields a config inherits are documented by its base."""
    out: dict[str, str] = {}
    for base in cls.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            out.update(_attribute_docs(base))
    doc = cls.__dict__.get("__doc__") or ""
    doc = inspect.cleandoc(doc)
    if "Attributes:" not in doc:
        return out
    names: list[str] = []
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = re.match(r"^    ([a-z_][a-z0-9_, /]*):\s*(.*)$", line)
        if m:
            names = [n.strip() for n in re.split(r"[,/]", m.group(1)) if n.strip()]
            for n in names:
                out[n] = m.group(2).strip()
        elif line.startswith("        ") and names:
            for n in names:
                out[n] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return out


@dataclass(frozen=True)
class Flag:
    """One generated option: where its value goes and how it is parsed."""

    group: str  # optim | augment | run | loso | model
    field: str
    flag: str
    kind: Any  # the Python type typer parses: int, float, str, bool, list[str]
    help: str
    owners: tuple[str, ...] = ()  # model flags: the methods whose config has the field

    @property
    def param(self) -> str:
        return f"{self.group}__{self.field}"


def _plain_type(tp: Any) -> Any:
    """int | None -> int; tuple[float, float] stays; list[str] stays."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _plain_type(args[0]) if len(args) == 1 else str
    return tp


def _group_flags(cls: type, group: str, owners: tuple[str, ...] = ()) -> list[Flag]:
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        if (group, f.name) in SKIP:
            continue
        kind = _plain_type(hints[f.name])
        if typing.get_origin(kind) is tuple:
            continue  # pairs (contrast_gain) are set with --set or --config
        flag = RENAMES.get((group, f.name), "--" + f.name.replace("_", "-"))
        out.append(Flag(group, f.name, flag, kind, docs.get(f.name, ""), owners))
    return out


def model_flags() -> list[Flag]:
    """One flag per model config field over every registered method; shared fields once."""
    from train.methods import METHODS

    by_field: dict[str, Flag] = {}
    # MoExt first: a field both configs share is documented in MoExt's words.
    for e in sorted(METHODS.entries(), key=lambda e: (e.name != "moext", e.name)):
        names = tuple(sorted((e.name, *e.aliases)))  # every name a user may give the method
        for fl in _group_flags(e.item.config_cls, "model", names):
            if fl.field in by_field:
                old = by_field[fl.field]
                by_field[fl.field] = dataclasses.replace(old, owners=old.owners + names)
            else:
                by_field[fl.field] = fl
    return list(by_field.values())


def flags_for(groups: tuple[str, ...]) -> list[Flag]:
    classes = {"optim": OptimConfig, "augment": AugmentConfig, "run": RunConfig, "loso": LosoConfig}
    out: list[Flag] = []
    for g in groups:
        out += model_flags() if g == "model" else _group_flags(classes[g], g)
    return out


def _parameter(fl: Flag) -> inspect.Parameter:
    help_ = fl.help
    if fl.group == "model":
        help_ = f"{help_} ({', '.join(fl.owners)})"  # not [..]: rich reads brackets as markup
        panel = "Model"
    else:
        panel = PANELS[fl.group]
    if fl.kind is bool:
        name = fl.flag[2:]
        opt = typer.Option(f"--{name}/--no-{name}", help=help_, rich_help_panel=panel, show_default=False)
        annotation: Any = Annotated[Optional[bool], opt]
    elif typing.get_origin(fl.kind) is list:
        opt = typer.Option(fl.flag, help=help_ + " (repeatable)", rich_help_panel=panel, show_default=False)
        annotation = Annotated[Optional[list[str]], opt]
    else:
        opt = typer.Option(fl.flag, help=help_, rich_help_panel=panel, show_default=False)
        annotation = Annotated[Optional[fl.kind], opt]
    return inspect.Parameter(fl.param, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


CONFIG_OPT = inspect.Parameter(
    "config", inspect.Parameter.KEYWORD_ONLY, default=None,
    annotation=Annotated[Optional[Path], typer.Option(
        "--config", help="a run's JSON (config.json of an earlier run, or {\"run\": {...}, \"loso\": {...}}); "
        "flags and --set override it", rich_help_panel="Run")],
)
SET_OPT = inspect.Parameter(
    "set_", inspect.Parameter.KEYWORD_ONLY, default=None,
    annotation=Annotated[Optional[list[str]], typer.Option(
        "--set", help="any setting, KEY=JSON (repeatable): a field name, or group.field (optim.lr, augment.repeats, "
        "model.dropout, loso.selection)", rich_help_panel="Run")],
)


def with_options(groups: tuple[str, ...]) -> Callable[[Callable], Callable]:
    """Decorate a command `fn(..., options: Options)`: its own parameters stay, and the
    groups' generated flags plus --config and --set are added; `options` arrives parsed."""

    def deco(fn: Callable) -> Callable:
        flags = flags_for(groups)
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "options"]
        params = own + [_parameter(fl) for fl in flags] + [CONFIG_OPT, SET_OPT]

        def wrapper(**kw):
            given = {fl: kw.pop(fl.param) for fl in flags}
            opts = Options(flags, {fl: v for fl, v in given.items() if v is not None}, kw.pop("config"), kw.pop("set_"))
            return fn(**kw, options=opts)

        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper

    return deco


class Options:
    """What the user asked for, layered over defaults by `build`: explicit flags, --config,
    --set. `model` settings are returned separately (their dataclass depends on the method)."""

    def __init__(self, flags: list[Flag], given: dict[Flag, Any], config: Path | None, sets: list[str] | None):
        self.flags, self.given, self.config_path, self.sets = flags, given, config, list(sets or [])
        self.file = self._read_config(config) if config is not None else {}

    @staticmethod
    def _read_config(path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise TrainError(f"--config {path}: no such file; pass a run's config.json")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise TrainError(f"--config {path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise TrainError(f"--config {path}: expected a JSON object with a 'run' (and 'loso') section")
        # A LOSO run's config.json: {"loso": {..., "run": {...}}, "overrides": model flags}; a
        # pretrain/finetune one: {"run": {..., "model": {...}}, "model": the classifier's config}.
        if "loso" in data and isinstance(data["loso"], dict) and "run" in data["loso"]:
            run, loso = data["loso"]["run"], {k: v for k, v in data["loso"].items() if k != "run"}
            model = data.get("overrides") or run.get("model") or {}
        else:
            run = data.get("run", data)
            loso = data.get("loso_settings", {})
            model = run.get("model") or {k: v for k, v in (data.get("model") or {}).items()
                                         if k not in ("num_classes", "class_names")}
        return {"run": run, "loso": loso, "model": dict(model)}

    def _set_pairs(self) -> list[tuple[str, str, Any]]:
        """(group or "", field, value) of every --set, keys resolved against the known flags."""
        known = {(fl.group, fl.field) for fl in self.flags}
        known |= {("augment", "contrast_gain")} if any(fl.group == "augment" for fl in self.flags) else set()
        out = []
        for item in self.sets:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise TrainError(f"--set {item!r}: write KEY=VALUE, e.g. --set dropout=0.3 or --set optim.lr=1e-3")
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw  # a bare string, e.g. --set backbone=resnet34
            group, _, field = key.rpartition(".")
            if group:
                if (group, field) not in known:
                    raise TrainError(f"--set {key}: no setting {field!r} in group {group!r}; "
                                     f"known: {', '.join(sorted(f'{g}.{f}' for g, f in known))}")
            else:
                hits = sorted({g for g, f in known if f == field})
                if not hits:
                    raise TrainError(f"--set {key}: unknown setting; known: {', '.join(sorted({f for _, f in known}))}")
                if len(hits) > 1:
                    raise TrainError(f"--set {key} is ambiguous ({', '.join(f'{g}.{field}' for g in hits)}); "
                                     "write group.field")
                group = hits[0]
            out.append((group, field, self._typed(group, field, key, value)))
        return out

    def _typed(self, group: str, field: str, key: str, value: Any) -> Any:
        """A --set value checked against its field's type (a string "abc" for a float, or
        "maybe" for a switch, is refused here, before anything is written)."""
        kinds = {fl.kind for fl in self.flags if fl.group == group and fl.field == field}
        if (group, field) == ("augment", "contrast_gain"):
            kinds = {tuple}
        kind = next(iter(kinds)) if len(kinds) == 1 else None
        bad = None
        if kind is bool:
            if not isinstance(value, bool):
                bad = "true or false"
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                bad = "a whole number"
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                bad = "a number"
            else:
                value = float(value)
        elif kind is str:
            if value is not None and not isinstance(value, str):
                value = json.dumps(value)  # e.g. --set backbone=18 stays the name "18"
        elif kind is tuple or typing.get_origin(kind) is tuple:
            if not (isinstance(value, list) and len(value) == 2 and value[0] <= value[1]
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                bad = "a JSON pair of numbers LOW <= HIGH, e.g. [1.2, 1.6]"
        elif kind is not None and typing.get_origin(kind) is list:
            if not isinstance(value, list):
                bad = "a JSON list, e.g. [\"a\", \"b\"]"
        if bad:
            raise TrainError(f"--set {key}={json.dumps(value) if not isinstance(value, str) else value}: "
                             f"{group}.{field} takes {bad}")
        return value

    def values(self, group: str) -> dict[str, Any]:
        """Settings of one group: --config's, then flags, then --set."""
        out = dict(self.file.get("run", {}).get(group, {})) if group in ("optim", "augment") else {}
        if group == "model":
            out = dict(self.file.get("model", {}))
        elif group == "run":
            out = {k: v for k, v in self.file.get("run", {}).items()
                   if k not in ("optim", "augment", "model", "caches", "method", "protocol", "init", "include_macro",
                                "recipe")}
        elif group == "loso":
            out = dict(self.file.get("loso", {}))
        for fl, v in self.given.items():
            if fl.group == group:
                out[fl.field] = v
        for g, f, v in self._set_pairs():
            if g == group:
                out[f] = v
        return out

    def file_run(self, key: str, default: Any = None) -> Any:
        return self.file.get("run", {}).get(key, default)

    def model(self, method: str) -> dict[str, Any]:
        """Model settings for `method`; a flag or --set for another method's field is an error."""
        vals = self.values("model")
        by_field = {fl.field: fl for fl in self.flags if fl.group == "model"}
        for k in vals:
            fl = by_field.get(k)
            if fl is not None and method not in fl.owners and (fl in self.given or self._set_has(k)):
                raise TrainError(f"{fl.flag} is not a setting of --method {method} (it belongs to "
                                 f"{'/'.join(fl.owners)}); drop it or choose that method")
        return vals

    def _set_has(self, field: str) -> bool:
        return any(f == field and g == "model" for g, f, _ in self._set_pairs())


def build_run(opts: Options, *, method: str, caches: list[Path], recipe: dict[str, dict[str, Any]] | None = None,
              **fields: Any) -> RunConfig:
    """A RunConfig from the recipe's defaults, then --config, flags, --set; `fields` (method,
    protocol, init, include_macro...) come from the command's own arguments."""
    from train.methods import METHODS

    if method not in METHODS:
        raise TrainError(f"unknown method {method!r}; choose one of {', '.join(METHODS.choices())}")
    recipe = recipe or {}
    try:
        optim = OptimConfig(**{**recipe.get("optim", {}), **opts.values("optim")})
        aug = {**recipe.get("augment", {}), **opts.values("augment")}
        if "contrast_gain" in aug:
            aug["contrast_gain"] = tuple(aug["contrast_gain"])
        augment = AugmentConfig(**aug)
        run_vals = {**recipe.get("run", {}), **opts.values("run")}
        if fields.get("init"):
            fields["init"] = str(Path(fields["init"]).resolve())
        # Absolute paths: the same run, however the paths were spelled or from whichever
        # directory, has the same settings (and `--resume` recognises it).
        return RunConfig(method=method, optim=optim, augment=augment,
                         caches=[str(Path(c).resolve()) for c in caches], **{**run_vals, **fields})
    except TypeError as e:
        raise TrainError(f"bad settings: {e}") from None


def build_loso(opts: Options, run: RunConfig, **fields: Any) -> LosoConfig:
    vals = {**opts.values("loso"), **{k: v for k, v in fields.items() if v is not None}}
    if "subjects" in vals:
        vals["subjects"] = list(vals["subjects"] or [])
    try:
        return LosoConfig(run=run, **vals)
    except TypeError as e:
        raise TrainError(f"bad evaluation settings: {e}") from None
