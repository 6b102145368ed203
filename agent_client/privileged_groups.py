"""Local groups whose members hold root's powers, or can take them, on a usual Linux host.

A job mapped to an account in one of these groups runs with that power, whatever the job
token said. ``sudo``/``wheel``/``admin`` may become root; ``root`` owns root's files; ``shadow``
reads password hashes; ``disk`` writes raw block devices; ``adm`` reads every log; ``docker``,
``lxd``, ``kvm`` and ``libvirt`` start containers or machines with the host's disks mounted.
Membership is refused unless the node's admin allows that group by name
(``[mapping] allow_privileged_groups``).
"""

from __future__ import annotations

import grp
from typing import ClassVar

from realms.errors import InputError

# Why: membership in any of these gives root or its equivalent: sudo rights (root, wheel, sudo,
# admin, sudoers), raw devices or kernel memory (disk, kmem, sys), password hashes (shadow),
# every log (adm, systemd-journal), a root-owned daemon's socket (docker, lxd, incus-admin,
# libvirt, kvm's /dev/kvm with a VM manager), writes in root's PATH (staff on Debian, src).
ROOT_EQUIVALENT_GROUPS = frozenset(
    {
        "root", "wheel", "sudo", "admin", "sudoers", "adm", "disk", "shadow", "kmem", "sys", "docker", "lxd",
        "incus", "incus-admin", "libvirt", "libvirt-qemu", "kvm", "staff", "src", "systemd-journal", "lpadmin",
    }
)  # fmt: skip


class MapPrivilegedGroup(InputError):
    """The mapped account is in a root-equivalent group the node's configuration does not allow."""

    code: ClassVar[str] = "map.privileged_group"


def group_names(gids: tuple[int, ...]) -> tuple[str, ...]:
    """The names of ``gids`` (a gid without a name is shown as its number)."""
    names = []
    for gid in gids:
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(str(gid))
    return tuple(names)


def privileged_groups(gids: tuple[int, ...], allowed: frozenset[str]) -> tuple[str, ...]:
    """The root-equivalent groups among ``gids`` that ``allowed`` does not lift, sorted."""
    return tuple(sorted(set(group_names(gids)) & ROOT_EQUIVALENT_GROUPS - allowed))
