"""MuJoCo model files for the D4MORL environments, built at run time from Gymnasium's own.

D4MORL (Zhu, Dang & Grover 2023, the PEDA code) rolled out PGMORL's behaviour policies (Xu et
al. 2020) in PGMORL's environments. PGMORL's HalfCheetah is the robot of Gymnasium's v5 file,
but its Hopper, Walker2d, Swimmer and Ant files change a few physical attributes. This module
reproduces those variants *without shipping anyone's XML*: it reads the XML installed with
Gymnasium, edits exactly the documented attributes with :mod:`xml.etree.ElementTree`, and
writes the result into a content-addressed cache file, because Gymnasium's ``MujocoEnv`` loads
a model from a path. Gymnasium's v5 files are already written in local coordinates, which
current MuJoCo requires (PGMORL's hopper and walker use the removed ``coordinate="global"``),
so editing them is also what keeps the variants loadable.

Variants (see docs/environments.md):

``pgmorl`` Hopper
    hinge-joint damping 40 (v5: 1); joint limits off (v5: on); motor ctrlrange +-2, +-2, +-4
    and gear 200, 200, 300 for thigh, leg, foot (v5: +-1 and 200 each).
``pgmorl`` Walker2d
    hinge-joint damping 3.0 (v5: 0.1); geom density 1500 (v5: 1000); right-foot friction 0.9
    (v5: 1.9; the left foot keeps 1.9).
``pgmorl`` Swimmer
    motor gear 300 (v5: 150).
``pgmorl`` Ant
    motor gear 100 (v5: 150).
``gymnasium``
    Gymnasium's v5 file, unchanged (the path inside the installed package).
"""

from __future__ import annotations

import getpass
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from tora.errors import ToraError
from tora.io import atomic_write_text, text_sha256

MODEL_VARIANTS = ("pgmorl", "gymnasium")
"""Model choices of the Hopper, Walker2d, Swimmer and Ant envs; ``pgmorl`` is what D4MORL used."""

CACHE_ENV_VAR = "TORA_MODEL_CACHE"
"""Environment variable that overrides the directory of the generated model files."""

# The v5 file each robot starts from. Walker2d-v5's default file is walker2d_v5.xml (both feet
# with friction 1.9); the right-foot friction is set explicitly below, so the result does not
# depend on which of Gymnasium's two walker files a future release makes the default.
_BASE_FILES = {
    "hopper": "hopper.xml",
    "walker2d": "walker2d_v5.xml",
    "swimmer": "swimmer.xml",
    "ant": "ant.xml",
}

# PGMORL's hopper motors, per joint: (ctrl low, ctrl high, gear).
HOPPER_PGMORL_MOTORS: dict[str, tuple[float, float, float]] = {
    "thigh_joint": (-2.0, 2.0, 200.0),
    "leg_joint": (-2.0, 2.0, 200.0),
    "foot_joint": (-4.0, 4.0, 300.0),
}
HOPPER_PGMORL_JOINT_DAMPING = 40.0
WALKER_PGMORL_JOINT_DAMPING = 3.0
WALKER_PGMORL_DENSITY = 1500.0
WALKER_PGMORL_RIGHT_FOOT_FRICTION = 0.9
SWIMMER_PGMORL_GEAR = 300.0
ANT_PGMORL_GEAR = 100.0


def gymnasium_asset(file_name: str) -> Path:
    """Path of a model file shipped in the installed Gymnasium's MuJoCo ``assets`` folder."""
    import gymnasium.envs.mujoco as gym_mujoco

    path = Path(gym_mujoco.__file__).resolve().parent / "assets" / file_name
    if not path.is_file():
        raise ToraError(f"Gymnasium's MuJoCo asset {file_name!r} was not found at {path}")
    return path


def _fmt(x: float) -> str:
    # "2" rather than "2.0": both parse the same in MuJoCo; a fixed format keeps the file stable.
    return f"{x:g}"


def _one(root: ET.Element, path: str, what: str) -> ET.Element:
    """The single element at ``path``; fail loudly if a Gymnasium release changed the file."""
    found = root.findall(path)
    if len(found) != 1:
        raise ToraError(
            f"cannot build the PGMORL model: expected one {what} ({path}) in Gymnasium's file, "
            f"found {len(found)}; the installed Gymnasium's model file has changed"
        )
    return found[0]


def _pgmorl_hopper(root: ET.Element) -> None:
    joint = _one(root, "./default/joint", "default <joint>")
    joint.set("damping", _fmt(HOPPER_PGMORL_JOINT_DAMPING))
    # PGMORL's hopper declares its hinge joints without limits; v5's ranges stay in the file
    # but MuJoCo ignores a range on a joint that is not limited.
    joint.set("limited", "false")
    for name, (low, high, gear) in HOPPER_PGMORL_MOTORS.items():
        motor = _one(root, f"./actuator/motor[@joint='{name}']", f"motor on {name}")
        motor.set("ctrlrange", f"{_fmt(low)} {_fmt(high)}")
        motor.set("gear", _fmt(gear))


def _pgmorl_walker2d(root: ET.Element) -> None:
    _one(root, "./default/joint", "default <joint>").set(
        "damping", _fmt(WALKER_PGMORL_JOINT_DAMPING)
    )
    _one(root, "./default/geom", "default <geom>").set("density", _fmt(WALKER_PGMORL_DENSITY))
    # "foot" is the right foot ("foot_left" the left one), as in the original gym walker.
    _one(root, ".//geom[@name='foot_geom']", "geom foot_geom").set(
        "friction", _fmt(WALKER_PGMORL_RIGHT_FOOT_FRICTION)
    )


def _set_all_gears(root: ET.Element, gear: float, count: int) -> None:
    motors = root.findall("./actuator/motor")
    if len(motors) != count:
        raise ToraError(
            f"cannot build the PGMORL model: expected {count} motors in Gymnasium's file, "
            f"found {len(motors)}; the installed Gymnasium's model file has changed"
        )
    for motor in motors:
        motor.set("gear", _fmt(gear))


def _pgmorl_swimmer(root: ET.Element) -> None:
    # PGMORL's file also says option collision="predefined" with no contact pairs, i.e. no
    # contacts at all; v5 gets the same by giving every geom contype 0, so only the gear differs.
    _set_all_gears(root, SWIMMER_PGMORL_GEAR, 2)


def _pgmorl_ant(root: ET.Element) -> None:
    _set_all_gears(root, ANT_PGMORL_GEAR, 8)


_EDITS: dict[str, Callable[[ET.Element], None]] = {
    "hopper": _pgmorl_hopper,
    "walker2d": _pgmorl_walker2d,
    "swimmer": _pgmorl_swimmer,
    "ant": _pgmorl_ant,
}


def _check(robot: str, variant: str) -> None:
    if robot not in _BASE_FILES:
        raise ToraError(f"no model variants for {robot!r}; known robots: {sorted(_BASE_FILES)}")
    if variant not in MODEL_VARIANTS:
        raise ToraError(f"unknown model variant {variant!r}; choose one of {MODEL_VARIANTS}")


def pgmorl_model_xml(robot: str) -> str:
    """The XML text of PGMORL's variant of ``robot`` ("hopper", "walker2d", "swimmer", "ant")."""
    _check(robot, "pgmorl")
    base = gymnasium_asset(_BASE_FILES[robot])
    root = ET.parse(base).getroot()  # the file's own comments are dropped by the parser
    _EDITS[robot](root)
    note = ET.Comment(
        f" Generated by tora-rl from Gymnasium's {base.name}: PGMORL's {robot} variant "
        "(the model D4MORL's data was collected with). See tora.envs.mujoco_models. "
    )
    note.tail = "\n  "
    root.insert(0, note)
    return ET.tostring(root, encoding="unicode") + "\n"


def cache_dir() -> Path:
    """Directory of the generated model files: ``$TORA_MODEL_CACHE`` or a per-user temp dir."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (e.g. a container's anonymous uid)
        user = "user"
    # Per user, so one user's directory never blocks another's writes on a shared /tmp.
    return Path(tempfile.gettempdir()) / f"tora-rl-models-{user}"


def write_cached(name: str, text: str) -> Path:
    """Write ``text`` to ``<cache_dir>/<name>-<hash>.xml`` unless an identical file is there.

    The name carries a hash of the content, so different Gymnasium releases (or edits) never
    share a file, and the write goes through a temporary file and an atomic rename, so parallel
    workers building the same env never see a half-written model.
    """
    digest = text_sha256(text)[:16]
    path = cache_dir() / f"{name}-{digest}.xml"
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass  # missing or unreadable: (re)write it below
    atomic_write_text(path, text)
    return path


def model_path(robot: str, variant: str = "pgmorl") -> Path:
    """Path of the model file of ``robot`` ("hopper", "walker2d", "swimmer", "ant") in ``variant``.

    ``gymnasium`` gives the installed v5 file itself; ``pgmorl`` builds (or reuses) the cached
    variant.
    """
    _check(robot, variant)
    if variant == "gymnasium":
        return gymnasium_asset(_BASE_FILES[robot])
    return write_cached(f"{robot}-pgmorl", pgmorl_model_xml(robot))


__all__ = [
    "ANT_PGMORL_GEAR",
    "CACHE_ENV_VAR",
    "HOPPER_PGMORL_MOTORS",
    "MODEL_VARIANTS",
    "SWIMMER_PGMORL_GEAR",
    "cache_dir",
    "gymnasium_asset",
    "model_path",
    "pgmorl_model_xml",
    "write_cached",
]
