"""The cache JSON helpers with a 124 KB value against raw redis-py, in the same run.

Run: REDIS_URL=redis://127.0.0.1:6379/<n> .venv/bin/python -m bench.cache [--rounds 7] [--seconds 0.3]

One value: a scene plan of 243 scenes (UUIDs, prompts, Decimal costs, datetimes, tags) whose JSON is about
124 KB. Set and get are timed apart, each against two baselines in the same interleaved rounds:
``redis-py bytes`` (SET/GET of the already-encoded bytes: no encoding at all, the floor) and ``redis-py +
json`` (``json.dumps(value).encode()`` then SET; GET then ``json.loads``: what any JSON cache must do, with
the plain values json takes, i.e. the plan already converted to str/float). Ours: ``cache.set``/``get``
and ``cache.set_json``/``get_json`` (also ``get_json(model=)`` into a Pydantic model). Printed: µs per
call, the speed ratio to each baseline (baseline time / ours; above 1.00x: faster). No database is used
(a throwaway SQLite file for Django's settings, removed at the end); the keys live under
``videogen:cache:bench:<random>`` in REDIS_URL's database and are deleted at the end, nothing is flushed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="videogen-bench-cache-"))
os.environ["DATABASE_URL"] = f"sqlite:///{TMP / 'bench.sqlite3'}"
os.environ["VIDEOGEN_ENV_FILE"] = os.devnull
os.environ.setdefault("LOG_LEVEL", "ERROR")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videogen.settings")

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.test import override_settings  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from bench._compare import compare, print_table  # noqa: E402
from common import cache  # noqa: E402
from common.cache_keys import cache_settings  # noqa: E402


class Scene(BaseModel):
    id: uuid.UUID
    index: int
    prompt: str
    cost: Decimal
    duration: float
    created_at: dt.datetime
    tags: list[str]


class Plan(BaseModel):
    job_id: uuid.UUID
    scenes: list[Scene]


def make_plan(scenes: int = 243) -> Plan:
    at = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
    return Plan(
        job_id=uuid.UUID(int=1),
        scenes=[
            Scene(
                id=uuid.UUID(int=i + 2),
                index=i,
                prompt=f"Scene {i}: a slow dolly shot across a rain-soaked neon street at night, "
                f'reflections on wet asphalt, a lone cyclist passing, "cinematic", 35mm, shallow depth {i}. ' * 2,
                cost=Decimal("0.050000") * (i % 7 + 1),
                duration=4.0 + i % 3,
                created_at=at + dt.timedelta(seconds=i),
                tags=["intro" if i == 0 else "body", "rain", "night", f"shot-{i % 12}"],
            )
            for i in range(scenes)
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one round of one case")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    plan = make_plan()
    value = plan.model_dump(mode="json")  # plain JSON types: what json.dumps takes without an encoder
    encoded = json.dumps(value).encode()
    size = f"{len(encoded) / 1024:.0f} KB"
    print(f"value: {size} of JSON, {len(plan.scenes)} scenes; Redis {redis_url}")

    raw = redis.Redis.from_url(redis_url)
    key = f"bench:{uuid.uuid4().hex}"
    rkey = f"videogen:cache:{key}"
    keys = {name: f"{key}:{name}" for name in ("bytes", "json", "set", "set_json")}
    raw_keys = [f"videogen:cache:{k}" for k in keys.values()]
    try:
        with override_settings(CACHES=cache_settings(redis_url)):
            results = compare(
                {
                    "redis-py bytes": lambda: raw.set(raw_keys[0], encoded),
                    "redis-py + json": lambda: raw.set(raw_keys[1], json.dumps(value).encode()),
                    "cache.set": lambda: cache.set(keys["set"], value),
                    "cache.set_json": lambda: cache.set_json(keys["set_json"], value),
                    "cache.set_json(model)": lambda: cache.set_json(keys["set_json"], plan),
                },
                baseline="redis-py + json",
                rounds=args.rounds,
                seconds=args.seconds,
            )
            print_table(f"set, {size} value", results, baseline="redis-py + json", also="redis-py bytes")

            raw.set(raw_keys[0], encoded)
            raw.set(raw_keys[1], encoded)
            cache.set(keys["set"], value)
            cache.set_json(keys["set_json"], value)
            assert cache.get(keys["set"]) == value
            assert cache.get_json(keys["set_json"]) == value
            assert cache.get_json(keys["set_json"], model=Plan) == plan
            results = compare(
                {
                    "redis-py bytes": lambda: raw.get(raw_keys[0]),
                    "redis-py + json": lambda: json.loads(raw.get(raw_keys[1])),
                    "cache.get": lambda: cache.get(keys["set"]),
                    "cache.get_json": lambda: cache.get_json(keys["set_json"]),
                    "cache.get_json(model)": lambda: cache.get_json(keys["set_json"], model=Plan),
                },
                baseline="redis-py + json",
                rounds=args.rounds,
                seconds=args.seconds,
            )
            print_table(f"get, {size} value", results, baseline="redis-py + json", also="redis-py bytes")
    finally:
        raw.delete(rkey, *raw_keys)
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
