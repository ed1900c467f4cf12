"""Maps the two source trees onto namespaced import names.

`core/` installs as `hypercontainer` and `plugins/` as `hypercontainer_plugins`,
so no bare top-level `core` or `plugins` package ever lands in site-packages.
"""

from setuptools import find_packages, setup

ROOTS = {"hypercontainer": "core", "hypercontainer_plugins": "plugins"}


def namespaced_packages() -> list[str]:
    packages = []
    for name, directory in ROOTS.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_packages(directory)]
    return packages


setup(packages=namespaced_packages(), package_dir=ROOTS)
