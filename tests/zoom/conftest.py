"""The presence tests' small synthetic dataset (boxes known) and tiny CondViT, shared."""

from tests.presence.conftest import data, model  # noqa: F401  (fixtures)
