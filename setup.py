"""Package discovery for the layout of the repository's top level (everything else is in ``pyproject.toml``).

The folders ``plugins/`` and ``training/`` install under project-unique names, ``vdpm_harness_plugins`` and
``vdpm_harness_training`` (never a bare top-level ``plugins`` package); ``pyproject.toml`` cannot rename a folder
while finding its sub-packages, so the mapping is computed here.
"""

from setuptools import find_packages, setup

FOLDERS = {"vdpm_harness": "vdpm_harness", "vdpm_harness_plugins": "plugins", "vdpm_harness_training": "training"}

packages = []
for name, folder in FOLDERS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir={name: folder for name, folder in FOLDERS.items() if name != folder})
