"""Copies the top-level data folders into the wheel as edgepool/_data/<folder>.

Everything else is in pyproject.toml. In a checkout (or an editable install) the folders are
read where they are; see edgepool/_paths.py.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("device_profiles", "quantization")


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        root = Path(__file__).parent
        for name in DATA_DIRS:
            target = Path(self.build_lib) / "edgepool" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(root / name, target)


setup(cmdclass={"build_py": BuildPyWithData})
