"""Entry point of `moext-train`: imports every command module so that it registers."""

import importlib
import pkgutil

import train.commands
from train.app import app

for _mod in pkgutil.iter_modules(train.commands.__path__):
    importlib.import_module(f"train.commands.{_mod.name}")

__all__ = ["app"]

if __name__ == "__main__":
    app()
