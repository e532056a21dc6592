"""The figures, each run beside its baseline in the same run (alternating, ``rounds`` times; the median
round is kept). See docs/benchmarks.md for what each one means."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import bare_reads, datagen, flamegraph, profile_top
from bench.env import BenchEnv, Server, run_python

Requests = list[dict[str, Any]] | Callable[[int], list[dict[str, Any]]]


def _round(requests: Requests, i: int) -> list[dict[str, Any]]:
    return requests(i) if callable(requests) else requests


# One-shot write figures (a code, a diner's seat) need a distinct request each: pools sized for at most this many
# requests per second over warm-up + duration, per round (a figure whose side went faster says so in its note).
SUBJECT_POOL_RATE = 400
BASELINE_POOL_RATE = 2_500
CANTEEN_CODE = "yunxing-street"
READ_TARGET = "≥ 70% of bare FastAPI running the same query on raw asyncpg"
REDEEM_PATH = "/points/merchant-api/redemptions"


@dataclass
class Sizes:
    name: str
    warmup: float
    duration: float
    connections: int
    rounds: int
    read_issues: int  # issues in the database behind the read/write figures
    riders: int
    large_issues: int  # the "1 million issues" data set
    large_households: int  # the "100,000 households" data set
    large_rate: float  # fixed request rate for the large-data latency figures
    relay_messages: int
    relay_batch: int
    e2e_rate: float
    e2e_duration: float


SIZES = {
    "smoke": Sizes("smoke", 0.3, 1.0, 4, 1, 200, 3, 2_000, 500, 20, 400, 200, 50, 1.5),
    "quick": Sizes("quick", 1.0, 4.0, 16, 1, 10_000, 20, 100_000, 10_000, 50, 20_000, 200, 200, 10),
    "full": Sizes("full", 3.0, 15.0, 16, 3, 10_000, 50, 1_000_000, 100_000, 50, 50_000, 200, 200, 30),
}

FIRE = {
    "category": "fire",
    "description": "Rubbish bin on fire near the Gangcheng theatre (#__N__)",
    "latitude": "__LAT__",
    "longitude": "__LON__",
    "address": "Gangcheng theatre, gate __N__",
    "community": "yunxing",
    "compound": "yuntaiyuan",
}
ROAD = {**FIRE, "category": "road", "description": "Pothole by the bus stop (#__N__)"}
ISSUE = {
    "title": "Streetlight out on Yunxing Road",
    "description": "The lamp at the corner has been dark for three nights (#__N__).",
    "category": "streetlight",
    "latitude": "__LAT__",
    "longitude": "__LON__",
    "address": "Yunxing Road __N__",
    "community": "yunxing",
    "compound": "yunxingjie",
    "is_public": True,
}


def unique_body(body: dict[str, Any]) -> str:
    """JSON with ``__N__``/``__LAT__``/``__LON__`` for the load generator to fill per request (a new place
    each time: the services refuse or merge reports of the same thing at the same place)."""
    return json.dumps(body, ensure_ascii=False).replace('"__LAT__"', "__LAT__").replace('"__LON__"', "__LON__")


async def seed_service_demo(env: BenchEnv, service: str, database: str | None = None) -> bool:
    """Run the service's own demo seed (``SPEC.seed_demo``) against a bench database; False if it has none."""
    from minsheng.platform.bus.memory import InProcessBus
    from minsheng.platform.service import ServiceRuntime
    from minsheng.runner import load_spec

    spec = load_spec(service)
    if spec.seed_demo is None:
        return False
    settings = env.settings().model_copy(update={"database_url": env.url_for(database or service)})
    runtime = ServiceRuntime(spec, settings, InProcessBus())
    try:
        await spec.seed_demo(runtime)
    finally:
        await runtime.db.dispose()
    return True


async def seed_issue_catalogue(env: BenchEnv, database: str) -> list[str]:
    """Load the issues service's catalogue (its own demo seed, when it has one) into ``database`` and return
    the category codes: intake checks the category against it."""
    import asyncpg

    try:
        from services.issues import demo
    except Exception:
        demo = None  # type: ignore[assignment]
    seed = getattr(demo, "seed_catalogue", None)
    if seed is not None:
        from minsheng.platform.bus.memory import InProcessBus
        from minsheng.platform.service import ServiceRuntime
        from minsheng.runner import load_spec

        settings = env.settings().model_copy(update={"database_url": env.url_for(database)})
        runtime = ServiceRuntime(load_spec("issues"), settings, InProcessBus())
        try:
            await seed(runtime)
        finally:
            await runtime.db.dispose()
    conn = await asyncpg.connect(env.dsn_for(database))
    try:
        if await conn.fetchval("SELECT to_regclass('categories') IS NOT NULL"):
            return [r["code"] for r in await conn.fetch("SELECT code FROM categories ORDER BY code")]
    finally:
        await conn.close()
    return []


@dataclass
class Figure:
    id: str
    group: str
    title: str
    status: str = "ok"  # ok | skipped | failed
    note: str = ""
    metric: str = "rps"  # what the ratio compares: rps (higher is better) or p99_ms (a limit)
    subject: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    baseline_name: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Suite:
    def __init__(
        self, env: BenchEnv, sizes: Sizes, only: set[str] | None = None, log: Callable[[str], None] = print
    ) -> None:
        self.env = env
        self.sizes = sizes
        self.only = only
        self.log = log
        self.figures: list[Figure] = []
        self.rss: dict[str, dict[str, float | None]] = {}
        self.started = time.time()
        self.bare_rider = datagen.time_ordered_uuid(1, datagen.EPOCH)
        self.categories: list[str] = []
        self.canteen_seeded = False
        self.bare_extra: dict[str, Any] = {}
        self.order_scenario: dict[str, Any] | None = None
        self.bare_order_diners: list[str] = []
        self.profile_dir: Path | None = None  # --profile: a py-spy flame graph of each figure's subject

    # --- helpers ------------------------------------------------------------------------------------------

    def wanted(self, group: str) -> bool:
        return self.only is None or group in self.only

    def not_measured(self, fid: str, title: str, status: str, note: str) -> None:
        """A figure that could not be measured (``status``: failed or skipped), and why; its group is the first part
        of its id."""
        self.add(Figure(fid, fid.split(".")[0], title, status=status, note=note))

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        line = f"  {fig.group:6} {fig.id:28} {fig.status:7}"
        if fig.status != "ok" or fig.metric in ("rss_mb", "rate", "cpu"):
            pass
        elif fig.subject and fig.baseline and fig.metric == "rps":
            line += (
                f" {fig.subject.get('rps', 0):8.0f}/s vs {fig.baseline.get('rps', 0):8.0f}/s "
                f"= {fig.ratio or 0:.0%} (p99 {fig.subject.get('latency_ms', {}).get('p99', 0):.1f} ms)"
            )
        elif fig.subject:
            p = fig.subject.get("latency_ms", {})
            b = (fig.baseline or {}).get("latency_ms", {})
            line += f" p50 {p.get('p50', 0):.1f} p99 {p.get('p99', 0):.1f} ms"
            if fig.baseline:
                line += f" (baseline p99 {b.get('p99', 0):.1f})"
        if fig.note:
            line += f"  — {fig.note}"
        self.log(line)
        return fig

    def load(
        self,
        server: Server,
        requests: list[dict[str, Any]],
        *,
        mode: str = "closed",
        rate: float | None = None,
        watch: tuple[Server, ...] = (),
    ) -> dict[str, Any]:
        s = self.sizes
        spec: dict[str, Any] = {
            "mode": mode,
            "connections": s.connections if mode == "closed" else 64,
            "warmup": s.warmup,
            "duration": s.duration,
            "requests": requests,
        }
        if rate is not None:
            spec["rate"] = rate
        return self.env.run_load(server, spec, watch)

    def compare(
        self,
        fig: Figure,
        subject: tuple[Server, Requests],
        baseline: tuple[Server, Requests],
        *,
        mode: str = "closed",
        rate: float | None = None,
        watch: tuple[Server, ...] = (),
    ) -> Figure:
        """Alternate baseline and subject ``rounds`` times; keep each side's median round. A side's requests
        may be a function of the round (fresh one-time codes, signatures, diners for each round)."""
        subs, bases = [], []
        for i in range(self.sizes.rounds):
            bases.append(self.load(baseline[0], _round(baseline[1], i), mode=mode, rate=rate))
            subs.append(self.load(subject[0], _round(subject[1], i), mode=mode, rate=rate, watch=watch))
        key: Callable[[dict[str, Any]], float] = (
            (lambda r: r["rps"]) if mode == "closed" else (lambda r: r["latency_ms"].get("p99", 1e9))
        )
        fig.subject = _median(subs, key)
        fig.baseline = _median(bases, key)
        if fig.subject["errors"]:
            fig.note = (
                fig.note + f" {fig.subject['errors']} errors: {'; '.join(fig.subject['error_samples'])[:300]}"
            ).strip()
        if fig.baseline["errors"]:
            fig.note = (fig.note + f" baseline errors: {'; '.join(fig.baseline['error_samples'])[:300]}").strip()
        if mode == "closed" and fig.baseline["rps"]:
            fig.ratio = fig.subject["rps"] / fig.baseline["rps"]
        if self.profile_dir is not None:
            self.profile(fig, subject[0], lambda: self.load(subject[0], _round(subject[1], 0), mode=mode, rate=rate))
            if fig.group in ("reads", "writes"):  # the baseline's split too, each owner's µs beside the subject's
                self.profile(
                    fig,
                    baseline[0],
                    lambda: self.load(baseline[0], _round(baseline[1], 0), mode=mode, rate=rate),
                    side="baseline",
                )
        return fig

    def profile(self, fig: Figure, server: Server, run: Callable[[], Any], side: str = "subject") -> None:
        """One more round under ``py-spy record`` (not counted in the figure): the collapsed stacks of where the
        server's CPU goes (``profile_dir/<figure id>.collapsed.txt``; ``python -m bench.profile_top`` ranks
        them), their flame graph (``<figure id>.svg``) and each owner's share in the figure's report."""
        assert self.profile_dir is not None
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        name = fig.id if side == "subject" else f"{fig.id}.{side}"
        out = self.profile_dir / f"{name}.collapsed.txt"
        cmd = [spy, "record", "--pid", str(server.proc.pid), "--rate", "200", "--format", "raw", "-o", str(out)]
        suffix = "" if side == "subject" else f"_{side}"
        try:
            spying = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as exc:
            fig.extra["profile_error" + suffix] = f"py-spy: {exc}"
            return
        try:
            time.sleep(0.5)  # attached before the load starts
            run()
        finally:
            spying.send_signal(signal.SIGINT)  # py-spy writes what it recorded when interrupted
            try:
                _, err = spying.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                spying.kill()
                err = b"timed out writing"
        if not out.exists():
            fig.extra["profile_error" + suffix] = err.decode(errors="replace")[-300:]
            return
        lines = out.read_text().splitlines()
        svg = self.profile_dir / f"{name}.svg"
        svg.write_text(flamegraph.render(lines, f"{fig.title} — {server.name} ({side})"))
        fig.extra["profile" + suffix] = str(svg)
        fig.extra["cpu_by_owner" + suffix] = profile_top.by_owner(lines)

    def guard(self, fig: Figure, body: Callable[[], Any]) -> Figure:
        try:
            body()
        except Skip as skip:
            fig.status, fig.note = "skipped", str(skip)
        except Exception as exc:
            fig.status, fig.note = "failed", f"{type(exc).__name__}: {exc}"[:600]
            self.log(traceback.format_exc()[-2000:])
        return self.add(fig)

    # --- the run ------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        s = self.sizes
        self.log(f"bench: sizes={s.name} run={self.env.run_id} kafka={self.env.kafka_bootstrap}")
        core = self.wanted("reads") or self.wanted("writes") or self.wanted("e2e") or self.wanted("rss")
        if core:
            self.run_core()
        if self.wanted("relay"):
            self.run_relay()
        if self.wanted("large"):
            self.run_large()
        if self.wanted("identity"):
            self.run_identity()
        if self.wanted("notify"):
            self.run_notify()
            self.run_fire_alert()
        if self.wanted("i18n"):
            self.run_i18n()
        if self.wanted("photos"):
            self.run_photos()
        return self.result()

    def run_i18n(self) -> None:
        """What answering a problem in Chinese costs: ``bench.i18n`` in a process of its own."""
        fig = Figure(
            "i18n.translate_problem",
            "i18n",
            "Translating a problem+json answer (negotiation + catalog look-ups), per problem",
            metric="cpu",
            target="≤ 20 µs a problem",
        )

        def body() -> None:
            figures = run_python("bench.i18n", timeout=300)
            fig.subject = figures
            fig.met = max(figures["translate_not_found_us"], figures["translate_conflict_us"]) <= 20
            fig.note = (
                f"not found {figures['translate_not_found_us']} µs, conflict {figures['translate_conflict_us']} µs, "
                f"a 422 with 3 errors {figures['translate_validation_3_errors_us']} µs; whole problem+json "
                f"{figures['render_problem_zh_us']} µs zh / {figures['render_problem_en_us']} µs en; catalogs "
                f"load once in {figures['catalog_load_ms']} ms ({figures['messages']} messages)"
            )

        self.guard(fig, body)

    def run_identity(self) -> None:
        """Sign-in CPU (login, refresh), argon2id, token signing and verification: ``bench.identity`` in a
        process of its own on a PostgreSQL database of the run."""
        env = self.env
        fig = Figure(
            "identity.signin",
            "identity",
            "Sign-in and token verification (server CPU)",
            metric="cpu",
            target="login ≤ 5 ms beyond the WeChat call; verification ≤ 50 µs once cached",
        )

        def body() -> None:
            asyncio.run(env.create_database("idbench_identity"))
            template = env.template.replace("{service}", "idbench_{service}")
            figures = run_python("bench.identity", "--logins", "300", "--database-url", template, timeout=900)
            fig.subject = figures
            fig.met = figures["wechat_login_cpu_beyond_baseline_ms"] <= 5 and figures["verify_cached_us"] <= 50
            fig.note = (
                f"login {figures['wechat_login_cpu_beyond_baseline_ms']} ms CPU beyond a trivial request "
                f"({figures['baseline_request_cpu_ms']} ms), refresh {figures['refresh_cpu_ms']} ms; "
                f"verify {figures['verify_cached_us']} µs cached / {figures['verify_first_time_us']} µs "
                f"first; argon2id {figures['argon2id_verify_ms']} ms per password check"
            )

        self.guard(fig, body)

    def run_photos(self) -> None:
        """One 12-megapixel phone JPEG through the upload pipeline (sniff, pixel check, decode, orient, strip,
        re-encode, thumbnail, store): ``bench.photos`` in a process of its own, so its RSS is the photo's."""
        fig = Figure(
            "photos.phone_jpeg",
            "photos",
            "A 12-megapixel phone photo: sniff, strip, orient, thumbnail, store (CPU, extra RSS)",
            metric="cpu",
            target="≤ 200 ms CPU and ≤ 100 MB extra RSS per photo; a decompression bomb refused before decoding",
        )

        def body() -> None:
            figures = run_python("bench.photos", timeout=300)
            fig.subject = figures
            fig.met = (
                figures["cpu_ms_median"] <= 200 and figures["extra_rss_mb"] <= 100 and figures["bomb_rss_growth_mb"] < 5
            )
            fig.note = (
                f"{figures['photo_bytes'] / 1e6:.1f} MB {figures['photo_pixels']} JPEG → "
                f"{figures['stored_pixels']} ({figures['stored_bytes'] / 1e3:.0f} kB, "
                f"{figures['stored_exif_entries']} EXIF entries) + thumbnail: {figures['cpu_ms_median']} ms CPU "
                f"(median of 7), {figures['extra_rss_mb']} MB extra RSS; a 10-gigapixel PNG bomb refused in "
                f"{figures['bomb_refused_us_median']} µs"
            )

        self.guard(fig, body)

    # reads, writes, e2e, RSS: the four services as `minsheng serve` processes on PostgreSQL + Kafka ------

    def run_core(self) -> None:
        env = self.env
        asyncio.run(self._prepare_core())
        services: dict[str, Server] = {}
        for name in ("points", "issues", "visits", "canteen"):
            services[name] = env.start_service(name)
        bare = env.start_baseline(self._bare_config())
        for srv in [*services.values(), bare]:
            try:
                env.wait_ready(srv)
            except Exception as exc:
                self.log(f"  {srv.name} did not start: {exc}"[:1500])
        time.sleep(2.0)
        for srv in [*services.values(), bare]:
            if srv.proc.poll() is None:
                srv.idle_rss_mb = srv.rss_mb()
        points, issues = services["points"], services["issues"]
        ctx = self._register_riders(points)
        if self.wanted("reads"):
            self.run_reads(points, issues, services["canteen"], bare, ctx)
        if self.wanted("writes"):
            self.run_issue_writes(issues, bare)
        if self.wanted("e2e"):
            self.run_e2e(points, issues)
        if self.wanted("writes"):
            # The issues service would consume every report of the write figure: stop it first, so the
            # hazard-report figure measures the points process alone (as its baseline runs alone).
            env.stop_server(issues)
            self.run_points_writes(points, services["canteen"], bare, ctx)
        self.rss = {
            srv.name: {"idle_mb": srv.idle_rss_mb, "under_load_mb": self._peak_rss(srv.name)}
            for srv in [*services.values(), bare]
        }
        self.add_rss_figures(services, bare)
        for srv in [*services.values(), bare]:
            env.stop_server(srv)
        env.restart_kafka()  # the write figures left topics full of events: the next section starts clean

    async def _prepare_core(self) -> None:
        env = self.env
        for name in ("points", "issues", "visits", "canteen"):
            await env.migrate(name)
        await env.migrate("points", "bare_points")
        await env.migrate("issues", "bare_issues")
        from services.issues.models import metadata as issues_md
        from services.points.models import metadata as points_md

        try:  # the canteens, menus and diners of the canteen service's demo: what the menu read needs
            self.canteen_seeded = await seed_service_demo(env, "canteen")
        except Exception as exc:
            self.canteen_seeded = False
            self.log(f"  canteen demo seed failed: {type(exc).__name__}: {exc}"[:300])
        try:
            await self._prepare_one_shot_writes()
        except Exception as exc:
            self.log(f"  redemption/order seed failed: {type(exc).__name__}: {exc}"[:600])
        self.categories = await seed_issue_catalogue(env, "issues")
        await seed_issue_catalogue(env, "bare_issues")
        conn = await datagen.connect(env.dsn_for("issues"))
        try:
            n = self.sizes.read_issues
            await datagen.copy_rows(
                conn, issues_md.tables["issues"], n, datagen.issue_recipe(n, categories=self.categories or None)
            )
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        conn = await datagen.connect(env.dsn_for("bare_points"))
        try:
            await datagen.copy_rows(
                conn,
                points_md.tables["riders"],
                1,
                {
                    "id": lambda i: self.bare_rider,
                    "subject": lambda i: "bare-rider",
                    "name": lambda i: "Bare",
                    "platform": lambda i: "meituan",
                    "phone": lambda i: "13800000000",
                    "status": lambda i: "active",
                },
            )
        finally:
            await conn.close()

    def _bare_config(self, docs: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "dbs": {
                "points": self.env.dsn_for("bare_points"),
                "issues": self.env.dsn_for("bare_issues"),
                "canteen": self.env.dsn_for("bare_canteen"),
            },
            "rider_id": str(self.bare_rider),
            "docs": docs or {},
            **self.bare_extra,
        }

    def pool(self, rate: int) -> int:
        """Distinct requests one side may need in a round: ``rate``/s over warm-up + duration."""
        return int((self.sizes.warmup + self.sizes.duration) * rate) + 100

    async def _prepare_one_shot_writes(self) -> None:
        """What the redemption and canteen-order baselines write against (FKs): an offer (and its merchant) in
        ``bare_points``; the canteen demo, a menu with room and many diners in ``bare_canteen`` — and the
        subject's menu and diners in the canteen service's database (outside the timed part)."""
        env, rounds = self.env, self.sizes.rounds
        from services.points.models import metadata as points_md

        conn = await datagen.connect(env.dsn_for("bare_points"))
        try:
            offer_id = uuid.uuid4()
            await datagen.copy_rows(
                conn,
                points_md.tables["offers"],
                1,
                {
                    "id": lambda i: offer_id,
                    "title": lambda i: "Bench offer",
                    "kind": lambda i: "goods",
                    "points_cost": lambda i: 1,
                    "active": lambda i: True,
                },
            )
            merchant_id = await conn.fetchval("SELECT merchant_id FROM offers WHERE id = $1", offer_id)
        finally:
            await conn.close()
        self.bare_extra["redeem"] = {"merchant_id": str(merchant_id), "offer_id": str(offer_id), "points_cost": 1}
        if not self.canteen_seeded:
            return
        await env.migrate("canteen", "bare_canteen")
        await seed_service_demo(env, "canteen", "bare_canteen")
        bare_ctx = await order_context(env.dsn_for("bare_canteen"), self.pool(BASELINE_POOL_RATE) * rounds)
        self.bare_order_diners = bare_ctx.pop("diners")
        self.bare_extra["order"] = bare_ctx
        self.order_scenario = await order_context(env.dsn_for("canteen"), self.pool(SUBJECT_POOL_RATE) * rounds + 1)

    def _register_riders(self, points: Server) -> dict[str, Any]:
        tokens, subjects = [], []
        with httpx.Client(base_url=points.url, timeout=10) as client:
            for i in range(self.sizes.riders):
                token = self.env.token(["rider"], sub=f"bench-rider-{i}")
                r = client.post(
                    "/points/riders",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"name": f"骑手{i}", "platform": "meituan", "phone": "13812345678", "community": "yunxing"},
                )
                if r.status_code == 201:
                    tokens.append(token)
                    subjects.append(f"bench-rider-{i}")
                elif not tokens:
                    self.log(f"  rider registration failed: {r.status_code} {r.text[:300]}")
        return {"rider_tokens": tokens, "rider_subjects": subjects}

    def _peak_rss(self, name: str) -> float | None:
        peaks = [
            f.subject.get("rss_mb_max", {}).get(name)
            for f in self.figures
            if f.subject and isinstance(f.subject.get("rss_mb_max"), dict)
        ]
        peaks += [
            f.baseline.get("rss_mb_max", {}).get(name)
            for f in self.figures
            if f.baseline and isinstance(f.baseline.get("rss_mb_max"), dict)
        ]
        values = [p for p in peaks if p]
        return max(values) if values else None

    def run_reads(self, points: Server, issues: Server, canteen: Server, bare: Server, ctx: dict[str, Any]) -> None:
        staff = self.env.token(["staff"], sub="bench-staff", scopes=["community:yunxing"])
        h_staff = {"Authorization": f"Bearer {staff}"}
        samples: dict[str, Any] = {}
        reads: dict[str, Any] = {}  # the same SQL, for the bare app (bench.bare_reads)
        cases: list[tuple[Figure, Server, list[dict[str, Any]]]] = []
        with httpx.Client(timeout=10) as client:
            r = client.get(issues.url + "/issues/issues", headers=h_staff)
            fig = Figure(
                "read.issue_list",
                "reads",
                "Issue list, first page (staff, community scope)",
                target=READ_TARGET,
            )
            if r.status_code == 200:
                samples["issue_list"] = r.json()
                reads["issue_list"] = bare_reads.issue_list("bench-staff", ["yunxing"])
                cases.append((fig, issues, [{"path": "/issues/issues", "headers": h_staff}]))
                ids = [i["id"] for i in r.json()["items"]]
            else:
                fig.status, fig.note = "failed", f"GET /issues/issues → {r.status_code} {r.text[:200]}"
                self.add(fig)
                ids = []
            fig = Figure(
                "read.issue_detail",
                "reads",
                "Issue detail with timeline",
                target=READ_TARGET,
            )
            if ids:
                r = client.get(f"{issues.url}/issues/issues/{ids[0]}", headers=h_staff)
                if r.status_code == 200:
                    samples["issue_detail"] = r.json()
                    reads["issue_detail"] = bare_reads.issue_detail(ids)
                    cases.append((fig, issues, [{"path": f"/issues/issues/{i}", "headers": h_staff} for i in ids]))
                else:
                    fig.status, fig.note = "failed", f"GET issue → {r.status_code} {r.text[:200]}"
                    self.add(fig)
            fig = Figure("read.rider_balance", "reads", "Rider balance", target=READ_TARGET)
            tokens = ctx["rider_tokens"]
            if tokens:
                hs = [{"Authorization": f"Bearer {t}"} for t in tokens]
                r = client.get(points.url + "/points/riders/me/balance", headers=hs[0])
                if r.status_code == 200:
                    samples["rider_balance"] = r.json()
                    reads["rider_balance"] = bare_reads.rider_balance(ctx["rider_subjects"])
                    cases.append((fig, points, [{"path": "/points/riders/me/balance", "headers": h} for h in hs]))
                else:
                    fig.status, fig.note = "failed", f"balance → {r.status_code} {r.text[:200]}"
                    self.add(fig)
            else:
                fig.status, fig.note = "failed", "no rider could be registered"
                self.add(fig)
            fig = Figure(
                "read.menu",
                "reads",
                "Canteen menus of the week (public)",
                target=READ_TARGET,
            )
            codes = (
                asyncio.run(_values(self.env.dsn_for("canteen"), "SELECT code FROM canteens ORDER BY code"))
                if self.canteen_seeded
                else []
            )
            menu_path: str | None = None
            menu: httpx.Response | None = None
            for code in codes[:6]:  # the first canteen with published menus this week
                menu_path = f"/canteen/canteens/{code}/menus"
                menu = client.get(canteen.url + menu_path)
                if menu.status_code == 200 and menu.json().get("items"):
                    break
            canteen_code = codes[0] if codes else None
            if menu is not None and menu.status_code == 200 and menu.json().get("items"):
                samples["menu"] = menu.json()
                reads["menu"] = bare_reads.menus_of_the_week(menu_path.split("/")[3]) if menu_path else {}
                cases.append((fig, canteen, [{"path": menu_path}]))
            else:
                fig.status = "skipped"
                fig.note = (
                    "the canteen service has no demo seed to take a canteen and its menus from"
                    if not canteen_code
                    else f"GET {menu_path} → "
                    f"{menu.status_code if menu is not None else '–'} with no menus: needs a scenario"
                )
                self.add(fig)
        # The bare app runs the same SQL (on the services' own databases) and serves the same documents.
        self.env.stop_server(bare)
        config = self._bare_config(samples)
        config["reads"] = reads
        config["read_dbs"] = {db: self.env.dsn_for(db) for db in ("issues", "points", "canteen")}
        bare2 = self.env.start_baseline(config, name="bare")
        self.env.wait_ready(bare2)
        hello = self.load(bare2, [{"path": "/bare/hello"}])
        for fig, server, requests in cases:
            name = fig.id.split(".", 1)[1]
            size = len(json.dumps(samples[name]))
            fig.baseline_name = (
                "bare FastAPI endpoint running the same SQL on raw asyncpg (one pooled connection), rows as JSON"
            )
            n_args = len(reads[name]["args"])
            same_sql = [{"path": f"/bare/read/{name}?i={i}"} for i in range(n_args)]

            def body(
                fig: Figure = fig,
                server: Server = server,
                requests: list[dict[str, Any]] = requests,
                name: str = name,
                same_sql: list[dict[str, Any]] = same_sql,
                size: int = size,
            ) -> None:
                self.compare(fig, (server, requests), (bare2, same_sql))
                # Context: FastAPI returning the same JSON document with no query at all (the old baseline).
                constant = self.load(bare2, [{"path": f"/bare/doc/{name}"}])
                fig.extra["bare_constant_json_rps"] = constant["rps"]
                subject_rps = (fig.subject or {}).get("rps") or 0
                if constant["rps"]:
                    fig.note = (
                        f"{fig.note} context: bare FastAPI returning the same {size}-byte JSON with no query "
                        f"{constant['rps']:.0f}/s (subject = {subject_rps / constant['rps']:.0%} of it)"
                    ).strip()

            self.guard(fig, body)
            fig.extra["bare_hello_rps"] = hello["rps"]
        self._bare = bare2

    def run_issue_writes(self, issues: Server, bare: Server) -> None:
        bare = getattr(self, "_bare", bare)
        resident = {"Authorization": f"Bearer {self.env.token(['resident'], sub='resident-1')}"}
        fig = Figure(
            "write.resident_issue",
            "writes",
            "Resident reports an issue (issue + timeline + outbox)",
            target="≥ 70% of raw asyncpg (same rows) in a bare endpoint",
            baseline_name="bare endpoint: same body model, raw asyncpg INSERT issue + timeline + outbox",
        )
        category = (
            ISSUE["category"]
            if not self.categories or ISSUE["category"] in self.categories
            else next((c for c in self.categories if c not in ("fire", "gas_leak", "water_leak")), self.categories[0])
        )
        body = unique_body({**ISSUE, "category": category})
        self.guard(
            fig,
            lambda: self.compare(
                fig,
                (issues, [{"method": "POST", "path": "/issues/issues", "headers": resident, "body": body}]),
                (bare, [{"method": "POST", "path": "/bare/issues/issues", "body": body}]),
            ),
        )

    def run_points_writes(self, points: Server, canteen: Server, bare: Server, ctx: dict[str, Any]) -> None:
        bare = getattr(self, "_bare", bare)
        tokens = ctx["rider_tokens"]
        fig = Figure(
            "write.hazard_report",
            "writes",
            "Rider hazard report (report + outbox)",
            target="≥ 70% of raw asyncpg (same rows) in a bare endpoint",
            baseline_name="bare endpoint: same body model, raw asyncpg INSERT report + outbox",
        )

        def hazard() -> None:
            if not tokens:
                raise RuntimeError("no rider registered")
            body = unique_body(ROAD)
            reqs = [
                {
                    "method": "POST",
                    "path": "/points/hazard-reports",
                    "body": body,
                    "headers": {"Authorization": f"Bearer {t}"},
                }
                for t in tokens
            ]
            self.compare(
                fig, (points, reqs), (bare, [{"method": "POST", "path": "/bare/points/hazard-reports", "body": body}])
            )

        self.guard(fig, hazard)
        fig = Figure(
            "write.redemption",
            "writes",
            "Points redemption at a merchant (signed, one-time code)",
            target="≥ 70% of raw asyncpg (same rows) in a bare endpoint",
            baseline_name="bare endpoint: same body model, raw asyncpg INSERT redemption + ledger entry + outbox",
        )
        self.guard(fig, lambda: self._redemption(fig, points, bare))
        # The points service would consume every DeliveryRequested of the order figure (a rider task each):
        # stop it first, so the figure measures the canteen process alone (as its baseline runs alone).
        self.env.stop_server(points)
        fig = Figure(
            "write.canteen_order",
            "writes",
            "Canteen order (staff books a delivered meal)",
            target="≥ 70% of raw asyncpg (same rows) in a bare endpoint",
            baseline_name="bare endpoint: same body model, raw asyncpg INSERT order + outbox",
        )
        self.guard(fig, lambda: self._canteen_order(fig, canteen, bare))

    def _redemption(self, fig: Figure, points: Server, bare: Server) -> None:
        """A merchant (API key, an offer of 1 point), the registered riders verified with 100,000 points each,
        and ``pool`` one-time codes per round (rows with the service's own hash, valid for two hours — the API
        gives a rider at most 5 codes of 3 minutes). Each round's requests are signed just before it runs
        (timestamps are accepted within ±300 s), each with its own nonce and Idempotency-Key."""
        from services.points.client import signed_headers
        from services.points.models import metadata as points_md
        from services.points.redemptions import code_hash

        with httpx.Client(timeout=10) as probe:
            if _find_path(probe, points, "post", "merchant-api/redemptions") is None:
                raise Skip("no POST …merchant-api/redemptions endpoint in the points service yet")
        staff = _bearer(self.env.token(["staff"], sub="bench-staff", scopes=["community:yunxing"]))
        riders = asyncio.run(
            _values(self.env.dsn_for("points"), "SELECT id FROM riders WHERE subject LIKE 'bench-rider-%' ORDER BY id")
        )
        if not riders:
            raise RuntimeError("no rider registered")
        with httpx.Client(base_url=points.url, timeout=30) as client:

            def ok(r: httpx.Response) -> dict[str, Any]:
                if r.status_code >= 300:
                    raise RuntimeError(f"{r.request.method} {r.request.url.path} → {r.status_code} {r.text[:300]}")
                return dict(r.json())

            for rid in riders:
                ok(client.post(f"/points/riders/{rid}/verify", headers=staff))
                ok(
                    client.post(
                        f"/points/riders/{rid}/adjustments",
                        json={"amount": 100_000, "reason": "bench"},
                        headers={**staff, "Idempotency-Key": f"bench-adjust-{rid}"},
                    )
                )
            merchant = ok(
                client.post(
                    "/points/merchants",
                    headers=staff,
                    json={"name": "Bench 便利店", "category": "shop", "community": "yunxing", "address": "云兴街 1 号"},
                )
            )
            key = ok(client.post(f"/points/merchants/{merchant['id']}/credentials", headers=staff, json={}))
            offer = ok(
                client.post(
                    f"/points/merchants/{merchant['id']}/offers",
                    headers=staff,
                    json={"title": "矿泉水 Bottled water", "kind": "goods", "points_cost": 1},
                )
            )
        pool = self.pool(SUBJECT_POOL_RATE)
        codes = [f"{10_000_000 + i}" for i in range(pool * self.sizes.rounds + 1)]
        now = datetime.now(UTC)

        async def seed_codes() -> None:
            conn = await datagen.connect(self.env.dsn_for("points"))
            try:
                await datagen.copy_rows(
                    conn,
                    points_md.tables["redemption_codes"],
                    len(codes),
                    {
                        "id": lambda i: uuid.uuid4(),
                        "code_hash": lambda i: code_hash(codes[i]),
                        "rider_id": lambda i: riders[i % len(riders)],
                        "offer_id": lambda i: None,
                        "expires_at": lambda i: now + timedelta(hours=2),
                        "used_at": lambda i: None,
                        "created_at": lambda i: now,
                    },
                )
            finally:
                await conn.close()

        asyncio.run(seed_codes())

        def signed(code: str, idem: str) -> tuple[str, dict[str, str]]:
            body = json.dumps({"code": code, "offer_id": offer["id"], "quantity": 1}, separators=(",", ":"))
            headers = signed_headers(key["key_id"], key["secret"], "POST", REDEEM_PATH, body.encode())
            return body, {**headers, "Idempotency-Key": idem}

        body, headers = signed(codes[-1], "bench-check")  # one redemption outside the timed part: the setup works
        r = httpx.post(
            points.url + REDEEM_PATH, content=body, headers={**headers, "Content-Type": "application/json"}, timeout=10
        )
        if r.status_code != 201:
            raise RuntimeError(f"check redemption → {r.status_code} {r.text[:300]}")

        def subject(rnd: int) -> list[dict[str, Any]]:
            reqs = []
            for i, code in enumerate(codes[rnd * pool : (rnd + 1) * pool]):
                body, headers = signed(code, f"bench-till-{rnd}-{i:06d}")
                reqs.append({"method": "POST", "path": REDEEM_PATH, "headers": headers, "body": body})
            return reqs

        base_body = json.dumps(
            {"code": "bench-__N__", "offer_id": self.bare_extra["redeem"]["offer_id"], "quantity": 1}
        )
        self.compare(
            fig, (points, subject), (bare, [{"method": "POST", "path": "/bare/points/redemptions", "body": base_body}])
        )
        _pool_note(fig, self.sizes, pool)

    def _canteen_order(self, fig: Figure, canteen: Server, bare: Server) -> None:
        """The demo canteen, its latest published menu (capacity raised), and distinct diners (copies of a
        demo diner eligible for delivery) for every request: one meal per diner per slot is the rule. A staff
        caller of the canteen books a delivery (so the service writes its outbox row); each request has its
        own Idempotency-Key."""
        scenario = self.order_scenario
        if scenario is None or not self.bare_order_diners:
            raise Skip("the canteen service has no demo seed to take a canteen and a menu from")
        staff = _bearer(self.env.token(["staff"], sub="bench-canteen-staff", scopes=[f"canteen:{CANTEEN_CODE}"]))
        diners: list[str] = scenario["diners"]

        def order(diner: str, ctx: dict[str, Any]) -> str:
            return json.dumps(
                {
                    "diner_id": diner,
                    "menu_id": ctx["menu_id"],
                    "set_meal_id": ctx["set_meal_id"],
                    "fulfilment": "delivery",
                }
            )

        r = httpx.post(
            canteen.url + "/canteen/orders",
            content=order(diners[-1], scenario),
            headers={**staff, "Idempotency-Key": "bench-check", "Content-Type": "application/json"},
            timeout=10,
        )
        if r.status_code != 201:
            raise RuntimeError(f"check order → {r.status_code} {r.text[:300]}")
        pool, base_pool = self.pool(SUBJECT_POOL_RATE), self.pool(BASELINE_POOL_RATE)
        bare_ctx = self.bare_extra["order"]

        def subject(rnd: int) -> list[dict[str, Any]]:
            return [
                {
                    "method": "POST",
                    "path": "/canteen/orders",
                    "body": order(d, scenario),
                    "headers": {**staff, "Idempotency-Key": f"bench-order-{rnd}-{i:06d}"},
                }
                for i, d in enumerate(diners[rnd * pool : (rnd + 1) * pool])
            ]

        def baseline(rnd: int) -> list[dict[str, Any]]:
            return [
                {"method": "POST", "path": "/bare/canteen/orders", "body": order(d, bare_ctx)}
                for d in self.bare_order_diners[rnd * base_pool : (rnd + 1) * base_pool]
            ]

        self.compare(fig, (canteen, subject), (bare, baseline))
        _pool_note(fig, self.sizes, pool, base_pool)

    def run_e2e(self, points: Server, issues: Server) -> None:
        s, env = self.sizes, self.env
        try:
            asyncio.run(install_issue_notify(env))
        except Exception as exc:
            self.not_measured(
                "e2e.hazard_to_issue",
                "Hazard report → issue visible",
                "failed",
                f"could not install the NOTIFY trigger: {exc}"[:300],
            )
            return
        token = self.env.token(["rider"], sub="bench-rider-0")
        for fid, rate, target in (
            ("e2e.hazard_to_issue_low", s.e2e_rate / 10, ""),
            ("e2e.hazard_to_issue", s.e2e_rate, "p99 ≤ 50 ms"),
        ):
            fig = Figure(
                fid,
                "e2e",
                f"Hazard report → issue visible at {rate:.0f}/s (points → Kafka → issues, separate processes)",
                metric="p99_ms",
                target=target or "(context: below saturation)",
                baseline_name="raw aiokafka produce → consume, same rate and broker",
            )

            def service_spec(common: dict[str, Any]) -> dict[str, Any]:
                return {
                    **common,
                    "mode": "service",
                    "port": points.port,
                    "path": "/points/hazard-reports",
                    "body": unique_body(FIRE),
                    "headers": {"Authorization": f"Bearer {token}"},
                    "issues_dsn": env.dsn_for("issues"),
                    "points_dsn": env.dsn_for("points"),
                }

            def body(fig: Figure = fig, rate: float = rate, target: str = target) -> None:
                common = {"rate": rate, "duration": s.e2e_duration, "warmup": min(2.0, s.e2e_duration / 3)}
                subs: list[dict[str, Any]] = []
                bases: list[dict[str, Any]] = []
                for _ in range(s.rounds):
                    bases.append(
                        self._e2e(
                            {
                                **common,
                                "mode": "kafka",
                                "bootstrap": env.kafka_bootstrap,
                                "topic": f"msbench.e2e.{time.time_ns()}",
                                "body": json.dumps(FIRE) * 2,
                            }
                        )
                    )
                    subs.append(self._e2e(service_spec(common), watch=(points, issues)))
                key: Callable[[dict[str, Any]], float] = lambda r: r["latency_ms"].get("p99", 1e9)  # noqa: E731
                fig.subject, fig.baseline = _median(subs, key), _median(bases, key)
                p99 = fig.subject["latency_ms"].get("p99")
                if target:
                    fig.met = p99 is not None and p99 <= 50 and not fig.subject["missing"]
                notes = []
                sub = fig.subject
                if sub["missing"] or sub["errors"]:
                    notes.append(
                        f"{sub['missing']} of {sub['sent']} not visible within 20 s after the last report; "
                        f"{sub['errors']} POST errors {sub.get('error_samples', '')}"
                    )
                b1, b2 = fig.subject.get("relay_pickup_ms", {}), fig.subject.get("broker_and_consumer_ms", {})
                post = fig.subject.get("post_latency_ms", {})
                if b1 and b2:
                    notes.append(
                        "where the time goes (p50/p99 ms): "
                        f"POST {post.get('p50', 0):.0f}/{post.get('p99', 0):.0f}, "
                        f"commit → broker ack {b1['p50']:.0f}/{b1['p99']:.0f}, ack → issue created "
                        f"{b2['p50']:.0f}/{b2['p99']:.0f}"
                    )
                cpu = fig.subject.get("cpu_ms_per_event", {})
                if cpu:
                    notes.append(
                        "server CPU per report (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items()))
                    )
                if fig.subject.get("machine_busy") is not None:
                    notes.append(
                        f"the machine's CPUs busy {fig.subject['machine_busy']:.0%} of the round "
                        f"({psutil.cpu_count()} cores: both services, PostgreSQL, the broker, the load generator; "
                        f"{fig.subject.get('machine_cpu_ms_per_event', 0):.2f} ms of CPU per report in all)"
                    )
                fig.note = "; ".join(notes)[:600]
                if self.profile_dir is not None:  # one more round, both processes under py-spy
                    self.profile(
                        fig,
                        points,
                        lambda: self.profile(fig, issues, lambda: self._e2e(service_spec(common)), side="issues"),
                    )

            self.guard(fig, body)

    def _e2e(self, spec: dict[str, Any], watch: tuple[Server, ...] = ()) -> dict[str, Any]:
        from bench.env import Sampler

        path = self.env.workdir / f"e2e-{time.time_ns()}.json"
        path.write_text(json.dumps(spec))
        before = psutil.cpu_times()
        with Sampler(watch) as sampler:
            result: dict[str, Any] = run_python("bench.e2e", str(path), timeout=spec["duration"] + 120)
        result["machine_busy"], busy_seconds = _busy_since(before)
        result["rss_mb_max"] = {k: round(v, 1) for k, v in sampler.max_rss.items()}
        # server CPU over the whole round per report scheduled (warm-up included): points = POST + relay,
        # issues = consumer + intake (the stage split's CPU side; wall-clock stages are in the note); the
        # machine's: everything that ran, PostgreSQL, the broker and the load generator too
        scheduled = max(spec.get("rate", 0) * (spec.get("duration", 0) + spec.get("warmup", 0)), 1)
        result["cpu_ms_per_event"] = {k: round(v / scheduled * 1000, 2) for k, v in sampler.cpu.items()}
        result["machine_cpu_ms_per_event"] = round(busy_seconds / scheduled * 1000, 2)
        return result

    def add_rss_figures(self, services: dict[str, Server], bare: Server) -> None:
        base = self.rss.get("bare", {}).get("idle_mb")
        for name in services:
            r = self.rss.get(name, {})
            idle = r.get("idle_mb")
            fig = Figure(
                f"rss.{name}",
                "rss",
                f"RSS of `minsheng serve {name}`",
                metric="rss_mb",
                target="idle ≤ 120 MB",
                baseline_name="bare FastAPI app (same server, asyncpg pools)",
            )
            if idle is None:
                fig.status, fig.note = "failed", "the service process did not start"
            else:
                fig.subject = {"idle_mb": round(idle, 1), "under_load_mb": r.get("under_load_mb")}
                fig.baseline = {
                    "idle_mb": round(base, 1) if base else None,
                    "under_load_mb": self.rss.get("bare", {}).get("under_load_mb"),
                }
                fig.met = idle <= 120
                if r.get("under_load_mb") is None:
                    fig.note = "not under load in this suite (idle only)"
            self.add(fig)

    # relay: the platform's OutboxRelay vs raw batched aiokafka produce --------------------------------------

    def run_relay(self) -> None:
        env, s = self.env, self.sizes
        fig = Figure(
            "relay.publish",
            "relay",
            f"Outbox relay publish rate ({s.relay_messages} events, batches of {s.relay_batch})",
            metric="rate",
            target="≥ 80% of raw batched produce",
            baseline_name="raw aiokafka producer (acks=all), same messages as record batches of the same size",
        )

        def body() -> None:
            asyncio.run(env.migrate("points", "relay"))
            subs, bases, sends = [], [], []
            for i in range(s.rounds):
                common = {
                    "bootstrap": env.kafka_bootstrap,
                    "n": s.relay_messages,
                    "batch_size": s.relay_batch,
                    "dsn": env.dsn_for("relay"),  # every side: whose CPU in PostgreSQL and the broker it costs
                    "broker_pid": env.broker_pid,
                }
                bases.append(self._worker({**common, "mode": "raw_batch", "topic": f"msbench.raw.{i}"}))
                sends.append(self._worker({**common, "mode": "raw_send", "topic": f"msbench.send.{i}"}))
                subs.append(
                    self._worker(
                        {
                            **common,
                            "mode": "relay",
                            "topic": f"msbench.relay.{i}",
                            "url": env.url_for("relay"),
                        }
                    )
                )
            fig.subject = _median(subs, lambda r: r["rate"])
            fig.baseline = _median(bases, lambda r: r["rate"])
            fig.extra["raw_send"] = _median(sends, lambda r: r["rate"])
            fig.ratio = fig.subject["rate"] / fig.baseline["rate"]
            fig.note = (
                f"context: a plain producer.send() per message, batches awaited: "
                f"{fig.extra['raw_send']['rate']:,.0f} msg/s (relay = "
                f"{fig.subject['rate'] / fig.extra['raw_send']['rate']:.0%} of it); CPU per message: relay "
                f"{fig.subject.get('cpu_us_per_message', 0):.0f} µs, raw batches "
                f"{fig.baseline.get('cpu_us_per_message', 0):.0f} µs, raw send "
                f"{fig.extra['raw_send'].get('cpu_us_per_message', 0):.0f} µs; CPU per message in the relay's "
                f"process + PostgreSQL + the broker: {_cpu_split(fig.subject)} µs, raw batches "
                f"{_cpu_split(fig.baseline)} µs"
            )

        self.guard(fig, body)
        if fig.ratio is not None:
            fig.met = fig.ratio >= 0.8
            self.log(
                f"    relay {fig.subject['rate']:.0f}/s vs raw {fig.baseline['rate']:.0f}/s "  # type: ignore[index]
                f"= {fig.ratio:.0%}"
            )

    def _worker(self, spec: dict[str, Any]) -> dict[str, Any]:
        path = self.env.workdir / f"relay-{time.time_ns()}.json"
        path.write_text(json.dumps(spec))
        result: dict[str, Any] = run_python("bench.relay_worker", str(path), timeout=900)
        return result

    # notify: event → message accepted by the provider stand-in, beside the provider call alone ------------

    def run_notify(self, rate: float = 100.0) -> None:
        env, s = self.env, self.sizes
        seconds = max(2.0, s.e2e_duration)
        fig = Figure(
            "notify.event_to_provider",
            "notify",
            f"Event → message accepted by the provider stand-in at "
            f"{rate:.0f}/s (notify on PostgreSQL: consumer, fan-out, sender, SMS over HTTP)",
            metric="p99_ms",
            target="p99 ≤ 100 ms",
            baseline_name="the provider call alone: the same SMS adapter posting to the same stand-in, "
            "same rate, no bus, database or queue",
        )

        def body() -> None:
            subs: list[dict[str, Any]] = []
            bases: list[dict[str, Any]] = []
            args = ("--rate", str(rate), "--seconds", str(seconds))
            for i in range(s.rounds):
                url = asyncio.run(env.migrate("notify", f"notify_bench_{i}"))  # a fresh queue each round
                bases.append(run_python("bench.notify_latency", *args, "--baseline", timeout=seconds + 120))
                subs.append(run_python("bench.notify_latency", *args, "--database-url", url, timeout=seconds + 120))
            for r in (*subs, *bases):
                r["latency_ms"] = {"p50": r["p50_ms"], "p99": r["p99_ms"], "max": r["max_ms"]}
            key: Callable[[dict[str, Any]], float] = lambda r: r["p99_ms"]  # noqa: E731
            fig.subject, fig.baseline = _median(subs, key), _median(bases, key)
            sub = fig.subject
            fig.met = sub["p99_ms"] <= 100 and sub["accepted"] == sub["events"] and not sub["handler_failures"]
            fig.note = (
                f"{sub['accepted']} of {sub['events']} accepted; fan-out committed → accepted (the sender's "
                f"share) p50/p99 {sub['send_lag_p50_ms']:.0f}/{sub['send_lag_p99_ms']:.0f} ms"
            )

        self.guard(fig, body)

    # notify: an urgent fire → the duty group, as `minsheng run --demo` runs it (issue 16's done-when) ------

    def run_fire_alert(self, fires: int = 15, interval: float = 1.0) -> None:
        """``bench.fire_alert`` in a process of its own, ``rounds`` times (the round with the median worst fire
        is kept). No baseline: the target is the issue's absolute one, not a ratio to hand-written code."""
        fig = Figure(
            "notify.fire_to_duty_group",
            "notify",
            f"Urgent fire → the duty group's WeCom robot, {fires} fires {interval:g} s apart "
            "(minsheng run --demo: points, issues, notify on SQLite, in-process bus)",
            metric="p99_ms",
            target="max ≤ 1000 ms (robot and on-duty SMS), every alert received",
        )

        def body() -> None:
            args = ("--fires", str(fires), "--interval", str(interval))
            rounds = [
                run_python("bench.fire_alert", *args, timeout=fires * (interval + 30) + 120)
                for _ in range(self.sizes.rounds)
            ]
            for r in rounds:
                r["latency_ms"] = {"p50": r["p50_ms"] or 0.0, "p99": r["p99_ms"] or 0.0, "max": r["max_ms"] or 0.0}
            key: Callable[[dict[str, Any]], float] = lambda r: r["max_ms"] if r["max_ms"] is not None else 1e9  # noqa: E731
            fig.subject = sub = _median(rounds, key)
            sms = sub["sms"] or {}
            all_received = sub["received"] == sub["fires"] and (
                not sub["on_duty_sms"] or sub["sms_received"] == sub["fires"]
            )
            fig.met = all_received and sub["max_ms"] <= 1000 and (not sms or sms["max_ms"] <= 1000)
            notes = [
                "no baseline (the issue's absolute target; nothing hand-written to compare with)",
                f"{sub['received']} of {sub['fires']} alerts received, max {sub['max_ms']} ms",
            ]
            if sub["on_duty_sms"]:
                notes.append(
                    f"on-duty SMS {sub['sms_received']} of {sub['fires']}"
                    + (f", p50/max {sms['p50_ms']:.0f}/{sms['max_ms']:.0f} ms" if sms else "")
                )
            if sub["post"]:
                notes.append(f"POST answered p50/max {sub['post']['p50_ms']:.0f}/{sub['post']['max_ms']:.0f} ms")
            fig.note = "; ".join(notes)

        self.guard(fig, body)

    # large data sets: list/filter/figures on a million issues and 100k households --------------------------

    def run_large(self) -> None:
        env = self.env
        t0 = time.perf_counter()
        try:
            loaded = asyncio.run(self._load_large())
        except Exception as exc:
            self.not_measured("large.load", "Load the large data sets", "failed", f"{type(exc).__name__}: {exc}"[:500])
            return
        self.log(f"  large data sets loaded in {time.perf_counter() - t0:.0f}s: {loaded}")
        template = env.template.replace("{service}", "large_{service}")
        issues = env.start_service("issues", MINSHENG_DATABASE_URL=template)
        issues.name = "issues-large"
        visits = None
        if isinstance(loaded.get("households"), int):
            visits = env.start_service("visits", MINSHENG_DATABASE_URL=template)
            visits.name = "visits-large"
        queries: dict[str, tuple[str, str, list[str]]] = {
            "list_scope": (
                "issues",
                "SELECT * FROM issues WHERE community = ANY(string_to_array($1, ',')) "
                "ORDER BY created_at DESC, id DESC LIMIT 51",
                ["communities"],
            ),
            "list_status": (
                "issues",
                "SELECT * FROM issues WHERE community = ANY(string_to_array($1, ',')) "
                "AND status = $2 ORDER BY created_at DESC, id DESC LIMIT 51",
                ["communities", "status"],
            ),
            "list_all": ("issues", "SELECT * FROM issues ORDER BY created_at DESC, id DESC LIMIT 51", []),
            "list_mine": (
                "issues",
                "SELECT * FROM issues WHERE reporter = $1 ORDER BY created_at DESC, id DESC LIMIT 51",
                ["reporter"],
            ),
            "figures": (
                "issues",
                "SELECT community, category, status, count(*) FROM issues "
                "WHERE created_at >= now() - interval '1 year' GROUP BY 1, 2, 3",
                [],
            ),
            "households": (
                "visits",
                "SELECT * FROM households WHERE community = ANY(string_to_array($1, ',')) ORDER BY id LIMIT 51",
                ["communities"],
            ),
            "households_compound": (
                "visits",
                "SELECT * FROM households WHERE compound = $1 ORDER BY id LIMIT 51",
                ["compound"],
            ),
        }
        dbs = {"issues": env.dsn_for("large_issues")}
        if visits is not None:
            dbs["visits"] = env.dsn_for("large_visits")
        bare = env.start_baseline(
            {
                "dbs": dbs,
                "queries": {k: {"db": db, "sql": q, "params": p} for k, (db, q, p) in queries.items() if db in dbs},
            },
            name="bare-large",
        )
        try:
            for srv in (issues, visits, bare):
                if srv is not None:
                    env.wait_ready(srv)
            self._large_figures(issues, visits, bare, loaded)
        finally:
            for srv in (issues, visits, bare):
                if srv is not None:
                    env.stop_server(srv)

    async def _load_large(self) -> dict[str, Any]:
        env, s = self.env, self.sizes
        from services.issues.models import metadata as issues_md

        await env.migrate("issues", "large_issues")
        categories = await seed_issue_catalogue(env, "large_issues")
        conn = await datagen.connect(env.dsn_for("large_issues"))
        loaded: dict[str, Any] = {}
        try:
            t = time.perf_counter()
            recipe = datagen.issue_recipe(s.large_issues, categories=categories or None)
            loaded["issues"] = await datagen.copy_rows(conn, issues_md.tables["issues"], s.large_issues, recipe)
            await conn.execute("VACUUM (ANALYZE)")  # as a loaded table would be: visibility map, statistics
            loaded["issues_seconds"] = round(time.perf_counter() - t, 1)
        finally:
            await conn.close()
        try:
            from services.visits.models import metadata as visits_md
        except Exception as exc:  # the visits service may be mid-change
            loaded["households"] = f"skipped: the visits models do not import ({exc})"
            return loaded
        if "households" not in visits_md.tables:
            loaded["households"] = "skipped: the visits service has no households table yet"
            return loaded
        await env.migrate("visits", "large_visits")
        conn = await datagen.connect(env.dsn_for("large_visits"))
        try:
            t = time.perf_counter()
            loaded["households"] = await datagen.copy_rows(
                conn, visits_md.tables["households"], s.large_households, datagen.household_recipe(s.large_households)
            )
            await conn.execute("VACUUM (ANALYZE)")
            loaded["households_seconds"] = round(time.perf_counter() - t, 1)
        finally:
            await conn.close()
        return loaded

    def _large_figures(self, srv: Server, visits: Server | None, bare: Server, loaded: dict[str, Any]) -> None:
        n = loaded.get("issues", 0)
        staff = _bearer(self.env.token(["staff"], sub="bench-staff", scopes=["community:yunxing"]))
        admin = _bearer(self.env.token(["admin"], sub="bench-admin", scopes=["*"]))
        resident = _bearer(self.env.token(["resident"], sub="resident-7"))
        Case = tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]

        def case(fid: str, title: str, caller: dict[str, str], path: str, bare_query: str) -> Case:
            """One request to the service (``path`` as ``caller``) against one to the bare endpoint's query."""
            return fid, title, [{"path": path, "headers": caller}], [{"path": f"/bare/sql/{bare_query}"}]

        issue_list = f"Issue list on {n:,} issues"
        scope = "list_scope?communities=yunxing"
        cases = [
            case("large.issue_list_scope", f"{issue_list}: staff, community scope", staff, "/issues/issues", scope),
            case(
                "large.issue_list_status",
                f"{issue_list}: scope + status filter",
                staff,
                "/issues/issues?status=submitted",
                "list_status?communities=yunxing&status=submitted",
            ),
            case("large.issue_list_all", f"{issue_list}: admin, no filter", admin, "/issues/issues", "list_all"),
            case(
                "large.issue_list_mine",
                f"{issue_list}: a resident's own (mine=true)",
                resident,
                "/issues/issues?mine=true",
                "list_mine?reporter=resident-7",
            ),
        ]
        with httpx.Client(timeout=60) as client:
            r = client.get(srv.url + "/issues/issues", headers=staff)
            cursor = r.json().get("next_cursor") if r.status_code == 200 else None
            figures = _find_path(client, srv, "get", "figures")
        if cursor:
            page2 = f"/issues/issues?cursor={cursor}"
            cases.append(
                case("large.issue_list_page2", f"{issue_list}: next page (keyset cursor)", staff, page2, scope)
            )
        if figures is not None:
            cases.append(
                case("large.issue_figures", f"Issue figures ({figures}) on {n:,} issues", staff, figures, "figures")
            )
        else:
            self.not_measured(
                "large.issue_figures",
                f"Issue figures on {n:,} issues",
                "skipped",
                "no GET …figures… endpoint in the issues service yet",
            )
        with httpx.Client(timeout=60) as client:  # warm both sides (caches, buffers) before the first figure
            for _ in range(3):
                for _, _, subject, baseline in cases:
                    client.get(srv.url + subject[0]["path"], headers=subject[0].get("headers"))
                    client.get(bare.url + baseline[0]["path"])
        for fid, title, subject, baseline in cases:
            self._large_case(fid, title, srv, subject, bare, baseline)
        hh = loaded.get("households")
        if visits is None or not isinstance(hh, int):
            self.not_measured("large.household_list", "Household list on 100,000 households", "skipped", str(hh))
            return
        field = _bearer(self.env.token(["staff"], sub="bench-staff", scopes=["community:yunxing"]))
        self._large_case(
            "large.household_list",
            f"Household list on {hh:,} households: staff, community scope",
            visits,
            [{"path": "/visits/households", "headers": field}],
            bare,
            [{"path": "/bare/sql/households?communities=yunxing"}],
        )
        self._large_case(
            "large.household_list_compound",
            f"Household list on {hh:,} households: one compound",
            visits,
            [{"path": f"/visits/households?compound={datagen.COMPOUNDS[0]}", "headers": field}],
            bare,
            [{"path": f"/bare/sql/households_compound?compound={datagen.COMPOUNDS[0]}"}],
        )

    def _large_case(
        self,
        fid: str,
        title: str,
        srv: Server,
        subject: list[dict[str, Any]],
        bare: Server,
        baseline: list[dict[str, Any]],
    ) -> None:
        rate = self.sizes.large_rate
        fig = Figure(
            fid,
            "large",
            title,
            metric="p99_ms",
            target="p99 ≤ 30 ms",
            baseline_name=f"the same kind of query with raw asyncpg in a bare endpoint; both at {rate:.0f}/s",
        )

        def body() -> None:
            self.compare(fig, (srv, subject), (bare, baseline), mode="open", rate=rate)
            p99 = (fig.subject or {}).get("latency_ms", {}).get("p99")
            fig.met = p99 is not None and p99 <= 30 and not (fig.subject or {}).get("errors")

        self.guard(fig, body)

    # --- output -------------------------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        for f in self.figures:
            if f.met is None and f.ratio is not None and f.status == "ok":
                limit = {"reads": 0.7, "writes": 0.7, "relay": 0.8}.get(f.group)
                if limit is not None:
                    f.met = f.ratio >= limit
        return {
            "sizes": asdict(self.sizes),
            "started_at": self.started,
            "finished_at": time.time(),
            "figures": [asdict(f) for f in self.figures],
            "rss": self.rss,
        }


class Skip(Exception):
    pass


def _pool_note(fig: Figure, sizes: Sizes, pool: int, base_pool: int | None = None) -> None:
    """Requests cycle when a side outruns its pool (replays, refusals): say so rather than hide it."""
    for side, n in (("subject", pool), ("baseline", base_pool)):
        result = fig.subject if side == "subject" else fig.baseline
        if n is None or not result:
            continue
        sent = result.get("requests", 0) * (sizes.warmup + sizes.duration) / max(sizes.duration, 1e-9)
        if sent > n:
            fig.note = (fig.note + f" {side} sent ~{sent:.0f} requests for a pool of {n}: some were repeats").strip()


async def order_context(dsn: str, diners: int, canteen_code: str = CANTEEN_CODE) -> dict[str, Any]:
    """The canteen's latest published menu (its capacity raised so no booking is refused for a seat), its first
    set meal, and ``diners`` new diners (copies of a demo diner, made eligible for delivery) — their ids in
    ``diners``; the rest is what the bare order endpoint needs to write the same order row."""
    from services.canteen.models import metadata as canteen_md

    conn = await datagen.connect(dsn)
    try:
        canteen = await conn.fetchrow("SELECT * FROM canteens WHERE code = $1", canteen_code)
        if canteen is None:
            raise LookupError(f"no canteen {canteen_code}")
        menu = await conn.fetchrow(
            "SELECT id, meal_date, slot FROM menus WHERE canteen_id = $1 AND status = 'published' "
            "AND meal_date > CURRENT_DATE ORDER BY meal_date DESC, slot = 'lunch' DESC LIMIT 1",
            canteen["id"],
        )
        if menu is None:
            raise LookupError(f"no published menu ahead at {canteen_code}")
        meal = await conn.fetchrow(
            "SELECT id, name, price_fen FROM set_meals WHERE menu_id = $1 ORDER BY position LIMIT 1", menu["id"]
        )
        await conn.execute("UPDATE menus SET capacity = 1000000 WHERE id = $1", menu["id"])
        template = await conn.fetchrow(
            "SELECT * FROM diners WHERE canteen_id = $1 AND status = 'active' "
            "ORDER BY delivery_eligible DESC, name LIMIT 1",
            canteen["id"],
        )
        if template is None:
            raise LookupError(f"no diner at {canteen_code}")
        ids = [uuid.uuid4() for _ in range(diners)]
        same = {k: (lambda i, v=v: v) for k, v in dict(template).items()}
        address = template["delivery_address"] or "云泰园3号楼2单元501"
        await datagen.copy_rows(
            conn,
            canteen_md.tables["diners"],
            diners,
            {
                **same,
                "id": lambda i: ids[i],
                "name": lambda i: f"食客{i}",
                "card_code": lambda i: f"BENCH{i:09d}",
                "subject": lambda i: None,
                "id_number_enc": lambda i: None,
                "id_number_hash": lambda i: None,
                "id_number_masked": lambda i: None,
                "resident_id": lambda i: None,
                "delivery_eligible": lambda i: True,
                "delivery_address": lambda i: address,
            },
        )
        await conn.execute("ANALYZE diners")
    finally:
        await conn.close()
    return {
        "canteen_id": str(canteen["id"]),
        "canteen_name": canteen["name"],
        "pickup_address": canteen["address"],
        "community": template["community"],
        "menu_id": str(menu["id"]),
        "meal_date": menu["meal_date"].isoformat(),
        "slot": menu["slot"],
        "set_meal_id": str(meal["id"]),
        "set_meal_name": meal["name"],
        "price_fen": meal["price_fen"],
        "delivery_address": address,
        "deliver_by": datetime.combine(menu["meal_date"], datetime.min.time(), UTC).replace(hour=12).isoformat(),
        "diners": [str(i) for i in ids],
    }


async def _values(dsn: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return [r[0] for r in await conn.fetch(sql)]
    except Exception:
        return []
    finally:
        await conn.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _busy_since(before: Any) -> tuple[float, float]:
    """The share of the machine's CPU time that was not idle since ``before`` (``psutil.cpu_times()``), and
    those busy CPU-seconds, all cores together."""
    after = psutil.cpu_times()
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    if total <= 0:
        return 0.0, 0.0
    return round(1 - idle / total, 3), total - idle  # /proc/stat's "cpu" line sums every core


def _cpu_split(result: dict[str, Any]) -> str:
    """``12 + 9 + 6``: µs of CPU per message in the worker's process, the bench's PostgreSQL and the broker."""
    parts = ("cpu_us_per_message", "postgres_cpu_us_per_message", "broker_cpu_us_per_message")
    return " + ".join(f"{result.get(part, 0):.0f}" for part in parts)


def _median(results: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> dict[str, Any]:
    ordered = sorted(results, key=key)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(results) > 1:
        chosen["rounds"] = [key(r) for r in results]
        chosen["spread"] = (max(map(key, results)) - min(map(key, results))) / (
            statistics.median(list(map(key, results))) or 1
        )
    return chosen


def _find_path(client: httpx.Client, server: Server, method: str, word: str) -> str | None:
    """The first path of ``server``'s OpenAPI with ``method`` containing ``word`` (no path parameters if
    possible) — how the suite notices that an endpoint exists yet."""
    mount = f"/{server.name.split('-')[0]}"
    try:
        r = client.get(f"{server.url}{mount}/openapi.json")
        paths = r.json().get("paths", {}) if r.status_code == 200 else {}
    except Exception:
        return None
    found = [p for p, ops in paths.items() if word in p and method in ops]
    found.sort(key=lambda p: ("{" in p, len(p)))
    return f"{mount}{found[0]}" if found else None


async def install_issue_notify(env: BenchEnv) -> None:
    """Install the end-to-end figure's NOTIFY trigger in the issues database (``bench.e2e.NOTIFY_SQL``)."""
    import asyncpg

    from bench.e2e import NOTIFY_SQL

    conn = await asyncpg.connect(env.dsn_for("issues"))
    try:
        await conn.execute(NOTIFY_SQL)
    finally:
        await conn.close()
