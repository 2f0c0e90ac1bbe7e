"""Generator families behind one interface, and the registry that names them (`gan.family`).

family.py (the interface and the training unit), loop.py (the one training loop every family
uses), checkpoint.py (one checkpoint format), sample.py (per-seed sampling, realism scores),
monitor.py (log.csv, NaN guard), diffaug.py (DiffAugment, for any family with a discriminator).
Families: wgan/ (the paper's Wasserstein GAN, the default), stylegan2/ (StyleGAN2 with adaptive
discriminator augmentation, ada.py, for a few thousand images).

Add a family: write a GeneratorFamily subclass in its own module and register an instance:
`register(MyFamily())`.

    python -c "import ganaug.generators as g; print(sorted(g.FAMILIES))"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganaug import InputError

if TYPE_CHECKING:
    from ganaug.generators.family import GeneratorFamily

FAMILIES: dict[str, GeneratorFamily] = {}


def register(family: GeneratorFamily) -> GeneratorFamily:
    """Make `family` available as `gan.family: <family.name>`."""
    FAMILIES[family.name] = family
    return family


def get_family(name: str, where: str = "config key gan.family") -> GeneratorFamily:
    """The registered family called `name`; InputError listing the valid names otherwise."""
    if name not in FAMILIES:
        raise InputError(
            f"{where}: unknown generator family {name!r}; use one of {sorted(FAMILIES)}"
        )
    return FAMILIES[name]


def _register_builtin() -> None:
    from ganaug.generators.diffusion import DiffusionFamily
    from ganaug.generators.stylegan2 import StyleGan2Family
    from ganaug.generators.wgan import WganFamily

    register(WganFamily())
    register(StyleGan2Family())
    register(DiffusionFamily())


_register_builtin()
