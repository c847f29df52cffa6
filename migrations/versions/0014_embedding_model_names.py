"""embedding model names: the onnx package's version is no longer part of them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

An embedding's ``model`` names what makes its vector (the network file's digest, the pooling,
the crop, the projection, the storage), and only vectors of the running embedder's model are
compared. It also named the version of the ``onnx`` package that adds the pooled output to the
graph, which does not change a vector: upgrading ``onnx`` made every stored embedding invisible
to ``like:``, ``dupes:`` and "posted before" until ``imgbot rescan-images`` computed them all
again. The names already stored lose that suffix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import metadata

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_ONNX_SUFFIX = re.compile(r" \(onnx [^()]*\)$")
_EMBEDDINGS = sa.table('image_embeddings', sa.column('model', sa.String))


def upgrade() -> None:
    _rename(lambda model: _ONNX_SUFFIX.sub("", model))


def downgrade() -> None:
    try:  # the installed version is the one the older code would name
        version = metadata.version("onnx")
    except metadata.PackageNotFoundError:
        return
    _rename(lambda model: model if _ONNX_SUFFIX.search(model) or not model else f"{model} (onnx {version})")


def _rename(new_name: Callable[[str], str]) -> None:
    bind = op.get_bind()
    for (model,) in bind.execute(sa.select(_EMBEDDINGS.c.model).distinct()).all():
        renamed = new_name(model)
        if renamed != model:
            bind.execute(_EMBEDDINGS.update().where(_EMBEDDINGS.c.model == model).values(model=renamed))
