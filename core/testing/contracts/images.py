"""The contract of an images driver (rules I1-I10, D1), checked with the kit's own tiny
image in an OCI archive: no registry and no download needed."""

from __future__ import annotations

import re

import pytest

from ...drivers import Images, ImageSummary, ResolvedImage
from ...errors import HyperError, NotFound, UserError
from .. import ociarchive
from ..rules import broken, check
from .common import check_declarations, check_settings, one_line

ID = re.compile(r"sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def archive(hc_root):
    return ociarchive.write(hc_root / "kit-image.tar")


@pytest.fixture
def config(hc_make_config):
    return hc_make_config()


@pytest.fixture
def driver(hc_plugin, config) -> Images:
    return hc_plugin(config)


@pytest.fixture
def loaded(driver, archive) -> tuple[Images, ResolvedImage]:
    references = driver.load(archive)
    check(
        isinstance(references, list) and ociarchive.NAME in references,
        "I3",
        f"load() returned {references!r}, which lacks {ociarchive.NAME}",
    )
    return driver, driver.resolve(ociarchive.NAME)


def test_declarations(hc_plugin):
    check_declarations(hc_plugin, Images)


def test_settings(hc_plugin, hc_make_config):
    check_settings(hc_plugin, hc_make_config())


def test_layers_root_is_an_absolute_path(driver):
    root = driver.layers_root()
    check(root.is_absolute(), "I1", f"layers_root() is {root!r}")


def test_an_unknown_image_is_not_found(driver):
    for reference in ("kit-nowhere:1.0", "sha256:" + "0" * 64):
        try:
            driver.resolve(reference)
        except NotFound:
            continue
        except Exception as e:  # noqa: BLE001
            broken("I2", f"resolve({reference!r}) raised {type(e).__name__}: {e}")
        broken("I2", f"resolve({reference!r}) found something")


def test_a_loaded_image_resolves_with_its_layers(loaded, archive):
    driver, image = loaded
    check(isinstance(image, ResolvedImage), "I3", f"resolve() returned {image!r}")
    check(
        image.id == ociarchive.image_id(archive),
        "I3",
        f"id {image.id} is not the image's config digest {ociarchive.image_id(archive)}",
    )
    check(
        image.reference == ociarchive.NAME,
        "I3",
        f"reference {image.reference!r} is not the normalised {ociarchive.NAME!r}",
    )
    root = driver.layers_root()
    check(len(image.layers) == 1, "I3", f"one layer expected, got {image.layers}")
    for layer in image.layers:
        check(
            not layer.startswith("/") and (root / layer).is_dir(),
            "I3",
            f"layer {layer!r} is not a directory relative to {root}",
        )
    check(
        (root / image.layers[0] / "bin" / "hello").is_file(),
        "I3",
        "the layer's file bin/hello was not unpacked",
    )
    check(
        image.config.cmd == ["sleep", "infinity"],
        "I3",
        f"the image's Cmd came back as {image.config.cmd}",
    )


def test_an_image_resolves_by_id_and_prefix(loaded):
    driver, image = loaded
    hexdigits = image.id.removeprefix("sha256:")
    for reference in (image.id, hexdigits[:12]):
        found = driver.resolve(reference)
        check(found.id == image.id, "I4", f"resolve({reference!r}) found {found.id}")


def test_list_shows_the_image(loaded):
    driver, image = loaded
    rows = driver.list()
    check(all(isinstance(r, ImageSummary) for r in rows), "I5", f"list() returned {rows!r}")
    check(any(r.id == image.id for r in rows), "I5", f"{image.id} is not in {rows}")


def test_an_image_in_use_is_kept_unless_forced(loaded):
    driver, image = loaded
    try:
        driver.remove(ociarchive.NAME, in_use=[image.id])
    except HyperError as e:
        one_line("I6", e)
    else:
        broken("I6", "remove() of an image in use did not refuse")
    check(driver.resolve(ociarchive.NAME).id == image.id, "I6", "the refused image is gone")
    removed = driver.remove(ociarchive.NAME)
    check(isinstance(removed, list) and removed, "I6", f"remove() returned {removed!r}")
    try:
        driver.resolve(image.id)
    except NotFound:
        return
    broken("I6", f"the image is still there after remove() said {removed}")


def test_a_saved_archive_loads_into_another_store(loaded, hc_plugin, hc_make_config, hc_root):
    driver, image = loaded
    saved = hc_root / "kit-saved.tar"
    driver.save([ociarchive.NAME], saved)
    check(saved.is_file(), "I7", "save() wrote no file")
    other = hc_plugin(hc_make_config())
    other.load(saved)
    check(
        other.resolve(ociarchive.NAME).id == image.id,
        "I7",
        "the saved image loaded with another id",
    )


def test_the_store_survives_a_restart(loaded, hc_plugin, config):
    driver, image = loaded
    restarted = hc_plugin(config)
    restarted.recover()
    restarted.recover()
    check(
        restarted.resolve(ociarchive.NAME).id == image.id,
        "I8",
        "a new driver instance on the same state no longer finds the image",
    )


def test_optional_verbs_work_or_refuse(loaded):
    driver, image = loaded
    for verb, call in (
        ("tag", lambda: driver.tag(ociarchive.NAME, "kit/tagged:1")),
        ("logout", lambda: driver.logout("127.0.0.1:9")),
        ("push", lambda: driver.push(ociarchive.NAME, "127.0.0.1:9/kit/x:1")),
    ):
        try:
            call()
        except UserError as e:
            one_line("I9", e)
            continue
        except HyperError as e:  # push to a closed port: refused, as it should be
            one_line("I9", e)
            continue
        except Exception as e:  # noqa: BLE001
            broken("I9", f"{verb} raised {type(e).__name__}: {e}")
        if verb == "tag":
            check(
                driver.resolve("kit/tagged:1").id == image.id,
                "I9",
                "the tagged name does not resolve to the image",
            )


def test_an_unreachable_registry_is_one_line(driver):
    try:
        driver.pull("127.0.0.1:9/kit/nothing:1")
    except HyperError as e:
        one_line("I10", e)
    except Exception as e:  # noqa: BLE001
        broken("I10", f"pull() raised {type(e).__name__}: {e}")
    else:
        broken("I10", "pull() from a closed port succeeded")
