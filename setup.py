"""Packaging beyond what pyproject.toml can say: the bundled search spaces ship inside the package.

They live in the repository's top-level ``search_spaces/`` folder; a wheel installs them as the data-only
package ``sltsearch.search_spaces``, where `sltsearch.spec.spaces` finds them through importlib.resources.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["sltsearch", "sltsearch.*"]), "sltsearch.search_spaces"],
    package_dir={"sltsearch.search_spaces": "search_spaces"},
    package_data={"sltsearch.search_spaces": ["*.yaml", "*.json"]},
)
