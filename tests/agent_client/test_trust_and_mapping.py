"""Trust store (fetch, disk cache, staleness bound, rate-limited refetch) and mapping rule order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent_client.authorization import Principals
from agent_client.config import MappingConfig, MappingRule
from agent_client.decision import NodeDecider
from agent_client.errors import MapBadAccount, MapNoAccount, MapRootRefused, TrustUnavailable
from agent_client.mapping import map_account, resolve_account
from agent_client.trust_store import TrustStore
from authz_tables.roles import Role
from realms.identity.access_id import EVERYONE, AccessId
from tests.agent_client.conftest import (
    DEFAULT_TABLE,
    JOHN_JM,
    KEYS,
    OPS_JM,
    OWN,
    TRUSTED,
    RealmKey,
    issuer,
    make_job,
    mint,
    policy,
    table,
)
from tests.clocks import ManualClock


class Fetcher:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.keys: dict[str, list[dict[str, Any]]] = {r: [KEYS[r].jwk()] for r in (OWN, TRUSTED)}
        self.fail = False

    def __call__(self, realm: str) -> tuple[dict[str, Any], int | None]:
        self.calls.append(realm)
        if self.fail:
            raise TrustUnavailable("down")
        return {"keys": self.keys[realm]}, 60


def _store(tmp_path: Path, fetch: Fetcher, clock: ManualClock, **kw: Any) -> TrustStore:
    return TrustStore(
        realms=frozenset({OWN, TRUSTED}), issuer_of=issuer, cache_dir=tmp_path / "jwks", fetch=fetch,
        max_age=600, refetch_interval=30, clock=clock, **kw,
    )  # fmt: skip


def test_fetches_once_then_serves_from_memory_until_max_age(tmp_path: Path) -> None:
    fetch, clock = Fetcher(), ManualClock(1_000_000.0)
    store = _store(tmp_path, fetch, clock)
    assert store.issuer_trust(issuer(TRUSTED)) is not None
    assert store.issuer_trust(issuer(TRUSTED)) is not None
    assert fetch.calls == [TRUSTED]
    clock.now += 61  # past Cache-Control max-age: refetch
    store.issuer_trust(issuer(TRUSTED))
    assert fetch.calls == [TRUSTED, TRUSTED]


def test_untrusted_issuer_is_never_fetched(tmp_path: Path) -> None:
    fetch = Fetcher()
    store = _store(tmp_path, fetch, ManualClock(1_000_000.0))
    assert store.issuer_trust(issuer("cellC")) is None
    assert store.issuer_trust("https://evil.example/realms/jobmgr") is None
    assert fetch.calls == []


def test_stale_cache_is_used_within_bound_then_fails_only_that_realm(tmp_path: Path) -> None:
    fetch, clock = Fetcher(), ManualClock(1_000_000.0)
    store = _store(tmp_path, fetch, clock)
    store.issuer_trust(issuer(TRUSTED))
    fetch.fail = True
    clock.now += 300  # STS down, cache 300s old: still within max_age 600
    assert store.issuer_trust(issuer(TRUSTED)) is not None
    clock.now += 400  # now 700s old: past the bound
    with pytest.raises(TrustUnavailable) as caught:
        store.issuer_trust(issuer(TRUSTED))
    assert caught.value.code == "trust.unavailable" and "jobmgr" in caught.value.message


def test_disk_cache_survives_a_restart(tmp_path: Path) -> None:
    fetch, clock = Fetcher(), ManualClock(1_000_000.0)
    _store(tmp_path, fetch, clock).issuer_trust(issuer(TRUSTED))
    cached = json.loads((tmp_path / "jwks" / f"{TRUSTED}.json").read_text())
    assert cached["jwks"]["keys"][0]["kid"] == KEYS[TRUSTED].kid
    fetch.fail = True
    clock.now += 100
    again = _store(tmp_path, fetch, clock)
    trust = again.issuer_trust(issuer(TRUSTED))
    assert trust is not None and KEYS[TRUSTED].kid in trust.keys


def test_unknown_kid_refetch_is_rate_limited(tmp_path: Path) -> None:
    fetch, clock = Fetcher(), ManualClock(1_000_000.0)
    store = _store(tmp_path, fetch, clock)
    store.issuer_trust(issuer(TRUSTED))
    assert store.refreshed_trust(issuer(TRUSTED)) is None  # within 30s of the last fetch
    clock.now += 31
    rotated = RealmKey(TRUSTED)
    fetch.keys[TRUSTED] = [rotated.jwk()]
    trust = store.refreshed_trust(issuer(TRUSTED))
    assert trust is not None and rotated.kid in trust.keys
    assert store.refreshed_trust(issuer(TRUSTED)) is None
    assert fetch.calls.count(TRUSTED) == 2


def test_rotated_key_is_picked_up_by_a_decision(tmp_path: Path) -> None:
    fetch, clock = Fetcher(), ManualClock(1_000_000.0)
    store = _store(tmp_path, fetch, clock)
    store.issuer_trust(issuer(TRUSTED))
    clock.now += 31
    rotated = RealmKey(TRUSTED)
    fetch.keys[TRUSTED] = [KEYS[TRUSTED].jwk(), rotated.jwk()]
    job = make_job()
    decision = NodeDecider(policy(), store, table(*DEFAULT_TABLE)).decide(job, mint(job, signer=rotated))
    assert decision.allowed, decision.explain()


def test_keys_with_private_members_or_wrong_use_are_skipped(tmp_path: Path) -> None:
    fetch = Fetcher()
    bad_use = {**RealmKey(TRUSTED).jwk(), "use": "enc"}
    leaked = {**RealmKey(TRUSTED).jwk(), "d": "AAAA"}
    fetch.keys[TRUSTED] = [bad_use, leaked, KEYS[TRUSTED].jwk()]
    trust = _store(tmp_path, fetch, ManualClock(1_000_000.0)).issuer_trust(issuer(TRUSTED))
    assert trust is not None and list(trust.keys) == [KEYS[TRUSTED].kid]


def test_bundle_realm_is_never_fetched(tmp_path: Path, bundles: dict[str, Path]) -> None:
    fetch = Fetcher()
    store = _store(tmp_path, fetch, ManualClock(1_000_000.0), bundles={TRUSTED: bundles[TRUSTED]})
    assert store.issuer_trust(issuer(TRUSTED)) is not None
    assert store.refreshed_trust(issuer(TRUSTED)) is None
    assert fetch.calls == []


# --- mapping ---------------------------------------------------------------------------------


def _principals(realm: str = TRUSTED, groups: tuple[str, ...] = (OPS_JM,)) -> Principals:
    subject = AccessId.parse(JOHN_JM)
    ids = frozenset({subject, EVERYONE, *(AccessId.parse(g) for g in groups)})
    return Principals(subject, realm, ids, 0)


ALL_RULES = (
    MappingRule("realm", TRUSTED, "games"),
    MappingRule("role", "operator", "man", role=Role.OPERATOR),
    MappingRule("group", OPS_JM, "mail", access_id=AccessId.parse(OPS_JM)),
    MappingRule("access_id", JOHN_JM, "daemon", access_id=AccessId.parse(JOHN_JM)),
)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [(ALL_RULES, "daemon"), (ALL_RULES[:3], "mail"), (ALL_RULES[:2], "man"), (ALL_RULES[:1], "games")],
)
def test_rule_kinds_are_tried_in_order(rules: tuple[MappingRule, ...], expected: str) -> None:
    account = map_account(_principals(), MappingConfig(rules=rules), table(*DEFAULT_TABLE))
    assert account.name == expected


def test_role_rule_needs_the_role_in_the_table() -> None:
    rules = (MappingRule("role", "administrator", "man", role=Role.ADMINISTRATOR),)
    with pytest.raises(MapNoAccount):
        map_account(_principals(), MappingConfig(rules=rules), table(*DEFAULT_TABLE))


def test_fallback_nobody_is_recorded() -> None:
    account = map_account(_principals(), MappingConfig(fallback="nobody"), table())
    assert (account.name, account.via) == ("nobody", "fallback nobody")


def test_fallback_named_account_is_recorded() -> None:
    account = map_account(_principals(), MappingConfig(fallback="daemon"), table())
    assert account.via == "fallback daemon"


def test_missing_account_is_no_account() -> None:
    rules = (MappingRule("realm", TRUSTED, "no_such_user_xyz"),)
    with pytest.raises(MapNoAccount, match="does not exist"):
        map_account(_principals(), MappingConfig(rules=rules), table())


def test_primary_group_gid_zero_is_root() -> None:
    with pytest.raises(MapRootRefused):
        resolve_account("daemon", primary_group="root", via="test", allow_root=False)
    assert resolve_account("daemon", primary_group="root", via="test", allow_root=True).gid == 0


@pytest.mark.parametrize("name", ["0", "#-1", "-rf", "a b", "$(id)", "x\n", "", "UPPER"])
def test_resolve_refuses_bad_names_before_any_lookup(name: str) -> None:
    with pytest.raises(MapBadAccount):
        resolve_account(name, via="test", allow_root=True)
