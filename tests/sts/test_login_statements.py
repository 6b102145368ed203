"""The login transaction's prebuilt statements (sts.oauth.refresh_tokens, sts.oauth.throttle, sts.db)."""

from __future__ import annotations

from sts.config import ThrottlePolicy
from sts.db import Base, Database, relax_durability
from sts.oauth import refresh_tokens
from sts.oauth.models import LoginFailures, RefreshToken
from sts.oauth.throttle import Counter, LoginThrottle
from sts.one_time_secrets import secret_hash


def test_relaxed_durability_is_local_to_the_refresh_token_transaction(database_url: str, on_postgres: bool) -> None:
    db = Database(database_url)
    try:
        Base.metadata.create_all(db.engine)
        with db.engine.connect() as conn:
            relax_durability(conn)
            if on_postgres:
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
            token = refresh_tokens.issue(conn, "jobmgr", "john", "jobsts", ttl=60)
            conn.commit()
            if on_postgres:  # SET LOCAL ended with the transaction
                assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        with db.session() as session:
            row = session.get(RefreshToken, secret_hash(token))
            assert row is not None and (row.realm, row.username, row.revoked, row.spent_at) == (
                "jobmgr",
                "john",
                False,
                None,
            )
            assert row.expires_at == row.issued_at + 60
    finally:
        db.engine.dispose()


def test_the_throttle_read_takes_any_number_of_counters(database_url: str) -> None:
    db = Database(database_url)
    try:
        Base.metadata.create_all(db.engine)
        with db.session() as session:
            session.add(LoginFailures(key="a", failures=2, last_failure=0, locked_until=2**31 - 1))
            session.add(LoginFailures(key="b", failures=1, last_failure=0, locked_until=0))
        throttle = LoginThrottle(db, ThrottlePolicy())
        assert throttle.state([Counter("a", 5)]) == (True, True)
        assert throttle.state([Counter("b", 5)]) == (False, True)
        assert throttle.state([Counter("c", 5), Counter("b", 5)]) == (False, True)
        assert throttle.state([Counter("c", 5), Counter("d", 5), Counter("a", 5)]) == (True, True)
        assert throttle.state([Counter("c", 5)]) == (False, False)
    finally:
        db.engine.dispose()
