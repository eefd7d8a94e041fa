"""The completion evaluation's target selection (bench/completion_eval/targets.py): a member of a third-party object
that shares a project definition's name is marked, not taken for a use of that definition."""

import random
import textwrap

from bench.completion_eval.targets import project_targets

PROJECT = {
    "shop/store.py": '''
        class RedisStore:
            """The project's own wrapper."""

            def hgetall_items(self, key):
                return {}

            def fetch_basket(self, key):
                return []
    ''',
    "shop/orders.py": '''
        import redis
        from shop.store import RedisStore
        from shop import store as store_module


        def third_party(conn: redis.Redis, key):
            """A redis-py connection: its members are not the project's."""
            rows = conn.fetch_basket(key)
            return rows


        def own(store: RedisStore, key):
            """The project's class: its member is a real target."""
            items = store.hgetall_items(key)
            return items


        def module_member():
            """A project module that does not define the name."""
            value = store_module.missing_helper()
            return value
    ''',
    "shop/helpers.py": '''
        def missing_helper():
            return 1
    ''',
}


def test_members_of_third_party_objects_and_of_modules_that_do_not_define_them_are_marked(tmp_path):
    for rel, text in PROJECT.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
    targets = {t["name"]: t for t in project_targets(tmp_path, random.Random(1), 50, per_file=10, absent=True)}
    assert targets["fetch_basket"]["foreign"] == "a third-party object"
    assert targets["hgetall_items"]["foreign"] is None
    assert targets["missing_helper"]["foreign"] == "a project module that does not define it"
